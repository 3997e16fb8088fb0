//! The classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup): members rejoin on
//! every rebalance, the leader assigns on the client side, and the broker carries the protocol
//! metadata and assignments untouched.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::records::{ClassicGroupValue, ClassicMemberValue, GroupRecord, RecordKey, RecordValue};
use super::timers::TimerKey;
use super::{Deferred, Effects, Group, GroupShard, ReplyId, TopicLookup};

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// A newly added member has this long to complete its first join before it is dropped.
const NEW_MEMBER_JOIN_TIMEOUT_MS: u64 = 300_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl ClassicState {
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }
}

/// A request waiting for its reply, with the version to encode it for.
#[derive(Clone, Copy, Debug)]
pub struct Waiter {
    pub reply: ReplyId,
    pub version: i16,
}

#[derive(Clone, Debug)]
pub struct ClassicMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<Waiter>,
    pub awaiting_sync: Option<Waiter>,
}

impl ClassicMember {
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

pub struct ClassicGroup {
    pub id: String,
    pub state: ClassicState,
    pub state_ms: u64,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, ClassicMember>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pub pending_members: BTreeSet<String>,
    /// `group.instance.id` → member id.
    pub static_members: BTreeMap<String, String>,
    /// Members that have not sent SyncGroup for the current generation.
    pub pending_sync: BTreeSet<String>,
    /// Set while the first join of an empty group waits for more members: the time left to
    /// extend the wait by.
    pub initial_join_ms_left: Option<u64>,
    pub joined_during_delay: bool,
    /// The group as last written.
    pub checkpoint: Option<ClassicGroupValue>,
}

impl ClassicGroup {
    pub fn new(id: &str, now_ms: u64) -> ClassicGroup {
        ClassicGroup {
            id: id.to_string(),
            state: ClassicState::Empty,
            state_ms: now_ms,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeSet::new(),
            static_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            initial_join_ms_left: None,
            joined_during_delay: false,
            checkpoint: None,
        }
    }

    /// The group as its checkpoint record left it: stable if it had members.
    pub fn load(id: &str, v: &ClassicGroupValue) -> ClassicGroup {
        let mut g = ClassicGroup::new(id, v.state_ms);
        g.protocol_type = v.protocol_type.clone();
        g.protocol = v.protocol.clone();
        g.generation = v.generation;
        g.leader = v.leader.clone();
        for m in &v.members {
            if let Some(iid) = &m.instance_id {
                g.static_members.insert(iid.clone(), m.member_id.clone());
            }
            let protocols = match &v.protocol {
                Some(p) => vec![(p.clone(), m.subscription.clone())],
                None => Vec::new(),
            };
            g.members.insert(
                m.member_id.clone(),
                ClassicMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols,
                    assignment: m.assignment.clone(),
                    awaiting_join: None,
                    awaiting_sync: None,
                },
            );
        }
        g.state = if g.members.is_empty() {
            ClassicState::Empty
        } else {
            ClassicState::Stable
        };
        g.checkpoint = Some(v.clone());
        g
    }

    fn to_value(&self) -> ClassicGroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        ClassicGroupValue {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_ms: self.state_ms,
            members: self
                .members
                .values()
                .map(|m| ClassicMemberValue {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Writes the group's checkpoint record.
    pub(super) fn checkpoint(&mut self, fx: &mut Effects) {
        let v = self.to_value();
        fx.records.push(GroupRecord::put(
            RecordKey::ClassicGroup {
                group: self.id.clone(),
            },
            RecordValue::ClassicGroup(v.clone()),
        ));
        self.checkpoint = Some(v);
    }

    /// Whether a member with this protocol type and these protocols may join.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| m.has_protocol(name)))
    }

    /// Kafka's vote: among protocols every member supports, each member votes for its first
    /// preference; the most votes wins.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.has_protocol(n)))
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        candidates
            .iter()
            .max_by_key(|n| (votes.get(*n).copied().unwrap_or(0), std::cmp::Reverse(**n)))
            .map(|n| (*n).clone())
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0)
    }

