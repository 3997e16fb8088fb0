//! Online migration driven without I/O: classic members and KIP-848 members in one group, and
//! the group changing kind under them without a partition ever owned twice.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;

use super::tests::{
    assigned, cg_heartbeat, heartbeat, join_req, joined, joiner, s, shard, sync_req, synced,
    Topics, TOPIC,
};
use super::*;

/// A classic consumer's subscription to topic "t", naming the partitions it owns.
fn subscription(owned: &[i32]) -> Bytes {
    let s = ConsumerProtocolSubscription::default()
        .with_topics(vec![s("t")])
        .with_owned_partitions(vec![OwnedPartition::default()
            .with_topic(s("t").into())
            .with_partitions(owned.to_vec())]);
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    s.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

fn classic_join(member: &str, owned: &[i32]) -> JoinGroupRequest {
    join_req(member, None).with_protocols(vec![JoinGroupRequestProtocol::default()
        .with_name(s("range"))
        .with_metadata(subscription(owned))])
}

fn partitions(ps: &[i32]) -> Bytes {
    let mut p = records::TopicPartitions::new();
    p.insert(TOPIC, ps.to_vec());
    embedded::encode_assignment(&p, &Topics, 1)
}

fn decoded(assignment: &Bytes) -> Vec<i32> {
    embedded::decode_assignment(assignment)
        .expect("a valid assignment")
        .into_iter()
        .flat_map(|(_, ps)| ps)
        .collect()
}

/// Two classic members of "g" owning partitions 0-2 and 3-5 at generation 2.
fn stable_classic_group() -> (GroupShard, String, String) {
    let mut g = shard(0);
    let fx = g.join_group(0, 1, 7, joiner(), &classic_join("", &[]), &Topics);
    let a = joined(&fx, 1).unwrap().member_id.to_string();
    g.join_group(0, 2, 7, joiner(), &classic_join(&a, &[]), &Topics);
    let fx = g.join_group(0, 3, 7, joiner(), &classic_join("", &[]), &Topics);
    let b = joined(&fx, 3).unwrap().member_id.to_string();
    g.join_group(0, 4, 7, joiner(), &classic_join(&b, &[]), &Topics);
    let fx = g.join_group(0, 5, 7, joiner(), &classic_join(&a, &[]), &Topics);
    assert_eq!(joined(&fx, 5).unwrap().generation_id, 2);
    g.sync_group(0, 6, 3, &sync_req(&b, 2, &[]), &Topics);
    let mut leader_sync = sync_req(&a, 2, &[]);
    leader_sync.assignments = [(&a, [0, 1, 2]), (&b, [3, 4, 5])]
        .iter()
        .map(|(m, ps)| {
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(m))
                .with_assignment(partitions(ps))
        })
        .collect();
    let fx = g.sync_group(0, 7, 3, &leader_sync, &Topics);
    assert_eq!(decoded(&synced(&fx, 6).unwrap().assignment), vec![3, 4, 5]);
    (g, a, b)
}

/// Drives a classic member the way a client does: rejoin while told to, and sync.
/// Returns its generation and partitions once its heartbeat is clean.
fn settle_classic(g: &mut GroupShard, now: u64, id: &str, mut owned: Vec<i32>) -> (i32, Vec<i32>) {
    for round in 0..5 {
        let fx = g.join_group(
            now,
            100 + round,
            7,
            joiner(),
            &classic_join(id, &owned),
            &Topics,
        );
        let r = joined(&fx, 100 + round).expect("answered at once");
        assert_eq!(r.error_code, 0, "join of {id}");
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        let generation = r.generation_id;
        let fx = g.sync_group(now, 200 + round, 5, &sync_req(id, generation, &[]), &Topics);
        let r = synced(&fx, 200 + round).expect("answered at once");
        assert_eq!(r.error_code, 0, "sync of {id}");
        owned = decoded(&r.assignment);
        if heartbeat(g, now, id, generation) == 0 {
            return (generation, owned);
        }
    }
    panic!("{id} did not settle");
}

