//! Tests of the metadata quorum: restart replays the image, torn tails are dropped, snapshots
//! survive log purges, and openraft's own storage suite.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{LogIdOptionExt, RaftLogReader, StorageError};
use tempfile::TempDir;
use uuid::Uuid;

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::{Quorum, TypeConfig};
use crate::MetadataRecord;

fn topic_records(name: &str, first_stream: u64) -> Vec<MetadataRecord> {
    let topic_id = Uuid::new_v4();
    let mut records = vec![MetadataRecord::Topic {
        topic_id,
        name: name.to_string(),
        configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
    }];
    for partition in 0..2 {
        let stream_id = first_stream + partition as u64;
        records.push(MetadataRecord::Partition {
            topic_id,
            partition,
            leader: 1,
            leader_epoch: 0,
            stream_id,
            state_stream_id: None,
        });
        records.push(MetadataRecord::StreamOpened {
            stream_id,
            epoch: 1,
            owner: 1,
            start_offset: 0,
            rescue_from: None,
        });
    }
    records
}

/// The image as comparable data (it does not implement `PartialEq`).
fn snapshot(quorum: &Quorum) -> serde_json::Value {
    serde_json::to_value(&*quorum.image().read()).unwrap()
}

async fn open(dir: &Path) -> Quorum {
    tokio::time::timeout(Duration::from_secs(5), Quorum::open_single(dir, 1))
        .await
        .expect("open within 5 s")
        .unwrap()
}

#[tokio::test]
async fn restart_replays_the_image() {
    let dir = TempDir::new().unwrap();
    let quorum = open(dir.path()).await;
    let first = quorum.write(topic_records("a", 0)).await.unwrap();
    let second = quorum.write(topic_records("b", 2)).await.unwrap();
    assert!(second > first);
    let before = snapshot(&quorum);
    {
        let image = quorum.image().read();
        assert_eq!(image.topics.len(), 2);
        assert_eq!(image.partition("b", 1).unwrap().stream_id, 3);
        assert_eq!(image.streams[&3].epoch, 1);
    }
    quorum.shutdown().await.unwrap();
    drop(quorum);

    let quorum = open(dir.path()).await;
    assert_eq!(snapshot(&quorum), before);
    let third = quorum.write(topic_records("c", 4)).await.unwrap();
    assert!(third > second);
    assert_eq!(quorum.image().read().topics.len(), 3);
    quorum.shutdown().await.unwrap();
}

#[tokio::test]
async fn torn_tail_is_dropped_on_reopen() {
    let dir = TempDir::new().unwrap();
    let quorum = open(dir.path()).await;
    quorum.write(topic_records("a", 0)).await.unwrap();
    let before = snapshot(&quorum);
    quorum.shutdown().await.unwrap();
    drop(quorum);

    // A frame header promising more bytes than follow: a crash in the middle of an append.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("log"))
        .unwrap();
    log.write_all(&200u32.to_le_bytes()).unwrap();
    log.write_all(b"\x01\x02\x03\x04{\"log_id\":").unwrap();
    drop(log);

    let quorum = open(dir.path()).await;
    assert_eq!(snapshot(&quorum), before);
    // What is appended after the cut must be readable on the next open.
    quorum.write(topic_records("b", 2)).await.unwrap();
    let after = snapshot(&quorum);
    quorum.shutdown().await.unwrap();
    drop(quorum);

    let quorum = open(dir.path()).await;
    assert_eq!(snapshot(&quorum), after);
    assert_eq!(quorum.image().read().topics.len(), 2);
    quorum.shutdown().await.unwrap();
}

