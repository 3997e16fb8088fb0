//! The uploader: durable cache entries become objects. Each upload writes one multi-stream object
//! (streams with much data get their own), commits its metadata with the writer's epochs, marks
//! the entries uploaded, evicts old ones and trims the WAL — strictly in that order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::{path::Path, ObjectStoreExt, PutPayload};
use strata_meta::controller::SubmitError;
use strata_meta::image::ObjectState;
use strata_meta::{Command, ControllerError, MetadataRecord, StreamId, StreamRange};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::error::{Result, StorageError};
use crate::object::format::ObjectBuilder;
use crate::stream::Stream;

/// `(base offset, end offset, max timestamp, bytes)` of a cached entry being uploaded.
pub(crate) type UploadEntry = (i64, i64, i64, Bytes);

/// One stream's durable entries not yet in an object.
struct Run {
    stream: Arc<Stream>,
    epoch: u64,
    /// `(base, end, max timestamp, bytes)` per entry.
    entries: Vec<UploadEntry>,
    bytes: usize,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Lays out one object: each stream's entries as a range, indexed in chunks of about
/// `chunk_bytes` so a cold read fetches little to find an offset.
fn build_object(
    parts: Vec<(u64, u64, Vec<UploadEntry>)>,
    chunk_bytes: usize,
) -> (Vec<Bytes>, Vec<StreamRange>) {
    let mut builder = ObjectBuilder::default();
    let mut ranges = Vec::with_capacity(parts.len());
    for (stream_id, epoch, entries) in parts {
        let position = builder.data_bytes() as u64;
        let mut chunk: Vec<Bytes> = Vec::new();
        let mut chunk_start = entries[0].0;
        let mut chunk_size = 0;
        let mut chunk_max_ts = i64::MIN;
        for (i, (base, end, max_ts, bytes)) in entries.iter().enumerate() {
            if chunk.is_empty() {
                chunk_start = *base;
            }
            chunk.push(bytes.clone());
            chunk_size += bytes.len();
            chunk_max_ts = chunk_max_ts.max(*max_ts);
            if chunk_size >= chunk_bytes || i + 1 == entries.len() {
                builder.add_range(stream_id, chunk_start, *end, chunk_max_ts, &chunk);
                chunk.clear();
                chunk_size = 0;
                chunk_max_ts = i64::MIN;
            }
        }
        ranges.push(StreamRange {
            stream_id,
            epoch,
            start_offset: entries[0].0,
            end_offset: entries.last().expect("non-empty run").1,
            max_timestamp_ms: entries.iter().map(|e| e.2).max().unwrap_or(-1),
            position,
            size_bytes: builder.data_bytes() as u64 - position,
        });
    }
    (builder.finish().0, ranges)
}

impl Engine {
    /// Uploads on a timer, or at once when the cache asks; stops when `stop` changes.
    pub async fn run_uploader(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.config.upload_interval_ms);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.upload_now.notified() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.upload().await {
                tracing::warn!(error = %e, "upload failed; the data stays in the WAL and is retried");
            }
        }
    }

    /// One upload round: everything durable and not yet uploaded, as of now.
    pub async fn upload(&self) -> Result<()> {
        let _serial = self.upload_lock.lock().await;
        // Read before looking at streams: any entry appended later has an LSN at or above it.
        let wal_next = self.wal.next_lsn();
        let runs = self.collect_runs(None);
        let (big, small): (Vec<Run>, Vec<Run>) = runs
            .into_iter()
            .partition(|r| r.bytes >= self.config.stream_object_bytes_min);
        let mut groups: Vec<Vec<Run>> = big.into_iter().map(|r| vec![r]).collect();
        if !small.is_empty() {
            groups.push(small);
        }
        for group in groups {
            self.upload_object(group).await?;
        }
        self.evict();
        // A broker that may have been fenced leaves its WAL whole for the rescuer.
        if !self.lease_valid() {
            return Ok(());
        }
        self.trim_wal(wal_next).await
    }

    /// Uploads what `ids` hold and nothing else, as one object (a hand-over waits for it).
    /// The WAL is trimmed by the next full round.
    pub async fn upload_streams(&self, ids: &[StreamId]) -> Result<()> {
        let _serial = self.upload_lock.lock().await;
        let runs = self.collect_runs(Some(ids));
        if runs.is_empty() {
            return Ok(());
        }
        self.upload_object(runs).await
    }

    /// Durable entries not yet in objects, per stream (of `only`, when given).
    fn collect_runs(&self, only: Option<&[StreamId]>) -> Vec<Run> {
        let streams: Vec<Arc<Stream>> = self
            .streams
            .read()
            .values()
            .filter(|s| only.is_none_or(|ids| ids.contains(&s.id)))
            .cloned()
            .collect();
        let mut runs = Vec::new();
        for stream in streams {
            let s = stream.state.lock();
            if s.fenced {
                continue;
            }
            let entries: Vec<_> = s
                .entries
                .iter()
                .filter(|e| !e.uploaded && e.end_offset <= s.durable_end)
                .map(|e| {
                    (
                        e.base_offset,
                        e.end_offset,
                        e.max_timestamp_ms,
                        e.bytes.clone(),
                    )
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            assert_eq!(
                entries[0].0, s.committed_end,
                "uploads continue the committed end"
            );
            let bytes = entries.iter().map(|e| e.3.len()).sum();
            let epoch = s.epoch;
            drop(s);
            runs.push(Run {
                stream,
                epoch,
                entries,
                bytes,
            });
        }
        runs
    }

    async fn upload_object(&self, runs: Vec<Run>) -> Result<()> {
        let parts: Vec<_> = runs
            .iter()
            .map(|r| (r.stream.id, r.epoch, r.entries.clone()))
            .collect();
        let ranges = match self.commit_object(parts).await {
            Ok(ranges) => ranges,
            Err(StorageError::Fenced { stream_id }) => {
                // A newer owner holds the stream; this broker must never write it again.
                if let Some(run) = runs.iter().find(|r| r.stream.id == stream_id) {
                    run.stream.state.lock().fenced = true;
                }
                return Err(StorageError::Fenced { stream_id });
            }
            Err(e) => return Err(e),
        };
        for (run, range) in runs.iter().zip(&ranges) {
            let mut s = run.stream.state.lock();
            let mut uploaded = 0;
            for e in s
                .entries
                .iter_mut()
                .filter(|e| !e.uploaded && e.end_offset <= range.end_offset)
            {
                e.uploaded = true;
                uploaded += e.bytes.len();
            }
            s.committed_end = range.end_offset;
            self.pending_bytes.fetch_sub(uploaded, Ordering::AcqRel);
        }
        self.room.notify_waiters();
        Ok(())
    }

    /// Writes `(stream, epoch, entries)` parts as one object and commits it: prepare, PUT,
    /// commit with the writers' epochs. Returns the committed ranges, in the parts' order.
    pub(crate) async fn commit_object(
        &self,
        parts: Vec<(u64, u64, Vec<UploadEntry>)>,
    ) -> Result<Vec<StreamRange>> {
        // Checksumming an upload's worth of data is CPU work: keep it off the threads that
        // serve requests.
        let chunk_bytes = self.config.object_chunk_bytes;
        let (chunks, ranges) =
            tokio::task::spawn_blocking(move || build_object(parts, chunk_bytes))
                .await
                .map_err(|e| StorageError::Failed(e.to_string()))?;
        let object: PutPayload = chunks.into_iter().collect();
        let size_bytes = object.content_length() as u64;

        let prepared = self
            .meta
            .submit(Command::PrepareObject {
                node_id: self.config.node_id,
                now_ms: now_ms(),
            })
            .await
            .map_err(|e| StorageError::Failed(e.to_string()))?;
        let Some(MetadataRecord::ObjectPrepared { object_id, key, .. }) =
            prepared.into_iter().next()
        else {
            return Err(StorageError::Failed("prepare returned no object".into()));
        };
        self.put_object(&key, object).await?;
        let commit = Command::CommitObject {
            object_id,
            size_bytes,
            ranges: ranges.clone(),
        };
        match self.meta.submit(commit).await {
            Ok(_) => {}
            Err(SubmitError::Controller(ControllerError::FencedEpoch { stream_id, .. })) => {
                return Err(StorageError::Fenced { stream_id });
            }
            Err(e) => {
                // The commit may have been applied even though the answer was lost.
                let committed = self
                    .meta
                    .image()
                    .read()
                    .objects
                    .get(&object_id)
                    .is_some_and(|o| o.state == ObjectState::Committed);
                if !committed {
                    return Err(StorageError::Failed(e.to_string()));
                }
            }
        }
        metrics::counter!("strata_objects_uploaded_total").increment(1);
        metrics::counter!("strata_objects_uploaded_bytes_total").increment(size_bytes);
        Ok(ranges)
    }

    async fn put_object(&self, key: &str, object: PutPayload) -> Result<()> {
        let path = Path::from(key);
        let timeout = Duration::from_millis(self.config.object_put_timeout_ms);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let put = self.store.put(&path, object.clone());
            let error = match tokio::time::timeout(timeout, put).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("timed out after {timeout:?}"),
            };
            if attempt >= 5 {
                return Err(StorageError::Failed(format!("PUT {key}: {error}")));
            }
            tracing::warn!(key, attempt, %error, "object PUT failed; retrying");
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }

    /// Evicts uploaded entries, oldest WAL position first, until the cache is at half its limit;
    /// the recent half stays for tail readers.
    fn evict(&self) {
        let target = self.config.log_cache_bytes_max / 2;
        if self.cache_bytes.load(Ordering::Acquire) <= target {
            return;
        }
        let streams: Vec<Arc<Stream>> = self.streams.read().values().cloned().collect();
        let front = |stream: &Stream| {
            let s = stream.state.lock();
            s.entries.front().filter(|e| e.uploaded).map(|e| e.lsn)
        };
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| front(s).map(|lsn| Reverse((lsn, i))))
            .collect();
        while self.cache_bytes.load(Ordering::Acquire) > target {
            let Some(Reverse((_, i))) = heap.pop() else {
                break;
            };
            let evicted = {
                let mut s = streams[i].state.lock();
                match s.entries.front() {
                    Some(e) if e.uploaded => s.entries.pop_front().map(|e| e.bytes.len()),
                    _ => None,
                }
            };
            if let Some(n) = evicted {
                self.cache_bytes.fetch_sub(n, Ordering::AcqRel);
            }
            if let Some(lsn) = front(&streams[i]) {
                heap.push(Reverse((lsn, i)));
            }
        }
        metrics::gauge!("strata_log_cache_bytes")
            .set(self.cache_bytes.load(Ordering::Relaxed) as f64);
    }

    /// Trims the WAL below the first entry that is not in a committed object.
    async fn trim_wal(&self, wal_next: u64) -> Result<()> {
        let streams: Vec<Arc<Stream>> = self.streams.read().values().cloned().collect();
        let mut trim_to = wal_next;
        for stream in streams {
            let s = stream.state.lock();
            if let Some(e) = s.entries.iter().find(|e| !e.uploaded) {
                trim_to = trim_to.min(e.lsn);
            }
        }
        self.wal
            .trim(trim_to)
            .await
            .map_err(|e| StorageError::Failed(e.to_string()))
    }
}
