//! Kafka 4's online migration between the two kinds of group: a live classic group becomes a
//! consumer group when a KIP-848 member joins it, and a consumer group whose last KIP-848
//! member leaves becomes a classic group again. Members, assignments and offsets carry over,
//! so no partition is ever owned twice and nothing committed is lost.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::classic::{refuse_join, sync_error, ClassicGroup, ClassicMember, ClassicState};
use super::consumer::{consumer_in, ConsumerMember};
use super::embedded;
use super::records::{
    ClassicMetadata, ClassicProtocol, ConsumerAssignmentValue, ConsumerGroupValue,
    ConsumerMemberValue, ConsumerTargetValue, GroupRecord, RecordKey, RecordValue,
    TopicPartitions as Partitions,
};
use super::timers::TimerKey;
use super::{Deferred, Effects, Group, GroupShard, TopicLookup};

impl GroupShard {
    /// Turns the live classic group `group_id` into a consumer group at the same epoch: each
    /// member keeps the partitions the classic leader gave it, and they are the target until
    /// the joining member moves the epoch on. Fails if a member's metadata does not parse.
    pub(super) fn upgrade(
        &mut self,
        now_ms: u64,
        group_id: &str,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) -> Result<(), String> {
        let Some(Group::Classic(g)) = self.groups.get(group_id) else {
            return Err("it is not a classic group".into());
        };
        let protocol = g.protocol.clone().ok_or("it has no protocol yet")?;
        let epoch = g.generation;
        let mut members = BTreeMap::new();
        for (id, m) in &g.members {
            let s = embedded::decode_subscription(&m.metadata(&protocol))
                .ok_or_else(|| format!("member {id} has malformed consumer metadata"))?;
            let named = embedded::decode_assignment(&m.assignment)
                .ok_or_else(|| format!("member {id} has a malformed assignment"))?;
            let assigned = embedded::by_id(
                named.iter().map(|(t, ps)| (t.as_str(), ps.as_slice())),
                topics,
            );
            let subscription = ConsumerMemberValue {
                instance_id: m.instance_id.clone(),
                rack_id: s.rack_id.as_ref().map(|r| r.to_string()),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topics: embedded::topics_of(&s),
                subscribed_regex: None,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                server_assignor: None,
                classic: Some(ClassicMetadata {
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: m
                        .protocols
                        .iter()
                        .map(|(name, metadata)| ClassicProtocol {
                            name: name.clone(),
                            metadata: metadata.clone(),
                        })
                        .collect(),
                }),
            };
            members.insert(id.clone(), (subscription, assigned));
        }

        // Whoever waits on a rebalance of the classic group rejoins the consumer group.
        let Some(Group::Classic(g)) = self.groups.get_mut(group_id) else {
            unreachable!("checked above");
        };
        for m in g.members.values_mut() {
            if let Some(w) = m.awaiting_join.take() {
                refuse_join(
                    fx,
                    w,
                    &m.member_id,
                    ResponseError::RebalanceInProgress.code(),
                );
            }
            if let Some(w) = m.awaiting_sync.take() {
                let reply = sync_error(ResponseError::RebalanceInProgress.code());
                fx.outputs.push((w.reply, Deferred::Sync(reply)));
            }
        }
        self.timers.cancel_group(group_id);

        let topic_partitions: BTreeMap<String, i32> = members
            .values()
            .flat_map(|(s, _)| s.subscribed_topics.iter())
            .filter_map(|t| topics.by_name(t).map(|(_, n)| (t.clone(), n)))
            .collect();
        let mut records = self.group_tombstones(group_id);
        records.push(GroupRecord::put(
            RecordKey::ConsumerGroup {
                group: group_id.to_string(),
            },
            RecordValue::ConsumerGroup(ConsumerGroupValue {
                epoch,
                topic_partitions,
                state_ms: now_ms,
            }),
        ));
        let mut target = ConsumerTargetValue {
            epoch,
            assignor: self
                .config
                .consumer_assignors
                .first()
                .cloned()
                .unwrap_or_default(),
            members: BTreeMap::new(),
        };
        for (id, (subscription, assigned)) in members {
            records.push(GroupRecord::put(
                RecordKey::ConsumerMember {
                    group: group_id.to_string(),
                    member: id.clone(),
                },
                RecordValue::ConsumerMember(subscription),
            ));
            records.push(GroupRecord::put(
                RecordKey::ConsumerAssignment {
                    group: group_id.to_string(),
                    member: id.clone(),
                },
                RecordValue::ConsumerAssignment(ConsumerAssignmentValue {
                    member_epoch: epoch,
                    previous_epoch: epoch,
                    assigned: assigned.clone(),
                    pending_revocation: Partitions::new(),
                }),
            ));
            target.members.insert(id, assigned);
        }
        records.push(GroupRecord::put(
            RecordKey::ConsumerTarget {
                group: group_id.to_string(),
            },
            RecordValue::ConsumerTarget(target),
        ));
        self.emit(fx, records);

        let g = consumer_in(&mut self.groups, group_id).expect("just written");
        let sessions: Vec<(String, u64)> = g
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.session_timeout_ms(&self.config)))
            .collect();
        for (member, session_ms) in sessions {
            self.timers.schedule(
                TimerKey::ConsumerSession {
                    group: group_id.to_string(),
                    member,
                },
                now_ms + session_ms,
            );
        }
        tracing::info!(
            group = group_id,
            epoch,
            "upgraded a classic group to a consumer group"
        );
        Ok(())
    }

    /// Whether `leaving` is the last KIP-848 member of a consumer group that other (classic)
    /// members stay in, so that the group goes back to the classic protocol.
    pub(super) fn may_downgrade(&self, group_id: &str, leaving: &str) -> bool {
        let Some(Group::Consumer(g)) = self.groups.get(group_id) else {
            return false;
        };
        let Some(m) = g.members.get(leaving) else {
            return false;
        };
        self.config.migration_policy.downgrades()
            && !m.is_classic()
            && g.members.len() > 1
            && g.members.len() - 1 <= self.config.max_size
            && g.members
                .iter()
                .all(|(id, m)| id == leaving || m.is_classic())
    }

    /// Turns a consumer group back into a classic group without `leaving`: the others keep
    /// their target assignment as their classic assignment, and a rebalance starts at once.
    pub(super) fn downgrade(
        &mut self,
        now_ms: u64,
        group_id: &str,
        leaving: &str,
        topics: &dyn TopicLookup,
        fx: &mut Effects,
    ) {
        let Some(Group::Consumer(cg)) = self.groups.get(group_id) else {
            return;
        };
        let mut g = ClassicGroup::new(group_id, now_ms);
        g.state = ClassicState::Stable;
        g.generation = cg.epoch;
        g.protocol_type = Some("consumer".into());
        for (id, m) in cg.members.iter().filter(|(id, _)| *id != leaving) {
            g.members.insert(id.clone(), classic_member(id, m));
            if let Some(iid) = &m.subscription.instance_id {
                g.static_members.insert(iid.clone(), id.clone());
            }
        }
        g.leader = g.members.keys().next().cloned();
        g.protocol = g.select_protocol();
        let protocol = g.protocol.clone().unwrap_or_default();
        for (id, m) in g.members.iter_mut() {
            let target = cg.target.members.get(id).cloned().unwrap_or_default();
            let version = embedded::version(&m.metadata(&protocol)).unwrap_or(0);
            m.assignment = embedded::encode_assignment(&target, topics, version);
        }

        let records = self.consumer_group_tombstones(group_id);
        self.emit(fx, records);
        self.timers.cancel_group(group_id);
        let sessions: Vec<(String, u64)> = g
            .members
            .values()
            .map(|m| (m.member_id.clone(), m.session_timeout_ms.max(0) as u64))
            .collect();
        g.checkpoint(fx);
        self.groups.insert(group_id.to_string(), Group::Classic(g));
        for (member, session_ms) in sessions {
            self.timers.schedule(
                TimerKey::Session {
                    group: group_id.to_string(),
                    member,
                },
                now_ms + session_ms,
            );
        }
        tracing::info!(
            group = group_id,
            "downgraded a consumer group to a classic group"
        );
        self.prepare_rebalance(now_ms, group_id, fx);
    }
}

/// A classic member of a consumer group as a member of a classic group.
fn classic_member(id: &str, m: &ConsumerMember) -> ClassicMember {
    let classic = m.subscription.classic.clone().unwrap_or_default();
    ClassicMember {
        member_id: id.to_string(),
        instance_id: m.subscription.instance_id.clone(),
        client_id: m.subscription.client_id.clone(),
        client_host: m.subscription.client_host.clone(),
        session_timeout_ms: classic.session_timeout_ms,
        rebalance_timeout_ms: m.subscription.rebalance_timeout_ms,
        protocols: classic
            .protocols
            .into_iter()
            .map(|p| (p.name, p.metadata))
            .collect(),
        assignment: bytes::Bytes::new(),
        awaiting_join: None,
        awaiting_sync: None,
    }
}
