//! Classic members inside a consumer group (Kafka 4's online migration): their JoinGroup,
//! SyncGroup, Heartbeat and LeaveGroup are answered from the consumer group's state. The
//! broker's assignor decides their partitions as it does for KIP-848 members; a classic member
//! reaches its target by rejoining, told to by REBALANCE_IN_PROGRESS on its heartbeat.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};

use super::classic::{rebalance_timeout, request_protocols, Joiner};
use super::consumer::{consumer_in, member_tombstones, minus, ConsumerGroup, ConsumerMember};
use super::embedded;
use super::records::{
    ClassicMetadata, ClassicProtocol, ConsumerAssignmentValue, ConsumerMemberValue, GroupRecord,
    RecordKey, RecordValue,
};
use super::timers::TimerKey;
use super::{Effects, GroupShard, TopicLookup};

/// The protocol type every classic member of a consumer group speaks.
const CONSUMER: &str = "consumer";

type Refusal = (String, ResponseError);

impl GroupShard {
    /// A classic JoinGroup to a consumer group that has members. Answered at once: the member's
    /// generation is its member epoch after one reconciliation step.
    pub(super) fn classic_join_to_consumer(
        &mut self,
        now_ms: u64,
        version: i16,
        joiner: &Joiner<'_>,
        req: &JoinGroupRequest,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) -> Result<JoinGroupResponse, Refusal> {
        let group_id = req.group_id.to_string();
        let protocols = request_protocols(req);
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let unknown = req.member_id.is_empty();
        let member_id = if unknown {
            let prefix = instance_id.as_deref().unwrap_or(joiner.client_id);
            format!("{prefix}-{}", (self.new_id)())
        } else {
            req.member_id.to_string()
        };
        let refuse = |e: ResponseError| Err((member_id.clone(), e));
        let g = consumer_in(&mut self.groups, &group_id).expect("caller checked");
        if !g.members.contains_key(&member_id) && g.members.len() >= self.config.consumer_max_size {
            return refuse(ResponseError::GroupMaxSizeReached);
        }
        if req.protocol_type.as_str() != CONSUMER || !supports(g, &protocols) {
            return refuse(ResponseError::InconsistentGroupProtocol);
        }
        let Some(subscription) = embedded::decode_subscription(&protocols[0].1) else {
            return refuse(ResponseError::InconsistentGroupProtocol);
        };
        if unknown && instance_id.is_none() && version >= 4 {
            // As in a classic group: the member learns its id and joins again with it.
            return refuse(ResponseError::MemberIdRequired);
        }

        let mut records = Vec::new();
        let mut existing = g.members.get(&member_id).cloned();
        if let Some(iid) = &instance_id {
            let holder = g
                .members
                .iter()
                .find(|(_, m)| m.subscription.instance_id.as_ref() == Some(iid))
                .map(|(id, m)| (id.clone(), m.clone()));
            match holder {
                // A static member back with a new id takes over the old one's partitions.
                Some((old_id, old)) if unknown => {
                    records.extend(member_tombstones(&group_id, &old_id));
                    records.push(GroupRecord::put(
                        RecordKey::ConsumerAssignment {
                            group: group_id.clone(),
                            member: member_id.clone(),
                        },
                        RecordValue::ConsumerAssignment(ConsumerAssignmentValue {
                            member_epoch: 0,
                            previous_epoch: 0,
                            assigned: old.assigned.clone(),
                            pending_revocation: old.pending_revocation.clone(),
                        }),
                    ));
                    existing = None;
                }
                Some((old_id, _)) if old_id != member_id => {
                    return refuse(ResponseError::FencedInstanceId)
                }
                Some(_) => {}
                None if !unknown => return refuse(ResponseError::UnknownMemberId),
                None => {}
            }
        }

        let value = ConsumerMemberValue {
            instance_id,
            rack_id: subscription.rack_id.as_ref().map(|r| r.to_string()),
            client_id: joiner.client_id.to_string(),
            client_host: joiner.client_host.to_string(),
            subscribed_topics: embedded::topics_of(&subscription),
            subscribed_regex: None,
            rebalance_timeout_ms: rebalance_timeout(version, req),
            server_assignor: None,
            classic: Some(ClassicMetadata {
                session_timeout_ms: req.session_timeout_ms,
                protocols: protocols
                    .iter()
                    .map(|(name, metadata)| ClassicProtocol {
                        name: name.clone(),
                        metadata: metadata.clone(),
                    })
                    .collect(),
            }),
        };
        let new_epoch = existing
            .as_ref()
            .is_none_or(|m| m.subscription.subscribed_topics != value.subscribed_topics);
        if existing.as_ref().is_none_or(|m| m.subscription != value) {
            records.push(GroupRecord::put(
                RecordKey::ConsumerMember {
                    group: group_id.clone(),
                    member: member_id.clone(),
                },
                RecordValue::ConsumerMember(value),
            ));
        }
        self.emit(fx, records);
        if new_epoch {
            self.set_epoch(now_ms, &group_id, None, fx);
        }
        self.bump_epoch_if_needed(now_ms, &group_id, topics, fx);
        self.update_target(&group_id, topics, fx);
        let owned = embedded::owned_of(&subscription, topics);
        self.reconcile(now_ms, &group_id, &member_id, Some(&owned), fx);

        let g = consumer_in(&mut self.groups, &group_id).expect("member's group");
        let m = g.members.get(&member_id).expect("joined above");
        let response = JoinGroupResponse::default()
            .with_generation_id(m.epoch)
            .with_protocol_type((version >= 7).then(|| CONSUMER.to_string().into()))
            .with_protocol_name(Some(first_protocol(m).into()))
            .with_member_id(member_id.clone().into());
        let session_ms = m.session_timeout_ms(&self.config);
        let sync_ms = m.subscription.rebalance_timeout_ms.max(0) as u64;
        self.timers
            .cancel(&key(TimerKind::Join, &group_id, &member_id));
        self.timers.schedule(
            key(TimerKind::Session, &group_id, &member_id),
            now_ms + session_ms,
        );
        self.timers.schedule(
            key(TimerKind::Sync, &group_id, &member_id),
            now_ms + sync_ms,
        );
        Ok(response)
    }

