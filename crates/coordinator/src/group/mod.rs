//! The group coordinator for one `__consumer_offsets` partition: every group whose id hashes
//! there, their committed offsets, and the timers that drive them.
//!
//! Invariants the runtime relies on:
//! 1. Persistent state (offsets, KIP-848 groups) changes only by [`GroupShard::replay`]; a
//!    handler that writes records replays them itself before returning them.
//! 2. Classic groups also change in memory while they rebalance; their record is a checkpoint
//!    written when a rebalance completes, replayed only when the shard is loaded.
//! 3. Every reply in [`Effects::outputs`] may be sent only once every record in
//!    [`Effects::records`] of that call and of every earlier call is durable.
//! 4. The shard never reads a clock or does I/O; time comes in as `now_ms`.

pub mod admin;
pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod convert;
pub mod embedded;
pub mod mixed;
pub mod offsets;
pub mod records;
pub mod timers;
pub mod txn_offsets;

#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use uuid::Uuid;

use crate::shard::CoordinatorShard;
pub use crate::shard::TopicLookup;

use classic::ClassicGroup;
use consumer::ConsumerGroup;
use records::{GroupRecord, OffsetValue, RecordKey, RecordValue};
use timers::{TimerKey, Timers};

/// Kafka's broker settings for groups, with their names.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: u64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: u64,
    /// `group.consumer.session.timeout.ms`
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`
    pub consumer_max_size: usize,
    /// `group.consumer.assignors`: the first is the default.
    pub consumer_assignors: Vec<String>,
    /// `group.consumer.migration.policy`
    pub migration_policy: MigrationPolicy,
}

/// Kafka's `group.consumer.migration.policy`: which live groups may change kind when a member
/// of the other protocol arrives (empty groups always may).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationPolicy {
    Disabled,
    Upgrade,
    Downgrade,
    #[default]
    Bidirectional,
}

impl MigrationPolicy {
    pub fn upgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Upgrade | MigrationPolicy::Bidirectional
        )
    }

    pub fn downgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Downgrade | MigrationPolicy::Bidirectional
        )
    }
}

impl std::str::FromStr for MigrationPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "disabled" => Ok(MigrationPolicy::Disabled),
            "upgrade" => Ok(MigrationPolicy::Upgrade),
            "downgrade" => Ok(MigrationPolicy::Downgrade),
            "bidirectional" => Ok(MigrationPolicy::Bidirectional),
            _ => Err(format!(
                "{s} is not one of disabled, upgrade, downgrade, bidirectional"
            )),
        }
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offset_metadata_max_bytes: 4_096,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offsets_retention_check_interval_ms: 600_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_max_size: i32::MAX as usize,
            consumer_assignors: vec!["uniform".into(), "range".into()],
            migration_policy: MigrationPolicy::default(),
        }
    }
}

/// Names a request whose reply the shard may send later (JoinGroup, SyncGroup).
pub type ReplyId = u64;

#[derive(Debug)]
pub enum Deferred {
    Join(JoinGroupResponse),
    Sync(SyncGroupResponse),
}

/// What a group call asks of the runtime: records to append, then deferred replies to send
/// once durable.
pub type Effects = crate::shard::Effects<GroupRecord, (ReplyId, Deferred)>;

pub enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

impl Group {
    pub fn state_name(&self) -> &'static str {
        match self {
            Group::Classic(g) => g.state.name(),
            Group::Consumer(g) => g.state_name(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Group::Classic(g) => g.members.is_empty() && g.pending_members.is_empty(),
            Group::Consumer(g) => g.members.is_empty(),
        }
    }
}

pub struct GroupShard {
    pub(crate) config: GroupConfig,
    pub(crate) groups: BTreeMap<String, Group>,
    /// Committed offsets by group, then by (topic, partition).
    pub(crate) offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetValue>>,
    /// Offsets committed in open transactions, by producer id.
    pub(crate) pending: txn_offsets::Pending,
    /// The newest epoch of a marker applied here, by producer id (in memory only; see
    /// `txn_offsets`).
    pub(crate) marker_epochs: std::collections::HashMap<i64, i16>,
    pub(crate) timers: Timers,
    pub(crate) new_id: Box<dyn FnMut() -> Uuid + Send>,
}

impl GroupShard {
    pub fn new(config: GroupConfig) -> GroupShard {
        Self::with_ids(config, Box::new(Uuid::new_v4))
    }

    /// A shard whose member ids come from `new_id` (deterministic in tests).
    pub fn with_ids(config: GroupConfig, new_id: Box<dyn FnMut() -> Uuid + Send>) -> GroupShard {
        GroupShard {
            config,
            groups: BTreeMap::new(),
            offsets: BTreeMap::new(),
            pending: BTreeMap::new(),
            marker_epochs: std::collections::HashMap::new(),
            timers: Timers::default(),
            new_id,
        }
    }

    /// Applies one record. Loading a shard is replaying its partition from the start.
    pub fn replay(&mut self, record: &GroupRecord) {
        let group = record.key.group().to_string();
        match (&record.key, &record.value) {
            (
                RecordKey::Offset {
                    topic, partition, ..
                },
                Some(RecordValue::Offset(v)),
            ) => {
                // A commit outside group management makes a simple group, as in Kafka.
                self.groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::Classic(ClassicGroup::new(&group, v.commit_ms)));
                self.offsets
                    .entry(group)
                    .or_default()
                    .insert((topic.clone(), *partition), v.clone());
            }
            (
                RecordKey::Offset {
                    topic, partition, ..
                },
                None,
            ) => {
                if let Some(o) = self.offsets.get_mut(&group) {
                    o.remove(&(topic.clone(), *partition));
                    if o.is_empty() {
                        self.offsets.remove(&group);
                    }
                }
            }
            (RecordKey::PendingOffset { .. }, value) => self.replay_pending(&record.key, value),
            (RecordKey::ClassicGroup { .. }, Some(RecordValue::ClassicGroup(v))) => {
                self.groups
                    .insert(group.clone(), Group::Classic(ClassicGroup::load(&group, v)));
            }
            (RecordKey::ClassicGroup { .. }, None) => {
                if matches!(self.groups.get(&group), Some(Group::Classic(_))) {
                    self.groups.remove(&group);
                }
            }
            (key, value) => consumer::replay(self, key, value.as_ref()),
        }
    }

    /// Called once the partition has been replayed: starts the timers of what was loaded.
    pub fn loaded(&mut self, now_ms: u64) {
        for (id, group) in &self.groups {
            match group {
                Group::Classic(g) => {
                    for m in g.members.values() {
                        self.timers.schedule(
                            TimerKey::Session {
                                group: id.clone(),
                                member: m.member_id.clone(),
                            },
                            now_ms + m.session_timeout_ms.max(0) as u64,
                        );
                    }
                }
                Group::Consumer(g) => {
                    for (m_id, m) in &g.members {
                        self.timers.schedule(
                            TimerKey::ConsumerSession {
                                group: id.clone(),
                                member: m_id.clone(),
                            },
                            now_ms + m.session_timeout_ms(&self.config),
                        );
                    }
                }
            }
        }
        self.timers.schedule(
            TimerKey::OffsetExpiry,
            now_ms + self.config.offsets_retention_check_interval_ms,
        );
    }

    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.timers.next_deadline_ms()
    }

    /// Fires every timer due at `now_ms`.
    pub fn tick(&mut self, now_ms: u64, topics: &dyn TopicLookup) -> Effects {
        let mut fx = Effects::default();
        while let Some(key) = self.timers.pop_due(now_ms) {
            match key {
                TimerKey::Session { group, member } => {
                    self.classic_session_expired(now_ms, &group, &member, &mut fx)
                }
                TimerKey::PendingMember { group, member } => {
                    self.classic_pending_expired(now_ms, &group, &member, &mut fx)
                }
                TimerKey::Join { group } => self.classic_join_deadline(now_ms, &group, &mut fx),
                TimerKey::Sync { group } => self.classic_sync_deadline(now_ms, &group, &mut fx),
                TimerKey::ConsumerSession { group, member }
                | TimerKey::ConsumerRebalance { group, member }
                | TimerKey::ClassicJoin { group, member }
                | TimerKey::ClassicSync { group, member } => {
                    self.consumer_member_expired(now_ms, &group, &member, topics, &mut fx)
                }
                TimerKey::OffsetExpiry => {
                    self.expire_offsets(now_ms, &mut fx);
                    self.timers.schedule(
                        TimerKey::OffsetExpiry,
                        now_ms + self.config.offsets_retention_check_interval_ms,
                    );
                }
            }
        }
        fx
    }

    /// The live state as records: replaying them alone rebuilds this shard's persistent state.
    /// Written at the tail before the partition's older records are trimmed away.
    pub fn snapshot(&self) -> Vec<GroupRecord> {
        let mut out = Vec::new();
        for (id, group) in &self.groups {
            match group {
                Group::Classic(g) => {
                    if let Some(v) = &g.checkpoint {
                        out.push(GroupRecord::put(
                            RecordKey::ClassicGroup { group: id.clone() },
                            RecordValue::ClassicGroup(v.clone()),
                        ));
                    }
                }
                Group::Consumer(g) => out.extend(g.records(id)),
            }
        }
        out.extend(self.pending_records());
        for (group, offsets) in &self.offsets {
            for ((topic, partition), v) in offsets {
                out.push(GroupRecord::put(
                    RecordKey::Offset {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    RecordValue::Offset(v.clone()),
                ));
            }
        }
        out
    }

    /// How many records [`GroupShard::snapshot`] would write.
    pub fn live_records(&self) -> usize {
        self.offsets.values().map(|o| o.len()).sum::<usize>()
            + self.pending.values().map(|p| p.len()).sum::<usize>()
            + self
                .groups
                .values()
                .map(|g| match g {
                    Group::Classic(g) => g.checkpoint.is_some() as usize,
                    Group::Consumer(g) => 2 + 2 * g.members.len(),
                })
                .sum::<usize>()
    }

    /// Appends `records` to `fx` after replaying them (invariant 1).
    pub(crate) fn emit(&mut self, fx: &mut Effects, records: Vec<GroupRecord>) {
        for r in &records {
            self.replay(r);
        }
        fx.records.extend(records);
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }
}

impl CoordinatorShard for GroupShard {
    type Record = GroupRecord;
    type Output = (ReplyId, Deferred);

    fn replay(&mut self, record: &GroupRecord) {
        GroupShard::replay(self, record)
    }

    fn loaded(&mut self, now_ms: u64) -> Vec<(ReplyId, Deferred)> {
        GroupShard::loaded(self, now_ms);
        Vec::new()
    }

    fn next_deadline_ms(&self) -> Option<u64> {
        GroupShard::next_deadline_ms(self)
    }

    fn tick(&mut self, now_ms: u64, topics: &dyn TopicLookup) -> Effects {
        GroupShard::tick(self, now_ms, topics)
    }

    fn snapshot(&self) -> Vec<GroupRecord> {
        GroupShard::snapshot(self)
    }

    fn live_records(&self) -> usize {
        GroupShard::live_records(self)
    }
}
