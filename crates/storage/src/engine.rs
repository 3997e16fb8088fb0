//! The storage engine: streams on a WAL, a log cache and an object store. Appends become durable
//! in the WAL and visible in the cache; the uploader moves them into objects; reads come from
//! the cache when hot and through the block cache when cold.
//!
//! Invariants:
//! 1. An acknowledged append is in the WAL or in a committed object, always.
//! 2. Within a stream, offsets are dense and increasing; cache entries are contiguous and end
//!    at `next_offset`; nothing at or past `durable_end` is ever returned by a read.
//! 3. The WAL is trimmed only below the first entry not yet in a committed object.
//! 4. Writes name the stream's epoch; once the controller has a newer one, commits are refused
//!    and the stream is fenced here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStore;
use parking_lot::RwLock;
use strata_meta::liveness::Lease;
use strata_meta::{Command, NodeId, StreamId};
use tokio::sync::Notify;

use crate::error::{Result, StorageError};
use crate::metadata::MetadataClient;
use crate::object::block_cache::{BlockCache, BlockCacheConfig};
use crate::payload;
use crate::stream::{Entry, Stream, StreamOffsets};
use crate::wal::{Lsn, Wal, WalRecord};

/// How long a shutdown tries to upload what is in the WAL.
const SHUTDOWN_UPLOAD_S: u64 = 10;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub node_id: NodeId,
    /// A limit on the log cache; past it appends wait for an upload.
    pub log_cache_bytes_max: usize,
    /// Upload at least this often while there is data...
    pub upload_interval_ms: u64,
    /// ...or as soon as this much is waiting.
    pub upload_bytes: usize,
    /// A stream with at least this much data in one upload gets its own object.
    pub stream_object_bytes_min: usize,
    /// Index granularity inside an object: a cold read fetches about this much to find an offset.
    pub object_chunk_bytes: usize,
    pub object_put_timeout_ms: u64,
    pub block_cache: BlockCacheConfig,
    /// Objects nobody references are deleted this long after they were marked.
    pub object_gc_grace_ms: u64,
    pub gc_interval_ms: u64,
    /// How long an append waits for room in the log cache before failing as busy.
    pub append_wait_ms_max: u64,
    /// The lease this node writes under: nothing is acknowledged once it has run out.
    pub lease: Arc<Lease>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            node_id: 1,
            log_cache_bytes_max: 512 * 1024 * 1024,
            upload_interval_ms: 5_000,
            upload_bytes: 64 * 1024 * 1024,
            stream_object_bytes_min: 16 * 1024 * 1024,
            object_chunk_bytes: 512 * 1024,
            object_put_timeout_ms: 30_000,
            block_cache: BlockCacheConfig {
                block_bytes: 1024 * 1024,
                cache_bytes_max: 256 * 1024 * 1024,
                inflight_bytes_max: 64 * 1024 * 1024,
                readahead_blocks_max: 16,
                get_timeout_ms: 30_000,
            },
            object_gc_grace_ms: 60_000,
            gc_interval_ms: 30_000,
            append_wait_ms_max: 30_000,
            lease: Arc::new(Lease::unlimited()),
        }
    }
}

pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) wal: Arc<dyn Wal>,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) meta: Arc<dyn MetadataClient>,
    pub(crate) blocks: Arc<BlockCache>,
    pub(crate) streams: RwLock<HashMap<StreamId, Arc<Stream>>>,
    /// Bytes in the log cache, and of those, bytes not yet in committed objects.
    pub(crate) cache_bytes: AtomicUsize,
    pub(crate) pending_bytes: Arc<AtomicUsize>,
    /// Signalled when an upload frees room in the cache.
    pub(crate) room: Notify,
    /// Signalled when an upload should start now.
    pub(crate) upload_now: Arc<Notify>,
    /// Serializes uploads: object commits are strictly ordered.
    pub(crate) upload_lock: tokio::sync::Mutex<()>,
    /// Set once a WAL write failed: nothing more is acknowledged until a restart recovers.
    pub(crate) failed: Arc<AtomicBool>,
    /// Signalled when a hand-over ends, handed over or not.
    pub(crate) handed_over: Notify,
}