    /// A classic SyncGroup to a consumer group: the member's current assignment, computed by
    /// the broker, in the consumer protocol's encoding.
    pub(super) fn classic_sync_to_consumer(
        &mut self,
        now_ms: u64,
        version: i16,
        req: &SyncGroupRequest,
        topics: &dyn TopicLookup,
    ) -> Result<SyncGroupResponse, ResponseError> {
        let group_id = req.group_id.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let g = consumer_in(&mut self.groups, &group_id).expect("caller checked");
        let m = classic_member(g, &req.member_id, &instance_id)?;
        if req.generation_id != m.epoch {
            return Err(ResponseError::IllegalGeneration);
        }
        let protocol = first_protocol(m);
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| t.as_str() != CONSUMER);
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| n.as_str() != protocol);
        if type_mismatch || name_mismatch {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        let member_id = req.member_id.to_string();
        if rebalancing(g, m) {
            let rebalance_ms = m.subscription.rebalance_timeout_ms.max(0) as u64;
            self.schedule_rejoin(now_ms, &group_id, &member_id, rebalance_ms);
            return Err(ResponseError::RebalanceInProgress);
        }
        let metadata = m
            .subscription
            .classic
            .as_ref()
            .and_then(|c| c.protocols.first())
            .map(|p| p.metadata.clone())
            .unwrap_or_default();
        let assignment = embedded::encode_assignment(
            &m.assigned,
            topics,
            embedded::version(&metadata).unwrap_or(0),
        );
        let session_ms = m.session_timeout_ms(&self.config);
        self.timers
            .cancel(&key(TimerKind::Sync, &group_id, &member_id));
        self.timers.schedule(
            key(TimerKind::Session, &group_id, &member_id),
            now_ms + session_ms,
        );
        let mut response = SyncGroupResponse::default().with_assignment(assignment);
        if version >= 5 {
            response.protocol_type = Some(CONSUMER.to_string().into());
            response.protocol_name = Some(protocol.into());
        }
        Ok(response)
    }

    /// A classic Heartbeat to a consumer group: REBALANCE_IN_PROGRESS whenever the member has
    /// something to revoke or to collect, which it does by rejoining.
    pub(super) fn classic_heartbeat_to_consumer(
        &mut self,
        now_ms: u64,
        req: &HeartbeatRequest,
    ) -> Result<(), ResponseError> {
        let group_id = req.group_id.to_string();
        let member_id = req.member_id.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let g = consumer_in(&mut self.groups, &group_id).expect("caller checked");
        let m = classic_member(g, &req.member_id, &instance_id)?;
        if req.generation_id != m.epoch {
            return Err(ResponseError::IllegalGeneration);
        }
        let session_ms = m.session_timeout_ms(&self.config);
        let rebalance_ms = m.subscription.rebalance_timeout_ms.max(0) as u64;
        let rejoin = m.epoch < g.epoch
            || !m.pending_revocation.is_empty()
            || (m.epoch == g.target.epoch && collectable(g, &member_id, m));
        self.timers.schedule(
            key(TimerKind::Session, &group_id, &member_id),
            now_ms + session_ms,
        );
        if rejoin {
            self.schedule_rejoin(now_ms, &group_id, &member_id, rebalance_ms);
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// A classic LeaveGroup to a consumer group: one result per member named.
    pub(super) fn classic_leave_consumer(
        &mut self,
        now_ms: u64,
        group_id: &str,
        members: Vec<(String, Option<String>)>,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) -> Vec<(String, Option<String>, i16)> {
        let mut results = Vec::new();
        for (member_id, instance_id) in members {
            let Some(g) = consumer_in(&mut self.groups, group_id) else {
                results.push((
                    member_id,
                    instance_id,
                    ResponseError::UnknownMemberId.code(),
                ));
                continue;
            };
            // By instance id alone, an administrator removes a static member.
            let found = match (&instance_id, member_id.is_empty()) {
                (Some(iid), true) => g
                    .members
                    .iter()
                    .find(|(_, m)| m.subscription.instance_id.as_ref() == Some(iid))
                    .filter(|(_, m)| m.is_classic())
                    .map(|(id, _)| id.clone())
                    .ok_or(ResponseError::UnknownMemberId),
                _ => classic_member(g, &member_id, &instance_id).map(|_| member_id.clone()),
            };
            match found {
                Ok(id) => {
                    self.remove_consumer_member(now_ms, group_id, &id, topics, fx);
                    results.push((id, instance_id, 0));
                }
                Err(e) => results.push((member_id, instance_id, e.code())),
            }
        }
        results
    }

    fn schedule_rejoin(&mut self, now_ms: u64, group_id: &str, member_id: &str, rebalance_ms: u64) {
        let join = key(TimerKind::Join, group_id, member_id);
        if !self.timers.is_scheduled(&join) {
            self.timers.schedule(join, now_ms + rebalance_ms);
        }
    }
}

/// Whether a classic member may join: it must share a protocol with every classic member.
fn supports(g: &ConsumerGroup, protocols: &[(String, bytes::Bytes)]) -> bool {
    !protocols.is_empty()
        && protocols.iter().any(|(name, _)| {
            g.members.values().all(|m| {
                m.subscription
                    .classic
                    .as_ref()
                    .is_none_or(|c| c.protocols.iter().any(|p| &p.name == name))
            })
        })
}

/// Kafka's lookup of the member a classic request names: by instance id when given (and
/// then the member ids must agree), else by member id; it must speak the classic protocol.
fn classic_member<'a>(
    g: &'a ConsumerGroup,
    member_id: &str,
    instance_id: &Option<String>,
) -> Result<&'a ConsumerMember, ResponseError> {
    let m = match instance_id {
        Some(iid) => {
            let (id, m) = g
                .members
                .iter()
                .find(|(_, m)| m.subscription.instance_id.as_ref() == Some(iid))
                .ok_or(ResponseError::UnknownMemberId)?;
            if id != member_id {
                return Err(ResponseError::FencedInstanceId);
            }
            m
        }
        None => g
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?,
    };
    if !m.is_classic() {
        return Err(ResponseError::UnknownMemberId);
    }
    Ok(m)
}

