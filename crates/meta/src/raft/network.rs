//! Raft RPCs between controller nodes over TCP: each message is a length-prefixed JSON frame,
//! one request and its reply at a time per connection. The client side reconnects on the next
//! call after any failure; the server side hands each request to the local Raft.
//!
//! Invariants:
//! 1. A frame longer than [`FRAME_BYTES_MAX`] is refused before anything is allocated for it.
//! 2. A failed call drops its connection: a reply can never be read for the wrong request.

use std::io;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::TypeConfig;
use crate::controller::{Command, ControllerHandle, Refused};
use crate::records::MetadataRecord;

/// The controller this node's server hands forwarded commands to, once it exists.
pub type Submissions = Arc<OnceLock<Weak<ControllerHandle>>>;

/// The largest frame either side accepts: snapshots are sent in chunks well below it.
pub const FRAME_BYTES_MAX: usize = 64 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A forwarded command waits for its records to commit on the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A command a node that does not lead forwards to the leader.
    Submit(Command),
    /// A node that does not vote asks to follow the log (as a Raft learner) at `addr`.
    Join {
        node_id: u64,
        addr: String,
    },
    /// A broker's heartbeat to the active controller.
    Heartbeat {
        node_id: i32,
        incarnation: u64,
    },
}

/// What the leader answers a forwarded command: its records and their log index.
pub type Submitted = Result<(Vec<MetadataRecord>, u64), Refused>;

#[derive(Serialize, Deserialize)]
enum Reply {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Submit(Submitted),
    Join(Result<(), String>),
    /// Whether the broker is fenced, or why the heartbeat was not taken.
    Heartbeat(Result<bool, String>),
}

/// One request and its reply on a fresh connection to `addr`, within `timeout`. An error of
/// kind `ConnectionRefused` means the request was never sent.
async fn exchange(addr: &str, request: &Request, timeout: Duration) -> io::Result<Reply> {
    let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("connecting to {addr}"),
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    let exchange = async {
        write_frame(&mut stream, request).await?;
        read_frame::<Reply>(&mut stream).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "controller request timed out"))?
}

fn unexpected_reply() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "a reply to another request")
}

/// Forwards `command` to the controller at `addr` and waits for its answer. An error of kind
/// `ConnectionRefused` means the command was never sent.
pub async fn forward(addr: &str, command: &Command) -> io::Result<Submitted> {
    match exchange(addr, &Request::Submit(command.clone()), FORWARD_TIMEOUT).await? {
        Reply::Submit(answer) => Ok(answer),
        _ => Err(unexpected_reply()),
    }
}

/// Asks the controller at `addr` to make `node_id` (answering at `node_addr`) follow the log.
/// Only the leader can; others answer with an error naming why.
pub async fn join(addr: &str, node_id: u64, node_addr: &str) -> io::Result<Result<(), String>> {
    let request = Request::Join {
        node_id,
        addr: node_addr.to_string(),
    };
    match exchange(addr, &request, FORWARD_TIMEOUT).await? {
        Reply::Join(answer) => Ok(answer),
        _ => Err(unexpected_reply()),
    }
}

/// Sends a broker's heartbeat to the controller at `addr`, within `timeout`: whether the broker
/// is fenced, or why the heartbeat was not taken (this node does not lead, say).
pub async fn send_heartbeat(
    addr: &str,
    node_id: i32,
    incarnation: u64,
    timeout: Duration,
) -> io::Result<Result<bool, String>> {
    let request = Request::Heartbeat {
        node_id,
        incarnation,
    };
    match exchange(addr, &request, timeout).await? {
        Reply::Heartbeat(answer) => Ok(answer),
        _ => Err(unexpected_reply()),
    }
}

async fn write_frame<T: Serialize>(stream: &mut TcpStream, message: &T) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    if body.len() > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}