#[tokio::test]
async fn reopen_after_snapshot_and_purge() {
    let dir = TempDir::new().unwrap();
    let quorum = open(dir.path()).await;
    for i in 0..5 {
        quorum
            .write(topic_records(&format!("t{i}"), i * 2))
            .await
            .unwrap();
    }
    let raft = quorum.raft();
    let last = raft.metrics().borrow().last_applied.index().unwrap();
    raft.trigger().snapshot().await.unwrap();
    raft.wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.snapshot.index() >= Some(last), "snapshot")
        .await
        .unwrap();
    raft.trigger().purge_log(last).await.unwrap();
    raft.wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.purged.index() >= Some(last), "purge")
        .await
        .unwrap();
    // One entry after the snapshot, so that reopening needs both snapshot and log.
    quorum.write(topic_records("after", 10)).await.unwrap();
    let before = snapshot(&quorum);
    quorum.shutdown().await.unwrap();
    drop(quorum);

    // The purged entries are gone from disk, so the reopened image must come from the snapshot.
    let mut log = LogStore::open(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.index(), Some(last));
    assert!(log.try_get_log_entries(..=last).await.unwrap().is_empty());
    assert!(!log
        .try_get_log_entries(last + 1..)
        .await
        .unwrap()
        .is_empty());
    drop(log);

    let quorum = open(dir.path()).await;
    assert_eq!(snapshot(&quorum), before);
    assert_eq!(quorum.image().read().topics.len(), 6);
    quorum.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_log_in_use_cannot_be_opened_twice() {
    let dir = TempDir::new().unwrap();
    let quorum = open(dir.path()).await;
    assert!(Quorum::open_single(dir.path(), 1).await.is_err());
    quorum.shutdown().await.unwrap();
    open(dir.path()).await.shutdown().await.unwrap();
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = TempDir::new().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let sm = StateMachine::open(dir.path(), Default::default()).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

#[tokio::test]
async fn zero_filled_tail_is_dropped_but_an_unreadable_entry_is_refused() {
    let dir = TempDir::new().unwrap();
    let quorum = open(dir.path()).await;
    quorum.write(topic_records("a", 0)).await.unwrap();
    quorum.shutdown().await.unwrap();
    drop(quorum);
    let path = dir.path().join("log");
    let good_len = std::fs::metadata(&path).unwrap().len();

    // The file grew but its data never landed.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    log.write_all(&[0; 64]).unwrap();
    drop(log);
    drop(LogStore::open(dir.path()).unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);

    // A whole frame (its checksum holds) that does not decode was not torn; it must be kept.
    let mut frame = Vec::new();
    super::disk::encode_frame(&mut frame, b"{\"from\":\"the future\"}").unwrap();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    log.write_all(&frame).unwrap();
    drop(log);
    assert!(LogStore::open(dir.path()).is_err());
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        good_len + frame.len() as u64
    );
}

