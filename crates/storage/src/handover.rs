//! Hand-over: this broker gives up streams that are being reassigned (DESIGN.md §4). It stops
//! appends to them, waits for what it appended to be durable, commits it all to objects, and
//! asks the controller to open the streams for their target. No older data moves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_meta::{Command, StreamId};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::error::{Result, StorageError};
use crate::stream::Stream;

/// How often the image is checked for streams to hand over.
const HANDOVER_POLL_MS: u64 = 10;
/// A limit on waiting for in-flight appends to become durable.
const DURABLE_WAIT_MS_MAX: u64 = 10_000;
/// A limit on holding an append while its stream is handed over.
const HOLD_MS_MAX: u64 = 2_000;

impl Engine {
    /// Hands over whatever the controller moves away from this broker, until `stop` changes.
    pub async fn run_handovers(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(HANDOVER_POLL_MS)) => {}
                _ = stop.changed() => return,
            }
            let moving = self.moving();
            if moving.is_empty() {
                continue;
            }
            let started = Instant::now();
            match self.hand_over(&moving).await {
                Ok(()) => tracing::info!(
                    streams = moving.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "handed over reassigned streams"
                ),
                Err(e) => tracing::warn!(error = %e, "hand-over failed; retrying"),
            }
        }
    }

    /// Waits while `stream_id` is being handed over (at most [`HOLD_MS_MAX`]). A produce that
    /// races a reassignment is then refused once the new leader is in the metadata, so its
    /// client finds it on its first refresh instead of backing off against this broker again.
    /// Returns false when, after waiting, the stream is no longer this broker's; the common
    /// case (no hand-over) costs one look at the stream and returns true.
    pub async fn wait_while_closing(&self, stream_id: StreamId) -> bool {
        let closing = || {
            self.streams
                .read()
                .get(&stream_id)
                .is_some_and(|s| s.state.lock().closing)
        };
        if !closing() {
            return true;
        }
        let deadline = Instant::now() + Duration::from_millis(HOLD_MS_MAX);
        loop {
            // Registered before the check, so that an end of hand-over in between is not missed.
            let ended = self.handed_over.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !closing() {
                break;
            }
            if tokio::time::timeout_at(deadline.into(), ended)
                .await
                .is_err()
            {
                break;
            }
        }
        self.stream(stream_id).is_some()
    }

    /// Streams this broker owns that are moving elsewhere.
    fn moving(&self) -> Vec<StreamId> {
        let image = self.meta.image().read();
        image
            .streams
            .values()
            .filter(|s| s.owner == self.config.node_id && s.moving_to.is_some())
            .map(|s| s.stream_id)
            .collect()
    }

    async fn hand_over(&self, ids: &[StreamId]) -> Result<()> {
        // Every moving stream is loaded (not only those already in use), so that a produce
        // racing the hand-over finds the same handle and its `closing` flag.
        let streams: Vec<Arc<Stream>> = ids.iter().filter_map(|id| self.stream(*id)).collect();
        for stream in &streams {
            stream.state.lock().closing = true;
        }
        self.wal.flush();
        let result = self.commit_and_hand_over(ids, &streams).await;
        // Whatever happened, streams this broker still owns serve again; those it no longer
        // owns (handed over, even if the answer was lost) are forgotten.
        let owned: Vec<bool> = {
            let image = self.meta.image().read();
            streams
                .iter()
                .map(|s| {
                    image
                        .streams
                        .get(&s.id)
                        .is_some_and(|i| i.owner == self.config.node_id)
                })
                .collect()
        };
        for (stream, owned) in streams.iter().zip(owned) {
            if owned {
                stream.state.lock().closing = false;
            } else {
                self.remove_stream(stream.id);
            }
        }
        self.handed_over.notify_waiters();
        result
    }

    async fn commit_and_hand_over(&self, ids: &[StreamId], streams: &[Arc<Stream>]) -> Result<()> {
        // Appends already sequenced finish; their producers are answered as usual.
        let deadline = Instant::now() + Duration::from_millis(DURABLE_WAIT_MS_MAX);
        for stream in streams {
            let next = stream.state.lock().next_offset;
            let mut durable = stream.subscribe();
            let wait = durable.wait_for(|end| *end >= next);
            if tokio::time::timeout_at(deadline.into(), wait)
                .await
                .is_err()
            {
                return Err(StorageError::Busy(format!(
                    "stream {} did not become durable for its hand-over",
                    stream.id
                )));
            }
        }
        self.upload_streams(ids).await?;
        for stream in streams {
            let s = stream.state.lock();
            if s.committed_end < s.next_offset {
                return Err(StorageError::Failed(format!(
                    "stream {} is not all in objects after the upload",
                    stream.id
                )));
            }
        }
        self.meta
            .submit(Command::HandOver {
                owner: self.config.node_id,
                streams: ids.to_vec(),
            })
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Failed(e.to_string()))
    }
}