    fn join_response(&self, member: &ClassicMember, version: i16) -> JoinGroupResponse {
        let is_leader = self.leader.as_deref() == Some(member.member_id.as_str());
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if is_leader {
            self.members
                .values()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(m.member_id.clone().into())
                        .with_group_instance_id(if version >= 5 {
                            m.instance_id.clone().map(Into::into)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata(&protocol))
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_type(if version >= 7 {
                self.protocol_type.clone().map(Into::into)
            } else {
                None
            })
            .with_protocol_name(Some(protocol.into()))
            .with_leader(self.leader.clone().unwrap_or_default().into())
            .with_member_id(member.member_id.clone().into())
            .with_members(members)
    }

    fn sync_response(&self, assignment: Bytes, version: i16) -> SyncGroupResponse {
        let mut r = SyncGroupResponse::default().with_assignment(assignment);
        if version >= 5 {
            r.protocol_type = self.protocol_type.clone().map(Into::into);
            r.protocol_name = self.protocol.clone().map(Into::into);
        }
        r
    }
}

impl ClassicMember {
    fn has_protocol(&self, name: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == name)
    }
}

pub fn join_error(version: i16, member_id: &str, error: i16) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error)
        .with_generation_id(-1)
        .with_protocol_name(if version >= 7 {
            None
        } else {
            Some(StrBytes::default())
        })
        .with_member_id(member_id.to_string().into())
}

pub fn sync_error(error: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error)
}

fn session_key(group: &str, member: &str) -> TimerKey {
    TimerKey::Session {
        group: group.to_string(),
        member: member.to_string(),
    }
}

/// Who is joining, from the request header and connection.
/// Which kind of group a classic request goes to.
enum GroupKind {
    Classic,
    /// A consumer group with members: classic members join it as they are (online migration).
    Consumer,
}

pub struct Joiner<'a> {
    pub client_id: &'a str,
    pub client_host: &'a str,
}

pub(crate) fn classic_in<'a>(
    groups: &'a mut BTreeMap<String, Group>,
    group: &str,
) -> Option<&'a mut ClassicGroup> {
    match groups.get_mut(group) {
        Some(Group::Classic(g)) => Some(g),
        _ => None,
    }
}

