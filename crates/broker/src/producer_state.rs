//! Idempotent and transactional producers on one partition: Kafka's rules for producer ids,
//! epochs and sequence numbers, checked before a batch is given offsets, and the partition's
//! open and aborted transactions, which give the last stable offset and what a read_committed
//! fetch must skip. Sans-I/O: the produce path asks, then records what it appended; loading a
//! partition replays its batches through the same code.
//!
//! Invariants:
//! 1. A batch is checked and recorded under the partition's lock, with nothing appended to the
//!    partition in between.
//! 2. For each producer the last [`BATCHES_KEPT`] batches of its current epoch are kept, so a
//!    retry of any of them is recognised and answered with its first offsets.
//! 3. The state is a function of the partition's batches: replaying them rebuilds it.
//! 4. A producer has at most one open transaction on a partition: from its first
//!    transactional batch to the marker that ends it. The last stable offset is the first
//!    offset of the oldest open transaction.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use strata_protocol::batch::BatchHeader;

/// Batches remembered per producer: as many as a client may have in flight.
pub const BATCHES_KEPT: usize = 5;

/// No epoch, no sequence: Kafka's sentinels.
const NO_EPOCH: i16 = -1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Producer {
    epoch: i16,
    batches: VecDeque<Kept>,
    /// The first offset of its open transaction on this partition.
    txn_first_offset: Option<i64>,
    /// The newest timestamp of its batches and markers: it expires this long after.
    last_ms: i64,
    /// A marker raised its epoch (KIP-890 transactions version 2): its next batch starts at
    /// sequence 0.
    #[serde(default)]
    sequence_reset: bool,
    /// The newest epoch of a transaction coordinator that wrote one of its markers here: a
    /// coordinator with an older one has been replaced and may write no more.
    #[serde(default = "no_coordinator")]
    coordinator_epoch: i32,
}

fn no_coordinator() -> i32 {
    -1
}

impl Producer {
    fn new(epoch: i16) -> Producer {
        Producer {
            epoch,
            batches: VecDeque::new(),
            txn_first_offset: None,
            last_ms: i64::MIN,
            sequence_reset: false,
            coordinator_epoch: no_coordinator(),
        }
    }
}

/// An aborted transaction on this partition: a read_committed consumer drops this producer's
/// batches from `first_offset` up to the marker at `last_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What to do with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Give it offsets.
    Append,
    /// A retry of a batch already appended at `base_offset`: answer with that, append nothing.
    Duplicate { base_offset: i64 },
}

/// What to do with one partition's batches of a request, all or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Append,
    /// One of them is a retry: nothing is appended and the answer is the retried batch's
    /// offsets, as in Kafka.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
    },
}

/// A partition's producer state. Serialized whole into the partition's snapshots
/// (`crate::producers`, format in `docs/formats.md`).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
    /// Open transactions by first offset: producer id.
    open: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order.
    aborted: Vec<AbortedTxn>,
    /// When [`ProducerStates::expire`] last ran.
    #[serde(skip)]
    expired_at_ms: Option<i64>,
    /// Bytes of producer batches recorded since the last snapshot.
    #[serde(skip)]
    pub bytes_since_snapshot: u64,
    /// The stream epoch this broker loaded the state under: a partition that moved away and
    /// came back was written by others meanwhile, so its state is loaded again.
    #[serde(skip)]
    pub loaded_epoch: u64,
}