/// An append that has its offsets and is on its way into the WAL.
pub struct Appended {
    stream_id: StreamId,
    base_offset: i64,
    advance: tokio::task::JoinHandle<Result<(), crate::wal::WalError>>,
    lease: Arc<Lease>,
}

impl Appended {
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Resolves with the base offset once the batch is durable, if this node's lease still
    /// holds: a broker that may have been fenced acknowledges nothing (it may be durable all the
    /// same, and then a rescuer finds it; the client's retry is deduplicated or repeated).
    pub async fn durable(self) -> Result<i64> {
        match self.advance.await {
            Ok(Ok(())) if !self.lease.valid() => Err(StorageError::Fenced {
                stream_id: self.stream_id,
            }),
            Ok(Ok(())) => Ok(self.base_offset),
            Ok(Err(e)) => Err(StorageError::Failed(e.to_string())),
            Err(e) => Err(StorageError::Failed(e.to_string())),
        }
    }
}

/// What a read returns: whole batches, and the stream's offsets at the time.
#[derive(Debug, Default)]
pub struct ReadResult {
    pub batches: Vec<Bytes>,
    pub bytes: usize,
    pub start_offset: i64,
    pub durable_end: i64,
}

impl Engine {
    /// Opens the engine: every stream this node owns is loaded from the image, the WAL's records
    /// are replayed into the cache past each stream's committed end, and each stream is reopened
    /// with a new epoch so that any older writer is fenced.
    pub async fn open(
        config: EngineConfig,
        wal: Arc<dyn Wal>,
        recovered: Vec<(Lsn, WalRecord)>,
        store: Arc<dyn ObjectStore>,
        meta: Arc<dyn MetadataClient>,
        cold: tokio::runtime::Handle,
    ) -> Result<Arc<Engine>> {
        let blocks = BlockCache::new(store.clone(), config.block_cache.clone(), cold);
        let engine = Arc::new(Engine {
            config,
            wal,
            store,
            meta,
            blocks,
            streams: RwLock::new(HashMap::new()),
            cache_bytes: AtomicUsize::new(0),
            pending_bytes: Arc::new(AtomicUsize::new(0)),
            room: Notify::new(),
            upload_now: Arc::new(Notify::new()),
            upload_lock: tokio::sync::Mutex::new(()),
            failed: Arc::new(AtomicBool::new(false)),
            handed_over: Notify::new(),
        });
        let owned: Vec<StreamId> = {
            let image = engine.meta.image().read();
            image
                .streams
                .values()
                // Streams handed back to it after a fence are its own to replay.
                .filter(|s| {
                    s.owner == engine.config.node_id
                        && s.rescue_from.is_none_or(|from| from == s.owner)
                })
                .map(|s| s.stream_id)
                .collect()
        };
        for id in &owned {
            engine.load_stream(*id);
        }
        engine.replay(recovered);
        engine.reopen(&owned).await?;
        Ok(engine)
    }

