//! The group shard driven without I/O: requests and time in, replies and records out.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::*;

pub(super) const TOPIC: Uuid = Uuid::from_u128(7);

pub(super) struct Topics;

impl TopicLookup for Topics {
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)> {
        (name == "t").then_some((TOPIC, 6))
    }
    fn by_id(&self, id: Uuid) -> Option<(String, i32)> {
        (id == TOPIC).then(|| ("t".to_string(), 6))
    }
    fn names(&self) -> Vec<String> {
        vec!["t".to_string()]
    }
}

pub(super) fn shard(delay_ms: u64) -> GroupShard {
    let mut n = 0u128;
    let config = GroupConfig {
        initial_rebalance_delay_ms: delay_ms,
        ..GroupConfig::default()
    };
    let mut s = GroupShard::with_ids(
        config,
        Box::new(move || {
            n += 1;
            Uuid::from_u128(n)
        }),
    );
    s.loaded(0);
    s
}

pub(super) fn s(v: &str) -> StrBytes {
    StrBytes::from(v.to_string())
}

pub(super) fn join_req(member: &str, instance: Option<&str>) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(s("g").into())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"meta"))])
}

pub(super) fn joined(fx: &Effects, reply: ReplyId) -> Option<&JoinGroupResponse> {
    fx.outputs.iter().find_map(|(id, d)| match d {
        Deferred::Join(r) if *id == reply => Some(r),
        _ => None,
    })
}

pub(super) fn synced(fx: &Effects, reply: ReplyId) -> Option<&SyncGroupResponse> {
    fx.outputs.iter().find_map(|(id, d)| match d {
        Deferred::Sync(r) if *id == reply => Some(r),
        _ => None,
    })
}

/// Joins a new dynamic member the v4+ way (MEMBER_ID_REQUIRED, then again with the id).
pub(super) fn join_new(shard: &mut GroupShard, now: u64, reply: ReplyId) -> (String, Effects) {
    let fx = shard.join_group(now, reply, 7, joiner(), &join_req("", None), &Topics);
    let r = joined(&fx, reply).expect("answered at once");
    assert_eq!(r.error_code, ResponseError::MemberIdRequired.code());
    let id = r.member_id.to_string();
    let fx = shard.join_group(now, reply + 1, 7, joiner(), &join_req(&id, None), &Topics);
    (id, fx)
}

pub(super) fn joiner() -> classic::Joiner<'static> {
    classic::Joiner {
        client_id: "c",
        client_host: "/127.0.0.1",
    }
}

pub(super) fn sync_req(
    member: &str,
    generation: i32,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(s("g").into())
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from_static(a))
                })
                .collect(),
        )
}

pub(super) fn heartbeat(shard: &mut GroupShard, now: u64, member: &str, generation: i32) -> i16 {
    shard.heartbeat(
        now,
        &HeartbeatRequest::default()
            .with_group_id(s("g").into())
            .with_member_id(s(member))
            .with_generation_id(generation),
    )
}