fn consumer(g: &GroupShard) -> &consumer::ConsumerGroup {
    match g.group("g") {
        Some(Group::Consumer(c)) => c,
        _ => panic!("g is not a consumer group"),
    }
}

#[test]
fn upgrade_and_downgrade_never_give_a_partition_twice() {
    let (mut g, a, b) = stable_classic_group();

    // A KIP-848 member joins the live classic group: it becomes a consumer group at epoch 2
    // plus the join, the classic members keep what they hold, the newcomer waits.
    let mut join = cg_heartbeat("c", 0, None);
    join.group_id = s("g").into();
    let (r, fx) = g.consumer_heartbeat_v0(1, "c", "/h", &join, &Topics);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(assigned(&r), Some(vec![]), "every partition is still held");
    assert!(fx
        .records
        .iter()
        .any(
            |rec| matches!(rec.key, records::RecordKey::ClassicGroup { .. }) && rec.value.is_none()
        ));
    let epoch = consumer(&g).epoch;
    assert!(epoch > 2);
    let held = |g: &GroupShard, id: &str| consumer(g).members[id].assigned.clone();
    assert_eq!(held(&g, &a)[&TOPIC], vec![0, 1, 2]);

    // The classic members are told to rejoin, and converge by revoking first.
    assert_eq!(
        heartbeat(&mut g, 2, &a, 2),
        ResponseError::RebalanceInProgress.code()
    );
    let (gen_a, pa) = settle_classic(&mut g, 3, &a, vec![]);
    let (gen_b, pb) = settle_classic(&mut g, 3, &b, vec![]);
    assert_eq!((gen_a, gen_b), (epoch, epoch));
    let mut poll = cg_heartbeat(&r.member_id.clone().unwrap(), r.member_epoch, Some(vec![]));
    poll.group_id = s("g").into();
    let (r, _) = g.consumer_heartbeat_v0(4, "c", "/h", &poll, &Topics);
    let pc = assigned(&r).expect("c gets the released partitions");
    let all: Vec<i32> = pa.iter().chain(&pb).chain(&pc).copied().collect();
    let unique: BTreeSet<i32> = all.iter().copied().collect();
    assert_eq!(all.len(), 6, "no partition twice: {pa:?} {pb:?} {pc:?}");
    assert_eq!(unique, (0..6).collect());
    assert!(!pc.is_empty());
    assert_eq!(consumer(&g).state_name(), "Stable");

    // Its records rebuild the mixed group, classic metadata included.
    let mut fresh = shard(0);
    for rec in g.snapshot() {
        fresh.replay(&rec);
    }
    let (x, y) = (consumer(&g), consumer(&fresh));
    for id in [&a, &b] {
        assert!(y.members[id].is_classic());
        assert_eq!(x.members[id].assigned, y.members[id].assigned);
    }

    // The last KIP-848 member leaves: a classic group again, rebalancing at once.
    let c = r.member_id.clone().unwrap().to_string();
    let mut leave = cg_heartbeat(&c, -1, None);
    leave.group_id = s("g").into();
    let (_, fx) = g.consumer_heartbeat_v0(5, "c", "/h", &leave, &Topics);
    assert!(fx
        .records
        .iter()
        .any(
            |rec| matches!(rec.key, records::RecordKey::ClassicGroup { .. }) && rec.value.is_some()
        ));
    let Some(Group::Classic(cg)) = g.group("g") else {
        panic!("downgraded");
    };
    assert_eq!(cg.state, classic::ClassicState::PreparingRebalance);
    assert_eq!(
        heartbeat(&mut g, 6, &a, epoch),
        ResponseError::RebalanceInProgress.code()
    );
    g.join_group(7, 300, 7, joiner(), &classic_join(&a, &pa), &Topics);
    let fx = g.join_group(7, 301, 7, joiner(), &classic_join(&b, &pb), &Topics);
    let (ra, rb) = (joined(&fx, 300).unwrap(), joined(&fx, 301).unwrap());
    assert_eq!(ra.generation_id, rb.generation_id);
    assert_eq!(
        ra.members.len() + rb.members.len(),
        2,
        "the leader gets both"
    );
}

