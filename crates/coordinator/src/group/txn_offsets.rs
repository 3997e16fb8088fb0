//! Offsets committed inside transactions (TxnOffsetCommit): kept aside as pending records
//! until the transaction's marker reaches this partition, then written as committed offsets
//! (commit) or dropped (abort), in one batch so that a crash sees either all or none.
//!
//! A TxnOffsetCommit is checked against its transaction before it reaches this shard, and a
//! marker may overtake it in between (a new producer instance or a timeout aborted the
//! transaction with a bumped epoch). So the shard remembers the newest marker epoch per
//! producer and refuses commits from older epochs: they would otherwise stay pending forever,
//! or be committed by the producer's next transaction. In memory only: after a restart every
//! commit is checked against its transaction again first.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use super::records::{GroupRecord, OffsetValue, RecordKey, RecordValue};
use super::{Effects, GroupShard, TopicLookup};

/// By producer id: (group, topic, partition) → offset.
pub type Pending = BTreeMap<i64, BTreeMap<(String, String, i32), OffsetValue>>;

impl GroupShard {
    pub fn txn_offset_commit(
        &mut self,
        now_ms: u64,
        req: &TxnOffsetCommitRequest,
        topics: &dyn TopicLookup,
    ) -> (TxnOffsetCommitResponse, Effects) {
        let mut fx = Effects::default();
        let group = req.group_id.to_string();
        // The same checks as a commit from a member (KIP-447 sends generation and member).
        let as_commit = OffsetCommitRequest::default()
            .with_group_id(req.group_id.clone())
            .with_generation_id_or_member_epoch(req.generation_id)
            .with_member_id(req.member_id.clone())
            .with_group_instance_id(req.group_instance_id.clone());
        let fenced = self
            .marker_epochs
            .get(&req.producer_id.0)
            .is_some_and(|e| *e > req.producer_epoch);
        let group_error = if fenced {
            Err(ResponseError::InvalidProducerEpoch.code())
        } else {
            self.validate_commit(now_ms, 9, &as_commit, true)
        };
        let mut records = Vec::new();
        let mut response = TxnOffsetCommitResponse::default();
        for t in &req.topics {
            let known = topics.by_name(&t.name);
            let mut out = TxnOffsetCommitResponseTopic::default().with_name(t.name.clone());
            for p in &t.partitions {
                let key = RecordKey::PendingOffset {
                    group: group.clone(),
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    producer_id: req.producer_id.0,
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
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error),
                );
            }
            response.topics.push(out);
        }
        self.emit(&mut fx, records);
        (response, fx)
    }

    /// The marker of `producer_id`'s transaction, at `epoch`, reached this partition.
    pub fn complete_txn(
        &mut self,
        now_ms: u64,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Effects {
        let mut fx = Effects::default();
        let newest = self.marker_epochs.entry(producer_id).or_insert(epoch);
        *newest = (*newest).max(epoch);
        let Some(pending) = self.pending.get(&producer_id) else {
            return fx;
        };
        let mut records = Vec::with_capacity(2 * pending.len());
        for ((group, topic, partition), v) in pending {
            records.push(GroupRecord::tombstone(RecordKey::PendingOffset {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
                producer_id,
            }));
            if commit {
                records.push(GroupRecord::put(
                    RecordKey::Offset {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    RecordValue::Offset(OffsetValue {
                        commit_ms: now_ms,
                        ..v.clone()
                    }),
                ));
            }
        }
        self.emit(&mut fx, records);
        fx
    }

    /// Does an open transaction hold an offset for this partition? A fetch that asks for
    /// stable offsets gets UNSTABLE_OFFSET_COMMIT until it completes.
    pub fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (group.to_string(), topic.to_string(), partition);
        self.pending.values().any(|p| p.contains_key(&key))
    }

    pub(crate) fn replay_pending(&mut self, key: &RecordKey, value: &Option<RecordValue>) {
        let RecordKey::PendingOffset {
            group,
            topic,
            partition,
            producer_id,
        } = key
        else {
            return;
        };
        let k = (group.clone(), topic.clone(), *partition);
        match value {
            Some(RecordValue::Offset(v)) => {
                self.pending
                    .entry(*producer_id)
                    .or_default()
                    .insert(k, v.clone());
            }
            _ => {
                if let Some(p) = self.pending.get_mut(producer_id) {
                    p.remove(&k);
                    if p.is_empty() {
                        self.pending.remove(producer_id);
                    }
                }
            }
        }
    }

    pub(crate) fn pending_records(&self) -> Vec<GroupRecord> {
        self.pending
            .iter()
            .flat_map(|(pid, offsets)| {
                offsets.iter().map(move |((group, topic, partition), v)| {
                    GroupRecord::put(
                        RecordKey::PendingOffset {
                            group: group.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                            producer_id: *pid,
                        },
                        RecordValue::Offset(v.clone()),
                    )
                })
            })
            .collect()
    }
}
