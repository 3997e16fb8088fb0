//! Committed offsets: OffsetCommit, OffsetFetch and OffsetDelete for one group, and their
//! expiry after `offsets.retention.minutes`.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};

use super::classic::{fenced_instance, ClassicGroup, ClassicState};
use super::consumer::ConsumerMember;
use super::records::{GroupRecord, OffsetValue, RecordKey, RecordValue};
use super::timers::TimerKey;
use super::{Effects, Group, GroupShard, TopicLookup};

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// One partition's committed offset as OffsetFetch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// UNSTABLE_OFFSET_COMMIT while a transaction holds an offset for it and the fetch asked
    /// for stable offsets; 0 otherwise.
    pub error: i16,
}

impl Committed {
    /// A partition with no committed offset, as Kafka reports it.
    pub fn none(partition: i32) -> Committed {
        Committed {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error: 0,
        }
    }
}

impl GroupShard {
    pub fn offset_commit(
        &mut self,
        now_ms: u64,
        version: i16,
        req: &OffsetCommitRequest,
        topics: &dyn TopicLookup,
    ) -> (OffsetCommitResponse, Effects) {
        let mut fx = Effects::default();
        let group_id = req.group_id.to_string();
        let group_error = self.validate_commit(now_ms, version, req, false);
        let mut records = Vec::new();
        let mut response = OffsetCommitResponse::default();
        for t in &req.topics {
            let known = topics.by_name(&t.name);
            let mut out = OffsetCommitResponseTopic::default().with_name(t.name.clone());
            for p in &t.partitions {
                let key = RecordKey::Offset {
                    group: group_id.clone(),
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                };
                let value = OffsetValue {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_ms: now_ms,
                };
                let error = self.commit_into(
                    &mut records,
                    group_error,
                    known,
                    p.partition_index,
                    key,
                    value,
                );
                out.partitions.push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error),
                );
            }
            response.topics.push(out);
        }
        if !records.is_empty() {
            self.emit(&mut fx, records);
        }
        (response, fx)
    }

    /// One partition's commit: pushes the record `key` → `value` onto `records` and answers
    /// 0, or answers its error: the group's (`group_error`), an unknown partition (`known` is
    /// the topic's id and partition count), metadata too large.
    pub(crate) fn commit_into(
        &self,
        records: &mut Vec<GroupRecord>,
        group_error: Result<(), i16>,
        known: Option<(uuid::Uuid, i32)>,
        partition: i32,
        key: RecordKey,
        value: OffsetValue,
    ) -> i16 {
        if let Err(e) = group_error {
            e
        } else if !known.is_some_and(|(_, n)| (0..n).contains(&partition)) {
            code(ResponseError::UnknownTopicOrPartition)
        } else if value
            .metadata
            .as_ref()
            .is_some_and(|m| m.len() > self.config.offset_metadata_max_bytes)
        {
            code(ResponseError::OffsetMetadataTooLarge)
        } else {
            records.push(GroupRecord::put(key, RecordValue::Offset(value)));
            0
        }
    }

    /// Kafka's checks of who may commit for a group; makes a simple group for commits from
    /// outside group management.
    ///
    /// A `transactional` commit (TxnOffsetCommit) follows Kafka's branch for them: older
    /// versions name no member, so a commit without one is accepted on a live group, and the
    /// group's rebalance state is not enforced.
    pub(crate) fn validate_commit(
        &mut self,
        now_ms: u64,
        version: i16,
        req: &OffsetCommitRequest,
        transactional: bool,
    ) -> Result<(), i16> {
        let group_id = req.group_id.to_string();
        let generation = req.generation_id_or_member_epoch;
        let member_id = req.member_id.to_string();
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let Some(group) = self.groups.get_mut(&group_id) else {
            if generation < 0 {
                self.groups.insert(
                    group_id.clone(),
                    Group::Classic(ClassicGroup::new(&group_id, now_ms)),
                );
                return Ok(());
            }
            return Err(if version >= 9 {
                code(ResponseError::GroupIdNotFound)
            } else {
                code(ResponseError::IllegalGeneration)
            });
        };
        match group {
            Group::Classic(g) => {
                if generation < 0 && g.state == ClassicState::Empty {
                    return Ok(());
                }
                let instance_id = req.group_instance_id.as_ref().map(|i| i.to_string());
                let names_member =
                    generation >= 0 || !member_id.is_empty() || instance_id.is_some();
                if transactional && !names_member {
                    return Ok(());
                }
                if let Some(e) = fenced_instance(g, &instance_id, &member_id) {
                    return Err(e);
                }
                let Some(member) = g.members.get(&member_id) else {
                    return Err(code(ResponseError::UnknownMemberId));
                };
                if generation != g.generation {
                    return Err(code(ResponseError::IllegalGeneration));
                }
                if !transactional && g.state == ClassicState::CompletingRebalance {
                    return Err(code(ResponseError::RebalanceInProgress));
                }
                // A commit is as good as a heartbeat.
                let session = member.session_timeout_ms.max(0) as u64;
                self.timers.schedule(
                    TimerKey::Session {
                        group: group_id,
                        member: member_id,
                    },
                    now_ms + session,
                );
                Ok(())
            }
            Group::Consumer(g) => {
                if generation < 0 && member_id.is_empty() && g.members.is_empty() {
                    return Ok(());
                }
                let Some(m) = g.members.get(&member_id) else {
                    return Err(code(ResponseError::UnknownMemberId));
                };
                if transactional {
                    // Kafka answers a transactional commit's stale epoch as a generation.
                    return check_epoch(m, generation)
                        .map_err(|_| code(ResponseError::IllegalGeneration));
                }
                if version < 9 && !m.is_classic() {
                    // Members of the consumer protocol commit with their epoch (v9 and later).
                    return Err(code(ResponseError::UnsupportedVersion));
                }
                check_epoch(m, generation)
            }
        }
    }

    /// Checks an OffsetFetch that names a member (v9 and later): only KIP-848 groups check it,
    /// as in Kafka; other groups, and missing ones, answer as usual.
    pub fn validate_fetch(&self, group_id: &str, member_id: &str, epoch: i32) -> Result<(), i16> {
        match self.groups.get(group_id) {
            Some(Group::Consumer(g)) => match g.members.get(member_id) {
                None => Err(code(ResponseError::UnknownMemberId)),
                Some(m) => check_epoch(m, epoch),
            },
            _ => Ok(()),
        }
    }

    /// Committed offsets of `group`: of the named partitions (-1 where none), or all of them.
    /// With `require_stable`, partitions with an offset pending in a transaction get
    /// UNSTABLE_OFFSET_COMMIT instead, for the client to retry.
    pub fn offset_fetch(
        &self,
        group: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Vec<(String, Vec<Committed>)> {
        let mut out = self.committed_offsets(group, wanted);
        if require_stable {
            for (topic, partitions) in &mut out {
                for c in partitions.iter_mut() {
                    if self.has_pending(group, topic, c.partition) {
                        *c = Committed {
                            error: ResponseError::UnstableOffsetCommit.code(),
                            ..Committed::none(c.partition)
                        };
                    }
                }
            }
        }
        out
    }

    fn committed_offsets(
        &self,
        group: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, Vec<Committed>)> {
        let offsets = self.offsets.get(group);
        let committed = |topic: &str, partition: i32| match offsets
            .and_then(|o| o.get(&(topic.to_string(), partition)))
        {
            Some(v) => Committed {
                partition,
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata.clone().unwrap_or_default(),
                error: 0,
            },
            None => Committed::none(partition),
        };
        match wanted {
            Some(wanted) => wanted
                .into_iter()
                .map(|(topic, partitions)| {
                    let c = partitions.iter().map(|p| committed(&topic, *p)).collect();
                    (topic, c)
                })
                .collect(),
            None => {
                let mut out: Vec<(String, Vec<Committed>)> = Vec::new();
                for (topic, partition) in offsets.into_iter().flat_map(|o| o.keys()) {
                    let c = committed(topic, *partition);
                    match out.last_mut() {
                        Some((t, list)) if t == topic => list.push(c),
                        _ => out.push((topic.clone(), vec![c])),
                    }
                }
                out
            }
        }
    }

    pub fn offset_delete(
        &mut self,
        req: &OffsetDeleteRequest,
        topics: &dyn TopicLookup,
    ) -> (OffsetDeleteResponse, Effects) {
        let mut fx = Effects::default();
        let group_id = req.group_id.to_string();
        let subscribed: BTreeSet<String> = match self.groups.get(&group_id) {
            None => {
                let response = OffsetDeleteResponse::default()
                    .with_error_code(code(ResponseError::GroupIdNotFound));
                return (response, fx);
            }
            Some(Group::Classic(g)) => {
                if !g.members.is_empty() && g.protocol_type.as_deref() != Some("consumer") {
                    let response = OffsetDeleteResponse::default()
                        .with_error_code(code(ResponseError::NonEmptyGroup));
                    return (response, fx);
                }
                g.subscribed_topics()
            }
            Some(Group::Consumer(g)) => g.subscribed_topics(topics),
        };
        let mut response = OffsetDeleteResponse::default();
        let mut records = Vec::new();
        let offsets = self.offsets.get(&group_id);
        for t in &req.topics {
            let mut out = OffsetDeleteResponseTopic::default().with_name(t.name.clone());
            for p in &t.partitions {
                let error = if subscribed.contains(t.name.as_str()) {
                    code(ResponseError::GroupSubscribedToTopic)
                } else {
                    let key = (t.name.to_string(), p.partition_index);
                    if offsets.is_some_and(|o| o.contains_key(&key)) {
                        records.push(GroupRecord::tombstone(RecordKey::Offset {
                            group: group_id.clone(),
                            topic: key.0,
                            partition: key.1,
                        }));
                    }
                    0
                };
                out.partitions.push(
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error),
                );
            }
            response.topics.push(out);
        }
        self.emit(&mut fx, records);
        (response, fx)
    }

    /// Tombstones every offset of `group`.
    pub(crate) fn offset_tombstones(&self, group: &str) -> Vec<GroupRecord> {
        self.offsets
            .get(group)
            .into_iter()
            .flat_map(|o| o.keys())
            .map(|(topic, partition)| {
                GroupRecord::tombstone(RecordKey::Offset {
                    group: group.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                })
            })
            .collect()
    }

    /// Kafka's expiry: offsets of an empty group expire `offsets.retention.minutes` after it
    /// became empty; those of a group that never used group management, that long after their
    /// commit. An empty group left with no offsets is deleted.
    pub(crate) fn expire_offsets(&mut self, now_ms: u64, fx: &mut Effects) {
        let retention = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        let mut dead_groups = Vec::new();
        for (id, group) in &self.groups {
            let (empty, since_ms, simple) = match group {
                Group::Classic(g) => (
                    g.members.is_empty() && g.pending_members.is_empty(),
                    g.state_ms,
                    g.protocol_type.is_none(),
                ),
                Group::Consumer(g) => (g.members.is_empty(), g.state_ms, false),
            };
            if !empty {
                continue;
            }
            let offsets = self.offsets.get(id);
            let mut left = 0;
            for ((topic, partition), v) in offsets.into_iter().flatten() {
                let base = if simple { v.commit_ms } else { since_ms };
                if base.saturating_add(retention) <= now_ms {
                    records.push(GroupRecord::tombstone(RecordKey::Offset {
                        group: id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    }));
                } else {
                    left += 1;
                }
            }
            if left == 0 {
                dead_groups.push(id.clone());
            }
        }
        for id in &dead_groups {
            records.extend(self.group_tombstones(id));
        }
        self.emit(fx, records);
        for id in dead_groups {
            self.groups.remove(&id);
            self.timers.cancel_group(&id);
        }
    }

    /// The records that delete `group`'s own state (not its offsets).
    pub(crate) fn group_tombstones(&self, group: &str) -> Vec<GroupRecord> {
        match self.groups.get(group) {
            Some(Group::Classic(g)) if g.checkpoint.is_some() => {
                vec![GroupRecord::tombstone(RecordKey::ClassicGroup {
                    group: group.to_string(),
                })]
            }
            Some(Group::Consumer(_)) => self.consumer_group_tombstones(group),
            _ => Vec::new(),
        }
    }
}

/// A consumer group member's epoch as a request gives it; classic members call it their
/// generation and get the classic error.
fn check_epoch(m: &ConsumerMember, epoch: i32) -> Result<(), i16> {
    if epoch == m.epoch {
        Ok(())
    } else if m.is_classic() {
        Err(code(ResponseError::IllegalGeneration))
    } else {
        Err(code(ResponseError::StaleMemberEpoch))
    }
}

impl ClassicGroup {
    /// The topics the members subscribe to, read from their consumer protocol metadata.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Some(protocol) = &self.protocol else {
            return out;
        };
        for m in self.members.values() {
            if let Some(s) = super::embedded::decode_subscription(&m.metadata(protocol)) {
                out.extend(s.topics.iter().map(|t| t.to_string()));
            }
        }
        out
    }
}
