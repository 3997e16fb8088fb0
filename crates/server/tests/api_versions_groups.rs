//! Every advertised version of the group APIs, over the wire against the real `strata` binary:
//! FindCoordinator; the classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup); offsets
//! (OffsetCommit, OffsetFetch, OffsetDelete); administration (DescribeGroups, ListGroups,
//! DeleteGroups); and KIP-848 (ConsumerGroupHeartbeat, ConsumerGroupDescribe).
//!
//! As in `api_versions.rs`, each test starts its own broker (here with no initial rebalance delay
//! and three `__consumer_offsets` partitions), asks ApiVersions what is advertised for its API,
//! and for every advertised version sends requests encoded at that version — setting only the
//! fields that version has — and checks what a client would check. Requests that only set the
//! stage (joining a member, committing offsets to fetch them, ...) use fixed helper versions.
//!
//! Run: `cargo test --release -p strata --test api_versions_groups`

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup as ConsumerDescribedGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedPartitions;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::Encodable;

use common::*;

/// The APIs this file tests, one `#[tokio::test]` each (`api_versions.rs` lists them too, as
/// tested here).
const TESTED: &[ApiKey] = &[
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::OffsetDelete,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::DeleteGroups,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
];

/// Long enough that no member expires while a test runs.
const SESSION_MS: i32 = 300_000;
const REBALANCE_MS: i32 = 60_000;
/// The client id `common::Client` sends, and the host the broker sees it at.
const CLIENT_ID: &str = "strata-wire-test";
const CLIENT_HOST: &str = "/127.0.0.1";
/// The protocols every classic member offers, in order of preference.
const PROTOCOLS: [&str; 2] = ["range", "roundrobin"];

/// Versions the helpers use for requests that are not the subject of a test.
const H_JOIN: i16 = 9;
const H_SYNC: i16 = 5;
const H_HEARTBEAT: i16 = 4;
const H_LEAVE: i16 = 5;
const H_COMMIT: i16 = 9;
const H_FETCH: i16 = 8;
const H_DESCRIBE: i16 = 5;
const H_CONSUMER_HEARTBEAT: i16 = 1;
const H_CONSUMER_DESCRIBE: i16 = 1;

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

async fn start_broker() -> Broker {
    Broker::start(BrokerOptions {
        extra_args: [
            "--group-initial-rebalance-delay-ms",
            "0",
            "--offsets-topic-num-partitions",
            "3",
            "--group-consumer-session-timeout-ms",
            "300000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Default::default()
    })
    .await
}

fn gid(s: &str) -> GroupId {
    GroupId(str(s))
}

fn code_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(e) => format!("{e:?} ({code})"),
    }
}

/// A consumer's subscription as the Java client writes it into JoinGroup: the version, then the
/// `ConsumerProtocolSubscription` body at that version.
fn subscription(topics: &[&str]) -> Bytes {
    let version = 3;
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str(t)).collect())
        .encode(&mut buf, version)
        .unwrap();
    buf.freeze()
}

/// A leader's assignment for one member, written like the subscription.
fn assignment(partitions: &[(&str, &[i32])]) -> Bytes {
    let version = 3;
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            partitions
                .iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        )
        .encode(&mut buf, version)
        .unwrap();
    buf.freeze()
}

/// A JoinGroup request with only the fields version `v` has.
fn join_req(
    v: i16,
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
    protocol_type: &str,
    metadata: &Bytes,
) -> JoinGroupRequest {
    let mut r = JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(SESSION_MS)
        .with_member_id(str(member_id))
        .with_protocol_type(str(protocol_type))
        .with_protocols(
            PROTOCOLS
                .iter()
                .map(|p| {
                    JoinGroupRequestProtocol::default()
                        .with_name(str(p))
                        .with_metadata(metadata.clone())
                })
                .collect(),
        );
    if v >= 1 {
        r.rebalance_timeout_ms = REBALANCE_MS;
    }
    if v >= 5 {
        r.group_instance_id = instance_id.map(str);
    } else {
        assert!(instance_id.is_none(), "JoinGroup v{v} has no instance id");
    }
    if v >= 8 {
        r.reason = Some(str("wire test"));
    }
    r
}

/// A SyncGroup request with only the fields version `v` has.
fn sync_req(
    v: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
    protocol_type: &str,
    assignments: &[(&str, Bytes)],
) -> SyncGroupRequest {
    let mut r = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(str(member_id))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(str(m))
                        .with_assignment(a.clone())
                })
                .collect(),
        );
    if v >= 3 {
        r.group_instance_id = instance_id.map(str);
    }
    if v >= 5 {
        r.protocol_type = Some(str(protocol_type));
        r.protocol_name = Some(str(PROTOCOLS[0]));
    }
    r
}

/// A Heartbeat request with only the fields version `v` has.
fn heartbeat_req(
    v: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
) -> HeartbeatRequest {
    let mut r = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(str(member_id));
    if v >= 3 {
        r.group_instance_id = instance_id.map(str);
    }
    r
}

/// The members a JoinGroup response lists: id -> (instance id, metadata).
fn join_members(r: &JoinGroupResponse) -> BTreeMap<String, (Option<String>, Bytes)> {
    let members: BTreeMap<_, _> = r
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                (
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                    m.metadata.clone(),
                ),
            )
        })
        .collect();
    assert_eq!(members.len(), r.members.len(), "a member is listed twice");
    members
}

/// One partition to commit: (partition, offset, metadata, leader epoch).
type Commit<'a> = (i32, i64, Option<&'a str>, i32);

/// An OffsetCommit request with only the fields version `v` has.
fn commit_req(
    v: i16,
    group: &str,
    generation_or_epoch: i32,
    member_id: &str,
    instance_id: Option<&str>,
    topics: &[(&str, &[Commit<'_>])],
) -> OffsetCommitRequest {
    let mut r = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation_or_epoch)
        .with_member_id(str(member_id))
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            ps.iter()
                                .map(|(p, offset, metadata, epoch)| {
                                    let mut x = OffsetCommitRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(*offset)
                                        .with_committed_metadata(metadata.map(str));
                                    if v >= 6 {
                                        x.committed_leader_epoch = *epoch;
                                    }
                                    x
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    if v >= 7 {
        r.group_instance_id = instance_id.map(str);
    }
    r
}

/// `v`, sorted: responses list topics, partitions and groups in no order a client relies on.
fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// An OffsetCommit response as sorted `(topic, partition, error)`.
fn commit_codes(r: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
    sorted(
        r.topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect(),
    )
}

/// Commits with OffsetCommit v9 and asserts success.
async fn commit(
    c: &mut Client,
    group: &str,
    generation_or_epoch: i32,
    member_id: &str,
    topics: &[(&str, &[Commit<'_>])],
) {
    let r = c
        .send(
            H_COMMIT,
            &commit_req(
                H_COMMIT,
                group,
                generation_or_epoch,
                member_id,
                None,
                topics,
            ),
        )
        .await;
    for (t, p, e) in commit_codes(&r) {
        assert_eq!(e, 0, "helper: commit {group} {t}-{p}: {}", code_name(e));
    }
}

/// A committed offset as OffsetFetch shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Committed {
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

fn committed(offset: i64, leader_epoch: i32, metadata: &str) -> Committed {
    Committed {
        offset,
        leader_epoch,
        metadata: metadata.to_string(),
    }
}

/// What OffsetFetch shows for a partition without a committed offset.
fn no_offset() -> Committed {
    committed(-1, -1, "")
}

type Offsets = BTreeMap<(String, i32), Committed>;

/// The committed offsets of `group` (OffsetFetch v8): of the named partitions, or all of them.
async fn fetch_offsets(c: &mut Client, group: &str, topics: Option<&[(&str, &[i32])]>) -> Offsets {
    let r = c
        .send(
            H_FETCH,
            &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(gid(group))
                .with_topics(topics.map(|ts| {
                    ts.iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(topic_name(t))
                                .with_partition_indexes(ps.to_vec())
                        })
                        .collect()
                }))]),
        )
        .await;
    assert_eq!(r.groups.len(), 1, "helper: fetch offsets of {group}");
    let g = &r.groups[0];
    assert_eq!(
        g.error_code,
        0,
        "helper: fetch offsets of {group}: {}",
        code_name(g.error_code)
    );
    let mut out = Offsets::new();
    for t in &g.topics {
        for p in &t.partitions {
            assert_eq!(p.error_code, 0, "helper: fetch offsets of {group}");
            out.insert(
                (t.name.0.to_string(), p.partition_index),
                committed(
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_deref().unwrap_or_default(),
                ),
            );
        }
    }
    out
}

fn offsets(entries: &[(&str, i32, Committed)]) -> Offsets {
    entries
        .iter()
        .map(|(t, p, c)| ((t.to_string(), *p), c.clone()))
        .collect()
}

/// DescribeGroups v5 of one group.
async fn describe(c: &mut Client, group: &str) -> DescribedGroup {
    let r = c
        .send(
            H_DESCRIBE,
            &DescribeGroupsRequest::default().with_groups(vec![gid(group)]),
        )
        .await;
    assert_eq!(r.groups.len(), 1, "helper: describe {group}");
    r.groups.into_iter().next().unwrap()
}

/// ConsumerGroupDescribe v1 of one group.
async fn consumer_describe(c: &mut Client, group: &str) -> ConsumerDescribedGroup {
    let r = c
        .send(
            H_CONSUMER_DESCRIBE,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid(group)]),
        )
        .await;
    assert_eq!(r.groups.len(), 1, "helper: consumer-describe {group}");
    r.groups.into_iter().next().unwrap()
}

/// Metadata of topics that must exist (their ids are what KIP-848 assignments carry).
async fn topics_metadata(c: &mut Client, names: &[&str]) -> Vec<MetadataResponseTopic> {
    let mut out = Vec::new();
    for n in names {
        out.push(
            topic_metadata(c, n)
                .await
                .unwrap_or_else(|| panic!("topic {n} exists")),
        );
    }
    out
}

/// All partitions of `topics` as (name, partition).
fn all_partitions(topics: &[MetadataResponseTopic]) -> BTreeSet<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| {
            let name = t.name.as_ref().unwrap().0.to_string();
            t.partitions
                .iter()
                .map(move |p| (name.clone(), p.partition_index))
        })
        .collect()
}

/// A KIP-848 assignment by topic id as (name, partition), the names taken from Metadata.
fn named(topics: &[MetadataResponseTopic], owned: &[OwnedPartitions]) -> BTreeSet<(String, i32)> {
    let mut out = BTreeSet::new();
    for tp in owned {
        let t = topics
            .iter()
            .find(|t| t.topic_id == tp.topic_id)
            .unwrap_or_else(|| panic!("assigned topic id {:?} is not a known topic", tp.topic_id));
        let name = t.name.as_ref().unwrap().0.to_string();
        for p in &tp.partitions {
            assert!(
                out.insert((name.clone(), *p)),
                "partition {name}-{p} assigned twice to one member"
            );
        }
    }
    out
}

/// A ConsumerGroupDescribe assignment as (name, partition); checks each topic's name against
/// its id.
fn described(topics: &[MetadataResponseTopic], a: &DescribedAssignment) -> BTreeSet<(String, i32)> {
    let mut out = BTreeSet::new();
    for tp in &a.topic_partitions {
        let t = topics
            .iter()
            .find(|t| t.topic_id == tp.topic_id)
            .unwrap_or_else(|| panic!("described topic id {:?} is not a known topic", tp.topic_id));
        assert_eq!(
            Some(&tp.topic_name),
            t.name.as_ref(),
            "described topic name for id {:?}",
            tp.topic_id
        );
        for p in &tp.partitions {
            assert!(out.insert((tp.topic_name.0.to_string(), *p)));
        }
    }
    out
}

