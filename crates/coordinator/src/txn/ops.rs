//! The transaction coordinator's requests but EndTxn (`end.rs`), with Kafka's checks in
//! Kafka's order (`TransactionCoordinator.scala`).

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError as E;

use super::records::{TxnState, TxnValue};
use super::{TxnEffects, TxnShard};

/// Kafka's sentinels.
pub(crate) const NO_PRODUCER_ID: i64 = -1;
pub(crate) const NO_EPOCH: i16 = -1;

/// An epoch this high cannot be bumped again: the producer id is rotated instead.
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// A partition of a transaction: (topic, partition).
pub type TxnPartition = (String, i32);

impl TxnShard {
    /// InitProducerId with a transactional id. `fresh_producer_id` is a producer id never
    /// handed out, used if the id is new or its epochs are exhausted.
    pub fn init_producer_id(
        &mut self,
        now_ms: u64,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_producer_id: i64,
    ) -> (Result<(i64, i16), E>, TxnEffects) {
        let mut fx = TxnEffects::default();
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return (Err(E::InvalidTransactionTimeout), fx);
        }
        let Some(v) = self.txns.get(id).cloned() else {
            let v = TxnValue {
                producer_id: fresh_producer_id,
                prev_producer_id: NO_PRODUCER_ID,
                producer_epoch: 0,
                last_producer_epoch: NO_EPOCH,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: 0,
                update_ms: now_ms,
                next_producer_id: NO_PRODUCER_ID,
                epoch_bump: false,
            };
            self.put(&mut fx, id, Some(v));
            return (Ok((fresh_producer_id, 0)), fx);
        };
        if let Some((pid, epoch)) = expected {
            let known = v.producer_epoch == NO_EPOCH
                || pid == v.producer_id
                || (pid == v.prev_producer_id && is_epoch_exhausted(epoch));
            if !known {
                return (Err(E::ProducerFenced), fx);
            }
        }
        let mut next = v.clone();
        next.update_ms = now_ms;
        // This fence is not a client's EndTxn: an older epoch is never taken for its retry.
        next.epoch_bump = false;
        match v.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return (Err(E::ConcurrentTransactions), fx);
            }
            TxnState::Ongoing => {
                // Fence the producer and abort its transaction; the client retries and then
                // gets the epoch after this one.
                next.producer_epoch = v.producer_epoch.saturating_add(1);
                next.last_producer_epoch = NO_EPOCH;
                next.state = TxnState::PrepareAbort;
                self.put(&mut fx, id, Some(next));
                fx.outputs.push(self.send_markers(now_ms, id));
                return (Err(E::ConcurrentTransactions), fx);
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {}
        }
        next.timeout_ms = timeout_ms;
        next.partitions.clear();
        next.start_ms = 0;
        next.state = TxnState::Empty;
        if is_epoch_exhausted(v.producer_epoch)
            && expected.is_none_or(|(_, e)| e == v.producer_epoch)
        {
            next.prev_producer_id = v.producer_id;
            next.producer_id = fresh_producer_id;
            next.producer_epoch = 0;
            next.last_producer_epoch = NO_EPOCH;
        } else {
            let (epoch, last) = match expected {
                None => (v.producer_epoch + 1, NO_EPOCH),
                Some((_, e)) if v.producer_epoch == NO_EPOCH || e == v.producer_epoch => {
                    (v.producer_epoch + 1, v.producer_epoch)
                }
                // A retry of a bump that succeeded: answer it again.
                Some((_, e)) if v.last_producer_epoch != NO_EPOCH && e == v.last_producer_epoch => {
                    (v.producer_epoch, v.last_producer_epoch)
                }
                Some(_) => return (Err(E::ProducerFenced), fx),
            };
            next.producer_epoch = epoch;
            next.last_producer_epoch = last;
        }
        let answer = (next.producer_id, next.producer_epoch);
        self.put(&mut fx, id, Some(next));
        (Ok(answer), fx)
    }

    /// The checks every call naming a producer makes first.
    fn current(&self, id: &str, producer_id: i64, epoch: i16) -> Result<&TxnValue, E> {
        if id.is_empty() {
            return Err(E::InvalidRequest);
        }
        let v = self.txns.get(id).ok_or(E::InvalidProducerIdMapping)?;
        if v.producer_id != producer_id {
            return Err(E::InvalidProducerIdMapping);
        }
        if v.producer_epoch != epoch {
            return Err(E::ProducerFenced);
        }
        Ok(v)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets`
    /// partition): the partitions join the transaction, which begins if none is open.
    pub fn add_partitions(
        &mut self,
        now_ms: u64,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
    ) -> (Result<(), E>, TxnEffects) {
        let mut fx = TxnEffects::default();
        let v = match self.current(id, producer_id, epoch) {
            Ok(v) => v,
            Err(e) => return (Err(e), fx),
        };
        if v.state.is_prepared() {
            return (Err(E::ConcurrentTransactions), fx);
        }
        if v.state == TxnState::Ongoing && partitions.iter().all(|p| v.partitions.contains(p)) {
            return (Ok(()), fx);
        }
        let mut next = v.clone();
        if v.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
            next.state = TxnState::Ongoing;
        }
        next.partitions.extend(partitions.iter().cloned());
        next.update_ms = now_ms;
        self.put(&mut fx, id, Some(next));
        (Ok(()), fx)
    }

    /// The verify-only form of AddPartitionsToTxn (KIP-890): is each partition in the
    /// transaction? Partitions that are not get TRANSACTION_ABORTABLE, as in Kafka.
    pub fn verify(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
    ) -> Result<Vec<(TxnPartition, E)>, E> {
        let v = self.current(id, producer_id, epoch)?;
        if v.state.is_prepared() {
            return Err(E::ConcurrentTransactions);
        }
        Ok(partitions
            .iter()
            .filter(|p| !(v.state == TxnState::Ongoing && v.partitions.contains(*p)))
            .map(|p| (p.clone(), E::TransactionAbortable))
            .collect())
    }

    /// Aborts every transaction open longer than its timeout, fencing its producer with an
    /// epoch bump as Kafka does, so that a zombie cannot go on with it.
    pub(crate) fn abort_timed_out(&mut self, now_ms: u64, fx: &mut TxnEffects) {
        let expired: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, v)| {
                v.state == TxnState::Ongoing
                    && v.start_ms + v.timeout_ms.max(0) as u64 <= now_ms
                    && v.producer_epoch < i16::MAX
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let mut next = self.txns[&id].clone();
            next.producer_epoch += 1;
            next.last_producer_epoch = NO_EPOCH;
            next.epoch_bump = false;
            next.state = TxnState::PrepareAbort;
            next.update_ms = now_ms;
            tracing::info!(
                transactional_id = id,
                producer_id = next.producer_id,
                "aborting a transaction past its timeout"
            );
            self.put(fx, &id, Some(next));
            fx.outputs.push(self.send_markers(now_ms, &id));
        }
    }

    /// Forgets transactional ids idle for `transactional.id.expiration.ms`.
    pub(crate) fn expire_ids(&mut self, now_ms: u64, fx: &mut TxnEffects) {
        let expired: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, v)| {
                matches!(
                    v.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && v.update_ms + self.config.id_expiration_ms <= now_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.put(fx, &id, None);
        }
    }
}
