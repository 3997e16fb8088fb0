//! The transaction coordinator for one `__transaction_state` partition: every transactional
//! id that hashes there and the state of its current transaction. The shard decides; the
//! runtime appends its records and writes the transaction markers it asks for
//! ([`MarkerJob`]), then reports back with [`TxnShard::complete`].
//!
//! Invariants (on top of those of [`crate::shard`]):
//! 1. A transaction's outcome is decided by one durable PrepareCommit/PrepareAbort record;
//!    markers are written only after it, and CompleteCommit/CompleteAbort only after every
//!    marker.
//! 2. While a transaction is prepared, nothing else changes it: every call gets
//!    CONCURRENT_TRANSACTIONS until it completes.
//! 3. A loaded shard owes the markers of every prepared transaction: they are written again
//!    (markers are idempotent for a partition: a second one finds no open transaction). So
//!    does a shard whose markers for a transaction have not completed after
//!    [`MARKERS_RESEND_MS`]: the timeout check hands them out again.

pub mod end;
pub mod ops;
pub mod records;

pub use end::{Ended, TxnVersion};

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use records::{TxnRecord, TxnState, TxnValue};

use crate::shard::{CoordinatorShard, Effects, TopicLookup};

/// Settings, with Kafka's names.
#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: u64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_check_interval_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 3_600_000,
            abort_check_interval_ms: 10_000,
        }
    }
}

/// How long a prepared transaction may wait for its markers before they are handed out again.
pub const MARKERS_RESEND_MS: u64 = 30_000;

/// Markers to write: `commit` or abort for `producer_id` at `producer_epoch` on every one of
/// `partitions`, then [`TxnShard::complete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

pub type TxnEffects = Effects<TxnRecord, MarkerJob>;

pub struct TxnShard {
    pub(crate) config: TxnConfig,
    pub(crate) txns: BTreeMap<String, TxnValue>,
    next_check_ms: Option<u64>,
    /// When markers were last handed out for each prepared transaction (not persisted: a load
    /// hands them all out).
    markers_sent_ms: HashMap<String, u64>,
}

impl TxnShard {
    pub fn new(config: TxnConfig) -> TxnShard {
        TxnShard {
            config,
            txns: BTreeMap::new(),
            next_check_ms: None,
            markers_sent_ms: HashMap::new(),
        }
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TxnValue> {
        self.txns.get(transactional_id)
    }

    /// Every transaction, for ListTransactions.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &TxnValue)> {
        self.txns.iter()
    }

    /// Replays and returns the record that sets `id` to `value` (invariant 1 of the shard).
    pub(crate) fn put(&mut self, fx: &mut TxnEffects, id: &str, value: Option<TxnValue>) {
        let record = TxnRecord {
            transactional_id: id.to_string(),
            value,
        };
        self.replay(&record);
        fx.records.push(record);
    }

    /// The job for a prepared transaction, noting when it was handed out.
    pub(crate) fn send_markers(&mut self, now_ms: u64, id: &str) -> MarkerJob {
        self.markers_sent_ms.insert(id.to_string(), now_ms);
        Self::job(id, &self.txns[id])
    }

    /// Hands out again the markers of transactions prepared long ago and still not complete.
    fn resend_stale_markers(&mut self, now_ms: u64, fx: &mut TxnEffects) {
        let stale: Vec<String> = self
            .txns
            .iter()
            .filter(|(id, v)| {
                v.state.is_prepared()
                    && self
                        .markers_sent_ms
                        .get(*id)
                        .is_none_or(|at| at + MARKERS_RESEND_MS <= now_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            tracing::warn!(
                transactional_id = id,
                "transaction markers not complete; writing them again"
            );
            let job = self.send_markers(now_ms, &id);
            fx.outputs.push(job);
        }
    }

    fn job(id: &str, v: &TxnValue) -> MarkerJob {
        assert!(v.state.is_prepared());
        MarkerJob {
            transactional_id: id.to_string(),
            producer_id: v.producer_id,
            producer_epoch: v.producer_epoch,
            commit: v.state == TxnState::PrepareCommit,
            partitions: v.partitions.iter().cloned().collect(),
        }
    }
}

impl CoordinatorShard for TxnShard {
    type Record = TxnRecord;
    type Output = MarkerJob;

    fn replay(&mut self, record: &TxnRecord) {
        match &record.value {
            Some(v) => {
                if !v.state.is_prepared() {
                    self.markers_sent_ms.remove(&record.transactional_id);
                }
                self.txns.insert(record.transactional_id.clone(), v.clone());
            }
            None => {
                self.markers_sent_ms.remove(&record.transactional_id);
                self.txns.remove(&record.transactional_id);
            }
        }
    }

    fn loaded(&mut self, now_ms: u64) -> Vec<MarkerJob> {
        self.next_check_ms = Some(now_ms + self.config.abort_check_interval_ms);
        let prepared: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, v)| v.state.is_prepared())
            .map(|(id, _)| id.clone())
            .collect();
        prepared
            .iter()
            .map(|id| self.send_markers(now_ms, id))
            .collect()
    }

    fn next_deadline_ms(&self) -> Option<u64> {
        self.next_check_ms
    }

    fn tick(&mut self, now_ms: u64, _topics: &dyn TopicLookup) -> TxnEffects {
        let mut fx = TxnEffects::default();
        if self.next_check_ms.is_some_and(|at| at <= now_ms) {
            self.resend_stale_markers(now_ms, &mut fx);
            self.abort_timed_out(now_ms, &mut fx);
            self.expire_ids(now_ms, &mut fx);
            self.next_check_ms = Some(now_ms + self.config.abort_check_interval_ms);
        }
        fx
    }

    fn snapshot(&self) -> Vec<TxnRecord> {
        self.txns
            .iter()
            .map(|(id, v)| TxnRecord {
                transactional_id: id.clone(),
                value: Some(v.clone()),
            })
            .collect()
    }

    fn live_records(&self) -> usize {
        self.txns.len()
    }
}
