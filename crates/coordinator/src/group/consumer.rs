//! KIP-848 consumer groups: members heartbeat their subscription, the broker computes a
//! target assignment with a server-side assignor, and each member reaches it step by step —
//! partitions move only after their previous owner has revoked them.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribeAssignment, DescribedGroup, Member, TopicPartitions as DescribeTopic,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::assignor::{self, MemberSpec};
use super::records::{
    ConsumerAssignmentValue, ConsumerGroupValue, ConsumerMemberValue, ConsumerTargetValue,
    GroupRecord, RecordKey, RecordValue, TopicPartitions as Partitions,
};
use super::timers::TimerKey;
use super::{Effects, Group, GroupConfig, GroupShard, TopicLookup};

/// Epoch a member sends to leave for good, and to leave for now (static members).
const LEAVE_EPOCH: i32 = -1;
const STATIC_LEAVE_EPOCH: i32 = -2;

#[derive(Clone, Debug, Default)]
pub struct ConsumerMember {
    pub subscription: ConsumerMemberValue,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub assigned: Partitions,
    pub pending_revocation: Partitions,
}

impl ConsumerMember {
    /// A member that speaks the classic protocol (JoinGroup, SyncGroup, Heartbeat).
    pub fn is_classic(&self) -> bool {
        self.subscription.classic.is_some()
    }

    pub fn session_timeout_ms(&self, config: &GroupConfig) -> u64 {
        match &self.subscription.classic {
            Some(c) => c.session_timeout_ms.max(0) as u64,
            None => config.consumer_session_timeout_ms.max(0) as u64,
        }
    }
}

#[derive(Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub topic_partitions: BTreeMap<String, i32>,
    pub state_ms: u64,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: ConsumerTargetValue,
    /// Who holds each partition (assigned or still revoking).
    pub owners: BTreeMap<(Uuid, i32), String>,
}

impl ConsumerGroup {
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.target.epoch < self.epoch {
            "Assigning"
        } else if self.members.iter().any(|(id, m)| {
            m.epoch != self.target.epoch
                || !m.pending_revocation.is_empty()
                || self.target.members.get(id).unwrap_or(&Partitions::new()) != &m.assigned
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Every topic some member subscribes to, by name or by regular expression.
    pub fn subscribed_topics(&self, topics: &dyn TopicLookup) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| member_topics(&m.subscription, topics))
            .collect()
    }

    /// The records that rebuild this group.
    pub fn records(&self, group: &str) -> Vec<GroupRecord> {
        let mut out = vec![GroupRecord::put(
            RecordKey::ConsumerGroup {
                group: group.to_string(),
            },
            RecordValue::ConsumerGroup(self.group_value()),
        )];
        for (id, m) in &self.members {
            out.push(member_record(group, id, m));
            out.push(assignment_record(group, id, m));
        }
        out.push(GroupRecord::put(
            RecordKey::ConsumerTarget {
                group: group.to_string(),
            },
            RecordValue::ConsumerTarget(self.target.clone()),
        ));
        out
    }

    fn group_value(&self) -> ConsumerGroupValue {
        ConsumerGroupValue {
            epoch: self.epoch,
            topic_partitions: self.topic_partitions.clone(),
            state_ms: self.state_ms,
        }
    }

    fn rebuild_owners(&mut self) {
        self.owners.clear();
        for (id, m) in &self.members {
            for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                for p in ps {
                    self.owners.insert((*t, *p), id.clone());
                }
            }
        }
    }
}

/// Compiles a subscription's regular expression to match whole topic names.
fn compile(regex: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{regex})$"))
}

/// A member's topics: those it names and those its regular expression matches (never the
/// internal ones, as Kafka's clients exclude them).
fn member_topics(m: &ConsumerMemberValue, topics: &dyn TopicLookup) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = m.subscribed_topics.iter().cloned().collect();
    if let Some(Ok(re)) = m.subscribed_regex.as_deref().map(compile) {
        out.extend(
            topics
                .names()
                .into_iter()
                .filter(|t| !t.starts_with("__") && re.is_match(t)),
        );
    }
    out
}