#[test]
fn classic_rebalance_join_sync_heartbeat_leave() {
    let mut g = shard(0);
    let (a, fx) = join_new(&mut g, 0, 10);
    // Alone and with no initial delay, the first member completes the join at once.
    let r = joined(&fx, 11).expect("join completes");
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    assert_eq!(r.leader.as_str(), a);
    assert_eq!(r.members.len(), 1);
    let fx = g.sync_group(0, 12, 3, &sync_req(&a, 1, &[(&a, b"all")]), &Topics);
    assert_eq!(synced(&fx, 12).unwrap().assignment.as_ref(), b"all");
    assert_eq!(
        fx.records.len(),
        1,
        "the completed rebalance is checkpointed"
    );
    assert_eq!(heartbeat(&mut g, 1, &a, 1), 0);

    // A second member starts a rebalance: the first learns it from its heartbeat and rejoins.
    let (b, fx) = join_new(&mut g, 2, 20);
    assert!(joined(&fx, 21).is_none(), "b waits for a to rejoin");
    assert_eq!(
        heartbeat(&mut g, 3, &a, 1),
        ResponseError::RebalanceInProgress.code()
    );
    let fx = g.join_group(4, 30, 7, joiner(), &join_req(&a, None), &Topics);
    let ra = joined(&fx, 30).expect("a completes the join");
    let rb = joined(&fx, 21).expect("b completes the join");
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    assert_eq!(ra.members.len(), 2, "the leader gets the members");
    assert!(rb.members.is_empty());
    // b syncs first and waits; the leader's sync answers both.
    let fx = g.sync_group(5, 31, 3, &sync_req(&b, 2, &[]), &Topics);
    assert!(synced(&fx, 31).is_none());
    let fx = g.sync_group(
        5,
        32,
        3,
        &sync_req(&a, 2, &[(&a, b"p0"), (&b, b"p1")]),
        &Topics,
    );
    assert_eq!(synced(&fx, 31).unwrap().assignment.as_ref(), b"p1");
    assert_eq!(synced(&fx, 32).unwrap().assignment.as_ref(), b"p0");
    // Stale generations and unknown members get Kafka's errors.
    assert_eq!(
        heartbeat(&mut g, 6, &a, 1),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&mut g, 6, "nobody", 2),
        ResponseError::UnknownMemberId.code()
    );

    // b leaves; a is told to rejoin and gets generation 3 alone.
    let (resp, _) = g.leave_group(
        7,
        3,
        &LeaveGroupRequest::default()
            .with_group_id(s("g").into())
            .with_members(vec![
                MemberIdentity::default().with_member_id(s(&b)),
                MemberIdentity::default().with_member_id(s("ghost")),
            ]),
        &Topics,
    );
    assert_eq!(resp.members[0].error_code, 0);
    assert_eq!(
        resp.members[1].error_code,
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        heartbeat(&mut g, 8, &a, 2),
        ResponseError::RebalanceInProgress.code()
    );
    let fx = g.join_group(9, 40, 7, joiner(), &join_req(&a, None), &Topics);
    assert_eq!(joined(&fx, 40).unwrap().generation_id, 3);
}

#[test]
fn expired_session_removes_member_and_rebalances() {
    let mut g = shard(0);
    let (a, _) = join_new(&mut g, 0, 10);
    g.sync_group(0, 12, 3, &sync_req(&a, 1, &[(&a, b"x")]), &Topics);
    let (b, _) = join_new(&mut g, 1, 20);
    let fx = g.join_group(1, 30, 7, joiner(), &join_req(&a, None), &Topics);
    assert!(joined(&fx, 21).is_some());
    g.sync_group(2, 31, 3, &sync_req(&a, 2, &[]), &Topics);
    g.sync_group(2, 32, 3, &sync_req(&b, 2, &[]), &Topics);
    // a keeps heartbeating, b goes silent past its 10 s session.
    for t in (3_000..=12_000).step_by(3_000) {
        heartbeat(&mut g, t, &a, 2);
        g.tick(t, &Topics);
    }
    let fx = g.tick(13_000, &Topics);
    assert!(fx.outputs.is_empty());
    assert_eq!(
        heartbeat(&mut g, 13_001, &a, 2),
        ResponseError::RebalanceInProgress.code()
    );
    let fx = g.join_group(13_002, 40, 7, joiner(), &join_req(&a, None), &Topics);
    let r = joined(&fx, 40).unwrap();
    assert_eq!((r.generation_id, r.members.len()), (3, 1));
}

#[test]
fn initial_delay_gathers_members_before_the_first_rebalance() {
    let mut g = shard(3_000);
    let (_, fx) = join_new(&mut g, 0, 10);
    assert!(joined(&fx, 11).is_none(), "waits for the delay");
    let (_, fx) = join_new(&mut g, 1_000, 20);
    assert!(joined(&fx, 21).is_none());
    // New members during the delay extend it once more.
    let fx = g.tick(3_000, &Topics);
    assert!(fx.outputs.is_empty());
    let fx = g.tick(6_000, &Topics);
    let (r1, r2) = (joined(&fx, 11).unwrap(), joined(&fx, 21).unwrap());
    assert_eq!((r1.generation_id, r2.generation_id), (1, 1));
}

#[test]
fn static_member_returns_without_a_rebalance() {
    let mut g = shard(0);
    let fx = g.join_group(0, 10, 9, joiner(), &join_req("", Some("i-1")), &Topics);
    let r = joined(&fx, 10).expect("static members join without MEMBER_ID_REQUIRED");
    let old = r.member_id.to_string();
    g.sync_group(0, 11, 5, &sync_req(&old, 1, &[(&old, b"mine")]), &Topics);
    // Restarted with the same instance id: same generation, a new member id, no rebalance.
    let fx = g.join_group(1, 12, 9, joiner(), &join_req("", Some("i-1")), &Topics);
    let r = joined(&fx, 12).unwrap();
    assert_eq!(r.generation_id, 1);
    assert!(r.skip_assignment, "the leader keeps the assignment it made");
    let new = r.member_id.to_string();
    assert_ne!(new, old);
    let fx = g.sync_group(2, 13, 5, &sync_req(&new, 1, &[]), &Topics);
    assert_eq!(synced(&fx, 13).unwrap().assignment.as_ref(), b"mine");
    // The old incarnation is fenced.
    let hb = HeartbeatRequest::default()
        .with_group_id(s("g").into())
        .with_member_id(s(&old))
        .with_group_instance_id(Some(s("i-1")))
        .with_generation_id(1);
    assert_eq!(g.heartbeat(3, &hb), ResponseError::FencedInstanceId.code());
}