/// Polls `check` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The leader all of `nodes` agree on, other than `gone`.
async fn leader_among(nodes: &[&Quorum], gone: Option<u64>) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut seen = Vec::new();
        for n in nodes {
            seen.push(n.leader().await);
        }
        if let Some(Some(leader)) = seen.first() {
            if Some(*leader) != gone && seen.iter().all(|l| *l == Some(*leader)) {
                return *leader;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no agreed leader: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three voters (ids 1..=3, at index id - 1) on loopback, opened together, with their
/// directories and addresses.
async fn three_voters() -> (Vec<TempDir>, BTreeMap<u64, String>, Vec<Quorum>) {
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
    let mut listeners = Vec::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        voters.insert(id, listener.local_addr().unwrap().to_string());
        listeners.push(listener);
    }
    let mut listeners = listeners.into_iter();
    let open = |i: usize, listener| {
        Quorum::open_voter(dirs[i].path(), i as u64 + 1, voters.clone(), listener)
    };
    let (a, b, c) = tokio::join!(
        open(0, listeners.next().unwrap()),
        open(1, listeners.next().unwrap()),
        open(2, listeners.next().unwrap())
    );
    let quorums = vec![a.unwrap(), b.unwrap(), c.unwrap()];
    (dirs, voters, quorums)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_replicate_over_tcp_and_survive_losing_the_leader() {
    let (dirs, voters, quorums) = three_voters().await;
    let mut nodes: Vec<Option<Quorum>> = quorums.into_iter().map(Some).collect();
    let live = |nodes: &[Option<Quorum>]| -> Vec<usize> {
        (0..nodes.len()).filter(|i| nodes[*i].is_some()).collect()
    };
    // Node ids are 1..=3, at index id - 1.
    let node = |id: u64| -> usize { id as usize - 1 };

    let all: Vec<&Quorum> = nodes.iter().flatten().collect();
    let leader = leader_among(&all, None).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let leader_node = nodes[node(leader)].as_ref().unwrap();
    leader_node.write(topic_records("a", 0)).await.unwrap();
    assert!(
        nodes[node(follower)]
            .as_ref()
            .unwrap()
            .write(topic_records("x", 10))
            .await
            .is_err(),
        "only the leader appends"
    );
    for i in live(&nodes) {
        let image = nodes[i].as_ref().unwrap().image().clone();
        eventually("the topic on every voter", || {
            image.read().topic_by_name("a").is_some()
        })
        .await;
    }

    // The leader goes away: the other two elect one of themselves and go on.
    let old = nodes[node(leader)].take().unwrap();
    old.shutdown().await.unwrap();
    drop(old);
    let rest: Vec<&Quorum> = nodes.iter().flatten().collect();
    let started = std::time::Instant::now();
    let new_leader = leader_among(&rest, Some(leader)).await;
    assert_ne!(new_leader, leader);
    println!("a new leader within {:?}", started.elapsed());
    nodes[node(new_leader)]
        .as_ref()
        .unwrap()
        .write(topic_records("b", 2))
        .await
        .unwrap();
    for i in live(&nodes) {
        let image = nodes[i].as_ref().unwrap().image().clone();
        eventually("the second topic on both voters", || {
            image.read().topic_by_name("b").is_some()
        })
        .await;
    }

    // The old leader comes back at its address and catches up from the log.
    let listener = tokio::net::TcpListener::bind(&voters[&leader])
        .await
        .unwrap();
    let back = Quorum::open_voter(dirs[node(leader)].path(), leader, voters.clone(), listener)
        .await
        .unwrap();
    let image = back.image().clone();
    eventually("the returning voter to catch up", || {
        image.read().topic_by_name("b").is_some()
    })
    .await;
    nodes[node(leader)] = Some(back);
    for n in nodes.into_iter().flatten() {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_submitted_anywhere_are_decided_by_the_leader() {
    use crate::controller::{Command, ControllerHandle, SubmitError};
    use crate::ControllerError;

    let (_dirs, _, quorums) = three_voters().await;
    let mut handles: Vec<Option<std::sync::Arc<ControllerHandle>>> = quorums
        .into_iter()
        .map(|q| Some(ControllerHandle::new(q)))
        .collect();
    let create = |name: &str| Command::CreateTopic {
        topic_id: Uuid::new_v4(),
        name: name.to_string(),
        partitions: 2,
        configs: BTreeMap::new(),
    };
    // New partitions are led by registered brokers: here the three nodes.
    for (i, h) in handles.iter().enumerate() {
        h.as_ref()
            .unwrap()
            .submit(Command::RegisterBroker {
                node_id: i as i32 + 1,
                host: "127.0.0.1".into(),
                port: 9092 + i as i32,
                rack: None,
                incarnation: 1,
                wal: None,
            })
            .await
            .unwrap();
    }
    for (i, h) in handles.iter().enumerate() {
        let h = h.as_ref().unwrap();
        let name = format!("from-{i}");
        let records = h.submit(create(&name)).await.unwrap();
        assert!(!records.is_empty());
        // Read-your-writes on the node that submitted, leader or not.
        let image = h.image().read();
        let topic = image.topic_by_name(&name).expect("in this node's image");
        assert_eq!(topic.partitions.len(), 2);
    }
    // The leader's decision, with its Kafka-level error, comes back over the wire.
    for h in handles.iter().flatten() {
        match h.submit(create("from-0")).await {
            Err(SubmitError::Controller(ControllerError::TopicAlreadyExists(name))) => {
                assert_eq!(name, "from-0")
            }
            other => panic!("expected TopicAlreadyExists, got {other:?}"),
        }
    }
    // Stream ids stay unique across nodes: every decision saw the others.
    {
        let image = handles[0].as_ref().unwrap().image().clone();
        eventually("all topics everywhere", || image.read().topics.len() == 3).await;
        let image = image.read();
        let mut streams: Vec<u64> = image
            .topics
            .values()
            .flat_map(|t| t.partitions.values().map(|p| p.stream_id))
            .collect();
        streams.sort();
        streams.dedup();
        assert_eq!(streams.len(), 6);
    }

    // Without its leader the quorum decides again under a new one, wherever it is asked.
    let leader = handles[0]
        .as_ref()
        .unwrap()
        .quorum()
        .leader()
        .await
        .unwrap();
    let old = handles[leader as usize - 1].take().unwrap();
    old.quorum().shutdown().await.unwrap();
    drop(old);
    for (i, h) in handles.iter().enumerate() {
        let Some(h) = h else { continue };
        let name = format!("after-{i}");
        h.submit(create(&name)).await.unwrap();
        assert!(h.image().read().topic_by_name(&name).is_some());
    }
    for h in handles.into_iter().flatten() {
        h.quorum().shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_receives_the_log_and_forwards_commands_without_voting() {
    use crate::controller::{Command, ControllerHandle};

    let (_dirs, voters, quorums) = three_voters().await;
    let voter = ControllerHandle::new(quorums.into_iter().next().unwrap());
    voter
        .submit(Command::InitCluster {
            cluster_id: "before".into(),
        })
        .await
        .unwrap();

    let dir = TempDir::new().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let follower = Quorum::open_follower(dir.path(), 4, &addr, voters.clone(), listener)
        .await
        .unwrap();
    let follower = ControllerHandle::new(follower);
    // What was committed before it joined reaches it too.
    let image = follower.image().clone();
    eventually("the earlier record on the follower", || {
        image.read().cluster_id.as_deref() == Some("before")
    })
    .await;
    // Its commands are decided by the leader and are in its image when submit returns.
    follower
        .submit(Command::RegisterBroker {
            node_id: 4,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            incarnation: 1,
            wal: None,
        })
        .await
        .unwrap();
    assert!(follower.image().read().brokers.contains_key(&4));
    // It does not vote: the voters are still the three.
    let metrics = follower.quorum().raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    assert_eq!(membership.voter_ids().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(membership.learner_ids().any(|id| id == 4));
    // A voter's id cannot join as a follower.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    assert!(
        Quorum::open_follower(TempDir::new().unwrap().path(), 2, &addr, voters, listener)
            .await
            .is_err()
    );
    follower.quorum().shutdown().await.unwrap();
    voter.quorum().shutdown().await.unwrap();
}