fn member_record(group: &str, id: &str, m: &ConsumerMember) -> GroupRecord {
    GroupRecord::put(
        RecordKey::ConsumerMember {
            group: group.to_string(),
            member: id.to_string(),
        },
        RecordValue::ConsumerMember(m.subscription.clone()),
    )
}

fn assignment_record(group: &str, id: &str, m: &ConsumerMember) -> GroupRecord {
    GroupRecord::put(
        RecordKey::ConsumerAssignment {
            group: group.to_string(),
            member: id.to_string(),
        },
        RecordValue::ConsumerAssignment(ConsumerAssignmentValue {
            member_epoch: m.epoch,
            previous_epoch: m.previous_epoch,
            assigned: m.assigned.clone(),
            pending_revocation: m.pending_revocation.clone(),
        }),
    )
}

/// Applies a KIP-848 record (see [`GroupShard::replay`]).
pub(crate) fn replay(shard: &mut GroupShard, key: &RecordKey, value: Option<&RecordValue>) {
    let group_id = key.group().to_string();
    fn group<'a>(shard: &'a mut GroupShard, group_id: &str) -> &'a mut ConsumerGroup {
        let entry = shard
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::Consumer(ConsumerGroup::default()));
        if let Group::Classic(_) = entry {
            // An empty classic group (or one made by commits alone) became a consumer group.
            *entry = Group::Consumer(ConsumerGroup::default());
        }
        match entry {
            Group::Consumer(g) => g,
            Group::Classic(_) => unreachable!("replaced above"),
        }
    }
    match (key, value) {
        (RecordKey::ConsumerGroup { .. }, Some(RecordValue::ConsumerGroup(v))) => {
            let g = group(shard, &group_id);
            g.epoch = v.epoch;
            g.topic_partitions = v.topic_partitions.clone();
            g.state_ms = v.state_ms;
        }
        (RecordKey::ConsumerGroup { .. }, None) => {
            if matches!(shard.groups.get(&group_id), Some(Group::Consumer(_))) {
                shard.groups.remove(&group_id);
            }
        }
        (RecordKey::ConsumerMember { member, .. }, Some(RecordValue::ConsumerMember(v))) => {
            let g = group(shard, &group_id);
            g.members.entry(member.clone()).or_default().subscription = v.clone();
        }
        (RecordKey::ConsumerMember { member, .. }, None) => {
            if let Some(Group::Consumer(g)) = shard.groups.get_mut(&group_id) {
                g.members.remove(member);
                g.rebuild_owners();
            }
        }
        (RecordKey::ConsumerTarget { .. }, Some(RecordValue::ConsumerTarget(v))) => {
            group(shard, &group_id).target = v.clone();
        }
        (RecordKey::ConsumerTarget { .. }, None) => {
            if let Some(Group::Consumer(g)) = shard.groups.get_mut(&group_id) {
                g.target = ConsumerTargetValue::default();
            }
        }
        (
            RecordKey::ConsumerAssignment { member, .. },
            Some(RecordValue::ConsumerAssignment(v)),
        ) => {
            let g = group(shard, &group_id);
            let m = g.members.entry(member.clone()).or_default();
            m.epoch = v.member_epoch;
            m.previous_epoch = v.previous_epoch;
            m.assigned = v.assigned.clone();
            m.pending_revocation = v.pending_revocation.clone();
            g.rebuild_owners();
        }
        (RecordKey::ConsumerAssignment { member, .. }, None) => {
            if let Some(Group::Consumer(g)) = shard.groups.get_mut(&group_id) {
                if let Some(m) = g.members.get_mut(member) {
                    m.assigned.clear();
                    m.pending_revocation.clear();
                }
                g.rebuild_owners();
            }
        }
        (key, value) => {
            tracing::warn!(
                ?key,
                ?value,
                "group record whose key and value do not match"
            );
        }
    }
}

fn error_response(error: ResponseError, message: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(message.to_string().into()))
        .with_member_epoch(-1)
}

fn to_partitions(
    tps: &[kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions],
) -> Partitions {
    let mut out = Partitions::new();
    for t in tps {
        let mut ps = t.partitions.clone();
        ps.sort_unstable();
        ps.dedup();
        if !ps.is_empty() {
            out.insert(t.topic_id, ps);
        }
    }
    out
}

