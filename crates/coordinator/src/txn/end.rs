//! EndTxn and the completion of a transaction's markers, in both transaction versions of
//! KIP-890. In version 2 (EndTxn v5 and later) every EndTxn bumps the producer epoch: the
//! markers carry the new epoch, so whatever the producer sent for the transaction before them
//! is fenced on every partition, and a late write can never land in the next transaction.
//!
//! Invariants (on top of those of the shard):
//! 1. A version-2 EndTxn answers with the producer id and epoch the producer goes on with;
//!    a retry of it, which comes with the epoch before, gets the same answer.
//! 2. When a version-2 bump runs out of epochs, the producer id rotates: the markers carry the
//!    old id at the last epoch, and the producer goes on with the new id at epoch 0.

use kafka_protocol::error::ResponseError as E;

use super::ops::{is_epoch_exhausted, NO_EPOCH, NO_PRODUCER_ID};
use super::records::{TxnState, TxnValue};
use super::{MarkerJob, TxnEffects, TxnShard};

/// How a client ends its transactions (KIP-890).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnVersion {
    /// EndTxn v0–v4: the epoch stays; only InitProducerId and fencing bump it.
    V1,
    /// EndTxn v5 and later: every EndTxn bumps the epoch.
    V2,
}

/// What an EndTxn decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Markers to write, then [`TxnShard::complete`]; none for a retry or an empty abort.
    pub markers: Option<MarkerJob>,
    /// The producer id and epoch the producer goes on with (invariant 1).
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// The producer id and epoch a producer goes on with after `v` (invariant 2).
fn going_on(v: &TxnValue) -> (i64, i16) {
    if v.next_producer_id != NO_PRODUCER_ID {
        (v.next_producer_id, 0)
    } else {
        (v.producer_id, v.producer_epoch)
    }
}

/// The outcome a state has decided, if any.
fn decided(state: TxnState) -> Option<bool> {
    match state {
        TxnState::PrepareCommit | TxnState::CompleteCommit => Some(true),
        TxnState::PrepareAbort | TxnState::CompleteAbort => Some(false),
        TxnState::Empty | TxnState::Ongoing => None,
    }
}

impl TxnShard {
    /// EndTxn: decides the outcome. The markers to write come back; the client is answered
    /// once they are written and [`TxnShard::complete`] ran (or at once for a retry).
    /// `fresh_producer_id` is a producer id never handed out, which a version-2 bump needs
    /// when the client's epoch is exhausted.
    #[allow(clippy::too_many_arguments)]
    pub fn end_txn(
        &mut self,
        now_ms: u64,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        version: TxnVersion,
        fresh_producer_id: Option<i64>,
    ) -> (Result<Ended, E>, TxnEffects) {
        let mut fx = TxnEffects::default();
        let result = self.end(
            now_ms,
            id,
            (producer_id, epoch),
            commit,
            version,
            fresh_producer_id,
            &mut fx,
        );
        (result, fx)
    }