    /// The stream's state, made from the image if this node holds none yet. Never replaces a
    /// stream already held: two callers racing to open it get the same one.
    fn load_stream(&self, id: StreamId) -> Option<Arc<Stream>> {
        let image = self.meta.image().read();
        let s = image.streams.get(&id)?;
        let stream = self
            .streams
            .write()
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Stream::new(
                    id,
                    s.epoch,
                    s.start_offset,
                    s.committed_end_offset,
                ))
            })
            .clone();
        Some(stream)
    }

    fn replay(&self, recovered: Vec<(Lsn, WalRecord)>) {
        let streams = self.streams.read();
        let mut replayed = 0usize;
        for (lsn, record) in recovered {
            let Some(stream) = streams.get(&record.stream_id) else {
                continue; // the stream was deleted
            };
            let mut s = stream.state.lock();
            let end = record.base_offset + record.offset_count as i64;
            if end <= s.next_offset {
                continue; // already in a committed object
            }
            if record.base_offset != s.next_offset {
                tracing::error!(
                    stream = record.stream_id,
                    at = record.base_offset,
                    expected = s.next_offset,
                    "WAL replay found a gap; stopping replay of this stream"
                );
                s.fenced = true;
                continue;
            }
            self.account(record.payload.len() as isize);
            s.entries.push_back(Entry {
                base_offset: record.base_offset,
                end_offset: end,
                max_timestamp_ms: record.max_timestamp_ms,
                lsn,
                bytes: record.payload,
                uploaded: false,
            });
            s.next_offset = end;
            s.durable_end = end;
            stream.durable.send_replace(end);
            replayed += 1;
        }
        tracing::info!(records = replayed, "replayed the WAL into the log cache");
    }

    /// Opens the streams with their next epochs at their current ends, in one metadata write.
    async fn reopen(&self, ids: &[StreamId]) -> Result<()> {
        let streams: Vec<Arc<Stream>> = ids.iter().filter_map(|id| self.stream(*id)).collect();
        if streams.is_empty() {
            return Ok(());
        }
        let command = Command::OpenStreams {
            owner: self.config.node_id,
            streams: streams
                .iter()
                .map(|s| (s.id, s.state.lock().next_offset))
                .collect(),
        };
        let records = self
            .meta
            .submit(command)
            .await
            .map_err(|e| StorageError::Failed(e.to_string()))?;
        for (stream, record) in streams.iter().zip(records) {
            if let strata_meta::MetadataRecord::StreamOpened { epoch, .. } = record {
                stream.state.lock().epoch = epoch;
            }
        }
        Ok(())
    }

    /// The stream, loading it from the image if this node owns it and has not opened it yet.
    /// `None` once the image says another node owns it, or while it is being rescued. A stream
    /// taken away by a fence stays held here: its entries keep holding back the WAL trim, so
    /// the rescuer still finds them (only a hand-over, after committing everything, or a
    /// deletion forgets a stream).
    pub fn stream(&self, id: StreamId) -> Option<Arc<Stream>> {
        let owned = {
            let image = self.meta.image().read();
            image
                .streams
                .get(&id)
                .is_some_and(|s| s.owner == self.config.node_id && s.rescue_from.is_none())
        };
        if !owned {
            return None;
        }
        if let Some(s) = self.streams.read().get(&id) {
            return Some(s.clone());
        }
        self.load_stream(id)
    }

    /// Forgets a deleted stream: its cached bytes no longer hold back the WAL trim.
    pub fn remove_stream(&self, id: StreamId) {
        if let Some(stream) = self.streams.write().remove(&id) {
            let mut s = stream.state.lock();
            s.fenced = true;
            let total: usize = s.entries.iter().map(|e| e.bytes.len()).sum();
            let pending: usize = s
                .entries
                .iter()
                .filter(|e| !e.uploaded)
                .map(|e| e.bytes.len())
                .sum();
            // Cleared under the lock, so an upload in flight finds nothing left to account.
            s.entries.clear();
            self.cache_bytes.fetch_sub(total, Ordering::AcqRel);
            self.pending_bytes.fetch_sub(pending, Ordering::AcqRel);
            self.room.notify_waiters();
        }
    }

    fn account(&self, bytes: isize) {
        if bytes >= 0 {
            self.cache_bytes.fetch_add(bytes as usize, Ordering::AcqRel);
            self.pending_bytes
                .fetch_add(bytes as usize, Ordering::AcqRel);
        }
        metrics::gauge!("strata_log_cache_bytes")
            .set(self.cache_bytes.load(Ordering::Relaxed) as f64);
    }

    /// Whether this node may acknowledge writes now (its lease holds).
    pub fn lease_valid(&self) -> bool {
        self.config.lease.valid()
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Appends one batch of `offset_count` offsets. `build` receives the base offset and returns
    /// the payload (the caller stamps offsets into it). Resolves with the base offset once the
    /// batch is durable.
    pub async fn append(
        &self,
        stream_id: StreamId,
        offset_count: u32,
        max_timestamp_ms: i64,
        build: impl FnOnce(i64, u64) -> Bytes,
    ) -> Result<i64> {
        self.wait_for_room().await?;
        self.sequence(stream_id, offset_count, max_timestamp_ms, build)?
            .durable()
            .await
    }

    /// The first half of an append, which never waits: assigns offsets and queues the batch in
    /// the WAL. Calls made in some order get offsets in that order; the returned [`Appended`]
    /// resolves once the batch is durable. Callers wait for room in the cache first
    /// ([`Engine::wait_for_room`]).
    pub fn sequence(
        &self,
        stream_id: StreamId,
        offset_count: u32,
        max_timestamp_ms: i64,
        build: impl FnOnce(i64, u64) -> Bytes,
    ) -> Result<Appended> {
        assert!(offset_count > 0, "a batch takes at least one offset");
        let stream = self
            .stream(stream_id)
            .ok_or(StorageError::UnknownStream(stream_id))?;
        let (base_offset, durable) = {
            let mut s = stream.state.lock();
            if s.fenced || s.closing {
                return Err(StorageError::Fenced { stream_id });
            }
            let base_offset = s.next_offset;
            let payload = build(base_offset, s.epoch);
            let record = WalRecord {
                stream_id,
                epoch: s.epoch,
                base_offset,
                offset_count,
                max_timestamp_ms,
                payload: payload.clone(),
            };
            let (lsn, durable) = self.wal.append(record).map_err(|e| {
                self.failed.store(true, Ordering::Release);
                StorageError::Failed(e.to_string())
            })?;
            let end_offset = base_offset + offset_count as i64;
            self.account(payload.len() as isize);
            s.entries.push_back(Entry {
                base_offset,
                end_offset,
                max_timestamp_ms,
                lsn,
                bytes: payload,
                uploaded: false,
            });
            s.next_offset = end_offset;
            (base_offset, durable)
        };
        if self.pending_bytes.load(Ordering::Acquire) >= self.config.upload_bytes {
            self.upload_now.notify_one();
        }
        let end_offset = base_offset + offset_count as i64;
        // Durability is tracked by a task of its own so that a producer that disconnects
        // mid-append cannot leave durable data invisible.
        let failed = self.failed.clone();
        let (pending, upload_now) = (self.pending_bytes.clone(), self.upload_now.clone());
        let full = self.config.log_cache_bytes_max;
        let advance = tokio::spawn(async move {
            let result = durable.await.unwrap_or(Err(crate::wal::WalError::Closed));
            if result.is_err() {
                failed.store(true, Ordering::Release);
            } else {
                let mut s = stream.state.lock();
                if end_offset > s.durable_end {
                    s.durable_end = end_offset;
                    stream.durable.send_replace(end_offset);
                }
                drop(s);
                // Only durable data can be uploaded: a full cache that found nothing to upload
                // when it asked is asked again now that there is.
                if pending.load(Ordering::Acquire) >= full {
                    upload_now.notify_one();
                }
            }
            result
        });
        Ok(Appended {
            stream_id,
            base_offset,
            advance,
            lease: self.config.lease.clone(),
        })
    }

    /// Waits until the log cache has room for more appends (backpressure), or fails as busy.
    pub async fn wait_for_room(&self) -> Result<()> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.append_wait_ms_max);
        loop {
            // Registered before the check, so an upload finishing in between still wakes us.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.pending_bytes.load(Ordering::Acquire) < self.config.log_cache_bytes_max {
                return Ok(());
            }
            metrics::counter!("strata_append_backpressure_total").increment(1);
            self.upload_now.notify_one();
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(StorageError::Busy(
                    "the log cache is full and uploads are behind".into(),
                ));
            }
        }
    }

    pub fn offsets(&self, stream_id: StreamId) -> Result<StreamOffsets> {
        Ok(self
            .stream(stream_id)
            .ok_or(StorageError::UnknownStream(stream_id))?
            .offsets())
    }

    /// Whole batches from `offset` on, up to about `bytes_max` (at least one batch when there is
    /// one), never past the durable end.
    pub async fn read(
        &self,
        stream_id: StreamId,
        offset: i64,
        bytes_max: usize,
    ) -> Result<ReadResult> {
        let stream = self
            .stream(stream_id)
            .ok_or(StorageError::UnknownStream(stream_id))?;
        let mut out = ReadResult::default();
        {
            let s = stream.state.lock();
            out.start_offset = s.start_offset;
            out.durable_end = s.durable_end;
            // Past the durable end but within what was appended: not yet readable, not an error.
            if offset < s.start_offset || offset > s.next_offset {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    start: s.start_offset,
                    end: s.durable_end,
                });
            }
            if offset >= s.durable_end {
                return Ok(out);
            }
            if s.entry_at(offset).is_some() {
                self.read_cached(&s, offset, bytes_max, &mut out);
                return Ok(out);
            }
        }
        metrics::counter!("strata_cold_reads_total").increment(1);
        let next = self
            .read_cold(stream_id, offset, bytes_max, &mut out)
            .await?;
        if let Some(next) = next {
            let s = stream.state.lock();
            if out.bytes < bytes_max && s.entry_at(next).is_some() {
                self.read_cached(&s, next, bytes_max, &mut out);
            }
        }
        Ok(out)
    }

    fn read_cached(
        &self,
        s: &crate::stream::StreamState,
        offset: i64,
        bytes_max: usize,
        out: &mut ReadResult,
    ) {
        let Some(first) = s.entry_at(offset) else {
            return;
        };
        for entry in s.entries.range(first..) {
            if entry.end_offset > s.durable_end {
                break;
            }
            if out.bytes > 0 && out.bytes + entry.bytes.len() > bytes_max {
                break;
            }
            out.bytes += entry.bytes.len();
            out.batches.push(entry.bytes.clone());
        }
    }

    /// Reads committed objects from `offset`; returns the offset after the last batch read when
    /// the objects ran out before `bytes_max` did.
    async fn read_cold(
        &self,
        stream_id: StreamId,
        offset: i64,
        bytes_max: usize,
        out: &mut ReadResult,
    ) -> Result<Option<i64>> {
        let ranges: Vec<(Arc<str>, u64, i64, i64, u64)> = {
            let image = self.meta.image().read();
            image
                .ranges_from(stream_id, offset)
                .into_iter()
                .filter_map(|(object_id, range)| {
                    let object = image.objects.get(&object_id)?;
                    Some((
                        Arc::from(object.key.as_str()),
                        object.size_bytes,
                        range.start_offset,
                        range.end_offset,
                        range.position + range.size_bytes,
                    ))
                })
                .collect()
        };
        let mut next = offset;
        for (key, size, start, end, range_end) in ranges {
            let index = self.blocks.index(&key, size).await?;
            let chunks = index.iter().filter(|c| {
                c.stream_id == stream_id && c.start_offset >= start && c.end_offset <= end
            });
            for chunk in chunks {
                if chunk.end_offset <= next {
                    continue;
                }
                let bytes = self
                    .blocks
                    .read(
                        &key,
                        size,
                        chunk.position,
                        chunk.position + chunk.size_bytes,
                        range_end,
                    )
                    .await?;
                let more =
                    payload::batches_from(bytes, next, bytes_max, &mut out.batches, &mut out.bytes);
                if !more {
                    return Ok(None);
                }
                next = chunk.end_offset;
            }
        }
        Ok(Some(next))
    }

    /// Moves the stream's start to `offset` (retention, DeleteRecords). Cached entries wholly
    /// below stay until uploaded and evicted; reads below the start are refused from now on.
    pub async fn trim(&self, stream_id: StreamId, offset: i64) -> Result<()> {
        let stream = self
            .stream(stream_id)
            .ok_or(StorageError::UnknownStream(stream_id))?;
        {
            let s = stream.state.lock();
            if offset > s.durable_end {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    start: s.start_offset,
                    end: s.durable_end,
                });
            }
            if offset <= s.start_offset {
                return Ok(());
            }
        }
        self.meta
            .submit(Command::TrimStream {
                stream_id,
                start_offset: offset,
            })
            .await
            .map_err(|e| StorageError::Failed(e.to_string()))?;
        let mut s = stream.state.lock();
        s.start_offset = s.start_offset.max(offset);
        Ok(())
    }

    /// Uploads what is cached (for a bounded time: without a metadata quorum it cannot
    /// commit), then closes the WAL. Appends after this fail.
    pub async fn shutdown(&self) {
        let upload = tokio::time::timeout(Duration::from_secs(SHUTDOWN_UPLOAD_S), self.upload());
        match upload.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "final upload failed; the WAL keeps the data for the next start"),
            Err(_) => tracing::warn!("final upload did not finish in {SHUTDOWN_UPLOAD_S} s; the WAL keeps the data for the next start"),
        }
        self.wal.close().await;
    }
}