impl ProducerStates {
    /// Kafka's checks of a client's batch, in Kafka's order: epoch, duplicate, sequence.
    pub fn check(&self, h: &BatchHeader) -> Result<Verdict, (ResponseError, String)> {
        if h.producer_id < 0 {
            return Ok(Verdict::Append);
        }
        let Some(p) = self.producers.get(&h.producer_id) else {
            // Unknown here (new, or its batches were removed by retention): any sequence goes.
            return Ok(Verdict::Append);
        };
        if p.txn_first_offset.is_some() && !h.is_transactional() && h.producer_epoch == p.epoch {
            return Err((
                ResponseError::InvalidTxnState,
                format!(
                    "Expected a transactional write from producer {} at epoch {}.",
                    h.producer_id, h.producer_epoch
                ),
            ));
        }
        if h.producer_epoch < p.epoch {
            return Err((
                ResponseError::InvalidProducerEpoch,
                format!(
                    "Epoch {} of producer {} is older than the last seen epoch {}.",
                    h.producer_epoch, h.producer_id, p.epoch
                ),
            ));
        }
        let last_seq = last_sequence(h);
        if h.producer_epoch == p.epoch {
            if let Some(k) = p
                .batches
                .iter()
                .find(|k| k.first_seq == h.base_sequence && k.last_seq == last_seq)
            {
                return Ok(Verdict::Duplicate {
                    base_offset: k.base_offset,
                });
            }
            let expected = match p.batches.back() {
                Some(k) => Some(next_sequence(k.last_seq)),
                // A marker raised the epoch: the producer starts its sequence again.
                None if p.sequence_reset => Some(0),
                // Only a marker is known of it (its batches are gone): any sequence goes.
                None => None,
            };
            if expected.is_some_and(|e| e != h.base_sequence) {
                return Err((
                    ResponseError::OutOfOrderSequenceNumber,
                    format!(
                        "Out of order sequence number for producer {} at epoch {}: {} (incoming seq. number), {} (expected).",
                        h.producer_id,
                        h.producer_epoch,
                        h.base_sequence,
                        expected.unwrap_or_default()
                    ),
                ));
            }
        } else if h.base_sequence != 0 && p.epoch != NO_EPOCH {
            return Err((
                ResponseError::OutOfOrderSequenceNumber,
                format!(
                    "Invalid sequence number for new epoch {} of producer {}: {} (request epoch), {} (seq. number), {} (current epoch).",
                    h.producer_epoch, h.producer_id, h.producer_epoch, h.base_sequence, p.epoch
                ),
            ));
        }
        Ok(Verdict::Append)
    }

    /// Checks a request's batches for one partition as if each were appended after the one
    /// before, without changing anything.
    pub fn plan(&self, batches: &[&BatchHeader]) -> Result<Plan, (ResponseError, String)> {
        let mut scratch = ProducerStates::default();
        for h in batches {
            if let Some(p) = self.producers.get(&h.producer_id) {
                scratch
                    .producers
                    .entry(h.producer_id)
                    .or_insert_with(|| p.clone());
            }
        }
        for h in batches {
            match scratch.check(h)? {
                Verdict::Append => scratch.record(h, -1),
                Verdict::Duplicate { base_offset } if base_offset >= 0 => {
                    return Ok(Plan::Duplicate {
                        base_offset,
                        last_offset: base_offset + h.last_offset_delta as i64,
                    });
                }
                Verdict::Duplicate { .. } => {
                    return Err((
                        ResponseError::OutOfOrderSequenceNumber,
                        "A batch repeats an earlier batch of the same request.".into(),
                    ));
                }
            }
        }
        Ok(Plan::Append)
    }

