//! Storage simulation: the engine on a file WAL and a fault-injecting object store, appended to,
//! uploaded, garbage-collected and "crashed" (dropped without shutdown, metadata quorum
//! included) many times. After every reopen every acknowledged batch must be readable exactly
//! once, in order, at its offset; and GC must leave only objects that something references.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use strata_meta::raft::Quorum;
use strata_meta::{Command, ControllerHandle, StreamId};
use strata_storage::wal::file::{FileWal, FileWalConfig};
use strata_storage::{Engine, EngineConfig, MetadataClient};

/// Fails every `fail_every`-th PUT; half of those failures happen after the object was written
/// (the reply was lost), the other half before.
#[derive(Debug)]
struct FaultyStore {
    inner: InMemory,
    puts: AtomicU64,
    fail_every: u64,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore")
    }
}

fn injected() -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: "injected fault".into(),
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(self.fail_every) {
            if n.is_multiple_of(2 * self.fail_every) {
                self.inner.put_opts(location, payload, opts).await?;
            }
            return Err(injected());
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A payload with Kafka v2 batch framing: the engine reads base offset, length, last offset
/// delta and max timestamp from it.
fn batch(count: u32, tag: u64, body_bytes: usize) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((61 - 12 + body_bytes) as i32);
    b.put_i32(0);
    b.put_u8(2);
    b.put_u32(0);
    b.put_i16(0);
    b.put_i32(count as i32 - 1);
    b.put_i64(tag as i64);
    b.put_i64(tag as i64);
    b.put_bytes(0, 61 - b.len());
    for i in 0..body_bytes {
        b.put_u8((tag as usize + i) as u8);
    }
    b.freeze()
}

fn stamped(payload: &Bytes, base: i64) -> Bytes {
    let mut b = BytesMut::from(&payload[..]);
    b[..8].copy_from_slice(&base.to_be_bytes());
    b.freeze()
}

struct Node {
    engine: Arc<Engine>,
    controller: Arc<ControllerHandle>,
}

async fn open(dir: &std::path::Path, store: Arc<dyn ObjectStore>) -> Node {
    let quorum = Quorum::open_single(&dir.join("meta"), 1).await.unwrap();
    let controller = ControllerHandle::new(quorum);
    let (wal, recovered) = FileWal::open(FileWalConfig {
        dir: dir.join("wal"),
        segment_bytes: 64 * 1024,
    })
    .unwrap();
    let config = EngineConfig {
        log_cache_bytes_max: 256 * 1024,
        upload_bytes: 1 << 40,
        stream_object_bytes_min: 16 * 1024,
        object_chunk_bytes: 2 * 1024,
        object_gc_grace_ms: 1_000,
        ..EngineConfig::default()
    };
    let meta: Arc<dyn MetadataClient> = controller.clone();
    let engine = Engine::open(
        config,
        Arc::new(wal),
        recovered,
        store,
        meta,
        tokio::runtime::Handle::current(),
    )
    .await
    .unwrap();
    Node { engine, controller }
}

/// Reads the whole stream and checks it against what was acknowledged.
async fn check(engine: &Engine, stream: StreamId, acked: &[(i64, Bytes)]) {
    let start = engine.offsets(stream).unwrap().start_offset;
    let expected: Vec<&(i64, Bytes)> = acked
        .iter()
        .filter(|(base, b)| base + count_of(b) > start)
        .collect();
    let mut got = Vec::new();
    let mut offset = expected.first().map_or(start, |(base, _)| *base);
    loop {
        let read = engine.read(stream, offset, 3_000).await.unwrap();
        if read.batches.is_empty() {
            break;
        }
        for b in read.batches {
            let base = i64::from_be_bytes(b[..8].try_into().unwrap());
            offset = base + count_of(&b);
            got.push((base, b));
        }
    }
    assert_eq!(got.len(), expected.len(), "stream {stream}: batch count");
    for ((gb, g), (eb, e)) in got.iter().zip(expected) {
        assert_eq!(gb, eb, "stream {stream}: offsets");
        assert_eq!(g, &stamped(e, *eb), "stream {stream}: bytes at {eb}");
    }
}