fn set_of(topic: &str, partitions: &[i32]) -> BTreeSet<(String, i32)> {
    partitions.iter().map(|p| (topic.to_string(), *p)).collect()
}

// ---------------------------------------------------------------------------------------------
// A classic group member, driven at the helper versions
// ---------------------------------------------------------------------------------------------

struct Classic {
    c: Client,
    group: String,
    protocol_type: String,
    metadata: Bytes,
    instance: Option<String>,
    id: String,
    generation: i32,
}

impl Classic {
    /// A new consumer-protocol member of `group` on its own connection.
    async fn new(b: &Broker, group: &str, instance: Option<&str>, metadata: Bytes) -> Classic {
        Self::with_type(b, group, instance, "consumer", metadata).await
    }

    /// A new member on its own connection. A dynamic member gets its id now, from JoinGroup
    /// v9's MEMBER_ID_REQUIRED answer; a static one when it joins (as in Kafka).
    async fn with_type(
        b: &Broker,
        group: &str,
        instance: Option<&str>,
        protocol_type: &str,
        metadata: Bytes,
    ) -> Classic {
        let mut m = Classic {
            c: b.client().await,
            group: group.to_string(),
            protocol_type: protocol_type.to_string(),
            metadata,
            instance: instance.map(str::to_string),
            id: String::new(),
            generation: -1,
        };
        if m.instance.is_none() {
            let req = m.join_request(H_JOIN);
            let r = m.c.send(H_JOIN, &req).await;
            assert_eq!(
                r.error_code,
                err(ResponseError::MemberIdRequired),
                "helper: first join of {group}: {r:?}"
            );
            m.id = r.member_id.to_string();
        }
        m
    }

    fn join_request(&self, v: i16) -> JoinGroupRequest {
        join_req(
            v,
            &self.group,
            &self.id,
            self.instance.as_deref(),
            &self.protocol_type,
            &self.metadata,
        )
    }

    /// Sends JoinGroup; the answer comes once the rebalance completes.
    async fn join_start(&mut self) -> i32 {
        let req = self.join_request(H_JOIN);
        self.c.write(H_JOIN, &req).await
    }

    async fn join_end(&mut self, correlation_id: i32) -> JoinGroupResponse {
        let r: JoinGroupResponse = self.c.read(ApiKey::JoinGroup, H_JOIN, correlation_id).await;
        assert_eq!(r.error_code, 0, "helper: join {}: {r:?}", self.group);
        self.id = r.member_id.to_string();
        self.generation = r.generation_id;
        r
    }

    async fn join(&mut self) -> JoinGroupResponse {
        let id = self.join_start().await;
        self.join_end(id).await
    }

    fn sync_request(&self, v: i16, assignments: &[(&str, Bytes)]) -> SyncGroupRequest {
        sync_req(
            v,
            &self.group,
            self.generation,
            &self.id,
            self.instance.as_deref(),
            &self.protocol_type,
            assignments,
        )
    }

    async fn sync_start(&mut self, assignments: &[(&str, Bytes)]) -> i32 {
        let req = self.sync_request(H_SYNC, assignments);
        self.c.write(H_SYNC, &req).await
    }

    async fn sync_end(&mut self, correlation_id: i32) -> Bytes {
        let r: SyncGroupResponse = self.c.read(ApiKey::SyncGroup, H_SYNC, correlation_id).await;
        assert_eq!(r.error_code, 0, "helper: sync {}: {r:?}", self.group);
        r.assignment
    }

    async fn sync(&mut self, assignments: &[(&str, Bytes)]) -> Bytes {
        let id = self.sync_start(assignments).await;
        self.sync_end(id).await
    }

    /// The error code of a Heartbeat v4.
    async fn heartbeat(&mut self) -> i16 {
        let req = heartbeat_req(
            H_HEARTBEAT,
            &self.group,
            self.generation,
            &self.id,
            self.instance.as_deref(),
        );
        self.c.send(H_HEARTBEAT, &req).await.error_code
    }

    /// Heartbeats until the group says it rebalances, as a client learns to rejoin.
    async fn await_rebalance(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = self.heartbeat().await;
            if e == err(ResponseError::RebalanceInProgress) {
                return;
            }
            assert_eq!(
                e,
                0,
                "helper: heartbeat of {} in {}: {}",
                self.id,
                self.group,
                code_name(e)
            );
            assert!(
                Instant::now() < deadline,
                "helper: {} never heard of the rebalance of {}",
                self.id,
                self.group
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Leaves with LeaveGroup v5.
    async fn leave(&mut self) {
        let r = self
            .c
            .send(
                H_LEAVE,
                &LeaveGroupRequest::default()
                    .with_group_id(gid(&self.group))
                    .with_members(vec![MemberIdentity::default()
                        .with_member_id(str(&self.id))
                        .with_group_instance_id(self.instance.as_deref().map(str))]),
            )
            .await;
        assert_eq!(r.error_code, 0, "helper: leave {}: {r:?}", self.group);
        assert_eq!(r.members.len(), 1);
        assert_eq!(r.members[0].error_code, 0, "helper: leave {}", self.group);
    }
}

/// A stable group of one member, which leads and was assigned `assigned`.
async fn stable_alone(b: &Broker, group: &str, metadata: Bytes, assigned: Bytes) -> Classic {
    let mut a = Classic::new(b, group, None, metadata).await;
    let r = a.join().await;
    assert_eq!(r.leader.as_str(), a.id, "helper: the only member leads");
    let id = a.id.clone();
    assert_eq!(a.sync(&[(&id, assigned.clone())]).await, assigned);
    a
}

/// `m` joins `a`'s stable group: `a` rejoins once its heartbeat says so, `a` stays the leader,
/// and both sync to the given assignments.
async fn add_member(a: &mut Classic, m: &mut Classic, to_a: Bytes, to_m: Bytes) {
    let jm = m.join_start().await;
    a.await_rebalance().await;
    let ra = a.join().await;
    let rm = m.join_end(jm).await;
    assert_eq!(ra.generation_id, rm.generation_id);
    assert_eq!(ra.leader.as_str(), a.id, "helper: the leader stays");
    let sm = m.sync_start(&[]).await;
    let (a_id, m_id) = (a.id.clone(), m.id.clone());
    assert_eq!(
        a.sync(&[(&a_id, to_a.clone()), (&m_id, to_m.clone())])
            .await,
        to_a
    );
    assert_eq!(m.sync_end(sm).await, to_m);
}

// ---------------------------------------------------------------------------------------------
// A KIP-848 consumer group member
// ---------------------------------------------------------------------------------------------

struct CgMember {
    c: Client,
    v: i16,
    group: String,
    id: String,
    epoch: i32,
    owned: Vec<OwnedPartitions>,
}

impl CgMember {
    /// Joins `group` (epoch 0) subscribed to `topics` with ConsumerGroupHeartbeat `v`: from v1 the
    /// member brings its own id (KIP-1082), before it the broker hands one out.
    async fn join(
        b: &Broker,
        v: i16,
        group: &str,
        name: &str,
        topics: &[&str],
    ) -> (CgMember, ConsumerGroupHeartbeatResponse) {
        let requested = if v >= 1 {
            format!("{group}-{name}")
        } else {
            String::new()
        };
        let mut c = b.client().await;
        let r = c
            .send(
                v,
                &ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(gid(group))
                    .with_member_id(str(&requested))
                    .with_member_epoch(0)
                    .with_rebalance_timeout_ms(REBALANCE_MS)
                    .with_subscribed_topic_names(Some(
                        topics.iter().map(|t| topic_name(t)).collect(),
                    ))
                    .with_topic_partitions(Some(Vec::new())),
            )
            .await;
        assert_eq!(
            r.error_code, 0,
            "ConsumerGroupHeartbeat v{v}: {name} joins {group}: {r:?}"
        );
        let id = r.member_id.as_deref().unwrap_or_default().to_string();
        assert!(
            !id.is_empty(),
            "ConsumerGroupHeartbeat v{v}: no member id for {name}"
        );
        if v >= 1 {
            assert_eq!(
                id, requested,
                "ConsumerGroupHeartbeat v{v}: the member's own id"
            );
        }
        let mut m = CgMember {
            c,
            v,
            group: group.to_string(),
            id,
            epoch: 0,
            owned: Vec::new(),
        };
        m.absorb(&r);
        (m, r)
    }

    fn absorb(&mut self, r: &ConsumerGroupHeartbeatResponse) {
        self.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            self.owned = a
                .topic_partitions
                .iter()
                .map(|t| {
                    OwnedPartitions::default()
                        .with_topic_id(t.topic_id)
                        .with_partitions(t.partitions.clone())
                })
                .collect();
        }
    }

    fn request(&self, member_id: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid(&self.group))
            .with_member_id(str(member_id))
            .with_member_epoch(epoch)
            .with_topic_partitions(Some(self.owned.clone()))
    }

    /// A heartbeat that says what the member owns; takes what the answer assigns.
    async fn heartbeat(&mut self) -> ConsumerGroupHeartbeatResponse {
        let req = self.request(&self.id, self.epoch);
        let r = self.c.send(self.v, &req).await;
        assert_eq!(
            r.error_code, 0,
            "ConsumerGroupHeartbeat v{}: heartbeat of {} in {}: {r:?}",
            self.v, self.id, self.group
        );
        assert_eq!(r.member_id.as_deref(), Some(self.id.as_str()));
        self.absorb(&r);
        r
    }

    /// Leaves for good (epoch -1).
    async fn leave(&mut self) -> ConsumerGroupHeartbeatResponse {
        let req = self.request(&self.id, -1);
        let r = self.c.send(self.v, &req).await;
        assert_eq!(
            r.error_code, 0,
            "ConsumerGroupHeartbeat v{}: {} leaves {}: {r:?}",
            self.v, self.id, self.group
        );
        assert_eq!(
            r.member_id.as_deref(),
            Some(self.id.as_str()),
            "ConsumerGroupHeartbeat v{}: leave answer's member id",
            self.v
        );
        assert_eq!(
            r.member_epoch, -1,
            "ConsumerGroupHeartbeat v{}: leave answer's epoch",
            self.v
        );
        self.owned.clear();
        r
    }
}

/// Heartbeats `members` until they own disjoint parts of `all` that cover it, at one epoch.
async fn settle(members: &mut [&mut CgMember], topics: &[MetadataResponseTopic]) {
    let all = all_partitions(topics);
    for _round in 0..50 {
        for m in members.iter_mut() {
            m.heartbeat().await;
        }
        let owned: Vec<BTreeSet<(String, i32)>> =
            members.iter().map(|m| named(topics, &m.owned)).collect();
        let total: usize = owned.iter().map(|o| o.len()).sum();
        let union: BTreeSet<(String, i32)> = owned.iter().flatten().cloned().collect();
        let one_epoch = members.iter().all(|m| m.epoch == members[0].epoch);
        if one_epoch && total == union.len() && union == all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("helper: the consumer group did not settle");
}

// ---------------------------------------------------------------------------------------------
// The list of APIs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn group_apis_are_advertised() {
    let b = start_broker().await;
    let mut c = b.client().await;
    for key in TESTED {
        // Asserts the advertised range is `versions::SUPPORTED`'s.
        c.versions(*key).await;
    }
}