pub(super) fn minus(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = Partitions::new();
    for (t, ps) in a {
        let rest: Vec<i32> = ps
            .iter()
            .filter(|p| !b.get(t).is_some_and(|bs| bs.contains(p)))
            .copied()
            .collect();
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

pub(super) fn intersect(a: &Partitions, b: &Partitions) -> Partitions {
    minus(a, &minus(a, b))
}

fn union(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = a.clone();
    for (t, ps) in b {
        let list = out.entry(*t).or_default();
        list.extend(ps);
        list.sort_unstable();
        list.dedup();
    }
    out
}

fn is_subset(a: &Partitions, b: &Partitions) -> bool {
    minus(a, b).is_empty()
}

pub(crate) fn consumer_in<'a>(
    groups: &'a mut BTreeMap<String, Group>,
    group: &str,
) -> Option<&'a mut ConsumerGroup> {
    match groups.get_mut(group) {
        Some(Group::Consumer(g)) => Some(g),
        _ => None,
    }
}

impl GroupShard {
    pub fn consumer_heartbeat(
        &mut self,
        now_ms: u64,
        version: i16,
        client_id: &str,
        client_host: &str,
        req: &ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicLookup,
    ) -> (ConsumerGroupHeartbeatResponse, Effects) {
        let mut fx = Effects::default();
        let response = match self.consumer_heartbeat_inner(
            now_ms,
            version,
            client_id,
            client_host,
            req,
            topics,
            &mut fx,
        ) {
            Ok(r) => r,
            Err((e, message)) => {
                tracing::debug!(group = %req.group_id.as_str(), error = ?e, message, "ConsumerGroupHeartbeat refused");
                error_response(e, &message)
            }
        };
        (response, fx)
    }

    #[allow(clippy::too_many_arguments)]
    fn consumer_heartbeat_inner(
        &mut self,
        now_ms: u64,
        version: i16,
        client_id: &str,
        client_host: &str,
        req: &ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) -> Result<ConsumerGroupHeartbeatResponse, (ResponseError, String)> {
        let group_id = req.group_id.to_string();
        let epoch = req.member_epoch;
        let invalid = |m: &str| Err((ResponseError::InvalidRequest, m.to_string()));
        if group_id.is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if let Some(Err(e)) = req
            .subscribed_topic_regex
            .as_ref()
            .filter(|r| !r.is_empty())
            .map(|r| compile(r))
        {
            return Err((ResponseError::InvalidRegularExpression, e.to_string()));
        }
        if epoch == 0 {
            if req.rebalance_timeout_ms < 0 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return invalid("SubscribedTopicNames must be set in first request.");
            }
            if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
        }
        // From v1 (KIP-1082) the client makes its member id, even to join.
        if req.member_id.is_empty() && (epoch != 0 || version >= 1) {
            return invalid("MemberId can't be empty.");
        } else if epoch < STATIC_LEAVE_EPOCH {
            return invalid("MemberEpoch is invalid.");
        }
        if epoch == STATIC_LEAVE_EPOCH && req.instance_id.is_none() {
            return invalid("InstanceId can't be null when leaving as a static member.");
        }
        if let Some(a) = &req.server_assignor {
            if !self
                .config
                .consumer_assignors
                .iter()
                .any(|x| x == a.as_str())
            {
                return Err((
                    ResponseError::UnsupportedAssignor,
                    format!("ServerAssignor {a} is not supported."),
                ));
            }
        }
        match self.groups.get(&group_id) {
            Some(Group::Classic(g)) if !(g.members.is_empty() && g.pending_members.is_empty()) => {
                // A live classic group of consumers becomes a consumer group when a member of
                // the new protocol joins it (Kafka's online upgrade).
                let upgradable = epoch == 0
                    && self.config.migration_policy.upgrades()
                    && g.protocol_type.as_deref() == Some("consumer")
                    && g.members.len() <= self.config.consumer_max_size;
                if !upgradable {
                    return Err((
                        ResponseError::GroupIdNotFound,
                        format!("Group {group_id} is not a consumer group."),
                    ));
                }
                self.upgrade(now_ms, &group_id, topics, fx).map_err(|why| {
                    (
                        ResponseError::GroupIdNotFound,
                        format!("Cannot upgrade classic group {group_id}: {why}."),
                    )
                })?;
            }
            Some(Group::Classic(_)) if epoch == 0 => {
                // An empty classic group becomes a consumer group; its offsets stay.
                let records = self.group_tombstones(&group_id);
                self.emit(fx, records);
                self.groups.remove(&group_id);
                self.timers.cancel_group(&group_id);
            }
            Some(Group::Consumer(_)) => {}
            _ if epoch == 0 => {}
            _ => {
                return Err((
                    ResponseError::UnknownMemberId,
                    format!("Group {group_id} not found."),
                ))
            }
        }