fn count_of(b: &Bytes) -> i64 {
    i32::from_be_bytes(b[23..27].try_into().unwrap()) as i64 + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_crashes_faults_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FaultyStore {
        inner: InMemory::new(),
        puts: AtomicU64::new(0),
        fail_every: 3,
    });
    let dyn_store: Arc<dyn ObjectStore> = store.clone();

    let node = open(dir.path(), dyn_store.clone()).await;
    node.controller
        .submit(Command::RegisterBroker {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            incarnation: 1,
            wal: None,
        })
        .await
        .unwrap();
    node.controller
        .submit(Command::CreateTopic {
            topic_id: uuid::Uuid::new_v4(),
            name: "sim".into(),
            partitions: 3,
            configs: Default::default(),
        })
        .await
        .unwrap();
    let streams: Vec<StreamId> = node
        .controller
        .image()
        .read()
        .streams
        .keys()
        .copied()
        .collect();
    let mut acked: BTreeMap<StreamId, Vec<(i64, Bytes)>> =
        streams.iter().map(|s| (*s, Vec::new())).collect();
    drop(node);

    let mut tag = 0u64;
    let mut now_ms = u64::MAX / 4;
    for round in 0..12 {
        let node = open(dir.path(), dyn_store.clone()).await;
        for s in &streams {
            check(&node.engine, *s, &acked[s]).await;
        }
        for step in 0..40 {
            tag += 1;
            let stream = streams[(tag % 3) as usize];
            let payload = batch(1 + (tag % 4) as u32, tag, 100 + (tag as usize * 37) % 900);
            let p = payload.clone();
            let base = node
                .engine
                .append(
                    stream,
                    count_of(&payload) as u32,
                    tag as i64,
                    move |base, _| stamped(&p, base),
                )
                .await
                .unwrap();
            acked.get_mut(&stream).unwrap().push((base, payload));
            if step % 13 == 0 {
                // Failures are expected here: the data stays in the WAL and is retried.
                let _ = node.engine.upload().await;
            }
        }
        if round % 4 == 3 {
            let s = streams[0];
            let trim_to = acked[&s][acked[&s].len() / 2].0;
            node.engine.trim(s, trim_to).await.unwrap();
        }
        now_ms += 10_000;
        node.engine.collect_garbage(now_ms).await.unwrap();
        node.engine.collect_garbage(now_ms + 5_000).await.unwrap();
        for s in &streams {
            check(&node.engine, *s, &acked[s]).await;
        }
        // Crash: no shutdown, no final upload; the quorum goes down with the node.
        node.controller.quorum().shutdown().await.unwrap();
        drop(node);
    }

    // A clean end: upload everything, collect garbage, and check that the store holds exactly
    // the objects the image references.
    let node = open(dir.path(), dyn_store.clone()).await;
    while node.engine.upload().await.is_err() {}
    for s in &streams {
        check(&node.engine, *s, &acked[s]).await;
    }
    now_ms += 100_000;
    node.engine.collect_garbage(now_ms).await.unwrap();
    node.engine.collect_garbage(now_ms + 5_000).await.unwrap();
    let referenced: BTreeSet<String> = {
        let image = node.controller.image().read();
        image
            .referenced_objects()
            .iter()
            .map(|id| image.objects[id].key.clone())
            .collect()
    };
    let stored: BTreeSet<String> = store
        .inner
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        stored, referenced,
        "GC leaves exactly the referenced objects"
    );
    assert!(!referenced.is_empty());
    // And the engine still serves everything after a last restart, now from objects.
    node.controller.quorum().shutdown().await.unwrap();
    drop(node);
    let node = open(dir.path(), dyn_store).await;
    for s in &streams {
        check(&node.engine, *s, &acked[s]).await;
    }
}