impl GroupShard {
    pub fn join_group(
        &mut self,
        now_ms: u64,
        reply: ReplyId,
        version: i16,
        joiner: Joiner<'_>,
        req: &JoinGroupRequest,
        topics: &dyn TopicLookup,
    ) -> Effects {
        let mut fx = Effects::default();
        let member_id = req.member_id.to_string();
        let waiter = Waiter { reply, version };
        match self.join_checks(now_ms, req, &mut fx) {
            Err(e) => {
                refuse_join(&mut fx, waiter, &member_id, e);
                return fx;
            }
            Ok(GroupKind::Consumer) => {
                let result =
                    self.classic_join_to_consumer(now_ms, version, &joiner, req, topics, &mut fx);
                match result {
                    Ok(response) => fx.outputs.push((reply, Deferred::Join(response))),
                    Err((id, e)) => refuse_join(&mut fx, waiter, &id, e.code()),
                }
                return fx;
            }
            Ok(GroupKind::Classic) => {}
        }
        let group_id = req.group_id.to_string();
        let protocols = request_protocols(req);
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let g = classic_in(&mut self.groups, &group_id).expect("join_checks made the group");

        if member_id.is_empty() {
            if g.members.len() >= self.config.max_size {
                refuse_join(
                    &mut fx,
                    waiter,
                    "",
                    code(ResponseError::GroupMaxSizeReached),
                );
                return fx;
            }
            let new_id = format!(
                "{}-{}",
                instance_id.as_deref().unwrap_or(joiner.client_id),
                (self.new_id)()
            );
            if let Some(iid) = &instance_id {
                if let Some(old) = g.static_members.get(iid).cloned() {
                    self.replace_static_member(
                        now_ms, &group_id, &old, new_id, waiter, req, &mut fx,
                    );
                    return fx;
                }
            } else if version >= 4 {
                g.pending_members.insert(new_id.clone());
                let session = req.session_timeout_ms.max(0) as u64;
                self.timers.schedule(
                    TimerKey::PendingMember {
                        group: group_id,
                        member: new_id.clone(),
                    },
                    now_ms + session,
                );
                refuse_join(
                    &mut fx,
                    waiter,
                    &new_id,
                    code(ResponseError::MemberIdRequired),
                );
                return fx;
            }
            let member = new_member(new_id, instance_id, &joiner, req, protocols, waiter);
            self.add_member_and_rebalance(now_ms, &group_id, member, &mut fx);
            return fx;
        }

        if g.pending_members.remove(&member_id) {
            self.timers.cancel(&TimerKey::PendingMember {
                group: group_id.clone(),
                member: member_id.clone(),
            });
            let member = new_member(member_id, instance_id, &joiner, req, protocols, waiter);
            self.add_member_and_rebalance(now_ms, &group_id, member, &mut fx);
            return fx;
        }
        if let Some(e) = fenced_instance(g, &instance_id, &member_id) {
            refuse_join(&mut fx, waiter, &member_id, e);
            return fx;
        }
        let Some(member) = g.members.get(&member_id) else {
            refuse_join(
                &mut fx,
                waiter,
                &member_id,
                code(ResponseError::UnknownMemberId),
            );
            return fx;
        };
        let unchanged = member.protocols == protocols;
        let is_leader = g.leader.as_deref() == Some(member_id.as_str());
        match g.state {
            ClassicState::CompletingRebalance | ClassicState::Stable
                if unchanged && (g.state == ClassicState::CompletingRebalance || !is_leader) =>
            {
                // Nothing changed: the member only lost our reply; give it the generation again.
                let response = g.join_response(member, version);
                fx.outputs.push((reply, Deferred::Join(response)));
                self.timers.schedule(
                    session_key(&group_id, &member_id),
                    now_ms + member.session_timeout_ms.max(0) as u64,
                );
            }
            _ => {
                let m = g.members.get_mut(&member_id).expect("checked above");
                m.protocols = protocols;
                m.session_timeout_ms = req.session_timeout_ms;
                m.rebalance_timeout_ms = rebalance_timeout(version, req);
                if let Some(old) = m.awaiting_join.replace(waiter) {
                    refuse_join(
                        &mut fx,
                        old,
                        &member_id,
                        code(ResponseError::RebalanceInProgress),
                    );
                }
                if g.state == ClassicState::PreparingRebalance {
                    self.maybe_complete_join(now_ms, &group_id, &mut fx);
                } else {
                    self.prepare_rebalance(now_ms, &group_id, &mut fx);
                }
            }
        }
        fx
    }