async fn read_frame<T: DeserializeOwned>(stream: &mut TcpStream) -> io::Result<T> {
    let length = stream.read_u32().await? as usize;
    if length > FRAME_BYTES_MAX {
        // Invariant 1.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[derive(Clone, Debug, Default)]
pub struct Network;

pub struct Connection {
    target: u64,
    addr: String,
    stream: Option<TcpStream>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            target,
            addr: node.addr.clone(),
            stream: None,
        }
    }
}

impl Connection {
    /// Sends `request` and reads its reply, within `timeout`.
    async fn call<E: std::error::Error>(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<Reply, RPCError<u64, BasicNode, E>> {
        if self.stream.is_none() {
            let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr));
            let stream = match connect.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
                Err(_) => {
                    let e = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {}", self.addr),
                    );
                    return Err(RPCError::Unreachable(Unreachable::new(&e)));
                }
            };
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        let exchange = async {
            write_frame(stream, &request).await?;
            read_frame::<Reply>(stream).await
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "raft rpc timed out",
            )),
        };
        result.map_err(|e| {
            // Invariant 2.
            self.stream = None;
            RPCError::Network(NetworkError::new(&e))
        })
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<u64, E>,
    ) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }

    fn unexpected<E: std::error::Error>(&mut self) -> RPCError<u64, BasicNode, E> {
        self.stream = None;
        let e = io::Error::new(io::ErrorKind::InvalidData, "a reply to another request");
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .call(Request::AppendEntries(rpc), option.hard_ttl())
            .await?
        {
            Reply::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self
            .call(Request::InstallSnapshot(rpc), option.hard_ttl())
            .await?
        {
            Reply::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(Request::Vote(rpc), option.hard_ttl()).await? {
            Reply::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected()),
        }
    }
}

/// Answers Raft RPCs from the other controller nodes until the listener fails or the task is
/// aborted, which closes every connection it accepted.
pub async fn serve(listener: TcpListener, raft: Raft<TypeConfig>, submissions: Submissions) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener failed");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let (raft, submissions) = (raft.clone(), submissions.clone());
        connections.spawn(async move {
            if let Err(e) = answer(stream, raft, submissions).await {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    tracing::debug!(%peer, error = %e, "controller connection closed");
                }
            }
        });
    }
}

/// Adds a node that follows the log without voting; a voter's id is refused, so a
/// misconfigured node can never change the voters.
async fn add_learner(raft: &Raft<TypeConfig>, node_id: u64, addr: String) -> Result<(), String> {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    if membership.voter_ids().any(|id| id == node_id) {
        return Err(format!("node {node_id} is a voter"));
    }
    if membership
        .get_node(&node_id)
        .is_some_and(|n| n.addr == addr)
    {
        return Ok(());
    }
    raft.add_learner(node_id, BasicNode::new(addr), false)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn answer(
    mut stream: TcpStream,
    raft: Raft<TypeConfig>,
    submissions: Submissions,
) -> io::Result<()> {
    loop {
        let reply = match read_frame::<Request>(&mut stream).await? {
            Request::AppendEntries(rpc) => Reply::AppendEntries(raft.append_entries(rpc).await),
            Request::Vote(rpc) => Reply::Vote(raft.vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Reply::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            Request::Submit(command) => {
                let controller = submissions.get().and_then(Weak::upgrade);
                Reply::Submit(match controller {
                    Some(c) => c.submit_indexed(&command).await.map_err(Refused::from),
                    None => Err(Refused::Quorum("the controller is starting".into())),
                })
            }
            Request::Join { node_id, addr } => Reply::Join(add_learner(&raft, node_id, addr).await),
            Request::Heartbeat {
                node_id,
                incarnation,
            } => Reply::Heartbeat(match submissions.get().and_then(Weak::upgrade) {
                Some(c) => c.heartbeat(node_id, incarnation).await,
                None => Err("the controller is starting".into()),
            }),
        };
        write_frame(&mut stream, &reply).await?;
    }
}
