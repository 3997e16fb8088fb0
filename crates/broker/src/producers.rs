//! Idempotent producers at run time: producer ids handed out from blocks that the metadata
//! log allocates, and each partition's producer state, rebuilt from its log on first use.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use strata_meta::controller::Command;
use strata_meta::{MetadataRecord, StreamId};
use strata_protocol::batch::stored_batches;
use strata_storage::{Engine, StorageError};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::producer_state::ProducerStates;
use crate::{errors, Broker};

/// Bytes read at a time while rebuilding a partition's producer state.
const LOAD_READ_BYTES: usize = 8 << 20;

/// A partition's producer state; `None` until loaded. Held across a check and its append.
pub type PartitionProducers = OwnedMutexGuard<Option<ProducerStates>>;

#[derive(Default)]
pub struct Producers {
    /// The unused part of this broker's block of producer ids: `[next, end)`.
    ids: AsyncMutex<(i64, i64)>,
    partitions: Mutex<HashMap<StreamId, Arc<AsyncMutex<Option<ProducerStates>>>>>,
}

impl Producers {
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
        Ok(guard)
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
            for (h, _) in stored_batches(chunk) {
                states.record(&h, h.base_offset);
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