/// The protocol the member's JoinGroup was answered with: its first choice.
fn first_protocol(m: &ConsumerMember) -> String {
    m.subscription
        .classic
        .as_ref()
        .and_then(|c| c.protocols.first())
        .map(|p| p.name.clone())
        .unwrap_or_default()
}

/// A new group epoch the member has not joined yet, unless it is still revoking.
fn rebalancing(g: &ConsumerGroup, m: &ConsumerMember) -> bool {
    g.epoch > m.epoch && m.pending_revocation.is_empty()
}

/// Whether partitions of its target that it lacks have all been released by their owners.
fn collectable(g: &ConsumerGroup, member_id: &str, m: &ConsumerMember) -> bool {
    let Some(target) = g.target.members.get(member_id) else {
        return false;
    };
    let missing = minus(target, &m.assigned);
    !missing.is_empty()
        && missing.iter().all(|(t, ps)| {
            ps.iter()
                .all(|p| g.owners.get(&(*t, *p)).is_none_or(|o| o == member_id))
        })
}

enum TimerKind {
    Session,
    Join,
    Sync,
}

fn key(kind: TimerKind, group: &str, member: &str) -> TimerKey {
    let (group, member) = (group.to_string(), member.to_string());
    match kind {
        TimerKind::Session => TimerKey::ConsumerSession { group, member },
        TimerKind::Join => TimerKey::ClassicJoin { group, member },
        TimerKind::Sync => TimerKey::ClassicSync { group, member },
    }
}