    /// Checks that apply before the member is looked at; makes the group if it may be made.
    /// Says which kind of group takes the join.
    fn join_checks(
        &mut self,
        now_ms: u64,
        req: &JoinGroupRequest,
        fx: &mut Effects,
    ) -> Result<GroupKind, i16> {
        let group_id = req.group_id.to_string();
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Err(code(ResponseError::InvalidSessionTimeout));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(code(ResponseError::InconsistentGroupProtocol));
        }
        match self.groups.get(&group_id) {
            Some(Group::Consumer(g)) if !g.members.is_empty() => return Ok(GroupKind::Consumer),
            Some(Group::Consumer(_)) => {
                // An empty KIP-848 group becomes a classic one; its offsets stay.
                let records = self.consumer_group_tombstones(&group_id);
                self.emit(fx, records);
                self.groups.remove(&group_id);
            }
            Some(Group::Classic(_)) => {}
            None if !req.member_id.is_empty() => {
                return Err(code(ResponseError::UnknownMemberId));
            }
            None => {}
        }
        let g = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::Classic(ClassicGroup::new(&group_id, now_ms)));
        let Group::Classic(g) = g else {
            unreachable!("replaced above")
        };
        let protocols = request_protocols(req);
        if !g.supports(&req.protocol_type, &protocols) {
            return Err(code(ResponseError::InconsistentGroupProtocol));
        }
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.to_string());
        }
        Ok(GroupKind::Classic)
    }

    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        now_ms: u64,
        group_id: &str,
        old_id: &str,
        new_id: String,
        waiter: Waiter,
        req: &JoinGroupRequest,
        fx: &mut Effects,
    ) {
        let g = classic_in(&mut self.groups, group_id).expect("caller checked");
        let Some(mut member) = g.members.remove(old_id) else {
            return;
        };
        // The old incarnation's pending requests are fenced.
        if let Some(w) = member.awaiting_join.take() {
            refuse_join(fx, w, old_id, code(ResponseError::FencedInstanceId));
        }
        if let Some(w) = member.awaiting_sync.take() {
            fx.outputs.push((
                w.reply,
                Deferred::Sync(sync_error(code(ResponseError::FencedInstanceId))),
            ));
        }
        let protocols = request_protocols(req);
        let protocol = g.protocol.clone().unwrap_or_default();
        let same_metadata = member.metadata(&protocol)
            == protocols
                .iter()
                .find(|(n, _)| *n == protocol)
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
        member.member_id = new_id.clone();
        member.protocols = protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = rebalance_timeout(waiter.version, req);
        if g.leader.as_deref() == Some(old_id) {
            g.leader = Some(new_id.clone());
        }
        if let Some(iid) = &member.instance_id {
            g.static_members.insert(iid.clone(), new_id.clone());
        }
        g.pending_sync.remove(old_id);
        self.timers.cancel(&session_key(group_id, old_id));
        let is_leader = g.leader.as_deref() == Some(new_id.as_str());
        if g.state == ClassicState::Stable && same_metadata && (!is_leader || waiter.version >= 9) {
            // The same member came back: it keeps its assignment and nobody rebalances.
            let mut response = g.join_response(&member, waiter.version);
            response.skip_assignment = is_leader;
            g.members.insert(new_id.clone(), member);
            g.checkpoint(fx);
            fx.outputs.push((waiter.reply, Deferred::Join(response)));
            let session = req.session_timeout_ms.max(0) as u64;
            self.timers
                .schedule(session_key(group_id, &new_id), now_ms + session);
            return;
        }
        member.awaiting_join = Some(waiter);
        g.members.insert(new_id, member);
        if g.state == ClassicState::PreparingRebalance {
            self.maybe_complete_join(now_ms, group_id, fx);
        } else {
            self.prepare_rebalance(now_ms, group_id, fx);
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now_ms: u64,
        group_id: &str,
        member: ClassicMember,
        fx: &mut Effects,
    ) {
        let g = classic_in(&mut self.groups, group_id).expect("caller checked");
        let id = member.member_id.clone();
        if let Some(iid) = &member.instance_id {
            g.static_members.insert(iid.clone(), id.clone());
        }
        if g.leader.is_none() {
            g.leader = Some(id.clone());
        }
        g.members.insert(id.clone(), member);
        if g.initial_join_ms_left.is_some() {
            g.joined_during_delay = true;
        }
        self.timers.schedule(
            session_key(group_id, &id),
            now_ms + NEW_MEMBER_JOIN_TIMEOUT_MS,
        );
        if g.state == ClassicState::PreparingRebalance {
            self.maybe_complete_join(now_ms, group_id, fx);
        } else {
            self.prepare_rebalance(now_ms, group_id, fx);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, now_ms: u64, group_id: &str, fx: &mut Effects) {
        let delay = self.config.initial_rebalance_delay_ms;
        let g = classic_in(&mut self.groups, group_id).expect("caller checked");
        if g.state == ClassicState::CompletingRebalance {
            // Members waiting on SyncGroup for a generation that will not be are told so.
            for m in g.members.values_mut() {
                if let Some(w) = m.awaiting_sync.take() {
                    fx.outputs.push((
                        w.reply,
                        Deferred::Sync(sync_error(code(ResponseError::RebalanceInProgress))),
                    ));
                }
            }
            g.pending_sync.clear();
        }
        self.timers.cancel(&TimerKey::Sync {
            group: group_id.to_string(),
        });
        let timeout = g.rebalance_timeout_ms();
        let was_empty = g.state == ClassicState::Empty;
        g.state = ClassicState::PreparingRebalance;
        g.state_ms = now_ms;
        let join = TimerKey::Join {
            group: group_id.to_string(),
        };
        if was_empty && delay > 0 {
            // Kafka's initial delayed join: wait for more members before the first rebalance.
            g.initial_join_ms_left = Some(timeout.saturating_sub(delay));
            g.joined_during_delay = false;
            self.timers.schedule(join, now_ms + delay);
        } else {
            self.timers.schedule(join, now_ms + timeout);
            self.maybe_complete_join(now_ms, group_id, fx);
        }
    }

    fn maybe_complete_join(&mut self, now_ms: u64, group_id: &str, fx: &mut Effects) {
        let Some(g) = classic_in(&mut self.groups, group_id) else {
            return;
        };
        if g.state == ClassicState::PreparingRebalance
            && g.initial_join_ms_left.is_none()
            && g.all_joined()
        {
            self.complete_join(now_ms, group_id, fx);
        }
    }

    pub(crate) fn classic_join_deadline(&mut self, now_ms: u64, group_id: &str, fx: &mut Effects) {
        let delay = self.config.initial_rebalance_delay_ms;
        let Some(g) = classic_in(&mut self.groups, group_id) else {
            return;
        };
        if g.state != ClassicState::PreparingRebalance {
            return;
        }
        if let Some(left) = g.initial_join_ms_left {
            if g.joined_during_delay && left > 0 {
                let step = delay.min(left);
                g.initial_join_ms_left = Some(left - step);
                g.joined_during_delay = false;
                self.timers.schedule(
                    TimerKey::Join {
                        group: group_id.to_string(),
                    },
                    now_ms + step,
                );
                return;
            }
            g.initial_join_ms_left = None;
        }
        self.complete_join(now_ms, group_id, fx);
    }

    fn complete_join(&mut self, now_ms: u64, group_id: &str, fx: &mut Effects) {
        self.timers.cancel(&TimerKey::Join {
            group: group_id.to_string(),
        });
        let g = classic_in(&mut self.groups, group_id).expect("caller checked");
        g.initial_join_ms_left = None;
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            remove_member(g, id, fx);
            self.timers.cancel(&session_key(group_id, id));
        }
        let g = classic_in(&mut self.groups, group_id).expect("still there");
        g.generation += 1;
        g.state_ms = now_ms;
        if g.members.is_empty() {
            g.state = ClassicState::Empty;
            g.protocol = None;
            g.leader = None;
            g.checkpoint(fx);
            return;
        }
        g.protocol = g.select_protocol();
        if !g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g.state = ClassicState::CompletingRebalance;
        g.pending_sync = g.members.keys().cloned().collect();
        let mut sessions = Vec::new();
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in ids {
            let member = g.members.get(&id).expect("listed");
            let w = member.awaiting_join.expect("all rejoined");
            let response = g.join_response(member, w.version);
            fx.outputs.push((w.reply, Deferred::Join(response)));
            let m = g.members.get_mut(&id).expect("listed");
            m.awaiting_join = None;
            sessions.push((id, m.session_timeout_ms.max(0) as u64));
        }
        let sync_deadline = now_ms + g.rebalance_timeout_ms();
        for (id, session) in sessions {
            self.timers
                .schedule(session_key(group_id, &id), now_ms + session);
        }
        self.timers.schedule(
            TimerKey::Sync {
                group: group_id.to_string(),
            },
            sync_deadline,
        );
    }

    pub fn sync_group(
        &mut self,
        now_ms: u64,
        reply: ReplyId,
        version: i16,
        req: &SyncGroupRequest,
        topics: &dyn TopicLookup,
    ) -> Effects {
        let mut fx = Effects::default();
        let group_id = req.group_id.to_string();
        let member_id = req.member_id.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let fail = |fx: &mut Effects, e: ResponseError| {
            fx.outputs
                .push((reply, Deferred::Sync(sync_error(code(e)))));
        };
        if group_id.is_empty() {
            fail(&mut fx, ResponseError::InvalidGroupId);
            return fx;
        }
        if let Some(Group::Consumer(_)) = self.groups.get(&group_id) {
            match self.classic_sync_to_consumer(now_ms, version, req, topics) {
                Ok(response) => fx.outputs.push((reply, Deferred::Sync(response))),
                Err(e) => fail(&mut fx, e),
            }
            return fx;
        }
        let Some(g) = classic_in(&mut self.groups, &group_id) else {
            fail(&mut fx, ResponseError::UnknownMemberId);
            return fx;
        };
        if fenced_instance(g, &instance_id, &member_id).is_some() {
            fail(&mut fx, ResponseError::FencedInstanceId);
            return fx;
        }
        let Some(member) = g.members.get(&member_id) else {
            fail(&mut fx, ResponseError::UnknownMemberId);
            return fx;
        };
        if req.generation_id != g.generation {
            fail(&mut fx, ResponseError::IllegalGeneration);
            return fx;
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| g.protocol_type.as_deref() != Some(t.as_str()));
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| g.protocol.as_deref() != Some(n.as_str()));
        if type_mismatch || name_mismatch {
            fail(&mut fx, ResponseError::InconsistentGroupProtocol);
            return fx;
        }
        let session = member.session_timeout_ms.max(0) as u64;
        match g.state {
            ClassicState::Empty => fail(&mut fx, ResponseError::UnknownMemberId),
            ClassicState::PreparingRebalance => fail(&mut fx, ResponseError::RebalanceInProgress),
            ClassicState::Stable => {
                let response = g.sync_response(member.assignment.clone(), version);
                fx.outputs.push((reply, Deferred::Sync(response)));
                // A follower that syncs after the leader has done its part of this generation.
                g.pending_sync.remove(&member_id);
                if g.pending_sync.is_empty() {
                    self.timers.cancel(&TimerKey::Sync {
                        group: group_id.clone(),
                    });
                }
            }
            ClassicState::CompletingRebalance => {
                let m = g.members.get_mut(&member_id).expect("checked");
                if let Some(old) = m.awaiting_sync.replace(Waiter { reply, version }) {
                    fx.outputs.push((
                        old.reply,
                        Deferred::Sync(sync_error(code(ResponseError::RebalanceInProgress))),
                    ));
                }
                g.pending_sync.remove(&member_id);
                if g.leader.as_deref() == Some(member_id.as_str()) {
                    let mut assignments: BTreeMap<String, Bytes> = req
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                        .collect();
                    for m in g.members.values_mut() {
                        m.assignment = assignments.remove(&m.member_id).unwrap_or_default();
                    }
                    g.state = ClassicState::Stable;
                    g.state_ms = now_ms;
                    g.checkpoint(&mut fx);
                    let waiting: Vec<(Waiter, Bytes)> = g
                        .members
                        .values_mut()
                        .filter_map(|m| m.awaiting_sync.take().map(|w| (w, m.assignment.clone())))
                        .collect();
                    for (w, assignment) in waiting {
                        let response = g.sync_response(assignment, w.version);
                        fx.outputs.push((w.reply, Deferred::Sync(response)));
                    }
                    if g.pending_sync.is_empty() {
                        self.timers.cancel(&TimerKey::Sync {
                            group: group_id.clone(),
                        });
                    }
                }
            }
        }
        self.timers
            .schedule(session_key(&group_id, &member_id), now_ms + session);
        fx
    }

    pub(crate) fn classic_sync_deadline(&mut self, now_ms: u64, group_id: &str, fx: &mut Effects) {
        let Some(g) = classic_in(&mut self.groups, group_id) else {
            return;
        };
        if !matches!(
            g.state,
            ClassicState::CompletingRebalance | ClassicState::Stable
        ) || g.pending_sync.is_empty()
        {
            return;
        }
        // Members that never synced this generation are out.
        let gone: Vec<String> = std::mem::take(&mut g.pending_sync).into_iter().collect();
        for id in &gone {
            remove_member(g, id, fx);
            self.timers.cancel(&session_key(group_id, id));
        }
        self.prepare_rebalance(now_ms, group_id, fx);
    }

    /// Returns the error code for a Heartbeat.
    pub fn heartbeat(&mut self, now_ms: u64, req: &HeartbeatRequest) -> i16 {
        let group_id = req.group_id.to_string();
        let member_id = req.member_id.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        if group_id.is_empty() {
            return code(ResponseError::InvalidGroupId);
        }
        if let Some(Group::Consumer(_)) = self.groups.get(&group_id) {
            return self
                .classic_heartbeat_to_consumer(now_ms, req)
                .map_or_else(|e| e.code(), |()| 0);
        }
        let Some(g) = classic_in(&mut self.groups, &group_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        if g.state == ClassicState::Empty {
            return code(ResponseError::UnknownMemberId);
        }
        // Kafka checks a static member's instance before its member id.
        if let Some(e) = fenced_instance(g, &instance_id, &member_id) {
            return e;
        }
        let Some(member) = g.members.get(&member_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        if req.generation_id != g.generation {
            return code(ResponseError::IllegalGeneration);
        }
        let session = member.session_timeout_ms.max(0) as u64;
        let state = g.state;
        self.timers
            .schedule(session_key(&group_id, &member_id), now_ms + session);
        if state == ClassicState::PreparingRebalance {
            code(ResponseError::RebalanceInProgress)
        } else {
            0
        }
    }

    pub fn leave_group(
        &mut self,
        now_ms: u64,
        version: i16,
        req: &LeaveGroupRequest,
        topics: &dyn TopicLookup,
    ) -> (LeaveGroupResponse, Effects) {
        let mut fx = Effects::default();
        let group_id = req.group_id.to_string();
        let identities: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        if group_id.is_empty() {
            let response =
                LeaveGroupResponse::default().with_error_code(code(ResponseError::InvalidGroupId));
            return (response, fx);
        }
        if let Some(Group::Consumer(_)) = self.groups.get(&group_id) {
            let results =
                self.classic_leave_consumer(now_ms, &group_id, identities, topics, &mut fx);
            return (leave_response(version, results), fx);
        }
        let Some(g) = classic_in(&mut self.groups, &group_id) else {
            let response =
                LeaveGroupResponse::default().with_error_code(code(ResponseError::UnknownMemberId));
            return (response, fx);
        };
        let mut results = Vec::new();
        let mut removed = false;
        for (member_id, instance_id) in identities {
            let outcome = match &instance_id {
                Some(iid) => match g.static_members.get(iid).cloned() {
                    None => Err(code(ResponseError::UnknownMemberId)),
                    Some(registered) if !member_id.is_empty() && registered != member_id => {
                        Err(code(ResponseError::FencedInstanceId))
                    }
                    Some(registered) => Ok(registered),
                },
                None if g.pending_members.remove(&member_id) => {
                    self.timers.cancel(&TimerKey::PendingMember {
                        group: group_id.clone(),
                        member: member_id.clone(),
                    });
                    removed = true;
                    results.push((member_id, instance_id, 0));
                    continue;
                }
                None if g.members.contains_key(&member_id) => Ok(member_id.clone()),
                None => Err(code(ResponseError::UnknownMemberId)),
            };
            match outcome {
                Ok(id) => {
                    remove_member(g, &id, &mut fx);
                    self.timers.cancel(&session_key(&group_id, &id));
                    removed = true;
                    results.push((member_id, instance_id, 0));
                }
                Err(e) => results.push((member_id, instance_id, e)),
            }
        }
        if removed {
            self.member_gone(now_ms, &group_id, &mut fx);
        }
        (leave_response(version, results), fx)
    }

    /// After members left or expired: rebalance the rest.
    fn member_gone(&mut self, now_ms: u64, group_id: &str, fx: &mut Effects) {
        let Some(g) = classic_in(&mut self.groups, group_id) else {
            return;
        };
        match g.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, group_id, fx)
            }
            ClassicState::PreparingRebalance => self.maybe_complete_join(now_ms, group_id, fx),
            ClassicState::Empty => {}
        }
    }

    pub(crate) fn classic_session_expired(
        &mut self,
        now_ms: u64,
        group_id: &str,
        member_id: &str,
        fx: &mut Effects,
    ) {
        let Some(g) = classic_in(&mut self.groups, group_id) else {
            return;
        };
        let Some(m) = g.members.get(member_id) else {
            return;
        };
        if m.awaiting_join.is_some() || m.awaiting_sync.is_some() {
            // A member waiting on us is alive; its session restarts when we reply.
            let session = m.session_timeout_ms.max(0) as u64;
            self.timers
                .schedule(session_key(group_id, member_id), now_ms + session);
            return;
        }
        remove_member(g, member_id, fx);
        self.member_gone(now_ms, group_id, fx);
    }

    pub(crate) fn classic_pending_expired(
        &mut self,
        now_ms: u64,
        group_id: &str,
        member_id: &str,
        fx: &mut Effects,
    ) {
        if let Some(g) = classic_in(&mut self.groups, group_id) {
            if g.pending_members.remove(member_id) {
                self.maybe_complete_join(now_ms, group_id, fx);
            }
        }
    }
}

