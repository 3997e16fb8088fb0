//! Cold reads: object ranges fetched in fixed-size blocks into a bounded cache, with read-ahead
//! that doubles while a reader stays sequential. Fetches run on their own runtime under their
//! own in-flight byte budget, so a consumer catching up on old data never slows producers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use object_store::{path::Path, ObjectStore, ObjectStoreExt};
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use super::format::{self, IndexEntry, FOOTER_BYTES};
use crate::error::{Result, StorageError};

#[derive(Clone, Debug)]
pub struct BlockCacheConfig {
    pub block_bytes: u64,
    pub cache_bytes_max: u64,
    /// A limit on bytes being fetched at once.
    pub inflight_bytes_max: u64,
    pub readahead_blocks_max: u64,
    pub get_timeout_ms: u64,
}

type BlockKey = (Arc<str>, u64);
/// A sequential reader: its object, and the end of its range there.
type ReaderKey = (Arc<str>, u64);

pub struct BlockCache {
    store: Arc<dyn ObjectStore>,
    config: BlockCacheConfig,
    blocks: Cache<BlockKey, Bytes>,
    indexes: Cache<Arc<str>, Arc<Vec<IndexEntry>>>,
    cold: Handle,
    inflight: Arc<Semaphore>,
    /// Per reader, named by its object and the end of its range there: the last block read
    /// and the current read-ahead window.
    readers: Mutex<HashMap<ReaderKey, (u64, u64)>>,
}

/// A limit on tracked sequential readers; past it the map is cleared.
const READERS_MAX: usize = 4096;