#[test]
fn classic_members_of_a_consumer_group_get_kafkas_errors() {
    let (mut g, a, _) = stable_classic_group();
    let mut join = cg_heartbeat("c", 0, None);
    join.group_id = s("g").into();
    g.consumer_heartbeat_v0(1, "c", "/h", &join, &Topics);
    // A wrong generation, an unknown member, a KIP-848 member speaking classic.
    assert_eq!(
        heartbeat(&mut g, 2, &a, 1),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&mut g, 2, "nobody", 2),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        heartbeat(&mut g, 2, "c", 1),
        ResponseError::UnknownMemberId.code()
    );
    // Another protocol type, or protocols the classic members do not share.
    let fx = g.join_group(
        2,
        1,
        7,
        joiner(),
        &classic_join(&a, &[]).with_protocol_type(s("connect")),
        &Topics,
    );
    assert_eq!(
        joined(&fx, 1).unwrap().error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let other = classic_join("", &[]).with_protocols(vec![JoinGroupRequestProtocol::default()
        .with_name(s("roundrobin"))
        .with_metadata(subscription(&[]))]);
    let fx = g.join_group(2, 2, 7, joiner(), &other, &Topics);
    assert_eq!(
        joined(&fx, 2).unwrap().error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    // A new classic member learns its id first, as in a classic group.
    let fx = g.join_group(2, 3, 7, joiner(), &classic_join("", &[]), &Topics);
    assert_eq!(
        joined(&fx, 3).unwrap().error_code,
        ResponseError::MemberIdRequired.code()
    );
}

#[test]
fn a_silent_classic_member_is_fenced_and_its_partitions_move() {
    let (mut g, a, b) = stable_classic_group();
    let mut join = cg_heartbeat("c", 0, None);
    join.group_id = s("g").into();
    let (r, _) = g.consumer_heartbeat_v0(1, "c", "/h", &join, &Topics);
    let c = r.member_id.unwrap().to_string();
    // a keeps its session; b never rejoins and its 10 s session ends.
    settle_classic(&mut g, 5_000, &a, vec![0, 1, 2]);
    g.tick(9_000, &Topics);
    let epoch_a = consumer(&g).members[&a].epoch;
    heartbeat(&mut g, 9_000, &a, epoch_a);
    g.tick(12_000, &Topics);
    assert!(!consumer(&g).members.contains_key(&b), "b is fenced");
    // c's next heartbeats collect what b held.
    let mut owned = vec![];
    for now in [12_001, 12_002, 12_003] {
        let epoch = consumer(&g).members[&c].epoch;
        let mut poll = cg_heartbeat(&c, epoch, Some(owned.clone()));
        poll.group_id = s("g").into();
        let (r, _) = g.consumer_heartbeat_v0(now, "c", "/h", &poll, &Topics);
        if let Some(ps) = assigned(&r) {
            owned = ps;
        }
    }
    assert!(owned.iter().any(|p| [3, 4, 5].contains(p)), "{owned:?}");
}

#[test]
fn migration_policy_disabled_keeps_live_groups_as_they_are() {
    let (mut g, _, _) = stable_classic_group();
    g.config.migration_policy = MigrationPolicy::Disabled;
    let mut join = cg_heartbeat("c", 0, None);
    join.group_id = s("g").into();
    let (r, fx) = g.consumer_heartbeat_v0(1, "c", "/h", &join, &Topics);
    assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());
    assert!(fx.records.is_empty());
    assert!(matches!(g.group("g"), Some(Group::Classic(_))));
}