#[test]
fn join_is_validated() {
    let mut g = shard(0);
    let mut req = join_req("", None);
    req.session_timeout_ms = 10;
    let fx = g.join_group(0, 1, 7, joiner(), &req, &Topics);
    assert_eq!(
        joined(&fx, 1).unwrap().error_code,
        ResponseError::InvalidSessionTimeout.code()
    );
    let fx = g.join_group(
        0,
        2,
        7,
        joiner(),
        &join_req("", None).with_group_id(s("").into()),
        &Topics,
    );
    assert_eq!(
        joined(&fx, 2).unwrap().error_code,
        ResponseError::InvalidGroupId.code()
    );
    join_new(&mut g, 0, 10);
    let fx = g.join_group(
        0,
        3,
        7,
        joiner(),
        &join_req("", None).with_protocol_type(s("connect")),
        &Topics,
    );
    assert_eq!(
        joined(&fx, 3).unwrap().error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let fx = g.join_group(0, 4, 7, joiner(), &join_req("who", None), &Topics);
    assert_eq!(
        joined(&fx, 4).unwrap().error_code,
        ResponseError::UnknownMemberId.code()
    );
}

fn commit(group: &str, generation: i32, member: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(s(group).into())
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(s("t").into())
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(s("m")))])])
}

#[test]
fn offsets_are_validated_committed_and_rebuilt_by_replay() {
    let mut g = shard(0);
    // A simple group (no membership) may commit with generation -1.
    let (r, fx) = g.offset_commit(5, 8, &commit("simple", -1, "", 42), &Topics);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(fx.records.len(), 1);
    // Unknown topics and unknown generations are refused.
    let mut bad = commit("simple", -1, "", 1);
    bad.topics[0].name = s("nope").into();
    let (r, fx) = g.offset_commit(5, 8, &bad, &Topics);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert!(fx.records.is_empty());
    let (r, _) = g.offset_commit(5, 8, &commit("none", 3, "m", 1), &Topics);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::IllegalGeneration.code()
    );
    let (r, _) = g.offset_commit(5, 9, &commit("none", 3, "m", 1), &Topics);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    // A member of a live group commits with its generation; a stale one is refused.
    let (a, _) = join_new(&mut g, 0, 10);
    g.sync_group(0, 12, 3, &sync_req(&a, 1, &[(&a, b"x")]), &Topics);
    let (r, _) = g.offset_commit(6, 8, &commit("g", 1, &a, 7), &Topics);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let (r, _) = g.offset_commit(6, 8, &commit("g", 0, &a, 8), &Topics);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::IllegalGeneration.code()
    );
    let mut big = commit("g", 1, &a, 9);
    big.topics[0].partitions[0].committed_metadata = Some(s(&"x".repeat(5_000)));
    let (r, _) = g.offset_commit(6, 8, &big, &Topics);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::OffsetMetadataTooLarge.code()
    );

    // Replaying the snapshot into a fresh shard gives the same offsets and group.
    let mut fresh = shard(0);
    for r in g.snapshot() {
        fresh.replay(&r);
    }
    for group in ["simple", "g"] {
        assert_eq!(
            fresh.offset_fetch(group, None, false),
            g.offset_fetch(group, None, false)
        );
    }
    assert_eq!(fresh.offset_fetch("g", None, false)[0].1[0].offset, 7);
    match fresh.group("g") {
        Some(Group::Classic(c)) => {
            assert_eq!(c.generation, 1);
            assert_eq!(c.members[&a].assignment.as_ref(), b"x");
        }
        _ => panic!("the classic group is rebuilt"),
    }
}

fn txn_commit(producer_id: i64, partition: i32, offset: i64) -> TxnOffsetCommitRequest {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    TxnOffsetCommitRequest::default()
        .with_group_id(s("eos").into())
        .with_producer_id(producer_id.into())
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(s("t").into())
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])])
}