impl BlockCache {
    pub fn new(store: Arc<dyn ObjectStore>, config: BlockCacheConfig, cold: Handle) -> Arc<Self> {
        // LRU, not moka's default TinyLFU: cold reads are scans, each block read once or twice in
        // a row, and TinyLFU refuses to admit blocks seen once, so read-ahead was fetched again.
        let blocks = Cache::builder()
            .eviction_policy(EvictionPolicy::lru())
            .weigher(|_: &BlockKey, v: &Bytes| v.len().min(u32::MAX as usize) as u32)
            .max_capacity(config.cache_bytes_max)
            .build();
        let indexes = Cache::builder().max_capacity(16_384).build();
        let permits = (config.inflight_bytes_max / config.block_bytes).max(1) as usize;
        Arc::new(BlockCache {
            store,
            blocks,
            indexes,
            cold,
            inflight: Arc::new(Semaphore::new(permits)),
            readers: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// Bytes `[start, end)` of the object at `key`, which is `object_size` bytes long, read by a
    /// reader whose data in this object ends at `range_end`: read-ahead stops there. Streams
    /// share objects, so read-ahead past a stream's range would fetch other streams' data, which
    /// the cache evicts before anyone reads it when many consumers catch up at once.
    pub async fn read(
        self: &Arc<Self>,
        key: &Arc<str>,
        object_size: u64,
        start: u64,
        end: u64,
        range_end: u64,
    ) -> Result<Bytes> {
        assert!(start <= end && end <= object_size, "read past the object");
        if start == end {
            return Ok(Bytes::new());
        }
        let bb = self.config.block_bytes;
        let (first, last) = (start / bb, (end - 1) / bb);
        self.read_ahead(key, object_size, range_end.min(object_size), first, last);
        let mut parts = Vec::with_capacity((last - first + 1) as usize);
        for block in first..=last {
            parts.push(self.block(key, object_size, block).await?);
        }
        if parts.len() == 1 {
            let s = (start - first * bb) as usize;
            return Ok(parts[0].slice(s..s + (end - start) as usize));
        }
        let mut out = BytesMut::with_capacity((end - start) as usize);
        for (i, part) in parts.iter().enumerate() {
            let block_start = (first + i as u64) * bb;
            let s = start.saturating_sub(block_start) as usize;
            let e = ((end - block_start) as usize).min(part.len());
            out.extend_from_slice(&part[s..e]);
        }
        Ok(out.freeze())
    }

    /// The object's index, read once from its footer and cached.
    pub async fn index(
        self: &Arc<Self>,
        key: &Arc<str>,
        object_size: u64,
    ) -> Result<Arc<Vec<IndexEntry>>> {
        let this = self.clone();
        let k = key.clone();
        self.indexes
            .try_get_with(key.clone(), async move {
                let bad = |e: format::FormatError| StorageError::Failed(format!("object {k}: {e}"));
                if object_size < FOOTER_BYTES as u64 {
                    return Err(StorageError::Failed(format!("object {k} is too small")));
                }
                let footer_at = object_size - FOOTER_BYTES as u64;
                let footer = this
                    .read(&k, object_size, footer_at, object_size, object_size)
                    .await?;
                let (position, size, crc, count) = format::parse_footer(&footer).map_err(bad)?;
                let end = position
                    .checked_add(size as u64)
                    .filter(|e| *e <= object_size - FOOTER_BYTES as u64);
                let end = end.ok_or_else(|| bad(format::FormatError::Bounds))?;
                let index = this.read(&k, object_size, position, end, end).await?;
                Ok(Arc::new(
                    format::parse_index(&index, crc, count).map_err(bad)?,
                ))
            })
            .await
            .map_err(|e: Arc<StorageError>| StorageError::Failed(e.to_string()))
    }

    async fn block(
        self: &Arc<Self>,
        key: &Arc<str>,
        object_size: u64,
        block: u64,
    ) -> Result<Bytes> {
        let this = self.clone();
        let k = key.clone();
        self.blocks
            .try_get_with((key.clone(), block), async move {
                this.fetch(k, object_size, block).await
            })
            .await
            .map_err(|e: Arc<StorageError>| StorageError::Failed(e.to_string()))
    }

    async fn fetch(self: Arc<Self>, key: Arc<str>, object_size: u64, block: u64) -> Result<Bytes> {
        let bb = self.config.block_bytes;
        let range = block * bb..((block + 1) * bb).min(object_size);
        let permit = self
            .inflight
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let store = self.store.clone();
        let timeout = Duration::from_millis(self.config.get_timeout_ms);
        let task = self.cold.spawn(async move {
            let _permit = permit;
            let path = Path::from(key.as_ref());
            match tokio::time::timeout(timeout, store.get_range(&path, range)).await {
                Ok(result) => result.map_err(StorageError::from),
                Err(_) => Err(StorageError::Busy(format!(
                    "GET {path} timed out after {timeout:?}"
                ))),
            }
        });
        let bytes = task
            .await
            .map_err(|e| StorageError::Failed(e.to_string()))??;
        metrics::counter!("strata_block_cache_fetched_bytes_total").increment(bytes.len() as u64);
        Ok(bytes)
    }

    /// Grows the window while a reader stays sequential and prefetches past `last`, up to the
    /// block holding byte `limit - 1`.
    fn read_ahead(
        self: &Arc<Self>,
        key: &Arc<str>,
        object_size: u64,
        limit: u64,
        first: u64,
        last: u64,
    ) {
        let window = {
            let mut readers = self.readers.lock();
            if readers.len() >= READERS_MAX {
                readers.clear();
            }
            let state = readers.entry((key.clone(), limit)).or_insert((u64::MAX, 0));
            let sequential = state.0 != u64::MAX && (first == state.0 || first == state.0 + 1);
            let window = if sequential {
                (state.1 * 2).clamp(1, self.config.readahead_blocks_max)
            } else {
                0
            };
            *state = (last, window);
            window
        };
        let blocks_total = limit.div_ceil(self.config.block_bytes);
        for block in last + 1..(last + 1 + window).min(blocks_total) {
            let this = self.clone();
            let key = key.clone();
            self.cold.spawn(async move {
                let _ = this.block(&key, object_size, block).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{memory::InMemory, PutPayload};

    /// A cache of 1 KiB blocks over `store`.
    fn cache(
        store: Arc<dyn ObjectStore>,
        inflight_bytes_max: u64,
        readahead_blocks_max: u64,
    ) -> Arc<BlockCache> {
        let config = BlockCacheConfig {
            block_bytes: 1024,
            cache_bytes_max: 1 << 20,
            inflight_bytes_max,
            readahead_blocks_max,
            get_timeout_ms: 5_000,
        };
        BlockCache::new(store, config, Handle::current())
    }

    #[tokio::test]
    async fn reads_span_blocks_and_index_parses() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut builder = format::ObjectBuilder::default();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        builder.add_range(7, 0, 10, 0, &[Bytes::from(data.clone())]);
        let (chunks, entries) = builder.finish();
        let object = format::concat(&chunks);
        store
            .put(&Path::from("o1"), PutPayload::from(object.clone()))
            .await
            .unwrap();
        let cache = cache(store, 4096, 4);
        let key: Arc<str> = Arc::from("o1");
        let size = object.len() as u64;
        assert_eq!(
            cache.read(&key, size, 1000, 3100, size).await.unwrap(),
            Bytes::from(data[1000..3100].to_vec())
        );
        assert_eq!(
            cache.read(&key, size, 10, 20, size).await.unwrap(),
            Bytes::from(data[10..20].to_vec())
        );
        assert_eq!(*cache.index(&key, size).await.unwrap(), entries);
    }

    #[tokio::test]
    async fn read_ahead_stays_inside_the_readers_range() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut builder = format::ObjectBuilder::default();
        let a = builder
            .add_range(1, 0, 8, 0, &[Bytes::from(vec![1u8; 8192])])
            .clone();
        builder.add_range(2, 0, 8, 0, &[Bytes::from(vec![2u8; 8192])]);
        let (chunks, _) = builder.finish();
        let object = format::concat(&chunks);
        let size = object.len() as u64;
        store
            .put(&Path::from("o"), PutPayload::from(object))
            .await
            .unwrap();
        let cache = cache(store, 1 << 20, 16);
        let key: Arc<str> = Arc::from("o");
        let range_end = a.position + a.size_bytes;
        for block in 0..4 {
            let got = cache
                .read(&key, size, block * 1024, (block + 1) * 1024, range_end)
                .await
                .unwrap();
            assert_eq!(got, Bytes::from(vec![1u8; 1024]));
        }
        // Let the read-ahead tasks finish.
        tokio::time::sleep(Duration::from_millis(100)).await;
        cache.blocks.run_pending_tasks().await;
        let cached = |b: u64| cache.blocks.contains_key(&(key.clone(), b));
        assert!((4..8).all(cached), "the rest of range A was read ahead");
        assert!(!(8..16).any(cached), "nothing of range B was read ahead");
    }
}