/// One result per member from v3, else the first member's error.
fn leave_response(version: i16, results: Vec<(String, Option<String>, i16)>) -> LeaveGroupResponse {
    if version >= 3 {
        LeaveGroupResponse::default().with_members(
            results
                .into_iter()
                .map(|(m, i, e)| {
                    MemberResponse::default()
                        .with_member_id(m.into())
                        .with_group_instance_id(i.map(Into::into))
                        .with_error_code(e)
                })
                .collect(),
        )
    } else {
        LeaveGroupResponse::default().with_error_code(results.first().map_or(0, |r| r.2))
    }
}

/// The protocols a JoinGroup offers, by name with their metadata.
pub(super) fn request_protocols(req: &JoinGroupRequest) -> Vec<(String, Bytes)> {
    req.protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect()
}

/// Answers a JoinGroup with an error.
pub(super) fn refuse_join(fx: &mut Effects, waiter: Waiter, member_id: &str, error: i16) {
    fx.outputs.push((
        waiter.reply,
        Deferred::Join(join_error(waiter.version, member_id, error)),
    ));
}

pub(super) fn rebalance_timeout(version: i16, req: &JoinGroupRequest) -> i32 {
    // Before v1 the rebalance timeout was the session timeout.
    if version == 0 {
        req.session_timeout_ms
    } else {
        req.rebalance_timeout_ms
    }
}