// ---------------------------------------------------------------------------------------------
// FindCoordinator
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn find_coordinator() {
    let b = start_broker().await;
    let mut c = b.client().await;
    for v in c.versions(ApiKey::FindCoordinator).await {
        let what = format!("FindCoordinator v{v}");
        if v <= 3 {
            // One key per request (key type 0, the group, is the default from v1).
            let r = c
                .send(
                    v,
                    &FindCoordinatorRequest::default().with_key(str(&format!("fc-group-v{v}"))),
                )
                .await;
            assert_eq!(
                r.error_code,
                0,
                "{what}: {} {:?}",
                code_name(r.error_code),
                r.error_message
            );
            assert_eq!(r.node_id.0, b.node_id(), "{what}: node id");
            assert_eq!(r.host.as_str(), b.host, "{what}: host");
            assert_eq!(r.port, b.port as i32, "{what}: port");
            assert!(r.coordinators.is_empty(), "{what}: coordinators");
        } else {
            // Batched keys (KIP-699), answered one coordinator per key.
            let keys = [format!("fc-a-v{v}"), format!("fc-b-v{v}")];
            let r = c
                .send(
                    v,
                    &FindCoordinatorRequest::default()
                        .with_key_type(0)
                        .with_coordinator_keys(keys.iter().map(|k| str(k)).collect()),
                )
                .await;
            assert_eq!(r.coordinators.len(), 2, "{what}: one coordinator per key");
            for k in &keys {
                let co = r
                    .coordinators
                    .iter()
                    .find(|co| co.key.as_str() == k)
                    .unwrap_or_else(|| panic!("{what}: no coordinator for {k}"));
                assert_eq!(
                    co.error_code,
                    0,
                    "{what} {k}: {} {:?}",
                    code_name(co.error_code),
                    co.error_message
                );
                assert_eq!(co.node_id.0, b.node_id(), "{what} {k}: node id");
                assert_eq!(co.host.as_str(), b.host, "{what} {k}: host");
                assert_eq!(co.port, b.port as i32, "{what} {k}: port");
            }
        }
    }
    // The coordinator's topic was made on first use, internal, with the configured partitions.
    let t = topic_metadata(&mut c, "__consumer_offsets")
        .await
        .expect("__consumer_offsets exists after FindCoordinator");
    assert!(t.is_internal, "__consumer_offsets is internal");
    assert_eq!(t.partitions.len(), 3, "offsets-topic-num-partitions");
}

