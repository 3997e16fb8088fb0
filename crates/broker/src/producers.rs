//! Idempotent producers at run time: producer ids handed out from blocks that the metadata
//! log allocates, and each partition's producer state, rebuilt on first use from its last
//! snapshot and the log after it, and snapshotted as producers write.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use strata_meta::controller::Command;
use strata_meta::{MetadataRecord, SharedImage, StreamId};
use strata_protocol::batch::{marker_outcome, stored_batches};
use strata_storage::{Engine, StorageError};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::producer_snapshot;
use crate::producer_state::{AbortedTxn, ProducerStates};
use crate::{errors, Broker};

/// Bytes read at a time while rebuilding a partition's producer state.
const LOAD_READ_BYTES: usize = 8 << 20;

/// Bytes asked for when reading the last snapshot (a larger one still comes whole).
const SNAPSHOT_READ_BYTES: usize = 1 << 20;

/// A partition's producer state; `None` until loaded. Held across a check and its append.
pub type PartitionProducers = OwnedMutexGuard<Option<ProducerStates>>;

/// How often a partition's idle producers are looked for.
const EXPIRY_CHECK_MS: i64 = 60_000;

pub struct Producers {
    /// `producer.id.expiration.ms`
    expiration_ms: i64,
    /// Bytes of producer batches between two snapshots of a partition's state.
    snapshot_interval_bytes: u64,
    image: SharedImage,
    /// The unused part of this broker's block of producer ids: `[next, end)`.
    ids: AsyncMutex<(i64, i64)>,
    partitions: Mutex<HashMap<StreamId, Arc<AsyncMutex<Option<ProducerStates>>>>>,
}

impl Producers {
    pub fn new(expiration_ms: i64, snapshot_interval_bytes: u64, image: SharedImage) -> Producers {
        assert!(expiration_ms > 0 && snapshot_interval_bytes > 0);
        Producers {
            expiration_ms,
            snapshot_interval_bytes,
            image,
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
        let epoch = engine.offsets(stream_id)?.epoch;
        if guard.as_ref().is_some_and(|s| s.loaded_epoch != epoch) {
            *guard = None;
        }
        if guard.is_none() {
            let state_stream = self.image.read().state_stream_of(stream_id);
            let mut states = load(engine, stream_id, state_stream).await?;
            states.loaded_epoch = epoch;
            *guard = Some(states);
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

    /// Snapshots a partition's state once enough has been written since the last snapshot.
    /// Called with the partition's producer lock held (invariant 1 of
    /// [`crate::producer_snapshot`]); does not wait for the snapshot to be durable.
    pub fn maybe_snapshot(
        &self,
        engine: &Arc<Engine>,
        stream_id: StreamId,
        states: &mut ProducerStates,
    ) {
        if states.bytes_since_snapshot < self.snapshot_interval_bytes {
            return;
        }
        states.bytes_since_snapshot = 0;
        let Some(state_stream) = self.image.read().state_stream_of(stream_id) else {
            return; // a partition created before state streams: always rebuilt from its log
        };
        let offset = match engine.offsets(stream_id) {
            Ok(o) => o.next_offset,
            Err(_) => return,
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // Serialized before the state stream's lock is taken; only the stamping is under it.
        let value = producer_snapshot::encode_value(states, offset);
        let appended = engine.sequence(state_stream, 1, now_ms, |base, epoch| {
            producer_snapshot::batch(value, base, epoch, now_ms)
        });
        let appended = match appended {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(stream_id, error = %e, "producer-state snapshot not written");
                return;
            }
        };
        let engine = engine.clone();
        tokio::spawn(async move {
            let base = appended.base_offset();
            // Invariant 3: the older snapshots go once this one is durable.
            let trimmed = match appended.durable().await {
                Ok(_) => engine.trim(state_stream, base).await,
                Err(e) => Err(e),
            };
            match trimmed {
                Ok(()) => tracing::debug!(stream_id, offset, "producer state snapshotted"),
                Err(e) => tracing::warn!(stream_id, error = %e, "producer-state snapshot failed"),
            }
        });
    }

    /// Forgets a deleted partition's state.
    pub fn forget(&self, stream_id: StreamId) {
        self.partitions.lock().remove(&stream_id);
    }
}

/// The newest snapshot in `state_stream` that the partition's log backs: the offset it covers
/// up to and the state. None when there is none or it cannot be used (the log is replayed
/// from its start instead).
async fn last_snapshot(
    engine: &Engine,
    stream_id: StreamId,
    state_stream: StreamId,
    log_end: i64,
) -> Option<(i64, ProducerStates)> {
    let o = engine.offsets(state_stream).ok()?;
    if o.durable_end <= o.start_offset {
        return None;
    }
    let read = match engine
        .read(state_stream, o.durable_end - 1, SNAPSHOT_READ_BYTES)
        .await
    {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(stream_id, error = %e, "producer-state snapshot unreadable");
            return None;
        }
    };
    let last = read
        .batches
        .iter()
        .flat_map(|chunk| stored_batches(chunk).map(move |(_, range)| chunk.slice(range)))
        .last()?;
    match producer_snapshot::decode(&last) {
        // Invariant 2 of the snapshots.
        Ok((offset, _)) if offset > log_end => {
            tracing::warn!(
                stream_id,
                offset,
                log_end,
                "producer-state snapshot past the log end"
            );
            None
        }
        Ok(snapshot) => Some(snapshot),
        Err(e) => {
            tracing::warn!(stream_id, error = e, "producer-state snapshot undecodable");
            None
        }
    }
}

/// Rebuilds a partition's state: its last snapshot, then every batch after it (invariant 3).
async fn load(
    engine: &Engine,
    stream_id: StreamId,
    state_stream: Option<StreamId>,
) -> Result<ProducerStates, StorageError> {
    let log = engine.offsets(stream_id)?;
    let snapshot = match state_stream {
        Some(s) => last_snapshot(engine, stream_id, s, log.next_offset).await,
        None => None,
    };
    let snapshot_offset = snapshot.as_ref().map(|(offset, _)| *offset);
    let (mut states, mut offset) = match snapshot {
        Some((offset, states)) => (states, offset.max(log.start_offset)),
        None => (ProducerStates::default(), log.start_offset),
    };
    let mut batches = 0usize;
    loop {
        let read = engine.read(stream_id, offset, LOAD_READ_BYTES).await?;
        let before = offset;
        for chunk in &read.batches {
            for (h, range) in stored_batches(chunk) {
                if h.is_control() {
                    if let Some((commit, coordinator_epoch)) = marker_outcome(&chunk[range]) {
                        states.record_marker(
                            h.producer_id,
                            h.producer_epoch,
                            coordinator_epoch,
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
    tracing::info!(
        stream_id,
        snapshot_offset,
        batches,
        producers = states.len(),
        "loaded producer state"
    );
    Ok(states)
}