        if epoch == LEAVE_EPOCH || epoch == STATIC_LEAVE_EPOCH {
            return self.consumer_leave(now_ms, &group_id, req, topics, fx);
        }

        let mut member_id = req.member_id.to_string();
        if epoch == 0 {
            member_id = self.consumer_join(
                now_ms,
                &group_id,
                member_id,
                client_id,
                client_host,
                req,
                fx,
            )?;
        } else {
            let g = consumer_in(&mut self.groups, &group_id)
                .ok_or((ResponseError::UnknownMemberId, "Unknown group.".to_string()))?;
            let m = g
                .members
                .get(&member_id)
                .filter(|m| !m.is_classic())
                .ok_or((
                    ResponseError::UnknownMemberId,
                    format!("Member {member_id} is not a member of group {group_id}."),
                ))?;
            let owned = req.topic_partitions.as_deref().map(to_partitions);
            if epoch > m.epoch {
                return Err((
                    ResponseError::FencedMemberEpoch,
                    "The member epoch is ahead of ours.".into(),
                ));
            }
            if epoch < m.epoch
                && (epoch != m.previous_epoch
                    || !owned.as_ref().is_none_or(|o| is_subset(o, &m.assigned)))
            {
                return Err((
                    ResponseError::FencedMemberEpoch,
                    "The member epoch is stale.".into(),
                ));
            }
            let mut subscription = m.subscription.clone();
            let mut changed = false;
            if let Some(names) = &req.subscribed_topic_names {
                let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                names.sort_unstable();
                names.dedup();
                changed |= names != subscription.subscribed_topics;
                subscription.subscribed_topics = names;
            }
            if let Some(r) = &req.subscribed_topic_regex {
                let regex = (!r.is_empty()).then(|| r.to_string());
                changed |= regex != subscription.subscribed_regex;
                subscription.subscribed_regex = regex;
            }
            if let Some(a) = &req.server_assignor {
                changed |= subscription.server_assignor.as_deref() != Some(a.as_str());
                subscription.server_assignor = Some(a.to_string());
            }
            if req.rebalance_timeout_ms >= 0 {
                subscription.rebalance_timeout_ms = req.rebalance_timeout_ms;
            }
            if changed {
                let record = GroupRecord::put(
                    RecordKey::ConsumerMember {
                        group: group_id.clone(),
                        member: member_id.clone(),
                    },
                    RecordValue::ConsumerMember(subscription),
                );
                self.emit(fx, vec![record]);
            }
        }
        self.timers.schedule(
            TimerKey::ConsumerSession {
                group: group_id.clone(),
                member: member_id.clone(),
            },
            now_ms + self.config.consumer_session_timeout_ms.max(0) as u64,
        );
        self.bump_epoch_if_needed(now_ms, &group_id, topics, fx);
        self.update_target(&group_id, topics, fx);
        let owned = req.topic_partitions.as_deref().map(to_partitions);
        let before = consumer_in(&mut self.groups, &group_id)
            .and_then(|g| g.members.get(&member_id))
            .map(|m| m.assigned.clone());
        self.reconcile(now_ms, &group_id, &member_id, owned.as_ref(), fx);
        let g = consumer_in(&mut self.groups, &group_id).expect("member's group");
        let m = g.members.get(&member_id).expect("reconciled member");
        let full = epoch == 0
            || (req.subscribed_topic_names.is_some()
                && req.rebalance_timeout_ms >= 0
                && req.topic_partitions.is_some());
        let send_assignment = full
            || before.as_ref() != Some(&m.assigned)
            || owned.as_ref().is_some_and(|o| *o != m.assigned);
        let assignment = send_assignment.then(|| {
            Assignment::default().with_topic_partitions(
                m.assigned
                    .iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(*t)
                            .with_partitions(ps.clone())
                    })
                    .collect(),
            )
        });
        Ok(ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(member_id.into()))
            .with_member_epoch(m.epoch)
            .with_heartbeat_interval_ms(self.config.consumer_heartbeat_interval_ms)
            .with_assignment(assignment))
    }

    #[allow(clippy::too_many_arguments)]
    fn consumer_join(
        &mut self,
        now_ms: u64,
        group_id: &str,
        requested_id: String,
        client_id: &str,
        client_host: &str,
        req: &ConsumerGroupHeartbeatRequest,
        fx: &mut Effects,
    ) -> Result<String, (ResponseError, String)> {
        let instance_id = req.instance_id.as_ref().map(|s| s.to_string());
        let mut names: Vec<String> = req
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(|n| n.to_string())
            .collect();
        names.sort_unstable();
        names.dedup();
        let subscription = ConsumerMemberValue {
            instance_id: instance_id.clone(),
            rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
            subscribed_topics: names,
            subscribed_regex: req
                .subscribed_topic_regex
                .as_ref()
                .filter(|r| !r.is_empty())
                .map(|r| r.to_string()),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
            classic: None,
        };
        let member_id = if requested_id.is_empty() {
            (self.new_id)().to_string()
        } else {
            requested_id
        };
        let max = self.config.consumer_max_size;
        let g = consumer_in(&mut self.groups, group_id);
        let existing_static = g.as_ref().and_then(|g| {
            let iid = instance_id.as_ref()?;
            g.members
                .iter()
                .find(|(_, m)| m.subscription.instance_id.as_ref() == Some(iid))
                .map(|(id, m)| (id.clone(), m.epoch, m.is_classic()))
        });
        let size = g.as_ref().map_or(0, |g| g.members.len());
        let mut records = Vec::new();
        let mut inherited = None;
        if let Some((old_id, old_epoch, old_classic)) = existing_static {
            // A classic member never says it leaves for now, so it is always replaced.
            if old_epoch != STATIC_LEAVE_EPOCH && old_id != member_id && !old_classic {
                return Err((
                    ResponseError::UnreleasedInstanceId,
                    format!(
                        "Static member {} is still in the group.",
                        instance_id.unwrap_or_default()
                    ),
                ));
            }
            // A static member back within its session takes over its old assignment.
            let g = consumer_in(&mut self.groups, group_id).expect("found above");
            let old = g.members.get(&old_id).expect("found above").clone();
            inherited = Some((old.previous_epoch, old.assigned.clone()));
            records.extend(member_tombstones(group_id, &old_id));
        } else if g
            .as_ref()
            .is_some_and(|g| g.members.contains_key(&member_id))
        {
            // A known member joining anew gives up what it held.
            records.extend(member_tombstones(group_id, &member_id));
        } else if size >= max {
            return Err((
                ResponseError::GroupMaxSizeReached,
                "The group is full.".into(),
            ));
        }
        if consumer_in(&mut self.groups, group_id).is_none() {
            records.push(GroupRecord::put(
                RecordKey::ConsumerGroup {
                    group: group_id.to_string(),
                },
                RecordValue::ConsumerGroup(ConsumerGroupValue {
                    epoch: 0,
                    topic_partitions: BTreeMap::new(),
                    state_ms: now_ms,
                }),
            ));
        }
        records.push(GroupRecord::put(
            RecordKey::ConsumerMember {
                group: group_id.to_string(),
                member: member_id.clone(),
            },
            RecordValue::ConsumerMember(subscription),
        ));
        if let Some((previous_epoch, assigned)) = inherited {
            let epoch = consumer_in(&mut self.groups, group_id).map_or(0, |g| g.epoch);
            records.push(GroupRecord::put(
                RecordKey::ConsumerAssignment {
                    group: group_id.to_string(),
                    member: member_id.clone(),
                },
                RecordValue::ConsumerAssignment(ConsumerAssignmentValue {
                    member_epoch: epoch.max(previous_epoch),
                    previous_epoch,
                    assigned,
                    pending_revocation: Partitions::new(),
                }),
            ));
        }
        self.emit(fx, records);
        // Membership changed: a new group epoch (the target follows in update_target).
        self.set_epoch(now_ms, group_id, None, fx);
        Ok(member_id)
    }

    fn consumer_leave(
        &mut self,
        now_ms: u64,
        group_id: &str,
        req: &ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) -> Result<ConsumerGroupHeartbeatResponse, (ResponseError, String)> {
        let member_id = req.member_id.to_string();
        let g = consumer_in(&mut self.groups, group_id)
            .ok_or((ResponseError::UnknownMemberId, "Unknown group.".to_string()))?;
        let m = g.members.get(&member_id).ok_or((
            ResponseError::UnknownMemberId,
            format!("Member {member_id} is not a member of group {group_id}."),
        ))?;
        if req.member_epoch == STATIC_LEAVE_EPOCH {
            // Kept, with its assignment, until it comes back or its session ends.
            let mut kept = m.clone();
            kept.previous_epoch = kept.epoch;
            kept.epoch = STATIC_LEAVE_EPOCH;
            let record = assignment_record(group_id, &member_id, &kept);
            self.emit(fx, vec![record]);
        } else {
            self.remove_consumer_member(now_ms, group_id, &member_id, topics, fx);
        }
        Ok(ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(member_id.into()))
            .with_member_epoch(req.member_epoch)
            .with_heartbeat_interval_ms(0))
    }

    pub(super) fn remove_consumer_member(
        &mut self,
        now_ms: u64,
        group_id: &str,
        member_id: &str,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) {
        let (g, m) = (|| group_id.to_string(), || member_id.to_string());
        for key in [
            TimerKey::ConsumerSession {
                group: g(),
                member: m(),
            },
            TimerKey::ConsumerRebalance {
                group: g(),
                member: m(),
            },
            TimerKey::ClassicJoin {
                group: g(),
                member: m(),
            },
            TimerKey::ClassicSync {
                group: g(),
                member: m(),
            },
        ] {
            self.timers.cancel(&key);
        }
        if self.may_downgrade(group_id, member_id) {
            self.downgrade(now_ms, group_id, member_id, topics, fx);
            return;
        }
        let records = member_tombstones(group_id, member_id);
        self.emit(fx, records);
        self.set_epoch(now_ms, group_id, None, fx);
    }

    pub(crate) fn consumer_member_expired(
        &mut self,
        now_ms: u64,
        group_id: &str,
        member_id: &str,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) {
        let known = consumer_in(&mut self.groups, group_id)
            .is_some_and(|g| g.members.contains_key(member_id));
        if known {
            tracing::info!(
                group = group_id,
                member = member_id,
                "fencing a consumer group member"
            );
            self.remove_consumer_member(now_ms, group_id, member_id, topics, fx);
        }
    }

    /// Writes a new group epoch, with the subscribed topics' sizes.
    pub(super) fn set_epoch(
        &mut self,
        now_ms: u64,
        group_id: &str,
        topic_partitions: Option<BTreeMap<String, i32>>,
        fx: &mut Effects,
    ) {
        let Some(g) = consumer_in(&mut self.groups, group_id) else {
            return;
        };
        let mut value = g.group_value();
        value.epoch += 1;
        if let Some(tp) = topic_partitions {
            value.topic_partitions = tp;
        }
        if g.members.is_empty() {
            value.state_ms = now_ms;
        }
        let record = GroupRecord::put(
            RecordKey::ConsumerGroup {
                group: group_id.to_string(),
            },
            RecordValue::ConsumerGroup(value),
        );
        self.emit(fx, vec![record]);
    }

    /// A new epoch when the subscribed topics appeared, vanished or grew.
    pub(super) fn bump_epoch_if_needed(
        &mut self,
        now_ms: u64,
        group_id: &str,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) {
        let Some(g) = consumer_in(&mut self.groups, group_id) else {
            return;
        };
        let sizes: BTreeMap<String, i32> = g
            .subscribed_topics(topics)
            .into_iter()
            .filter_map(|t| topics.by_name(&t).map(|(_, n)| (t, n)))
            .collect();
        if sizes != g.topic_partitions {
            self.set_epoch(now_ms, group_id, Some(sizes), fx);
        }
    }

    /// Computes the target assignment for the group epoch if it is behind.
    pub(super) fn update_target(
        &mut self,
        group_id: &str,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) {
        let default_assignor = self
            .config
            .consumer_assignors
            .first()
            .cloned()
            .unwrap_or_default();
        let Some(g) = consumer_in(&mut self.groups, group_id) else {
            return;
        };
        if g.target.epoch >= g.epoch {
            return;
        }
        // The assignor most members ask for, else the broker's default.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in g.members.values() {
            if let Some(a) = &m.subscription.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let assignor_name = votes
            .iter()
            .max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n)))
            .map(|(n, _)| n.to_string())
            .unwrap_or(default_assignor);
        let topic_ids: BTreeMap<String, (Uuid, i32)> = g
            .topic_partitions
            .keys()
            .filter_map(|t| topics.by_name(t).map(|v| (t.clone(), v)))
            .collect();
        let subscriptions: Vec<(&String, BTreeSet<String>)> = g
            .members
            .iter()
            .map(|(id, m)| (id, member_topics(&m.subscription, topics)))
            .collect();
        let specs: Vec<MemberSpec> = subscriptions
            .iter()
            .map(|(id, names)| MemberSpec {
                member_id: id,
                topics: names.iter().map(String::as_str).collect(),
                previous: g.target.members.get(*id),
            })
            .collect();
        let members = assignor::assign(&assignor_name, &specs, &topic_ids);
        let record = GroupRecord::put(
            RecordKey::ConsumerTarget {
                group: group_id.to_string(),
            },
            RecordValue::ConsumerTarget(ConsumerTargetValue {
                epoch: g.epoch,
                assignor: assignor_name,
                members,
            }),
        );
        self.emit(fx, vec![record]);
    }

    /// Moves a member one step toward its target: first revoke what others get, then take
    /// what is free. `owned` is what the member says it holds, when it says.
    pub(super) fn reconcile(
        &mut self,
        now_ms: u64,
        group_id: &str,
        member_id: &str,
        owned: Option<&Partitions>,
        fx: &mut Effects,
    ) {
        let Some(g) = consumer_in(&mut self.groups, group_id) else {
            return;
        };
        let Some(m) = g.members.get(member_id) else {
            return;
        };
        let target_epoch = g.target.epoch;
        let target = g.target.members.get(member_id).cloned().unwrap_or_default();
        if !m.pending_revocation.is_empty() {
            let revoked = owned.is_some_and(|o| intersect(o, &m.pending_revocation).is_empty());
            if !revoked {
                return;
            }
        } else if m.epoch == target_epoch && m.assigned == target {
            return;
        }
        let keep = intersect(&m.assigned, &target);
        let revoke = minus(&m.assigned, &target);
        let wanted = minus(&target, &m.assigned);
        let mut free = Partitions::new();
        for (t, ps) in &wanted {
            let ok: Vec<i32> = ps
                .iter()
                .filter(|p| g.owners.get(&(*t, **p)).is_none_or(|o| o == member_id))
                .copied()
                .collect();
            if !ok.is_empty() {
                free.insert(*t, ok);
            }
        }
        let mut next = m.clone();
        if !revoke.is_empty() {
            next.assigned = keep;
            next.pending_revocation = revoke;
        } else {
            next.previous_epoch = m.epoch;
            next.epoch = target_epoch;
            next.assigned = union(&keep, &free);
            next.pending_revocation = Partitions::new();
        }
        if next.epoch == m.epoch
            && next.assigned == m.assigned
            && next.pending_revocation == m.pending_revocation
        {
            return;
        }
        let revoking = !next.pending_revocation.is_empty();
        let timeout = next.subscription.rebalance_timeout_ms.max(0) as u64;
        let classic = next.is_classic();
        let record = assignment_record(group_id, member_id, &next);
        self.emit(fx, vec![record]);
        if classic {
            // Classic members revoke by rejoining; their join and sync timers bound that.
            return;
        }
        let key = TimerKey::ConsumerRebalance {
            group: group_id.to_string(),
            member: member_id.to_string(),
        };
        if revoking {
            if !self.timers.is_scheduled(&key) {
                self.timers.schedule(key, now_ms + timeout);
            }
        } else {
            self.timers.cancel(&key);
        }
    }

    /// Tombstones for every record of a KIP-848 group.
    pub(crate) fn consumer_group_tombstones(&self, group_id: &str) -> Vec<GroupRecord> {
        let Some(Group::Consumer(g)) = self.groups.get(group_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for id in g.members.keys() {
            out.extend(member_tombstones(group_id, id));
        }
        out.push(GroupRecord::tombstone(RecordKey::ConsumerTarget {
            group: group_id.to_string(),
        }));
        out.push(GroupRecord::tombstone(RecordKey::ConsumerGroup {
            group: group_id.to_string(),
        }));
        out
    }

    pub fn consumer_describe(
        &self,
        group_id: &str,
        authorized_operations: i32,
        topics: &dyn TopicLookup,
    ) -> DescribedGroup {
        let Some(Group::Consumer(g)) = self.groups.get(group_id) else {
            let message = match self.groups.get(group_id) {
                Some(Group::Classic(_)) => format!("Group {group_id} is not a consumer group."),
                _ => format!("Group {group_id} not found."),
            };
            return DescribedGroup::default()
                .with_group_id(StrBytes::from(group_id.to_string()).into())
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(message.into()))
                .with_group_state("Dead".into())
                .with_authorized_operations(authorized_operations);
        };
        let describe = |p: &Partitions| {
            DescribeAssignment::default().with_topic_partitions(
                p.iter()
                    .map(|(t, ps)| {
                        DescribeTopic::default()
                            .with_topic_id(*t)
                            .with_topic_name(
                                StrBytes::from(
                                    topics.by_id(*t).map(|(n, _)| n).unwrap_or_default(),
                                )
                                .into(),
                            )
                            .with_partitions(ps.clone())
                    })
                    .collect(),
            )
        };
        let members = g
            .members
            .iter()
            .map(|(id, m)| {
                Member::default()
                    .with_member_id(id.clone().into())
                    .with_instance_id(m.subscription.instance_id.clone().map(Into::into))
                    .with_rack_id(m.subscription.rack_id.clone().map(Into::into))
                    .with_member_epoch(m.epoch)
                    .with_client_id(m.subscription.client_id.clone().into())
                    .with_client_host(m.subscription.client_host.clone().into())
                    .with_subscribed_topic_names(
                        m.subscription
                            .subscribed_topics
                            .iter()
                            .map(|t| StrBytes::from(t.clone()).into())
                            .collect(),
                    )
                    .with_subscribed_topic_regex(
                        m.subscription.subscribed_regex.clone().map(Into::into),
                    )
                    .with_assignment(describe(&m.assigned))
                    .with_target_assignment(describe(
                        g.target.members.get(id).unwrap_or(&Partitions::new()),
                    ))
                    .with_member_type(if m.is_classic() { 0 } else { 1 })
            })
            .collect();
        DescribedGroup::default()
            .with_group_id(StrBytes::from(group_id.to_string()).into())
            .with_group_state(g.state_name().into())
            .with_group_epoch(g.epoch)
            .with_assignment_epoch(g.target.epoch)
            .with_assignor_name(g.target.assignor.clone().into())
            .with_members(members)
            .with_authorized_operations(authorized_operations)
    }
}

pub(super) fn member_tombstones(group_id: &str, member_id: &str) -> Vec<GroupRecord> {
    vec![
        GroupRecord::tombstone(RecordKey::ConsumerAssignment {
            group: group_id.to_string(),
            member: member_id.to_string(),
        }),
        GroupRecord::tombstone(RecordKey::ConsumerMember {
            group: group_id.to_string(),
            member: member_id.to_string(),
        }),
    ]
}