#[test]
fn transactional_offsets_apply_only_when_their_transaction_commits() {
    let mut g = shard(0);
    let (r, _) = g.txn_offset_commit(1, &txn_commit(5, 0, 10), &Topics);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    g.txn_offset_commit(1, &txn_commit(6, 1, 20), &Topics);
    let fetched = |g: &GroupShard, stable| {
        g.offset_fetch("eos", Some(vec![("t".into(), vec![0, 1])]), stable)
    };
    // Pending: not visible, and a stable fetch is told to retry.
    assert!(fetched(&g, false)[0]
        .1
        .iter()
        .all(|c| c.offset == -1 && c.error == 0));
    assert!(fetched(&g, true)[0]
        .1
        .iter()
        .all(|c| c.error == ResponseError::UnstableOffsetCommit.code()));
    let (r, _) = g.txn_offset_commit(1, &txn_commit(5, 9, 1), &Topics);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    let commit_fx = g.complete_txn(2, 5, 0, true);
    let abort_fx = g.complete_txn(2, 6, 0, false);
    assert_eq!(
        commit_fx.records.len(),
        2,
        "a tombstone and the offset, in one batch"
    );
    assert_eq!(abort_fx.records.len(), 1, "a tombstone only");
    let c = fetched(&g, true);
    assert_eq!((c[0].1[0].offset, c[0].1[0].error), (10, 0));
    assert_eq!((c[0].1[1].offset, c[0].1[1].error), (-1, 0));
    assert!(
        g.complete_txn(3, 5, 0, true).records.is_empty(),
        "a second marker changes nothing"
    );

    // Pending offsets survive a snapshot and replay.
    g.txn_offset_commit(4, &txn_commit(7, 2, 30), &Topics);
    let mut fresh = shard(0);
    for r in g.snapshot() {
        fresh.replay(&r);
    }
    assert!(fresh.has_pending("eos", "t", 2));
    fresh.complete_txn(5, 7, 0, true);
    assert_eq!(
        fresh.offset_fetch("eos", Some(vec![("t".into(), vec![2])]), true)[0].1[0].offset,
        30
    );
}

#[test]
fn empty_group_offsets_expire_after_retention() {
    let mut g = shard(0);
    g.offset_commit(0, 8, &commit("simple", -1, "", 1), &Topics);
    let retention = g.config.offsets_retention_ms;
    let fx = g.tick(g.config.offsets_retention_check_interval_ms, &Topics);
    assert!(fx.records.is_empty(), "not expired yet");
    let mut fx = Effects::default();
    g.expire_offsets(retention + 1, &mut fx);
    assert_eq!(fx.records.len(), 1, "a tombstone for the offset");
    assert!(g.offset_fetch("simple", None, false).is_empty());
    assert!(g.group("simple").is_none(), "the empty group is gone");
}

pub(super) fn cg_heartbeat(
    member: &str,
    epoch: i32,
    owned: Option<Vec<i32>>,
) -> ConsumerGroupHeartbeatRequest {
    let mut r = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(s("cg").into())
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 });
    if epoch == 0 {
        r.subscribed_topic_names = Some(vec![s("t").into()]);
        r.topic_partitions = Some(Vec::new());
    }
    if let Some(ps) = owned {
        r.topic_partitions = Some(vec![OwnedTopic::default()
            .with_topic_id(TOPIC)
            .with_partitions(ps)]);
    }
    r
}

pub(super) fn assigned(r: &ConsumerGroupHeartbeatResponse) -> Option<Vec<i32>> {
    let a = r.assignment.as_ref()?;
    Some(
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect(),
    )
}

