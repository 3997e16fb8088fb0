//! The metadata log replicated with openraft: each entry is an atomic batch of record
//! envelopes, and applying it replays the records into the shared [`crate::MetadataImage`].
//!
//! A single node is a one-voter quorum running this same code; a cluster's voters reach each
//! other over the TCP transport in `network.rs`.

mod disk;
mod log_store;
mod network;
mod state_machine;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use openraft::{BasicNode, Config, LogIdOptionExt, Raft, ServerState, SnapshotPolicy};

use crate::records::{MetadataRecord, RecordEnvelope};
use crate::SharedImage;
use log_store::LogStore;
use network::join;
pub use network::{forward, send_heartbeat};
use network::{Network, Submissions};
use state_machine::StateMachine;

openraft::declare_raft_types!(
    /// Raft types of the metadata log: entries carry record envelopes, nodes are controller
    /// node ids with their Raft address.
    pub TypeConfig:
        D = Vec<RecordEnvelope>,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Leadership plus replay of a previous run's log; generous because replay has no fixed size.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// A write that is stuck this long is reported as failed (it may still commit later, as with
/// any timed-out write, so callers retry by deciding again on the image).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const LOCK_FILE: &str = "lock";

pub struct Quorum {
    raft: Raft<TypeConfig>,
    image: SharedImage,
    /// Held while Raft runs: two processes appending to one log would corrupt it.
    lock: parking_lot::Mutex<Option<File>>,
    /// Answers the other voters' RPCs (cluster mode).
    server: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Where the server hands commands forwarded to this node.
    submissions: Submissions,
    node_id: u64,
}

fn config() -> anyhow::Result<Arc<Config>> {
    let config = Config {
        cluster_name: "strata-metadata".to_string(),
        // Small enough that a one-voter quorum elects itself well within a second of opening.
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // Snapshots are the whole image, so they are taken rarely; the log kept behind one
        // lets a briefly lagging follower catch up without a snapshot transfer.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
        // openraft wants this above the snapshot interval, so that sending a snapshot really
        // brings a lagging node back.
        replication_lag_threshold: 20_000,
        ..Default::default()
    };
    Ok(Arc::new(config.validate()?))
}

fn lock_dir(dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    file.try_lock().map_err(|e| {
        anyhow!(
            "metadata log {} is in use by another process: {e}",
            dir.display()
        )
    })?;
    Ok(file)
}

impl Quorum {
    /// Opens (or creates) this node's Raft log under `dir` (created if missing), as a
    /// one-voter cluster {node_id} (initialize the membership on first start only), waits until
    /// this node is leader AND every committed entry (from a previous run too) has been applied
    /// to the image, then returns.
    pub async fn open_single(dir: &Path, node_id: u64) -> anyhow::Result<Quorum> {
        let quorum = Self::open_raft(dir, node_id).await?;
        if let Err(e) = quorum.become_single_leader(node_id).await {
            if let Err(stop) = quorum.shutdown().await {
                tracing::warn!(error = %stop, "stopping the metadata quorum after a failed open");
            }
            return Err(e);
        }
        Ok(quorum)
    }

    /// Opens this node's Raft log under `dir` as one of `voters` (node id: controller address),
    /// answers the other voters on `listener` (bound to this node's address), and waits until
    /// the voters know a leader. On the cluster's first start the lowest id initializes the
    /// membership; the others learn it from the leader.
    pub async fn open_voter(
        dir: &Path,
        node_id: u64,
        voters: BTreeMap<u64, String>,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Quorum> {
        anyhow::ensure!(
            voters.contains_key(&node_id),
            "node {node_id} is not one of the voters {voters:?}"
        );
        let quorum = Self::open_raft(dir, node_id).await?;
        *quorum.server.lock() = Some(tokio::spawn(network::serve(
            listener,
            quorum.raft.clone(),
            quorum.submissions.clone(),
        )));
        let first = voters.keys().next() == Some(&node_id);
        let opened = async {
            if first && !quorum.raft.is_initialized().await? {
                tracing::info!(node_id, ?voters, "initializing the metadata quorum");
                let members = voters
                    .into_iter()
                    .map(|(id, addr)| (id, BasicNode::new(addr)))
                    .collect::<BTreeMap<_, _>>();
                quorum.raft.initialize(members).await?;
            }
            let metrics = quorum
                .raft
                .wait(Some(OPEN_TIMEOUT))
                .metrics(|m| m.current_leader.is_some(), "a known leader")
                .await
                .context("waiting for the metadata quorum to elect a leader")?;
            tracing::info!(
                node_id,
                leader = ?metrics.current_leader,
                term = metrics.current_term,
                "metadata quorum open"
            );
            anyhow::Ok(())
        };
        if let Err(e) = opened.await {
            if let Err(stop) = quorum.shutdown().await {
                tracing::warn!(error = %stop, "stopping the metadata quorum after a failed open");
            }
            return Err(e);
        }
        Ok(quorum)
    }

    /// Opens this node's Raft log under `dir` as a follower that does not vote: it answers the
    /// leader's replication on `listener` (bound to `addr`), asks the `voters` until the leader
    /// adds it as a learner, and waits until it knows the leader.
    pub async fn open_follower(
        dir: &Path,
        node_id: u64,
        addr: &str,
        voters: BTreeMap<u64, String>,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Quorum> {
        anyhow::ensure!(
            !voters.contains_key(&node_id),
            "node {node_id} is one of the voters; it cannot only follow"
        );
        let quorum = Self::open_raft(dir, node_id).await?;
        *quorum.server.lock() = Some(tokio::spawn(network::serve(
            listener,
            quorum.raft.clone(),
            quorum.submissions.clone(),
        )));
        let opened = async {
            let deadline = tokio::time::Instant::now() + OPEN_TIMEOUT;
            'joined: loop {
                for voter in voters.values() {
                    match join(voter, node_id, addr).await {
                        Ok(Ok(())) => break 'joined,
                        Ok(Err(why)) => tracing::debug!(voter, why, "not joined yet"),
                        Err(e) => tracing::debug!(voter, error = %e, "not joined yet"),
                    }
                }
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "no metadata leader took this node as a follower within {OPEN_TIMEOUT:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let metrics = quorum
                .raft
                .wait(Some(OPEN_TIMEOUT))
                .metrics(|m| m.current_leader.is_some(), "a known leader")
                .await
                .context("waiting to hear from the metadata leader")?;
            tracing::info!(node_id, leader = ?metrics.current_leader, "following the metadata quorum");
            anyhow::Ok(())
        };
        if let Err(e) = opened.await {
            if let Err(stop) = quorum.shutdown().await {
                tracing::warn!(error = %stop, "stopping the metadata quorum after a failed open");
            }
            return Err(e);
        }
        Ok(quorum)
    }

    async fn open_raft(dir: &Path, node_id: u64) -> anyhow::Result<Quorum> {
        let lock = lock_dir(dir)?;
        let image = SharedImage::default();
        let (log_store, state_machine) = {
            let owned = dir.to_path_buf();
            let image = image.clone();
            disk::blocking(move || {
                Ok((LogStore::open(&owned)?, StateMachine::open(&owned, image)?))
            })
            .await
            .with_context(|| format!("opening metadata log in {}", dir.display()))?
        };
        let raft = Raft::new(node_id, config()?, Network, log_store, state_machine).await?;
        Ok(Quorum {
            raft,
            image,
            lock: parking_lot::Mutex::new(Some(lock)),
            server: parking_lot::Mutex::new(None),
            submissions: Submissions::default(),
            node_id,
        })
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Commands forwarded to this node go to `controller` from now on.
    pub fn serve_submissions(&self, controller: std::sync::Weak<crate::ControllerHandle>) {
        let _ = self.submissions.set(controller);
    }

    /// The leader this node knows of, with its controller address.
    pub async fn leader_addr(&self) -> Option<(u64, String)> {
        let leader = self.raft.current_leader().await?;
        let metrics = self.raft.metrics().borrow().clone();
        let node = metrics.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    }

    /// Returns once this node, as leader, has applied everything committed before now.
    pub async fn caught_up(&self) -> anyhow::Result<()> {
        tokio::time::timeout(WRITE_TIMEOUT, self.raft.ensure_linearizable())
            .await
            .map_err(|_| anyhow!("not caught up within {WRITE_TIMEOUT:?}"))?
            .map_err(|e| anyhow!("not the metadata leader: {e}"))?;
        Ok(())
    }

    /// Waits until this node has applied the log up to `index`.
    pub async fn wait_applied(
        &self,
        index: u64,
        deadline: std::time::Instant,
    ) -> anyhow::Result<()> {
        let timeout = deadline.saturating_duration_since(std::time::Instant::now());
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "a forwarded write")
            .await
            .map_err(|e| anyhow!("forwarded write not applied here: {e}"))?;
        Ok(())
    }

    /// The index of the last entry applied to this node's image (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.raft
            .metrics()
            .borrow()
            .last_applied
            .index()
            .unwrap_or(0)
    }

    /// The term this node leads in, if it leads.
    pub fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics().borrow().clone();
        (metrics.state == ServerState::Leader && metrics.current_leader == Some(self.node_id))
            .then_some(metrics.current_term)
    }

    /// The node that leads the quorum now, as far as this node knows.
    pub async fn leader(&self) -> Option<u64> {
        self.raft.current_leader().await
    }

    async fn become_single_leader(&self, node_id: u64) -> anyhow::Result<()> {
        // A node with a vote or any log has been initialized before; initializing again
        // would be refused, and with a different membership would split the cluster.
        if !self.raft.is_initialized().await? {
            tracing::info!(node_id, "initializing a one-voter metadata quorum");
            self.raft
                .initialize(BTreeMap::from([(node_id, BasicNode::default())]))
                .await?;
        }
        // Once this node leads, everything in its log is committed; having applied up to the
        // last log index means the image holds every committed record.
        let metrics = self
            .raft
            .wait(Some(OPEN_TIMEOUT))
            .metrics(
                |m| {
                    m.state == ServerState::Leader
                        && m.current_leader == Some(node_id)
                        && m.last_applied.index() >= m.last_log_index
                },
                "leader with its whole log applied",
            )
            .await
            .context("waiting for the metadata quorum to elect this node")?;
        tracing::info!(
            node_id,
            term = metrics.current_term,
            applied = ?metrics.last_applied.index(),
            "metadata quorum open"
        );
        Ok(())
    }

    /// The image every reader shares; applying committed entries is its only writer.
    pub fn image(&self) -> &SharedImage {
        &self.image
    }

    /// Appends one entry holding `records` (atomic batch), returns once it is committed
    /// (durable: fsync'd) AND applied to the image. Returns the log index.
    pub async fn write(&self, records: Vec<MetadataRecord>) -> anyhow::Result<u64> {
        let envelopes = records.into_iter().map(RecordEnvelope::from).collect();
        let response = tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(envelopes))
            .await
            .map_err(|_| anyhow!("metadata write not committed within {WRITE_TIMEOUT:?}"))??;
        Ok(response.log_id.index)
    }

    /// Stops Raft cleanly.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        if let Some(server) = self.server.lock().take() {
            server.abort();
        }
        self.raft
            .shutdown()
            .await
            .map_err(|e| anyhow!("stopping the metadata quorum: {e}"))?;
        // Only now has the last write to the log finished; another opener may take over.
        self.lock.lock().take();
        Ok(())
    }

    #[cfg(test)]
    fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }
}