    #[allow(clippy::too_many_arguments)]
    fn end(
        &mut self,
        now_ms: u64,
        id: &str,
        (producer_id, epoch): (i64, i16),
        commit: bool,
        version: TxnVersion,
        fresh_producer_id: Option<i64>,
        fx: &mut TxnEffects,
    ) -> Result<Ended, E> {
        if id.is_empty() {
            return Err(E::InvalidRequest);
        }
        let v = self
            .txns
            .get(id)
            .ok_or(E::InvalidProducerIdMapping)?
            .clone();
        // A retry of a version-2 EndTxn that went through: the producer still has the epoch
        // before the bump, or the id before the rotation.
        let retry_bumped = v.epoch_bump
            && producer_id == v.producer_id
            && i32::from(v.producer_epoch) == i32::from(epoch) + 1;
        let retry_rotated = v.epoch_bump
            && producer_id == v.prev_producer_id
            && epoch == i16::MAX - 1
            && v.producer_epoch == 0;
        let retry = retry_bumped || retry_rotated;
        if producer_id != v.producer_id && !retry_rotated {
            return Err(E::InvalidProducerIdMapping);
        }
        let current = epoch == v.producer_epoch;
        let valid = match v.state {
            TxnState::Empty | TxnState::Ongoing => current,
            TxnState::PrepareCommit | TxnState::PrepareAbort if v.epoch_bump => retry,
            TxnState::PrepareCommit | TxnState::PrepareAbort => current,
            TxnState::CompleteCommit | TxnState::CompleteAbort => retry || current,
        };
        if !valid {
            return Err(E::ProducerFenced);
        }
        let answer = |v: &TxnValue, markers| {
            let (producer_id, producer_epoch) = going_on(v);
            Ok(Ended {
                markers,
                producer_id,
                producer_epoch,
            })
        };
        match v.state {
            TxnState::Ongoing => {
                let mut next = Self::bumped(&v, version, fresh_producer_id)?;
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.update_ms = now_ms;
                self.put(fx, id, Some(next.clone()));
                answer(&next, Some(self.send_markers(now_ms, id)))
            }
            s if s.is_prepared() && decided(s) == Some(commit) => Err(E::ConcurrentTransactions),
            s if decided(s) == Some(commit) && (retry || version == TxnVersion::V1) => {
                answer(&v, None)
            }
            // Version 2: a producer that cannot tell whether its writes reached the
            // coordinator may abort a transaction that never began. Nothing to mark; the
            // epoch is bumped all the same.
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                if !commit && !retry && version == TxnVersion::V2 =>
            {
                let mut next = Self::bumped(&v, version, fresh_producer_id)?;
                next.state = TxnState::CompleteAbort;
                next.partitions.clear();
                next.update_ms = now_ms;
                Self::rotate(&mut next);
                self.put(fx, id, Some(next.clone()));
                answer(&next, None)
            }
            _ => Err(E::InvalidTxnState),
        }
    }

    /// `v` at the epoch its EndTxn leaves it: one more in version 2 (invariant 2 when
    /// exhausted), the same in version 1. A fence may have left the epoch at the maximum
    /// already: the markers stay at it and the id rotates all the same.
    fn bumped(
        v: &TxnValue,
        version: TxnVersion,
        fresh_producer_id: Option<i64>,
    ) -> Result<TxnValue, E> {
        let mut next = v.clone();
        next.epoch_bump = version == TxnVersion::V2;
        if version == TxnVersion::V1 {
            return Ok(next);
        }
        if is_epoch_exhausted(v.producer_epoch) {
            // The caller brings one whenever the request's epoch, which is `v`'s, is exhausted.
            next.next_producer_id = fresh_producer_id.ok_or(E::UnknownServerError)?;
        }
        next.last_producer_epoch = v.producer_epoch;
        next.producer_epoch = v.producer_epoch.saturating_add(1);
        Ok(next)
    }

    /// The producer id rotates once the transaction that ran out of epochs is complete.
    fn rotate(next: &mut TxnValue) {
        if next.next_producer_id != NO_PRODUCER_ID {
            next.prev_producer_id = next.producer_id;
            next.producer_id = next.next_producer_id;
            next.next_producer_id = NO_PRODUCER_ID;
            next.producer_epoch = 0;
            next.last_producer_epoch = NO_EPOCH;
        }
    }

    /// Every marker of `job` is written: the transaction is complete.
    pub fn complete(&mut self, now_ms: u64, job: &MarkerJob) -> TxnEffects {
        let mut fx = TxnEffects::default();
        let Some(v) = self.txns.get(&job.transactional_id) else {
            return fx;
        };
        let expected = if job.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if v.state != expected
            || v.producer_id != job.producer_id
            || v.producer_epoch != job.producer_epoch
        {
            // Already completed by an earlier run of the same markers.
            return fx;
        }
        let mut next = v.clone();
        next.state = if job.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        next.partitions.clear();
        next.update_ms = now_ms;
        Self::rotate(&mut next);
        self.put(&mut fx, &job.transactional_id, Some(next));
        fx
    }
}