#[test]
fn kip848_partitions_move_only_after_revocation() {
    let mut g = shard(0);
    let (r, _) = g.consumer_heartbeat_v0(0, "c", "/h", &cg_heartbeat("a", 0, None), &Topics);
    assert_eq!(r.error_code, 0);
    let epoch_a = r.member_epoch;
    assert_eq!(assigned(&r), Some((0..6).collect()));
    // b joins: its share is still a's, so b gets nothing until a revokes.
    let (r, _) = g.consumer_heartbeat_v0(1, "c", "/h", &cg_heartbeat("b", 0, None), &Topics);
    let epoch_b = r.member_epoch;
    assert_eq!(assigned(&r), Some(vec![]));
    let (r, _) = g.consumer_heartbeat_v0(2, "c", "/h", &cg_heartbeat("a", epoch_a, None), &Topics);
    let keep = assigned(&r).expect("a is told to shrink");
    assert_eq!(keep.len(), 3);
    assert_eq!(
        r.member_epoch, epoch_a,
        "a stays at its epoch while revoking"
    );
    let (r, _) = g.consumer_heartbeat_v0(
        3,
        "c",
        "/h",
        &cg_heartbeat("b", epoch_b, Some(vec![])),
        &Topics,
    );
    assert_eq!(assigned(&r), None, "b still waits");
    // a confirms it revoked: it moves to the new epoch, then b gets the freed partitions.
    let (r, _) = g.consumer_heartbeat_v0(
        4,
        "c",
        "/h",
        &cg_heartbeat("a", epoch_a, Some(keep.clone())),
        &Topics,
    );
    assert!(r.member_epoch > epoch_a);
    let (r, _) = g.consumer_heartbeat_v0(
        5,
        "c",
        "/h",
        &cg_heartbeat("b", epoch_b, Some(vec![])),
        &Topics,
    );
    let got = assigned(&r).expect("b gets its share");
    let mut all: Vec<i32> = keep.iter().chain(got.iter()).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..6).collect::<Vec<_>>());
    // A stale epoch is fenced; leaving frees everything for the other member.
    let (r, _) =
        g.consumer_heartbeat_v0(6, "c", "/h", &cg_heartbeat("a", epoch_a - 1, None), &Topics);
    assert_eq!(r.error_code, ResponseError::FencedMemberEpoch.code());
    let (r, _) = g.consumer_heartbeat_v0(
        7,
        "c",
        "/h",
        &cg_heartbeat("b", -1, None).with_member_epoch(-1),
        &Topics,
    );
    assert_eq!(r.member_epoch, -1);

    // The group's records rebuild the same members and assignments.
    let mut fresh = shard(0);
    for rec in g.snapshot() {
        fresh.replay(&rec);
    }
    let (Some(Group::Consumer(x)), Some(Group::Consumer(y))) = (g.group("cg"), fresh.group("cg"))
    else {
        panic!("consumer groups on both sides");
    };
    assert_eq!(x.epoch, y.epoch);
    let members =
        |c: &consumer::ConsumerGroup| -> BTreeMap<String, (i32, records::TopicPartitions)> {
            c.members
                .iter()
                .map(|(id, m)| (id.clone(), (m.epoch, m.assigned.clone())))
                .collect()
        };
    assert_eq!(members(x), members(y));
}

#[test]
fn classic_join_with_unreadable_metadata_to_a_consumer_group_is_refused() {
    let mut g = shard(0);
    let mut req = cg_heartbeat("a", 0, None);
    req.group_id = s("g").into();
    g.consumer_heartbeat_v0(0, "c", "/h", &req, &Topics);
    let fx = g.join_group(0, 1, 7, joiner(), &join_req("", None), &Topics);
    assert_eq!(
        joined(&fx, 1).unwrap().error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
}

#[test]
fn kip848_regex_subscription_matches_whole_names() {
    let mut g = shard(0);
    let mut req = cg_heartbeat("a", 0, None);
    req.subscribed_topic_names = None;
    req.subscribed_topic_regex = Some(s("t|other.*"));
    let (r, _) = g.consumer_heartbeat_v0(0, "c", "/h", &req, &Topics);
    assert_eq!(r.error_code, 0);
    assert_eq!(assigned(&r), Some((0..6).collect()));
    let mut bad = cg_heartbeat("b", 0, None);
    bad.subscribed_topic_regex = Some(s("("));
    let (r, _) = g.consumer_heartbeat_v0(0, "c", "/h", &bad, &Topics);
    assert_eq!(r.error_code, ResponseError::InvalidRegularExpression.code());
    // "^(?:t.+)$" does not match "t": a prefix is not a whole-name match.
    let mut g = shard(0);
    let mut req = cg_heartbeat("a", 0, None);
    req.subscribed_topic_names = None;
    req.subscribed_topic_regex = Some(s("t.+"));
    let (r, _) = g.consumer_heartbeat_v0(0, "c", "/h", &req, &Topics);
    assert_eq!(assigned(&r), Some(vec![]));
}

impl GroupShard {
    /// ConsumerGroupHeartbeat v0, where the broker may make the member id.
    pub(super) fn consumer_heartbeat_v0(
        &mut self,
        now_ms: u64,
        client_id: &str,
        client_host: &str,
        req: &ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicLookup,
    ) -> (ConsumerGroupHeartbeatResponse, Effects) {
        self.consumer_heartbeat(now_ms, 0, client_id, client_host, req, topics)
    }
}