fn new_member(
    member_id: String,
    instance_id: Option<String>,
    joiner: &Joiner<'_>,
    req: &JoinGroupRequest,
    protocols: Vec<(String, Bytes)>,
    waiter: Waiter,
) -> ClassicMember {
    ClassicMember {
        member_id,
        instance_id,
        client_id: joiner.client_id.to_string(),
        client_host: joiner.client_host.to_string(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: rebalance_timeout(waiter.version, req),
        protocols,
        assignment: Bytes::new(),
        awaiting_join: Some(waiter),
        awaiting_sync: None,
    }
}

/// FENCED_INSTANCE_ID when `instance_id` is registered to another member id.
/// Kafka's check of a request naming `instance_id`: the instance must be registered, and to
/// `member_id` (else FENCED_INSTANCE_ID: a newer incarnation holds it).
pub(crate) fn fenced_instance(
    g: &ClassicGroup,
    instance_id: &Option<String>,
    member_id: &str,
) -> Option<i16> {
    let iid = instance_id.as_ref()?;
    match g.static_members.get(iid) {
        None => Some(code(ResponseError::UnknownMemberId)),
        Some(registered) if registered != member_id => Some(code(ResponseError::FencedInstanceId)),
        Some(_) => None,
    }
}

/// Drops a member, answering whatever it was waiting on.
fn remove_member(g: &mut ClassicGroup, member_id: &str, fx: &mut Effects) {
    let Some(m) = g.members.remove(member_id) else {
        return;
    };
    if let Some(iid) = &m.instance_id {
        if g.static_members.get(iid).map(String::as_str) == Some(member_id) {
            g.static_members.remove(iid);
        }
    }
    if let Some(w) = m.awaiting_join {
        refuse_join(fx, w, member_id, code(ResponseError::UnknownMemberId));
    }
    if let Some(w) = m.awaiting_sync {
        fx.outputs.push((
            w.reply,
            Deferred::Sync(sync_error(code(ResponseError::UnknownMemberId))),
        ));
    }
    g.pending_sync.remove(member_id);
    if g.leader.as_deref() == Some(member_id) {
        g.leader = g.members.keys().next().cloned();
    }
}
