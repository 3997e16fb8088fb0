//! Idempotent producers at run time: producer ids handed out from blocks that the metadata
//! log allocates, and each partition's producer state, rebuilt from its log on first use.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use strata_meta::controller::Command;
use strata_meta::{MetadataRecord, StreamId};
use strata_protocol::batch::{marker_outcome, stored_batches};
use strata_storage::{Engine, StorageError};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::producer_state::{AbortedTxn, ProducerStates};
use crate::{errors, Broker};

/// Bytes read at a time while rebuilding a partition's producer state.
const LOAD_READ_BYTES: usize = 8 << 20;

/// A partition's producer state; `None` until loaded. Held across a check and its append.
pub type PartitionProducers = OwnedMutexGuard<Option<ProducerStates>>;

/// How often a partition's idle producers are looked for.
const EXPIRY_CHECK_MS: i64 = 60_000;

pub struct Producers {
    /// `producer.id.expiration.ms`
    expiration_ms: i64,
    /// The unused part of this broker's block of producer ids: `[next, end)`.
    ids: AsyncMutex<(i64, i64)>,
    partitions: Mutex<HashMap<StreamId, Arc<AsyncMutex<Option<ProducerStates>>>>>,
}

impl Producers {
    pub fn new(expiration_ms: i64) -> Producers {
        assert!(expiration_ms > 0);
        Producers {
            expiration_ms,
            ids: AsyncMutex::new((0, 0)),
            partitions: Mutex::new(HashMap::new()),
        }
    }

    /// A producer id never handed out before, by any broker.
    pub async fn next_id(&self, broker: &Broker) -> Result<i64, (i16, String)> {
        let mut ids = self.ids.lock().await;
        if ids.0 >= ids.1 {
            let node_id = broker.config.node_id;
            let records = broker
                .meta
                .submit(Command::AllocateProducerIds { node_id })
                .await
                .map_err(|e| (errors::submit(&e), e.to_string()))?;
            let block = records.iter().find_map(|r| match r {
                MetadataRecord::ProducerIds {
                    first_id, count, ..
                } => Some((*first_id, first_id + count)),
                _ => None,
            });
            *ids = block.expect("an allocation writes a ProducerIds record");
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Locks a partition's producer state, loading it from the partition's log if this is the
    /// first time. Every append of a producer's batch holds this lock (invariant 1 of
    /// [`crate::producer_state`]).
    pub async fn lock(
        &self,
        engine: &Engine,
        stream_id: StreamId,
    ) -> Result<PartitionProducers, StorageError> {
        let cell = self.partitions.lock().entry(stream_id).or_default().clone();
        let mut guard = cell.lock_owned().await;
        if guard.is_none() {
            *guard = Some(load(engine, stream_id).await?);
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let states = guard.as_mut().expect("loaded above");
        let start_offset = engine.offsets(stream_id).map_or(0, |o| o.start_offset);
        let expired = states.expire(
            now_ms,
            self.expiration_ms,
            EXPIRY_CHECK_MS.min(self.expiration_ms),
            start_offset,
        );
        if expired > 0 {
            tracing::debug!(stream_id, expired, "expired idle producers");
        }
        Ok(guard)
    }

    /// What a fetch needs of the partition's transactions: the last stable offset, and for
    /// read_committed the aborted transactions that end at or after `from`. A read_committed
    /// fetch loads the state if need be; a read_uncommitted one uses it only if it is loaded
    /// and free, and otherwise reports the high watermark.
    pub async fn stable_view(
        &self,
        engine: &Engine,
        stream_id: StreamId,
        high_watermark: i64,
        committed: bool,
        from: i64,
    ) -> Result<(i64, Vec<AbortedTxn>), StorageError> {
        // Retention may pass an open transaction's first batch: never below the log start.
        let start_offset = engine.offsets(stream_id)?.start_offset;
        if committed {
            let guard = self.lock(engine, stream_id).await?;
            let states = guard.as_ref().expect("loaded by lock");
            return Ok((
                states.last_stable_offset(high_watermark).max(start_offset),
                states.aborted_between(from, i64::MAX),
            ));
        }
        let cell = self.partitions.lock().get(&stream_id).cloned();
        let lso = cell
            .and_then(|c| {
                c.try_lock()
                    .ok()
                    .and_then(|g| g.as_ref().map(|s| s.last_stable_offset(high_watermark)))
            })
            .unwrap_or(high_watermark)
            .max(start_offset);
        Ok((lso, Vec::new()))
    }

    /// Forgets a deleted partition's state.
    pub fn forget(&self, stream_id: StreamId) {
        self.partitions.lock().remove(&stream_id);
    }
}

/// Replays every batch of the stream into a fresh state (invariant 3).
async fn load(engine: &Engine, stream_id: StreamId) -> Result<ProducerStates, StorageError> {
    let mut states = ProducerStates::default();
    let mut offset = engine.offsets(stream_id)?.start_offset;
    let mut batches = 0usize;
    loop {
        let read = engine.read(stream_id, offset, LOAD_READ_BYTES).await?;
        let before = offset;
        for chunk in &read.batches {
            for (h, range) in stored_batches(chunk) {
                if h.is_control() {
                    if let Some(commit) = marker_outcome(&chunk[range]) {
                        states.record_marker(
                            h.producer_id,
                            h.producer_epoch,
                            commit,
                            h.base_offset,
                            h.max_timestamp,
                        );
                    }
                } else {
                    states.record(&h, h.base_offset);
                }
                offset = offset.max(h.last_offset() + 1);
                batches += 1;
            }
        }
        if offset >= read.durable_end || offset == before {
            break;
        }
    }
    tracing::debug!(
        stream_id,
        batches,
        producers = states.len(),
        "loaded producer state"
    );
    Ok(states)
}