// ---------------------------------------------------------------------------------------------
// JoinGroup
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn join_group() {
    let b = start_broker().await;
    let mut c = b.client().await;
    create_topic(&mut c, "join-topic", 2, &[]).await;
    let meta_a = subscription(&["join-topic"]);
    let meta_b = subscription(&["join-topic", "join-other"]);
    for v in c.versions(ApiKey::JoinGroup).await {
        let what = format!("JoinGroup v{v}");
        let group = format!("join-v{v}");
        let mut a = b.client().await;

        // The first member. From v4 a member without an id is handed one and asked to rejoin
        // with it (KIP-394).
        let mut a_id = String::new();
        if v >= 4 {
            let r = a
                .send(v, &join_req(v, &group, "", None, "consumer", &meta_a))
                .await;
            assert_eq!(
                r.error_code,
                err(ResponseError::MemberIdRequired),
                "{what}: a new member without an id: {r:?}"
            );
            assert!(
                r.member_id.starts_with(&format!("{CLIENT_ID}-")),
                "{what}: the member id comes from the client id: {:?}",
                r.member_id
            );
            assert_eq!(r.generation_id, -1, "{what}: MEMBER_ID_REQUIRED generation");
            a_id = r.member_id.to_string();
        }
        let r = a
            .send(v, &join_req(v, &group, &a_id, None, "consumer", &meta_a))
            .await;
        assert_eq!(r.error_code, 0, "{what}: the first join: {r:?}");
        if v >= 4 {
            assert_eq!(r.member_id.as_str(), a_id, "{what}: the id it was given");
        } else {
            assert!(
                r.member_id.starts_with(&format!("{CLIENT_ID}-")),
                "{what}: member id {:?}",
                r.member_id
            );
            a_id = r.member_id.to_string();
        }
        let gen1 = r.generation_id;
        assert_eq!(gen1, 1, "{what}: the first generation");
        assert_eq!(r.leader.as_str(), a_id, "{what}: the only member leads");
        assert_eq!(
            r.protocol_name.as_deref(),
            Some(PROTOCOLS[0]),
            "{what}: the chosen protocol"
        );
        if v >= 7 {
            assert_eq!(
                r.protocol_type.as_deref(),
                Some("consumer"),
                "{what}: protocol type"
            );
        }
        if v >= 9 {
            assert!(!r.skip_assignment, "{what}: skip_assignment");
        }
        assert_eq!(
            join_members(&r),
            BTreeMap::from([(a_id.clone(), (None, meta_a.clone()))]),
            "{what}: the leader gets the members and their metadata"
        );
        let sync = sync_req(
            H_SYNC,
            &group,
            gen1,
            &a_id,
            None,
            "consumer",
            &[(&a_id, assignment(&[("join-topic", &[0, 1])]))],
        );
        let s = a.send(H_SYNC, &sync).await;
        assert_eq!(s.error_code, 0, "{what}: sync after the first join");

        // Joins that must fail, from another connection.
        let r = c
            .send(
                v,
                &join_req(v, &group, "no-such-member", None, "consumer", &meta_a),
            )
            .await;
        assert_eq!(
            r.error_code,
            err(ResponseError::UnknownMemberId),
            "{what}: an unknown member id"
        );
        let mut short = join_req(v, &group, "", None, "consumer", &meta_a);
        short.session_timeout_ms = 1_000;
        let r = c.send(v, &short).await;
        assert_eq!(
            r.error_code,
            err(ResponseError::InvalidSessionTimeout),
            "{what}: a session timeout under group.min.session.timeout.ms"
        );
        let r = c
            .send(v, &join_req(v, &group, "", None, "connect", &meta_a))
            .await;
        assert_eq!(
            r.error_code,
            err(ResponseError::InconsistentGroupProtocol),
            "{what}: another protocol type"
        );

        // A second member (static from v5, KIP-345: no member id round trip) starts a
        // rebalance; the first learns of it from its heartbeat and rejoins.
        let mut bc = b.client().await;
        let b_instance = (v >= 5).then(|| format!("instance-v{v}"));
        let mut b_id = String::new();
        if v >= 4 && b_instance.is_none() {
            let r = bc
                .send(v, &join_req(v, &group, "", None, "consumer", &meta_b))
                .await;
            assert_eq!(r.error_code, err(ResponseError::MemberIdRequired), "{what}");
            b_id = r.member_id.to_string();
        }
        let jb = bc
            .write(
                v,
                &join_req(v, &group, &b_id, b_instance.as_deref(), "consumer", &meta_b),
            )
            .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let h = a
                .send(
                    H_HEARTBEAT,
                    &heartbeat_req(H_HEARTBEAT, &group, gen1, &a_id, None),
                )
                .await;
            if h.error_code == err(ResponseError::RebalanceInProgress) {
                break;
            }
            assert_eq!(h.error_code, 0, "{what}: heartbeat while stable");
            assert!(
                Instant::now() < deadline,
                "{what}: the first member never heard of the rebalance"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ra = a
            .send(v, &join_req(v, &group, &a_id, None, "consumer", &meta_a))
            .await;
        let rb: JoinGroupResponse = bc.read(ApiKey::JoinGroup, v, jb).await;
        assert_eq!(ra.error_code, 0, "{what}: the leader's rejoin: {ra:?}");
        assert_eq!(rb.error_code, 0, "{what}: the second member's join: {rb:?}");
        if v >= 4 && b_instance.is_none() {
            assert_eq!(rb.member_id.as_str(), b_id, "{what}");
        } else {
            let prefix = format!("{}-", b_instance.as_deref().unwrap_or(CLIENT_ID));
            assert!(
                rb.member_id.starts_with(&prefix),
                "{what}: member id {:?} starts with {prefix:?}",
                rb.member_id
            );
            b_id = rb.member_id.to_string();
        }
        assert_ne!(a_id, b_id, "{what}: two members, two ids");
        assert!(
            ra.generation_id > gen1,
            "{what}: the generation grows: {} after {gen1}",
            ra.generation_id
        );
        assert_eq!(ra.generation_id, rb.generation_id, "{what}: one generation");
        assert_eq!(ra.leader.as_str(), a_id, "{what}: the leader stays");
        assert_eq!(
            rb.leader.as_str(),
            a_id,
            "{what}: the follower learns the leader"
        );
        assert_eq!(ra.member_id.as_str(), a_id, "{what}");
        for r in [&ra, &rb] {
            assert_eq!(r.protocol_name.as_deref(), Some(PROTOCOLS[0]), "{what}");
            if v >= 7 {
                assert_eq!(r.protocol_type.as_deref(), Some("consumer"), "{what}");
            }
        }
        assert_eq!(
            join_members(&ra),
            BTreeMap::from([
                (a_id.clone(), (None, meta_a.clone())),
                (b_id.clone(), (b_instance.clone(), meta_b.clone())),
            ]),
            "{what}: the leader gets both members with their own metadata"
        );
        assert!(rb.members.is_empty(), "{what}: a follower gets no members");

        // Both sync: the group is stable.
        let generation = ra.generation_id;
        let to_b = assignment(&[("join-topic", &[1])]);
        let sb = bc
            .write(
                H_SYNC,
                &sync_req(
                    H_SYNC,
                    &group,
                    generation,
                    &b_id,
                    b_instance.as_deref(),
                    "consumer",
                    &[],
                ),
            )
            .await;
        let to_a = assignment(&[("join-topic", &[0])]);
        let s = a
            .send(
                H_SYNC,
                &sync_req(
                    H_SYNC,
                    &group,
                    generation,
                    &a_id,
                    None,
                    "consumer",
                    &[(&a_id, to_a), (&b_id, to_b.clone())],
                ),
            )
            .await;
        assert_eq!(s.error_code, 0, "{what}: the leader's sync");
        let s: SyncGroupResponse = bc.read(ApiKey::SyncGroup, H_SYNC, sb).await;
        assert_eq!(s.error_code, 0, "{what}: the follower's sync");
        assert_eq!(s.assignment, to_b, "{what}: the follower's sync");

        // A static follower that restarts (KIP-345) rejoins without a member id: it gets a new
        // one and keeps its assignment, nobody rebalances, and the old incarnation is fenced.
        if let Some(instance) = &b_instance {
            let mut restarted = b.client().await;
            let r = restarted
                .send(
                    v,
                    &join_req(v, &group, "", Some(instance), "consumer", &meta_b),
                )
                .await;
            assert_eq!(r.error_code, 0, "{what}: a static member restarts: {r:?}");
            let new_id = r.member_id.to_string();
            assert_ne!(new_id, b_id, "{what}: a new id for the new incarnation");
            assert!(
                new_id.starts_with(&format!("{instance}-")),
                "{what}: member id {new_id:?}"
            );
            assert_eq!(
                r.generation_id, generation,
                "{what}: no rebalance for a returning static member"
            );
            assert_eq!(r.leader.as_str(), a_id, "{what}: the leader stays");
            assert_eq!(r.protocol_name.as_deref(), Some(PROTOCOLS[0]), "{what}");
            assert!(r.members.is_empty(), "{what}: a follower gets no members");
            let s = restarted
                .send(
                    H_SYNC,
                    &sync_req(
                        H_SYNC,
                        &group,
                        generation,
                        &new_id,
                        Some(instance),
                        "consumer",
                        &[],
                    ),
                )
                .await;
            assert_eq!(s.error_code, 0, "{what}: the new incarnation syncs");
            assert_eq!(
                s.assignment, to_b,
                "{what}: the returning member keeps its assignment"
            );
            let h = bc
                .send(
                    H_HEARTBEAT,
                    &heartbeat_req(H_HEARTBEAT, &group, generation, &b_id, Some(instance)),
                )
                .await;
            assert_eq!(
                h.error_code,
                err(ResponseError::FencedInstanceId),
                "{what}: the old incarnation is fenced"
            );
            let h = a
                .send(
                    H_HEARTBEAT,
                    &heartbeat_req(H_HEARTBEAT, &group, generation, &a_id, None),
                )
                .await;
            assert_eq!(h.error_code, 0, "{what}: the leader sees no rebalance");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SyncGroup
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sync_group() {
    let b = start_broker().await;
    let mut c = b.client().await;
    create_topic(&mut c, "sync-topic", 4, &[]).await;
    let meta = subscription(&["sync-topic"]);
    for v in c.versions(ApiKey::SyncGroup).await {
        let what = format!("SyncGroup v{v}");
        let group = format!("sync-v{v}");
        let check_protocol = |r: &SyncGroupResponse| {
            if v >= 5 {
                assert_eq!(r.protocol_type.as_deref(), Some("consumer"), "{what}");
                assert_eq!(r.protocol_name.as_deref(), Some(PROTOCOLS[0]), "{what}");
            }
        };

        // The only member syncs its own assignment.
        let mut a = Classic::new(&b, &group, None, meta.clone()).await;
        a.join().await;
        let alone = assignment(&[("sync-topic", &[0, 1, 2, 3])]);
        let r =
            a.c.send(v, &a.sync_request(v, &[(&a.id, alone.clone())]))
                .await;
        assert_eq!(r.error_code, 0, "{what}: the leader alone: {r:?}");
        assert_eq!(r.assignment, alone, "{what}: the leader's own assignment");
        check_protocol(&r);

        // A second member (static from v3, which can say so in SyncGroup) joins.
        let instance = (v >= 3).then(|| format!("sync-instance-v{v}"));
        let mut m = Classic::new(&b, &group, instance.as_deref(), meta.clone()).await;
        let jm = m.join_start().await;
        a.await_rebalance().await;
        a.join().await;
        m.join_end(jm).await;
        assert!(m.generation > 1, "{what}: a new generation");

        // The follower asks first and waits for the leader's assignment.
        let sm = m.c.write(v, &m.sync_request(v, &[])).await;

        // Syncs that must fail.
        let mut stale = a.sync_request(v, &[]);
        stale.generation_id += 1;
        let r = c.send(v, &stale).await;
        assert_eq!(
            r.error_code,
            err(ResponseError::IllegalGeneration),
            "{what}: another generation"
        );
        let mut unknown = a.sync_request(v, &[]);
        unknown.member_id = str("no-such-member");
        let r = c.send(v, &unknown).await;
        assert_eq!(
            r.error_code,
            err(ResponseError::UnknownMemberId),
            "{what}: an unknown member"
        );
        if v >= 5 {
            let mut other = a.sync_request(v, &[]);
            other.protocol_name = Some(str(PROTOCOLS[1]));
            let r = c.send(v, &other).await;
            assert_eq!(
                r.error_code,
                err(ResponseError::InconsistentGroupProtocol),
                "{what}: a protocol name the group did not choose"
            );
        }

        // The leader's assignment reaches each member.
        let to_a = assignment(&[("sync-topic", &[0, 1])]);
        let to_m = assignment(&[("sync-topic", &[2, 3])]);
        let r =
            a.c.send(
                v,
                &a.sync_request(v, &[(&a.id, to_a.clone()), (&m.id, to_m.clone())]),
            )
            .await;
        assert_eq!(r.error_code, 0, "{what}: the leader: {r:?}");
        assert_eq!(r.assignment, to_a, "{what}: the leader's assignment");
        check_protocol(&r);
        let r: SyncGroupResponse = m.c.read(ApiKey::SyncGroup, v, sm).await;
        assert_eq!(r.error_code, 0, "{what}: the waiting follower: {r:?}");
        assert_eq!(r.assignment, to_m, "{what}: the follower's assignment");
        check_protocol(&r);

        // Once stable, a member that syncs again gets the same assignment.
        let r = m.c.send(v, &m.sync_request(v, &[])).await;
        assert_eq!(r.error_code, 0, "{what}: a repeated sync");
        assert_eq!(r.assignment, to_m, "{what}: a repeated sync");
        let d = describe(&mut c, &group).await;
        assert_eq!(d.group_state.as_str(), "Stable", "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Heartbeat
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn heartbeat() {
    let b = start_broker().await;
    let mut c = b.client().await;
    create_topic(&mut c, "hb-topic", 2, &[]).await;
    let meta = subscription(&["hb-topic"]);
    for v in c.versions(ApiKey::Heartbeat).await {
        let what = format!("Heartbeat v{v}");
        let group = format!("hb-v{v}");
        let mut a = stable_alone(&b, &group, meta.clone(), assignment(&[])).await;
        let hb = |generation: i32, member: &str, instance: Option<&str>| {
            heartbeat_req(v, &group, generation, member, instance)
        };

        let r = a.c.send(v, &hb(a.generation, &a.id, None)).await;
        assert_eq!(r.error_code, 0, "{what}: a stable group: {r:?}");
        let r = c.send(v, &hb(a.generation + 1, &a.id, None)).await;
        assert_eq!(
            r.error_code,
            err(ResponseError::IllegalGeneration),
            "{what}: another generation"
        );
        let r = c.send(v, &hb(a.generation, "no-such-member", None)).await;
        assert_eq!(
            r.error_code,
            err(ResponseError::UnknownMemberId),
            "{what}: an unknown member"
        );

        // Another member (static from v3) joins: the first hears REBALANCE_IN_PROGRESS.
        let instance = (v >= 3).then(|| format!("hb-instance-v{v}"));
        let mut m = Classic::new(&b, &group, instance.as_deref(), meta.clone()).await;
        let jm = m.join_start().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = a.c.send(v, &hb(a.generation, &a.id, None)).await;
            if r.error_code == err(ResponseError::RebalanceInProgress) {
                break;
            }
            assert_eq!(
                r.error_code,
                0,
                "{what}: before the rebalance: {}",
                code_name(r.error_code)
            );
            assert!(
                Instant::now() < deadline,
                "{what}: never REBALANCE_IN_PROGRESS after another member joined"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.join().await;
        m.join_end(jm).await;
        // Awaiting SyncGroup (CompletingRebalance) is no rebalance for a heartbeat.
        let r = a.c.send(v, &hb(a.generation, &a.id, None)).await;
        assert_eq!(r.error_code, 0, "{what}: after the join, before the sync");
        let sm = m.sync_start(&[]).await;
        let (a_id, m_id) = (a.id.clone(), m.id.clone());
        a.sync(&[
            (&a_id, assignment(&[("hb-topic", &[0])])),
            (&m_id, assignment(&[("hb-topic", &[1])])),
        ])
        .await;
        m.sync_end(sm).await;

        let r = a.c.send(v, &hb(a.generation, &a.id, None)).await;
        assert_eq!(r.error_code, 0, "{what}: the leader, stable again");
        let r =
            m.c.send(v, &hb(m.generation, &m.id, instance.as_deref()))
                .await;
        assert_eq!(r.error_code, 0, "{what}: the new member, stable");
        if let Some(instance) = &instance {
            // The instance id belongs to the other member.
            let r = c.send(v, &hb(a.generation, &a.id, Some(instance))).await;
            assert_eq!(
                r.error_code,
                err(ResponseError::FencedInstanceId),
                "{what}: another member's instance id"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LeaveGroup
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn leave_group() {
    let b = start_broker().await;
    let mut c = b.client().await;
    create_topic(&mut c, "leave-topic", 2, &[]).await;
    let meta = subscription(&["leave-topic"]);
    for v in c.versions(ApiKey::LeaveGroup).await {
        let what = format!("LeaveGroup v{v}");
        let group = format!("leave-v{v}");
        let mut a = stable_alone(&b, &group, meta.clone(), assignment(&[])).await;
        // From v3 a member can be removed by its instance id (KIP-345), so make it static.
        let instance = (v >= 3).then(|| format!("leave-instance-v{v}"));
        let mut m = Classic::new(&b, &group, instance.as_deref(), meta.clone()).await;
        add_member(
            &mut a,
            &mut m,
            assignment(&[("leave-topic", &[0])]),
            assignment(&[("leave-topic", &[1])]),
        )
        .await;
        let generation = m.generation;

        if v <= 2 {
            // One member per request; the error is the request's.
            let r = c
                .send(
                    v,
                    &LeaveGroupRequest::default()
                        .with_group_id(gid(&group))
                        .with_member_id(str("no-such-member")),
                )
                .await;
            assert_eq!(
                r.error_code,
                err(ResponseError::UnknownMemberId),
                "{what}: an unknown member"
            );
            let r =
                a.c.send(
                    v,
                    &LeaveGroupRequest::default()
                        .with_group_id(gid(&group))
                        .with_member_id(str(&a.id)),
                )
                .await;
            assert_eq!(r.error_code, 0, "{what}: the leader leaves: {r:?}");
        } else {
            // A batch, with an error per member (KIP-345).
            let identity = |member: &str| {
                let mut i = MemberIdentity::default().with_member_id(str(member));
                if v >= 5 {
                    i.reason = Some(str("wire test"));
                }
                i
            };
            let r =
                a.c.send(
                    v,
                    &LeaveGroupRequest::default()
                        .with_group_id(gid(&group))
                        .with_members(vec![identity(&a.id), identity("no-such-member")]),
                )
                .await;
            assert_eq!(r.error_code, 0, "{what}: the batch: {r:?}");
            let got: Vec<(String, Option<String>, i16)> = r
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                        m.error_code,
                    )
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (a.id.clone(), None, 0),
                    (
                        "no-such-member".to_string(),
                        None,
                        err(ResponseError::UnknownMemberId)
                    ),
                ],
                "{what}: per-member results"
            );
        }

        // The member left behind rebalances alone and leads.
        let r = a.heartbeat().await;
        assert_eq!(
            r,
            err(ResponseError::UnknownMemberId),
            "{what}: the departed member's heartbeat"
        );
        m.await_rebalance().await;
        let r = m.join().await;
        assert!(m.generation > generation, "{what}: a new generation");
        assert_eq!(
            r.leader.as_str(),
            m.id,
            "{what}: the remaining member leads"
        );
        assert_eq!(
            join_members(&r).keys().cloned().collect::<Vec<_>>(),
            vec![m.id.clone()],
            "{what}: only the remaining member"
        );
        let m_id = m.id.clone();
        m.sync(&[(&m_id, assignment(&[("leave-topic", &[0, 1])]))])
            .await;

        if v <= 2 {
            let r =
                m.c.send(
                    v,
                    &LeaveGroupRequest::default()
                        .with_group_id(gid(&group))
                        .with_member_id(str(&m.id)),
                )
                .await;
            assert_eq!(r.error_code, 0, "{what}: the last member leaves");
        } else {
            // Removed by instance id alone, as an admin does.
            let instance = instance.clone().unwrap();
            let r = c
                .send(
                    v,
                    &LeaveGroupRequest::default()
                        .with_group_id(gid(&group))
                        .with_members(vec![MemberIdentity::default()
                            .with_member_id(str(""))
                            .with_group_instance_id(Some(str(&instance)))]),
                )
                .await;
            assert_eq!(r.error_code, 0, "{what}: leave by instance id: {r:?}");
            assert_eq!(r.members.len(), 1, "{what}");
            assert_eq!(
                r.members[0].group_instance_id.as_deref(),
                Some(instance.as_str()),
                "{what}"
            );
            assert_eq!(r.members[0].error_code, 0, "{what}: leave by instance id");
        }
        let d = describe(&mut c, &group).await;
        assert_eq!(d.group_state.as_str(), "Empty", "{what}: everybody left");
        assert!(d.members.is_empty(), "{what}: no members left");
    }
}

// ---------------------------------------------------------------------------------------------
// OffsetCommit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn offset_commit() {
    let b = start_broker().await;
    let mut c = b.client().await;
    let topic = "commit-topic";
    create_topic(&mut c, topic, 3, &[]).await;
    let meta = subscription(&[topic]);
    for v in c.versions(ApiKey::OffsetCommit).await {
        let what = format!("OffsetCommit v{v}");
        let group = format!("commit-v{v}");
        // A member of a group (static from v7, which can say so when committing).
        let instance = (v >= 7).then(|| format!("commit-instance-v{v}"));
        let mut a = Classic::new(&b, &group, instance.as_deref(), meta.clone()).await;
        a.join().await;
        let req = |generation: i32, member: &str, topics: &[(&str, &[Commit<'_>])]| {
            commit_req(v, &group, generation, member, instance.as_deref(), topics)
        };

        // Between JoinGroup and SyncGroup the generation is not settled yet.
        let r =
            a.c.send(
                v,
                &req(a.generation, &a.id, &[(topic, &[(0, 1, None, -1)])]),
            )
            .await;
        assert_eq!(
            commit_codes(&r),
            vec![(
                topic.to_string(),
                0,
                err(ResponseError::RebalanceInProgress)
            )],
            "{what}: before the sync"
        );
        let a_id = a.id.clone();
        a.sync(&[(&a_id, assignment(&[(topic, &[0, 1, 2])]))]).await;

        // The member commits at its generation.
        let meta0 = format!("meta-v{v}");
        let r =
            a.c.send(
                v,
                &req(
                    a.generation,
                    &a.id,
                    &[(
                        topic,
                        &[
                            (0, 10 + v as i64, Some(&meta0), 5),
                            (1, 20 + v as i64, None, 6),
                        ],
                    )],
                ),
            )
            .await;
        assert_eq!(
            commit_codes(&r),
            vec![(topic.to_string(), 0, 0), (topic.to_string(), 1, 0)],
            "{what}: the member's commit"
        );
        let epoch = |e: i32| if v >= 6 { e } else { -1 };
        assert_eq!(
            fetch_offsets(&mut c, &group, Some(&[(topic, &[0, 1, 2])])).await,
            offsets(&[
                (topic, 0, committed(10 + v as i64, epoch(5), &meta0)),
                (topic, 1, committed(20 + v as i64, epoch(6), "")),
                (topic, 2, no_offset()),
            ]),
            "{what}: OffsetFetch shows the commit"
        );

        // Per-partition errors next to a partition that commits.
        let long = "m".repeat(5_000);
        let r =
            a.c.send(
                v,
                &req(
                    a.generation,
                    &a.id,
                    &[
                        (
                            topic,
                            &[
                                (2, 30, None, -1),
                                (7, 30, None, -1),
                                (1, 31, Some(&long), -1),
                            ],
                        ),
                        ("no-such-topic", &[(0, 30, None, -1)]),
                    ],
                ),
            )
            .await;
        assert_eq!(
            commit_codes(&r),
            sorted(vec![
                (topic.to_string(), 2, 0),
                (
                    topic.to_string(),
                    7,
                    err(ResponseError::UnknownTopicOrPartition)
                ),
                (
                    topic.to_string(),
                    1,
                    err(ResponseError::OffsetMetadataTooLarge)
                ),
                (
                    "no-such-topic".to_string(),
                    0,
                    err(ResponseError::UnknownTopicOrPartition)
                ),
            ]),
            "{what}: per-partition errors"
        );
        let got = fetch_offsets(&mut c, &group, Some(&[(topic, &[1, 2])])).await;
        assert_eq!(got[&(topic.to_string(), 2)].offset, 30, "{what}");
        assert_eq!(
            got[&(topic.to_string(), 1)].offset,
            20 + v as i64,
            "{what}: a refused commit changes nothing"
        );

        // Commits the group refuses, whole.
        let one: &[(&str, &[Commit<'_>])] = &[(topic, &[(0, 99, None, -1)])];
        let expect = |r: &OffsetCommitResponse, e: ResponseError, case: &str| {
            assert_eq!(
                commit_codes(r),
                vec![(topic.to_string(), 0, err(e))],
                "{what}: {case}"
            );
        };
        let r = c.send(v, &req(a.generation + 1, &a.id, one)).await;
        expect(&r, ResponseError::IllegalGeneration, "another generation");
        let r = c
            .send(
                v,
                &commit_req(v, &group, a.generation, "no-such-member", None, one),
            )
            .await;
        expect(&r, ResponseError::UnknownMemberId, "an unknown member");
        let r = c.send(v, &commit_req(v, &group, -1, "", None, one)).await;
        expect(
            &r,
            ResponseError::UnknownMemberId,
            "no generation, while the group has members",
        );
        if let Some(instance) = &instance {
            let r = c
                .send(
                    v,
                    &commit_req(
                        v,
                        &group,
                        a.generation,
                        "no-such-member",
                        Some(instance),
                        one,
                    ),
                )
                .await;
            expect(
                &r,
                ResponseError::FencedInstanceId,
                "another member's instance id",
            );
        }
        let r = c
            .send(
                v,
                &commit_req(v, &format!("commit-nobody-v{v}"), 1, "ghost", None, one),
            )
            .await;
        // KIP-848 made a missing group GROUP_ID_NOT_FOUND from v9; before, ILLEGAL_GENERATION.
        let missing = if v >= 9 {
            ResponseError::GroupIdNotFound
        } else {
            ResponseError::IllegalGeneration
        };
        expect(&r, missing, "a generation of a group that does not exist");
        assert_eq!(
            fetch_offsets(&mut c, &group, Some(&[(topic, &[0])])).await[&(topic.to_string(), 0)]
                .offset,
            10 + v as i64,
            "{what}: refused commits change nothing"
        );

        // A commit outside group management (generation -1) makes a simple group.
        let simple = format!("commit-simple-v{v}");
        let r = c
            .send(
                v,
                &commit_req(
                    v,
                    &simple,
                    -1,
                    "",
                    None,
                    &[(topic, &[(1, 40 + v as i64, Some("simple"), 3)])],
                ),
            )
            .await;
        assert_eq!(
            commit_codes(&r),
            vec![(topic.to_string(), 1, 0)],
            "{what}: a simple group's commit"
        );
        assert_eq!(
            fetch_offsets(&mut c, &simple, None).await,
            offsets(&[(topic, 1, committed(40 + v as i64, epoch(3), "simple"))]),
            "{what}: the simple group's offsets"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OffsetFetch
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn offset_fetch() {
    let b = start_broker().await;
    let mut c = b.client().await;
    let topic = "fetch-topic";
    create_topic(&mut c, topic, 3, &[]).await;
    for v in c.versions(ApiKey::OffsetFetch).await {
        let what = format!("OffsetFetch v{v}");
        let group = format!("fetch-v{v}");
        let group2 = format!("fetch2-v{v}");
        let o = |base: i64| base + v as i64;
        let meta0 = format!("meta-v{v}");
        commit(
            &mut c,
            &group,
            -1,
            "",
            &[(
                topic,
                &[(0, o(100), Some(&meta0), 7), (1, o(200), None, -1)],
            )],
        )
        .await;
        commit(
            &mut c,
            &group2,
            -1,
            "",
            &[(topic, &[(2, o(300), Some("second"), 3)])],
        )
        .await;
        // The leader epoch is in the answer from v5.
        let epoch = |e: i32| if v >= 5 { e } else { -1 };
        let named_partitions = offsets(&[
            (topic, 0, committed(o(100), epoch(7), &meta0)),
            (topic, 1, committed(o(200), -1, "")),
            (topic, 2, no_offset()),
        ]);
        let committed_only = offsets(&[
            (topic, 0, committed(o(100), epoch(7), &meta0)),
            (topic, 1, committed(o(200), -1, "")),
        ]);

        if v <= 7 {
            let fetch_one = |group: &str, topics: Option<&[i32]>| {
                let mut r = OffsetFetchRequest::default()
                    .with_group_id(gid(group))
                    .with_topics(topics.map(|ps| {
                        vec![OffsetFetchRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partition_indexes(ps.to_vec())]
                    }));
                if v >= 7 {
                    r.require_stable = true;
                }
                r
            };
            let flatten = |r: &kafka_protocol::messages::OffsetFetchResponse| -> Offsets {
                let mut out = Offsets::new();
                for t in &r.topics {
                    for p in &t.partitions {
                        assert_eq!(
                            p.error_code,
                            0,
                            "{what}: {}-{}: {}",
                            t.name.0.as_str(),
                            p.partition_index,
                            code_name(p.error_code)
                        );
                        out.insert(
                            (t.name.0.to_string(), p.partition_index),
                            committed(
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata.as_deref().unwrap_or_default(),
                            ),
                        );
                    }
                }
                out
            };

            let r = c.send(v, &fetch_one(&group, Some(&[0, 1, 2]))).await;
            assert_eq!(r.error_code, 0, "{what}: {}", code_name(r.error_code));
            assert_eq!(flatten(&r), named_partitions, "{what}: named partitions");
            if v >= 2 {
                // Null topics: everything the group committed (KIP-88).
                let r = c.send(v, &fetch_one(&group, None)).await;
                assert_eq!(r.error_code, 0, "{what}");
                assert_eq!(flatten(&r), committed_only, "{what}: all topics");
            }
            let r = c
                .send(v, &fetch_one(&format!("fetch-nobody-v{v}"), Some(&[0])))
                .await;
            assert_eq!(r.error_code, 0, "{what}: a group that does not exist");
            assert_eq!(
                flatten(&r),
                offsets(&[(topic, 0, no_offset())]),
                "{what}: a group that does not exist has no offsets"
            );
        } else {
            // Many groups in one request (KIP-709).
            let wanted = |group: &str, partitions: Option<&[i32]>| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid(group))
                    .with_topics(partitions.map(|ps| {
                        vec![OffsetFetchRequestTopics::default()
                            .with_name(topic_name(topic))
                            .with_partition_indexes(ps.to_vec())]
                    }))
            };
            let nobody = format!("fetch-nobody-v{v}");
            let r = c
                .send(
                    v,
                    &OffsetFetchRequest::default()
                        .with_require_stable(true)
                        .with_groups(vec![
                            wanted(&group, Some(&[0, 1, 2])),
                            wanted(&group2, None),
                            wanted(&nobody, Some(&[0])),
                        ]),
                )
                .await;
            let got: Vec<(String, i16, Offsets)> = r
                .groups
                .iter()
                .map(|g| {
                    let mut out = Offsets::new();
                    for t in &g.topics {
                        for p in &t.partitions {
                            assert_eq!(p.error_code, 0, "{what}");
                            out.insert(
                                (t.name.0.to_string(), p.partition_index),
                                committed(
                                    p.committed_offset,
                                    p.committed_leader_epoch,
                                    p.metadata.as_deref().unwrap_or_default(),
                                ),
                            );
                        }
                    }
                    (g.group_id.0.to_string(), g.error_code, out)
                })
                .collect();
            assert_eq!(
                sorted(got),
                sorted(vec![
                    (group.clone(), 0, named_partitions.clone()),
                    (
                        group2.clone(),
                        0,
                        offsets(&[(topic, 2, committed(o(300), 3, "second"))])
                    ),
                    (nobody.clone(), 0, offsets(&[(topic, 0, no_offset())])),
                ]),
                "{what}: one answer per group"
            );
        }

        if v >= 9 {
            // A KIP-848 member fetches with its member id and epoch.
            let cg = format!("fetch-consumer-v{v}");
            let (mut m, _) = CgMember::join(&b, H_CONSUMER_HEARTBEAT, &cg, "m", &[topic]).await;
            commit(&mut c, &cg, m.epoch, &m.id, &[(topic, &[(0, 77, None, 2)])]).await;
            let member_fetch = |member: &str, epoch: i32| {
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(gid(&cg))
                    .with_member_id(Some(str(member)))
                    .with_member_epoch(epoch)
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(vec![0])]))])
            };
            let r = m.c.send(v, &member_fetch(&m.id, m.epoch)).await;
            assert_eq!(r.groups.len(), 1);
            let g = &r.groups[0];
            assert_eq!(g.error_code, 0, "{what}: the member at its epoch");
            assert_eq!(g.topics.len(), 1);
            assert_eq!(g.topics[0].partitions[0].committed_offset, 77, "{what}");
            assert_eq!(g.topics[0].partitions[0].committed_leader_epoch, 2);
            let r = c.send(v, &member_fetch(&m.id, m.epoch - 1)).await;
            assert_eq!(
                r.groups[0].error_code,
                err(ResponseError::StaleMemberEpoch),
                "{what}: an old member epoch"
            );
            let r = c.send(v, &member_fetch("no-such-member", m.epoch)).await;
            assert_eq!(
                r.groups[0].error_code,
                err(ResponseError::UnknownMemberId),
                "{what}: an unknown member"
            );
            m.leave().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OffsetDelete
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn offset_delete() {
    let b = start_broker().await;
    let mut c = b.client().await;
    let (sub, other) = ("od-subscribed", "od-other");
    create_topic(&mut c, sub, 2, &[]).await;
    create_topic(&mut c, other, 1, &[]).await;
    let delete = |group: &str, topics: &[(&str, &[i32])]| {
        OffsetDeleteRequest::default()
            .with_group_id(gid(group))
            .with_topics(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(
                                ps.iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(*p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    };
    let codes = |r: &kafka_protocol::messages::OffsetDeleteResponse| -> Vec<(String, i32, i16)> {
        sorted(
            r.topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
                })
                .collect(),
        )
    };
    for v in c.versions(ApiKey::OffsetDelete).await {
        let what = format!("OffsetDelete v{v}");
        let group = format!("od-v{v}");

        // A stable consumer group subscribed to one topic, with offsets on both.
        let mut a = stable_alone(
            &b,
            &group,
            subscription(&[sub]),
            assignment(&[(sub, &[0, 1])]),
        )
        .await;
        commit(
            &mut c,
            &group,
            a.generation,
            &a.id,
            &[
                (sub, &[(0, 5, None, -1), (1, 6, None, -1)]),
                (other, &[(0, 7, None, -1)]),
            ],
        )
        .await;
        let r = c
            .send(v, &delete(&group, &[(sub, &[0]), (other, &[0])]))
            .await;
        assert_eq!(r.error_code, 0, "{what}: {}", code_name(r.error_code));
        assert_eq!(
            codes(&r),
            sorted(vec![
                (
                    sub.to_string(),
                    0,
                    err(ResponseError::GroupSubscribedToTopic)
                ),
                (other.to_string(), 0, 0),
            ]),
            "{what}: a subscribed topic keeps its offsets, another loses them"
        );
        assert_eq!(
            fetch_offsets(&mut c, &group, Some(&[(sub, &[0, 1]), (other, &[0])])).await,
            offsets(&[
                (sub, 0, committed(5, -1, "")),
                (sub, 1, committed(6, -1, "")),
                (other, 0, no_offset()),
            ]),
            "{what}: after deleting from a stable group"
        );

        // Once the group is empty, its offsets can go.
        a.leave().await;
        let r = c.send(v, &delete(&group, &[(sub, &[0])])).await;
        assert_eq!(r.error_code, 0, "{what}: an empty group");
        assert_eq!(codes(&r), vec![(sub.to_string(), 0, 0)], "{what}");
        assert_eq!(
            fetch_offsets(&mut c, &group, None).await,
            offsets(&[(sub, 1, committed(6, -1, ""))]),
            "{what}: only the deleted offset is gone"
        );

        // A KIP-848 group subscribed to the topic.
        let cg = format!("od-consumer-v{v}");
        let (mut m, _) = CgMember::join(&b, H_CONSUMER_HEARTBEAT, &cg, "m", &[sub]).await;
        commit(
            &mut c,
            &cg,
            m.epoch,
            &m.id,
            &[(sub, &[(0, 8, None, -1)]), (other, &[(0, 9, None, -1)])],
        )
        .await;
        let r = c.send(v, &delete(&cg, &[(sub, &[0]), (other, &[0])])).await;
        assert_eq!(r.error_code, 0, "{what}: a consumer group");
        assert_eq!(
            codes(&r),
            sorted(vec![
                (
                    sub.to_string(),
                    0,
                    err(ResponseError::GroupSubscribedToTopic)
                ),
                (other.to_string(), 0, 0),
            ]),
            "{what}: a KIP-848 group subscribed to the topic"
        );
        m.leave().await;

        // Groups whose offsets cannot be deleted at all.
        let r = c
            .send(v, &delete(&format!("od-nobody-v{v}"), &[(sub, &[0])]))
            .await;
        assert_eq!(
            r.error_code,
            err(ResponseError::GroupIdNotFound),
            "{what}: a group that does not exist"
        );
        let connect = format!("od-connect-v{v}");
        let mut k =
            Classic::with_type(&b, &connect, None, "connect", Bytes::from_static(b"x")).await;
        k.join().await;
        let k_id = k.id.clone();
        k.sync(&[(&k_id, Bytes::from_static(b"y"))]).await;
        let r = c.send(v, &delete(&connect, &[(sub, &[0])])).await;
        assert_eq!(
            r.error_code,
            err(ResponseError::NonEmptyGroup),
            "{what}: a non-empty group of another protocol type"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// DescribeGroups
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn describe_groups() {
    let b = start_broker().await;
    let mut c = b.client().await;
    let topic = "describe-topic";
    create_topic(&mut c, topic, 2, &[]).await;
    // A KIP-848 group, which DescribeGroups does not describe (it is no classic group).
    let (_cg_member, _) =
        CgMember::join(&b, H_CONSUMER_HEARTBEAT, "describe-consumer", "m", &[topic]).await;
    for v in c.versions(ApiKey::DescribeGroups).await {
        let what = format!("DescribeGroups v{v}");
        let group = format!("describe-v{v}");
        let (meta_a, meta_m) = (subscription(&[topic]), subscription(&[topic, "x"]));
        let (to_a, to_m) = (assignment(&[(topic, &[0])]), assignment(&[(topic, &[1])]));
        let mut a = stable_alone(&b, &group, meta_a.clone(), assignment(&[])).await;
        let instance = format!("describe-instance-v{v}");
        let mut m = Classic::new(&b, &group, Some(&instance), meta_m.clone()).await;
        add_member(&mut a, &mut m, to_a.clone(), to_m.clone()).await;
        // A group between JoinGroup and SyncGroup.
        let joining = format!("describe-joining-v{v}");
        let mut j = Classic::new(&b, &joining, None, meta_a.clone()).await;
        j.join().await;
        let unknown = format!("describe-nobody-v{v}");

        let mut req = DescribeGroupsRequest::default().with_groups(vec![
            gid(&group),
            gid(&joining),
            gid(&unknown),
            gid("describe-consumer"),
        ]);
        if v >= 3 {
            req.include_authorized_operations = false;
        }
        let r = c.send(v, &req).await;
        assert_eq!(r.groups.len(), 4, "{what}: one answer per group");
        let by_id: BTreeMap<&str, &DescribedGroup> = r
            .groups
            .iter()
            .map(|g| (g.group_id.0.as_str(), g))
            .collect();
        assert_eq!(
            by_id.keys().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([
                group.as_str(),
                joining.as_str(),
                unknown.as_str(),
                "describe-consumer"
            ]),
            "{what}: the groups asked for"
        );

        // The stable group: state, protocol and every member with metadata and assignment.
        let g = by_id[group.as_str()];
        assert_eq!(g.error_code, 0, "{what}: {}", code_name(g.error_code));
        assert_eq!(g.group_state.as_str(), "Stable", "{what}: state");
        assert_eq!(
            g.protocol_type.as_str(),
            "consumer",
            "{what}: protocol type"
        );
        assert_eq!(g.protocol_data.as_str(), PROTOCOLS[0], "{what}: protocol");
        if v >= 3 {
            assert_eq!(
                g.authorized_operations,
                i32::MIN,
                "{what}: operations not asked for"
            );
        }
        let members: BTreeMap<String, (String, String, Option<String>, Bytes, Bytes)> = g
            .members
            .iter()
            .map(|d| {
                (
                    d.member_id.to_string(),
                    (
                        d.client_id.to_string(),
                        d.client_host.to_string(),
                        d.group_instance_id.as_ref().map(|s| s.to_string()),
                        d.member_metadata.clone(),
                        d.member_assignment.clone(),
                    ),
                )
            })
            .collect();
        let instance_shown = (v >= 4).then(|| instance.clone());
        assert_eq!(
            members,
            BTreeMap::from([
                (
                    a.id.clone(),
                    (
                        CLIENT_ID.to_string(),
                        CLIENT_HOST.to_string(),
                        None,
                        meta_a.clone(),
                        to_a.clone()
                    )
                ),
                (
                    m.id.clone(),
                    (
                        CLIENT_ID.to_string(),
                        CLIENT_HOST.to_string(),
                        instance_shown,
                        meta_m.clone(),
                        to_m.clone()
                    )
                ),
            ]),
            "{what}: members"
        );

        // Awaiting SyncGroup: members, but no protocol, metadata or assignment yet.
        let g = by_id[joining.as_str()];
        assert_eq!(g.error_code, 0, "{what}");
        assert_eq!(g.group_state.as_str(), "CompletingRebalance", "{what}");
        assert_eq!(g.protocol_type.as_str(), "consumer", "{what}");
        assert_eq!(
            g.protocol_data.as_str(),
            "",
            "{what}: no protocol until stable"
        );
        assert_eq!(g.members.len(), 1, "{what}");
        assert_eq!(g.members[0].member_id.as_str(), j.id, "{what}");
        assert!(g.members[0].member_metadata.is_empty(), "{what}");
        assert!(g.members[0].member_assignment.is_empty(), "{what}");

        // No such classic group: Dead; from v6 also GROUP_ID_NOT_FOUND (KIP-1043).
        for g in [by_id[unknown.as_str()], by_id["describe-consumer"]] {
            let name = g.group_id.0.as_str();
            let expected = if v >= 6 {
                err(ResponseError::GroupIdNotFound)
            } else {
                0
            };
            assert_eq!(
                g.error_code,
                expected,
                "{what} {name}: {}",
                code_name(g.error_code)
            );
            assert_eq!(g.group_state.as_str(), "Dead", "{what} {name}");
            assert_eq!(g.protocol_type.as_str(), "", "{what} {name}");
            assert!(g.members.is_empty(), "{what} {name}");
        }

        // Everybody leaves: Empty, and the protocol type stays.
        let r =
            a.c.send(
                H_LEAVE,
                &LeaveGroupRequest::default()
                    .with_group_id(gid(&group))
                    .with_members(vec![
                        MemberIdentity::default().with_member_id(str(&a.id)),
                        MemberIdentity::default()
                            .with_member_id(str(&m.id))
                            .with_group_instance_id(Some(str(&instance))),
                    ]),
            )
            .await;
        assert_eq!(r.error_code, 0);
        let r = c
            .send(
                v,
                &DescribeGroupsRequest::default().with_groups(vec![gid(&group)]),
            )
            .await;
        let g = &r.groups[0];
        assert_eq!(g.error_code, 0, "{what}: an empty group");
        assert_eq!(g.group_state.as_str(), "Empty", "{what}: an empty group");
        assert_eq!(
            g.protocol_type.as_str(),
            "consumer",
            "{what}: an empty group"
        );
        assert!(g.members.is_empty(), "{what}: an empty group");
    }
}

// ---------------------------------------------------------------------------------------------
// ListGroups
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_groups() {
    let b = start_broker().await;
    let mut c = b.client().await;
    let topic = "list-topic";
    create_topic(&mut c, topic, 2, &[]).await;
    // One group of each kind: a stable classic group, an empty one, a simple one (commits
    // only) and a stable KIP-848 group.
    let _stable = stable_alone(&b, "list-stable", subscription(&[topic]), assignment(&[])).await;
    let mut empty = stable_alone(&b, "list-empty", subscription(&[topic]), assignment(&[])).await;
    empty.leave().await;
    commit(
        &mut c,
        "list-simple",
        -1,
        "",
        &[(topic, &[(0, 1, None, -1)])],
    )
    .await;
    let (_cg_member, _) =
        CgMember::join(&b, H_CONSUMER_HEARTBEAT, "list-consumer", "m", &[topic]).await;
    // id -> (protocol type, state, type)
    let every: BTreeMap<&str, (&str, &str, &str)> = BTreeMap::from([
        ("list-stable", ("consumer", "Stable", "classic")),
        ("list-empty", ("consumer", "Empty", "classic")),
        ("list-simple", ("", "Empty", "classic")),
        ("list-consumer", ("consumer", "Stable", "consumer")),
    ]);

    for v in c.versions(ApiKey::ListGroups).await {
        let what = format!("ListGroups v{v}");
        let list = |states: &[&str], types: &[&str]| {
            let mut r = ListGroupsRequest::default();
            if v >= 4 {
                r.states_filter = states.iter().map(|s| str(s)).collect();
            }
            if v >= 5 {
                r.types_filter = types.iter().map(|s| str(s)).collect();
            }
            r
        };
        let got = |groups: &[ListedGroup]| -> BTreeMap<String, (String, String, String)> {
            let out: BTreeMap<_, _> = groups
                .iter()
                .map(|g| {
                    (
                        g.group_id.0.to_string(),
                        (
                            g.protocol_type.to_string(),
                            g.group_state.to_string(),
                            g.group_type.to_string(),
                        ),
                    )
                })
                .collect();
            assert_eq!(out.len(), groups.len(), "{what}: a group listed twice");
            out
        };
        // What version `v` shows of the groups named.
        let expected = |names: &[&str]| -> BTreeMap<String, (String, String, String)> {
            names
                .iter()
                .map(|n| {
                    let (protocol_type, state, kind) = every[n];
                    (
                        n.to_string(),
                        (
                            protocol_type.to_string(),
                            if v >= 4 { state } else { "" }.to_string(),
                            if v >= 5 { kind } else { "" }.to_string(),
                        ),
                    )
                })
                .collect()
        };

        let r = c.send(v, &list(&[], &[])).await;
        assert_eq!(r.error_code, 0, "{what}: {}", code_name(r.error_code));
        assert_eq!(
            got(&r.groups),
            expected(&["list-stable", "list-empty", "list-simple", "list-consumer"]),
            "{what}: every group"
        );
        if v >= 4 {
            // States filter (KIP-518), compared without case.
            let r = c.send(v, &list(&["Stable"], &[])).await;
            assert_eq!(r.error_code, 0, "{what}");
            assert_eq!(
                got(&r.groups),
                expected(&["list-stable", "list-consumer"]),
                "{what}: Stable groups"
            );
            let r = c.send(v, &list(&["empty"], &[])).await;
            assert_eq!(
                got(&r.groups),
                expected(&["list-empty", "list-simple"]),
                "{what}: Empty groups, asked in lower case"
            );
            let r = c.send(v, &list(&["PreparingRebalance"], &[])).await;
            assert!(r.groups.is_empty(), "{what}: no group rebalances");
        }
        if v >= 5 {
            // Types filter (KIP-848).
            let r = c.send(v, &list(&[], &["consumer"])).await;
            assert_eq!(r.error_code, 0, "{what}");
            assert_eq!(
                got(&r.groups),
                expected(&["list-consumer"]),
                "{what}: consumer groups"
            );
            let r = c.send(v, &list(&[], &["classic"])).await;
            assert_eq!(
                got(&r.groups),
                expected(&["list-stable", "list-empty", "list-simple"]),
                "{what}: classic groups"
            );
            let r = c.send(v, &list(&["Stable"], &["Classic"])).await;
            assert_eq!(
                got(&r.groups),
                expected(&["list-stable"]),
                "{what}: both filters"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DeleteGroups
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_groups() {
    let b = start_broker().await;
    let mut c = b.client().await;
    let topic = "delete-topic";
    create_topic(&mut c, topic, 2, &[]).await;
    for v in c.versions(ApiKey::DeleteGroups).await {
        let what = format!("DeleteGroups v{v}");
        let group = format!("delete-v{v}");
        let cg = format!("delete-consumer-v{v}");
        let simple = format!("delete-simple-v{v}");
        let unknown = format!("delete-nobody-v{v}");
        let delete = |groups: &[&str]| {
            DeleteGroupsRequest::default()
                .with_groups_names(groups.iter().map(|g| gid(g)).collect())
        };
        let results = |r: &kafka_protocol::messages::DeleteGroupsResponse| -> Vec<(String, i16)> {
            sorted(
                r.results
                    .iter()
                    .map(|g| (g.group_id.0.to_string(), g.error_code))
                    .collect(),
            )
        };

        let mut a = stable_alone(&b, &group, subscription(&[topic]), assignment(&[])).await;
        commit(
            &mut c,
            &group,
            a.generation,
            &a.id,
            &[(topic, &[(0, 11, None, -1)])],
        )
        .await;
        let (mut m, _) = CgMember::join(&b, H_CONSUMER_HEARTBEAT, &cg, "m", &[topic]).await;
        commit(&mut c, &simple, -1, "", &[(topic, &[(1, 12, None, -1)])]).await;

        let r = c.send(v, &delete(&[&group, &cg, &unknown])).await;
        assert_eq!(
            results(&r),
            sorted(vec![
                (group.clone(), err(ResponseError::NonEmptyGroup)),
                (cg.clone(), err(ResponseError::NonEmptyGroup)),
                (unknown.clone(), err(ResponseError::GroupIdNotFound)),
            ]),
            "{what}: groups with members, and one that does not exist"
        );
        assert_eq!(
            describe(&mut c, &group).await.group_state.as_str(),
            "Stable",
            "{what}: a refused delete changes nothing"
        );

        // Once empty, they go, with their offsets.
        a.leave().await;
        m.leave().await;
        let r = c.send(v, &delete(&[&group, &cg, &simple])).await;
        assert_eq!(
            results(&r),
            sorted(vec![
                (group.clone(), 0),
                (cg.clone(), 0),
                (simple.clone(), 0)
            ]),
            "{what}: empty groups"
        );
        assert_eq!(
            describe(&mut c, &group).await.group_state.as_str(),
            "Dead",
            "{what}: the deleted classic group"
        );
        assert_eq!(
            consumer_describe(&mut c, &cg).await.error_code,
            err(ResponseError::GroupIdNotFound),
            "{what}: the deleted consumer group"
        );
        for g in [&group, &simple] {
            assert_eq!(
                fetch_offsets(&mut c, g, Some(&[(topic, &[0, 1])])).await,
                offsets(&[(topic, 0, no_offset()), (topic, 1, no_offset())]),
                "{what}: {g}'s offsets went with it"
            );
        }
        let r = c.send(v, &delete(&[&group])).await;
        assert_eq!(
            results(&r),
            vec![(group.clone(), err(ResponseError::GroupIdNotFound))],
            "{what}: deleted twice"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ConsumerGroupHeartbeat
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn consumer_group_heartbeat() {
    let b = start_broker().await;
    let mut c = b.client().await;
    for v in c.versions(ApiKey::ConsumerGroupHeartbeat).await {
        let what = format!("ConsumerGroupHeartbeat v{v}");
        let topic = format!("cgh-topic-v{v}");
        create_topic(&mut c, &topic, 4, &[]).await;
        let topics = topics_metadata(&mut c, &[&topic]).await;
        let all = set_of(&topic, &[0, 1, 2, 3]);
        let group = format!("cgh-v{v}");

        // The first member gets an id, an epoch and every partition.
        let (mut a, r) = CgMember::join(&b, v, &group, "a", &[&topic]).await;
        assert!(a.epoch > 0, "{what}: a member epoch: {r:?}");
        assert!(r.heartbeat_interval_ms > 0, "{what}: heartbeat interval");
        let assigned = r.assignment.as_ref().expect("an assignment on joining");
        assert_eq!(
            named(&topics, &a.owned),
            all,
            "{what}: a lone member gets every partition ({assigned:?})"
        );
        let epoch_a = a.epoch;

        // Nothing changes: same epoch, same partitions.
        a.heartbeat().await;
        assert_eq!(a.epoch, epoch_a, "{what}: a quiet heartbeat");
        assert_eq!(named(&topics, &a.owned), all, "{what}: a quiet heartbeat");

        // A second member joins: a new epoch, but nothing until the first lets go.
        let (mut m, r) = CgMember::join(&b, v, &group, "b", &[&topic]).await;
        assert_ne!(m.id, a.id, "{what}: two members, two ids");
        assert!(
            m.epoch > epoch_a,
            "{what}: the group epoch grows: {} after {epoch_a}",
            m.epoch
        );
        assert!(r.assignment.is_some(), "{what}: an assignment on joining");
        assert!(
            m.owned.iter().all(|t| t.partitions.is_empty()),
            "{what}: nothing is free yet: {:?}",
            m.owned
        );

        // The first member is told to keep half: its epoch waits for the revocation.
        let r = a.heartbeat().await;
        assert!(
            r.assignment.is_some(),
            "{what}: the first member's new assignment"
        );
        let kept = named(&topics, &a.owned);
        assert_eq!(
            kept.len(),
            2,
            "{what}: the first member keeps half: {kept:?}"
        );
        assert!(kept.is_subset(&all), "{what}");
        assert_eq!(a.epoch, epoch_a, "{what}: no new epoch before revoking");
        // Meanwhile the second still gets nothing.
        m.heartbeat().await;
        assert!(
            named(&topics, &m.owned).is_empty(),
            "{what}: partitions move only after their owner revoked them"
        );
        // The first member acknowledges (it now owns only what it kept) and moves on.
        a.heartbeat().await;
        assert_eq!(
            a.epoch, m.epoch,
            "{what}: the first member reaches the new epoch"
        );
        assert_eq!(named(&topics, &a.owned), kept, "{what}");
        // The second gets the rest.
        let r = m.heartbeat().await;
        assert!(r.assignment.is_some(), "{what}: the freed partitions");
        let rest = named(&topics, &m.owned);
        assert_eq!(rest.len(), 2, "{what}: the second member's half: {rest:?}");
        assert!(rest.is_disjoint(&kept), "{what}: no partition twice");
        assert_eq!(
            rest.union(&kept).cloned().collect::<BTreeSet<_>>(),
            all,
            "{what}: every partition once"
        );

        // Heartbeats the group refuses.
        let r = c.send(v, &a.request(&a.id, a.epoch + 5)).await;
        assert_eq!(
            r.error_code,
            err(ResponseError::FencedMemberEpoch),
            "{what}: an epoch ahead of the group's"
        );
        let r = c.send(v, &a.request("no-such-member", a.epoch)).await;
        assert_eq!(
            r.error_code,
            err(ResponseError::UnknownMemberId),
            "{what}: an unknown member"
        );

        // The first member leaves (epoch -1); the second gets everything, at a new epoch.
        let before = m.epoch;
        a.leave().await;
        let r = m.heartbeat().await;
        assert!(
            r.assignment.is_some(),
            "{what}: the departed member's partitions"
        );
        assert_eq!(named(&topics, &m.owned), all, "{what}: alone again");
        assert!(m.epoch > before, "{what}: a new epoch after a member left");

        // The member subscribes to one more topic: a new epoch, with that topic's partitions.
        let more = format!("cgh-more-v{v}");
        create_topic(&mut c, &more, 1, &[]).await;
        let both = topics_metadata(&mut c, &[&topic, &more]).await;
        let before = m.epoch;
        let mut req = m.request(&m.id, m.epoch);
        req.subscribed_topic_names = Some(vec![topic_name(&topic), topic_name(&more)]);
        let r = m.c.send(v, &req).await;
        assert_eq!(r.error_code, 0, "{what}: a new subscription: {r:?}");
        m.absorb(&r);
        assert!(m.epoch > before, "{what}: a new subscription, a new epoch");
        assert_eq!(
            named(&both, &m.owned),
            all_partitions(&both),
            "{what}: the new topic's partitions too"
        );
        m.leave().await;
        assert_eq!(
            consumer_describe(&mut c, &group).await.group_state.as_str(),
            "Empty",
            "{what}: everybody left"
        );
    }
}

/// ConsumerGroupHeartbeat v1 (KIP-848 as released in Kafka 4.0) subscribes by regular
/// expression (`SubscribedTopicRegex`), which the Java consumer sends for
/// `subscribe(SubscriptionPattern)`; the broker resolves it and assigns the matching topics.
#[tokio::test]
async fn consumer_group_heartbeat_regex() {
    let b = start_broker().await;
    let mut c = b.client().await;
    let versions = c.versions(ApiKey::ConsumerGroupHeartbeat).await;
    if *versions.end() < 1 {
        return;
    }
    let v = 1;
    let what = format!("ConsumerGroupHeartbeat v{v} with a regex");
    create_topic(&mut c, "regex-a1", 2, &[]).await;
    create_topic(&mut c, "regex-a2", 1, &[]).await;
    create_topic(&mut c, "regex-other", 1, &[]).await;
    let topics = topics_metadata(&mut c, &["regex-a1", "regex-a2", "regex-other"]).await;
    let group = "cgh-regex";
    let member_id = "cgh-regex-member";
    let mut mc = b.client().await;
    let r = mc
        .send(
            v,
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(gid(group))
                .with_member_id(str(member_id))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(REBALANCE_MS)
                .with_subscribed_topic_regex(Some(str("regex-a.*")))
                .with_topic_partitions(Some(Vec::new())),
        )
        .await;
    assert_eq!(
        r.error_code,
        0,
        "{what}: join: {} {:?}",
        code_name(r.error_code),
        r.error_message
    );
    let mut m = CgMember {
        c: mc,
        v,
        group: group.to_string(),
        id: member_id.to_string(),
        epoch: 0,
        owned: Vec::new(),
    };
    m.absorb(&r);
    // The regex is resolved asynchronously: heartbeat until the assignment comes.
    let expected: BTreeSet<(String, i32)> = [("regex-a1", 0), ("regex-a1", 1), ("regex-a2", 0)]
        .iter()
        .map(|(t, p)| (t.to_string(), *p))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    while named(&topics, &m.owned) != expected {
        assert!(
            Instant::now() < deadline,
            "{what}: the matching topics were never assigned; owned {:?}",
            named(&topics, &m.owned)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        m.heartbeat().await;
    }
    m.leave().await;
}

// ---------------------------------------------------------------------------------------------
// ConsumerGroupDescribe
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn consumer_group_describe() {
    let b = start_broker().await;
    let mut c = b.client().await;
    let topic = "cgd-topic";
    create_topic(&mut c, topic, 4, &[]).await;
    let topics = topics_metadata(&mut c, &[topic]).await;
    let all = set_of(topic, &[0, 1, 2, 3]);
    // A classic group, which ConsumerGroupDescribe does not describe.
    let _classic = stable_alone(&b, "cgd-classic", subscription(&[topic]), assignment(&[])).await;

    for v in c.versions(ApiKey::ConsumerGroupDescribe).await {
        let what = format!("ConsumerGroupDescribe v{v}");
        let group = format!("cgd-v{v}");
        let unknown = format!("cgd-nobody-v{v}");
        let describe_v = |groups: &[&str]| {
            ConsumerGroupDescribeRequest::default()
                .with_group_ids(groups.iter().map(|g| gid(g)).collect())
                .with_include_authorized_operations(false)
        };
        let check_member =
            |d: &kafka_protocol::messages::consumer_group_describe_response::Member,
             m: &CgMember| {
                assert_eq!(d.member_id.as_str(), m.id, "{what}: member id");
                assert_eq!(d.member_epoch, m.epoch, "{what}: member epoch");
                assert_eq!(d.client_id.as_str(), CLIENT_ID, "{what}: client id");
                assert_eq!(d.client_host.as_str(), CLIENT_HOST, "{what}: client host");
                assert_eq!(d.instance_id, None, "{what}: instance id");
                let subscribed: Vec<&str> = d
                    .subscribed_topic_names
                    .iter()
                    .map(|t| t.0.as_str())
                    .collect();
                assert_eq!(subscribed, vec![topic], "{what}: subscription");
                assert_eq!(
                    described(&topics, &d.assignment),
                    named(&topics, &m.owned),
                    "{what}: the member's assignment"
                );
                if v >= 1 {
                    // KIP-1099: 1 is a member of the consumer protocol.
                    assert_eq!(d.member_type, 1, "{what}: member type");
                }
            };

        // One member: stable, everything assigned.
        let (mut a, _) = CgMember::join(&b, H_CONSUMER_HEARTBEAT, &group, "a", &[topic]).await;
        let r = c
            .send(v, &describe_v(&[&group, &unknown, "cgd-classic"]))
            .await;
        assert_eq!(r.groups.len(), 3, "{what}: one answer per group");
        let by_id: BTreeMap<&str, &ConsumerDescribedGroup> = r
            .groups
            .iter()
            .map(|g| (g.group_id.0.as_str(), g))
            .collect();
        let g = by_id
            .get(group.as_str())
            .unwrap_or_else(|| panic!("{what}: no answer for {group}"));
        assert_eq!(
            g.error_code,
            0,
            "{what}: {} {:?}",
            code_name(g.error_code),
            g.error_message
        );
        assert_eq!(g.group_id.0.as_str(), group, "{what}");
        assert_eq!(g.group_state.as_str(), "Stable", "{what}: one member");
        assert_eq!(g.group_epoch, a.epoch, "{what}: group epoch");
        assert_eq!(g.assignment_epoch, a.epoch, "{what}: assignment epoch");
        assert_eq!(
            g.assignor_name.as_str(),
            "uniform",
            "{what}: the default assignor"
        );
        assert_eq!(
            g.authorized_operations,
            i32::MIN,
            "{what}: operations not asked for"
        );
        assert_eq!(g.members.len(), 1, "{what}");
        check_member(&g.members[0], &a);
        assert_eq!(described(&topics, &g.members[0].assignment), all, "{what}");
        assert_eq!(
            described(&topics, &g.members[0].target_assignment),
            all,
            "{what}: target"
        );
        for name in [unknown.as_str(), "cgd-classic"] {
            let g = by_id
                .get(name)
                .unwrap_or_else(|| panic!("{what}: no answer for {name}"));
            assert_eq!(
                g.error_code,
                err(ResponseError::GroupIdNotFound),
                "{what}: {name} is no consumer group"
            );
        }

        // A second member: the group reconciles, the new member's target still owned.
        let (mut m, _) = CgMember::join(&b, H_CONSUMER_HEARTBEAT, &group, "b", &[topic]).await;
        let r = c.send(v, &describe_v(&[&group])).await;
        let g = &r.groups[0];
        assert_eq!(g.error_code, 0, "{what}");
        assert_eq!(
            g.group_state.as_str(),
            "Reconciling",
            "{what}: a member joined"
        );
        assert_eq!(g.group_epoch, m.epoch, "{what}: group epoch");
        assert_eq!(
            g.assignment_epoch, m.epoch,
            "{what}: the target is computed"
        );
        let by_id: BTreeMap<&str, _> = g
            .members
            .iter()
            .map(|d| (d.member_id.as_str(), d))
            .collect();
        assert_eq!(by_id.len(), 2, "{what}: two members");
        let (da, dm) = (by_id[a.id.as_str()], by_id[m.id.as_str()]);
        check_member(dm, &m);
        assert!(described(&topics, &dm.assignment).is_empty(), "{what}");
        let target_m = described(&topics, &dm.target_assignment);
        let target_a = described(&topics, &da.target_assignment);
        assert_eq!(target_m.len(), 2, "{what}: the new member's target");
        assert_eq!(target_a.len(), 2, "{what}: the first member's target");
        assert!(target_a.is_disjoint(&target_m), "{what}");

        // Once both reconciled: stable, each holding its target.
        settle(&mut [&mut a, &mut m], &topics).await;
        let r = c.send(v, &describe_v(&[&group])).await;
        let g = &r.groups[0];
        assert_eq!(g.group_state.as_str(), "Stable", "{what}: reconciled");
        assert_eq!(g.group_epoch, a.epoch, "{what}");
        assert_eq!(g.assignment_epoch, a.epoch, "{what}");
        for d in &g.members {
            let member = if d.member_id.as_str() == a.id { &a } else { &m };
            check_member(d, member);
            assert_eq!(
                described(&topics, &d.assignment),
                described(&topics, &d.target_assignment),
                "{what}: at the target"
            );
        }

        // Both leave: the group stays, empty.
        a.leave().await;
        m.leave().await;
        let r = c.send(v, &describe_v(&[&group])).await;
        let g = &r.groups[0];
        assert_eq!(g.error_code, 0, "{what}: an empty group");
        assert_eq!(g.group_state.as_str(), "Empty", "{what}: an empty group");
        assert!(g.members.is_empty(), "{what}: an empty group");
    }
}

// ---------------------------------------------------------------------------------------------
// Authorized operations
// ---------------------------------------------------------------------------------------------

/// Authorized operations, when asked for (DescribeGroups v3+, ConsumerGroupDescribe): with no
/// authorizer Kafka answers every operation a group supports (`AuthHelper.authorizedOperations`
/// over `AclEntry.supportedOperations(GROUP)`: READ, DESCRIBE, DELETE, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS), never the "not provided" value i32::MIN. Kept apart from the per-API tests,
/// like `authorized_operations_when_requested` in `api_versions.rs`.
#[tokio::test]
async fn group_authorized_operations_when_requested() {
    const READ: i32 = 1 << 3;
    const DELETE: i32 = 1 << 6;
    const DESCRIBE: i32 = 1 << 8;
    let b = start_broker().await;
    let mut c = b.client().await;
    create_topic(&mut c, "ops-topic", 1, &[]).await;
    let _classic = stable_alone(
        &b,
        "ops-classic",
        subscription(&["ops-topic"]),
        assignment(&[]),
    )
    .await;
    let (_member, _) = CgMember::join(
        &b,
        H_CONSUMER_HEARTBEAT,
        "ops-consumer",
        "m",
        &["ops-topic"],
    )
    .await;
    let mut failures = Vec::new();
    for v in c.versions(ApiKey::DescribeGroups).await {
        if v < 3 {
            continue;
        }
        let r = c
            .send(
                v,
                &DescribeGroupsRequest::default()
                    .with_groups(vec![gid("ops-classic")])
                    .with_include_authorized_operations(true),
            )
            .await;
        assert_eq!(r.groups[0].error_code, 0);
        let ops = r.groups[0].authorized_operations;
        if ops == i32::MIN || ops & (READ | DESCRIBE | DELETE) != READ | DESCRIBE | DELETE {
            failures.push(format!(
                "DescribeGroups v{v}: authorized operations {ops:#x}"
            ));
        }
    }
    for v in c.versions(ApiKey::ConsumerGroupDescribe).await {
        let r = c
            .send(
                v,
                &ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![gid("ops-consumer")])
                    .with_include_authorized_operations(true),
            )
            .await;
        assert_eq!(r.groups[0].error_code, 0);
        let ops = r.groups[0].authorized_operations;
        if ops == i32::MIN || ops & (READ | DESCRIBE | DELETE) != READ | DESCRIBE | DELETE {
            failures.push(format!(
                "ConsumerGroupDescribe v{v}: authorized operations {ops:#x}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "group authorized operations when requested:\n{}",
        failures.join("\n")
    );
}