    /// Records a batch appended at `base_offset` (after [`ProducerStates::check`] said
    /// [`Verdict::Append`], or while replaying the partition).
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64) {
        if h.producer_id < 0 || h.is_control() {
            return;
        }
        self.bytes_since_snapshot += h.size_bytes as u64;
        let p = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| Producer::new(h.producer_epoch));
        if h.producer_epoch != p.epoch {
            p.epoch = h.producer_epoch;
            p.batches.clear();
        }
        p.sequence_reset = false;
        p.last_ms = p.last_ms.max(h.max_timestamp);
        if h.is_transactional() && p.txn_first_offset.is_none() {
            p.txn_first_offset = Some(base_offset);
            // Planning records at -1: the transaction is open for the checks that follow, but
            // holds no offset.
            if base_offset >= 0 {
                self.open.insert(base_offset, h.producer_id);
            }
        }
        if h.base_sequence < 0 {
            return;
        }
        if p.batches.len() == BATCHES_KEPT {
            p.batches.pop_front();
        }
        p.batches.push_back(Kept {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h),
            base_offset,
        });
        assert!(p.batches.len() <= BATCHES_KEPT);
    }

    /// Is a transaction of `producer_id` at `epoch` open here? Its next batches need no
    /// verification with the coordinator (KIP-890).
    pub fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|p| p.epoch == epoch && p.txn_first_offset.is_some())
    }

    /// A marker may be written for `producer_id` at `epoch` by a coordinator at
    /// `coordinator_epoch` unless a newer producer epoch, or a newer coordinator, was seen.
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ResponseError> {
        match self.producers.get(&producer_id) {
            Some(p) if coordinator_epoch < p.coordinator_epoch => {
                Err(ResponseError::TransactionCoordinatorFenced)
            }
            Some(p) if epoch < p.epoch => Err(ResponseError::InvalidProducerEpoch),
            _ => Ok(()),
        }
    }

    /// Records a marker appended at `offset` at `timestamp_ms`: the producer's open
    /// transaction, if any, ends.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        offset: i64,
        timestamp_ms: i64,
    ) {
        let p = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| Producer::new(epoch));
        p.coordinator_epoch = p.coordinator_epoch.max(coordinator_epoch);
        if epoch > p.epoch {
            p.epoch = epoch;
            p.batches.clear();
            p.sequence_reset = true;
        }
        p.last_ms = p.last_ms.max(timestamp_ms);
        if let Some(first_offset) = p.txn_first_offset.take() {
            self.open.remove(&first_offset);
            if !commit {
                self.aborted.push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: offset,
                });
            }
        }
    }

    /// The last stable offset: nothing at or after it may reach a read_committed consumer.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.open
            .keys()
            .next()
            .map_or(high_watermark, |first| (*first).min(high_watermark))
    }

    /// Aborted transactions that overlap `[from, to)`, for a read_committed fetch.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Kafka's `producer.id.expiration.ms`: forgets producers without an open transaction
    /// whose newest batch is `expiration_ms` old; such a producer is then unknown here, and may
    /// start at any sequence. Also forgets aborted transactions before `start_offset`, which
    /// retention removed. Runs at most once every `check_interval_ms`.
    pub fn expire(
        &mut self,
        now_ms: i64,
        expiration_ms: i64,
        check_interval_ms: i64,
        start_offset: i64,
    ) -> usize {
        if self
            .expired_at_ms
            .is_some_and(|at| now_ms - at < check_interval_ms)
        {
            return 0;
        }
        self.expired_at_ms = Some(now_ms);
        self.trim(start_offset);
        let before = self.producers.len();
        self.producers.retain(|_, p| {
            p.txn_first_offset.is_some() || p.last_ms.saturating_add(expiration_ms) > now_ms
        });
        before - self.producers.len()
    }

    /// Forgets aborted transactions wholly before `start_offset` (retention removed them).
    fn trim(&mut self, start_offset: i64) {
        self.aborted.retain(|a| a.last_offset >= start_offset);
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// Sequences wrap at i32::MAX back to 0, as in Kafka.
fn last_sequence(h: &BatchHeader) -> i32 {
    let last = h.base_sequence as i64 + h.last_offset_delta as i64;
    if last > i32::MAX as i64 {
        (last - i32::MAX as i64 - 1) as i32
    } else {
        last as i32
    }
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            size_bytes: 61,
            leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    fn append(s: &mut ProducerStates, h: &BatchHeader, at: i64) {
        assert_eq!(s.check(h), Ok(Verdict::Append));
        s.record(h, at);
    }

    fn code(r: Result<Verdict, (ResponseError, String)>) -> ResponseError {
        r.expect_err("refused").0
    }

    #[test]
    fn in_order_batches_append_and_retries_get_their_offsets() {
        let mut s = ProducerStates::default();
        append(&mut s, &batch(7, 0, 0, 5), 100);
        append(&mut s, &batch(7, 0, 5, 5), 105);
        assert_eq!(
            s.check(&batch(7, 0, 0, 5)),
            Ok(Verdict::Duplicate { base_offset: 100 })
        );
        assert_eq!(
            s.check(&batch(7, 0, 5, 5)),
            Ok(Verdict::Duplicate { base_offset: 105 })
        );
        // A gap, and an overlap that is not one of the kept batches.
        assert_eq!(
            code(s.check(&batch(7, 0, 20, 1))),
            ResponseError::OutOfOrderSequenceNumber
        );
        assert_eq!(
            code(s.check(&batch(7, 0, 3, 5))),
            ResponseError::OutOfOrderSequenceNumber
        );
        // Other producers are independent; an unknown one may start anywhere.
        append(&mut s, &batch(8, 3, 42, 1), 110);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn only_the_last_five_batches_are_recognised() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            append(&mut s, &batch(1, 0, i, 1), 10 + i as i64);
        }
        assert_eq!(
            s.check(&batch(1, 0, 2, 1)),
            Ok(Verdict::Duplicate { base_offset: 12 })
        );
        assert_eq!(
            code(s.check(&batch(1, 0, 1, 1))),
            ResponseError::OutOfOrderSequenceNumber,
            "older than the kept window"
        );
    }

    #[test]
    fn epochs_fence_older_producers_and_restart_sequences() {
        let mut s = ProducerStates::default();
        append(&mut s, &batch(1, 1, 0, 3), 0);
        assert_eq!(
            code(s.check(&batch(1, 0, 3, 1))),
            ResponseError::InvalidProducerEpoch
        );
        assert_eq!(
            code(s.check(&batch(1, 2, 3, 1))),
            ResponseError::OutOfOrderSequenceNumber,
            "a new epoch starts at sequence 0"
        );
        append(&mut s, &batch(1, 2, 0, 1), 3);
        assert_eq!(
            code(s.check(&batch(1, 1, 3, 1))),
            ResponseError::InvalidProducerEpoch
        );
    }

    #[test]
    fn sequences_wrap_around() {
        let mut s = ProducerStates::default();
        append(&mut s, &batch(1, 0, i32::MAX - 1, 2), 0);
        append(&mut s, &batch(1, 0, 0, 1), 2);
        assert_eq!(
            s.check(&batch(1, 0, i32::MAX - 1, 2)),
            Ok(Verdict::Duplicate { base_offset: 0 })
        );
    }

    #[test]
    fn a_request_is_planned_as_a_whole() {
        let mut s = ProducerStates::default();
        append(&mut s, &batch(1, 0, 0, 2), 50);
        let (a, b, gap) = (batch(1, 0, 2, 2), batch(1, 0, 4, 1), batch(1, 0, 9, 1));
        assert_eq!(s.plan(&[&a, &b]), Ok(Plan::Append));
        assert_eq!(
            s.plan(&[&a, &gap]).unwrap_err().0,
            ResponseError::OutOfOrderSequenceNumber
        );
        assert_eq!(
            s.plan(&[&batch(1, 0, 0, 2)]),
            Ok(Plan::Duplicate {
                base_offset: 50,
                last_offset: 51
            })
        );
        // Planning changed nothing.
        assert_eq!(s.check(&a), Ok(Verdict::Append));
    }

    #[test]
    fn batches_without_a_producer_are_not_tracked() {
        let mut s = ProducerStates::default();
        append(&mut s, &batch(-1, -1, -1, 10), 0);
        assert!(s.is_empty());
    }

    fn txn_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            attributes: 0x10,
            ..batch(pid, epoch, seq, count)
        }
    }

    #[test]
    fn transactions_bound_the_last_stable_offset_and_aborts_are_listed() {
        let mut s = ProducerStates::default();
        append(&mut s, &batch(9, 0, 0, 2), 0);
        append(&mut s, &txn_batch(1, 0, 0, 2), 2);
        append(&mut s, &txn_batch(2, 0, 0, 1), 4);
        append(&mut s, &txn_batch(1, 0, 2, 1), 5);
        assert!(s.in_transaction(1, 0) && s.in_transaction(2, 0));
        assert_eq!(s.last_stable_offset(6), 2);
        assert_eq!(
            code(s.check(&batch(1, 0, 3, 1))),
            ResponseError::InvalidTxnState,
            "a plain write inside an open transaction"
        );
        assert_eq!(
            s.plan(&[&txn_batch(3, 0, 0, 1), &batch(3, 0, 1, 1)])
                .unwrap_err()
                .0,
            ResponseError::InvalidTxnState,
            "one request mixing a transactional and a plain batch"
        );
        s.record_marker(1, 0, 0, false, 6, 0);
        assert_eq!(s.last_stable_offset(7), 4);
        s.record_marker(2, 0, 0, true, 7, 0);
        assert_eq!(s.last_stable_offset(8), 8);
        assert!(!s.in_transaction(1, 0));
        let aborted = AbortedTxn {
            producer_id: 1,
            first_offset: 2,
            last_offset: 6,
        };
        assert_eq!(s.aborted_between(0, 8), vec![aborted]);
        assert_eq!(s.aborted_between(6, 8), vec![aborted]);
        assert!(s.aborted_between(7, 8).is_empty());
        assert!(s.aborted_between(0, 2).is_empty());
        // A marker with a newer epoch fences the older one.
        s.record_marker(2, 1, 0, false, 8, 0);
        assert_eq!(
            s.check_marker(2, 0, 0),
            Err(ResponseError::InvalidProducerEpoch)
        );
        // A marker from a newer coordinator fences the older coordinator.
        s.record_marker(2, 1, 4, false, 9, 0);
        assert_eq!(
            s.check_marker(2, 1, 3),
            Err(ResponseError::TransactionCoordinatorFenced)
        );
        assert_eq!(s.check_marker(2, 1, 4), Ok(()));
        assert_eq!(
            code(s.check(&txn_batch(2, 0, 1, 1))),
            ResponseError::InvalidProducerEpoch
        );
        // Retention moved the start past the aborted transaction: it is forgotten.
        s.expire(0, i64::MAX, 0, 7);
        assert!(s.aborted_between(0, 8).is_empty());
    }

    #[test]
    fn a_marker_that_bumps_the_epoch_restarts_sequences_and_fences_the_old_epoch() {
        // KIP-890 transactions version 2: the marker carries the epoch after the producer's.
        let mut s = ProducerStates::default();
        append(&mut s, &txn_batch(1, 4, 0, 3), 0);
        s.record_marker(1, 5, 0, true, 3, 0);
        assert!(!s.in_transaction(1, 5));
        assert_eq!(
            code(s.check(&txn_batch(1, 4, 3, 1))),
            ResponseError::InvalidProducerEpoch,
            "a late write of the ended transaction"
        );
        assert_eq!(
            code(s.check(&txn_batch(1, 5, 3, 1))),
            ResponseError::OutOfOrderSequenceNumber,
            "the new epoch starts at sequence 0"
        );
        append(&mut s, &txn_batch(1, 5, 0, 2), 4);
        assert!(s.in_transaction(1, 5));
        assert_eq!(s.last_stable_offset(6), 4);
        // A producer known only by a marker (its batches are gone) may go on at any sequence,
        // the same whether the state was built live or replayed.
        s.record_marker(2, 3, 0, true, 6, 0);
        assert_eq!(s.check(&txn_batch(2, 3, 17, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn idle_producers_expire_but_not_inside_a_transaction() {
        let mut s = ProducerStates::default();
        let at = |h: BatchHeader, ms: i64| BatchHeader {
            max_timestamp: ms,
            ..h
        };
        append(&mut s, &at(batch(1, 0, 0, 1), 1_000), 0);
        append(&mut s, &at(txn_batch(2, 0, 0, 1), 1_000), 1);
        append(&mut s, &at(batch(3, 0, 0, 1), 5_000), 2);
        assert_eq!(
            s.expire(10_000, 8_000, 60_000, 0),
            1,
            "producer 1 is idle for 9 s"
        );
        assert_eq!(s.len(), 2, "2 has an open transaction, 3 is recent");
        // Unknown again: any sequence goes.
        assert_eq!(s.check(&batch(1, 0, 40, 1)), Ok(Verdict::Append));
        assert_eq!(
            s.expire(11_000, 1, 60_000, 0),
            0,
            "not checked again within the interval"
        );
    }
}
