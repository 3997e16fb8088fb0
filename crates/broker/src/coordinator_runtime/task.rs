//! One task per coordinator partition: it loads the partition by replaying its records, then
//! runs requests and timers against the shard one at a time, appends the records they produce
//! to the partition's stream, and answers (and hands outputs on) only once those records are
//! durable. It also compacts the partition: it writes the live state again at the tail and
//! trims everything before it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use strata_coordinator::shard::Effects;
use strata_coordinator::{CoordinatorShard, TopicLookup};
use strata_meta::image::MetadataImage;
use strata_meta::StreamId;
use strata_protocol::batch::BatchHeader;
use strata_storage::{Engine, MetadataClient};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::log;

/// A reply never waits longer than this for its records to become durable.
const DURABLE_WAIT_MS_MAX: u64 = 30_000;
/// Records per batch when the live state is written out for compaction.
const SNAPSHOT_BATCH_RECORDS_MAX: usize = 1_000;
/// Requests queued per shard before callers wait.
const QUEUE_DEPTH_MAX: usize = 1_024;

/// Where a shard's outputs go once the records written with them are durable.
pub trait OutputSink<O>: Send + Sync + 'static {
    fn deliver(&self, output: O);
    /// The shard was rebuilt from its log: outputs promised before are void.
    fn reset(&self) {}
}

type Fx<S> = Effects<<S as CoordinatorShard>::Record, <S as CoordinatorShard>::Output>;

/// What a job hands back: records to append, then a reply to send once they are durable.
struct Done<S: CoordinatorShard> {
    effects: Fx<S>,
    reply: Option<Box<dyn FnOnce() + Send>>,
}

type Job<S> = Box<dyn FnOnce(&mut S, u64, &dyn TopicLookup) -> Done<S> + Send>;

fn unavailable() -> i16 {
    ResponseError::CoordinatorNotAvailable.code()
}

/// The way into a shard's task.
pub struct ShardHandle<S: CoordinatorShard> {
    jobs: mpsc::Sender<Job<S>>,
}

impl<S: CoordinatorShard> Clone for ShardHandle<S> {
    fn clone(&self) -> Self {
        ShardHandle {
            jobs: self.jobs.clone(),
        }
    }
}

impl<S: CoordinatorShard> ShardHandle<S> {
    /// The task is gone (its partition failed to load or moved away).
    pub fn is_closed(&self) -> bool {
        self.jobs.is_closed()
    }

    /// Runs `f` on the shard; resolves with its result once its records are durable.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S, u64, &dyn TopicLookup) -> (R, Fx<S>) + Send + 'static,
    ) -> Result<R, i16> {
        let (tx, rx) = oneshot::channel();
        let job: Job<S> = Box::new(move |shard, now_ms, topics| {
            let (r, effects) = f(shard, now_ms, topics);
            Done {
                effects,
                reply: Some(Box::new(move || {
                    let _ = tx.send(r);
                })),
            }
        });
        self.jobs.send(job).await.map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())
    }

    /// Runs `f` on the shard for its answer alone: `f` writes nothing, so the answer does not
    /// wait for durability.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&S) -> R + Send + 'static,
    ) -> Result<R, i16> {
        let (tx, rx) = oneshot::channel();
        let job: Job<S> = Box::new(move |shard, _, _| {
            let _ = tx.send(f(shard));
            Done {
                effects: Effects::default(),
                reply: None,
            }
        });
        self.jobs.send(job).await.map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())
    }
}

/// Topic lookups against the metadata image.
pub struct ImageTopics<'a>(pub &'a MetadataImage);

impl TopicLookup for ImageTopics<'_> {
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)> {
        let t = self.0.topic_by_name(name)?;
        Some((t.topic_id, t.partitions.len() as i32))
    }

    fn by_id(&self, id: Uuid) -> Option<(String, i32)> {
        let t = self.0.topics.get(&id)?;
        Some((t.name.clone(), t.partitions.len() as i32))
    }

    fn names(&self) -> Vec<String> {
        self.0.topic_ids.keys().cloned().collect()
    }
}

/// How one coordinator's shards are built and kept.
pub struct ShardSettings<S: CoordinatorShard> {
    /// For logs: `__consumer_offsets` or `__transaction_state`.
    pub topic: &'static str,
    pub new_shard: Box<dyn Fn() -> S + Send + Sync>,
    pub sink: Arc<dyn OutputSink<S::Output>>,
    /// Compact once this many records were written since the last compaction (and at least
    /// twice the live records).
    pub compaction_records_min: usize,
}

pub fn spawn<S: CoordinatorShard>(
    engine: Arc<Engine>,
    meta: Arc<dyn MetadataClient>,
    partition: i32,
    stream_id: StreamId,
    settings: Arc<ShardSettings<S>>,
) -> ShardHandle<S> {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH_MAX);
    let mut task = ShardTask {
        shard: (settings.new_shard)(),
        settings,
        engine,
        meta,
        partition,
        stream_id,
        durable: None,
        end_offset: 0,
        written: 0,
    };
    tokio::spawn(async move {
        if let Err(e) = task.load().await {
            tracing::error!(topic = task.settings.topic, partition, error = %e, "coordinator partition failed to load");
            return;
        }
        task.run(rx).await;
    });
    ShardHandle { jobs: tx }
}

struct ShardTask<S: CoordinatorShard> {
    shard: S,
    settings: Arc<ShardSettings<S>>,
    engine: Arc<Engine>,
    meta: Arc<dyn MetadataClient>,
    partition: i32,
    stream_id: StreamId,
    durable: Option<watch::Receiver<i64>>,
    /// The end of what this task has appended.
    end_offset: i64,
    /// Records written since the last compaction.
    written: usize,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl<S: CoordinatorShard> ShardTask<S> {
    /// Replays the partition from its start: the only way a shard's state is rebuilt.
    async fn load(&mut self) -> anyhow::Result<()> {
        let stream = self
            .engine
            .stream(self.stream_id)
            .ok_or_else(|| anyhow::anyhow!("stream {} is not on this node", self.stream_id))?;
        self.durable = Some(stream.subscribe());
        let mut offset = self.engine.offsets(self.stream_id)?.start_offset;
        let mut records = 0;
        loop {
            let read = self.engine.read(self.stream_id, offset, 4 << 20).await?;
            if read.batches.is_empty() {
                break;
            }
            for batch in &read.batches {
                let header = BatchHeader::parse(batch)?;
                for (_, record) in log::decode::<S::Record>(batch) {
                    self.shard.replay(&record);
                    records += 1;
                }
                offset = header.last_offset() + 1;
            }
            if offset >= read.durable_end {
                break;
            }
        }
        self.end_offset = offset.max(self.engine.offsets(self.stream_id)?.durable_end);
        self.written = records;
        let owed = self.shard.loaded(now_ms());
        tracing::info!(
            topic = self.settings.topic,
            partition = self.partition,
            records,
            live = self.shard.live_records(),
            "coordinator partition loaded"
        );
        for output in owed {
            self.settings.sink.deliver(output);
        }
        Ok(())
    }

    async fn run(&mut self, mut jobs: mpsc::Receiver<Job<S>>) {
        loop {
            let wait = self
                .shard
                .next_deadline_ms()
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms())))
                .unwrap_or(Duration::from_secs(3_600));
            let done = tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => self.with_topics(|shard, now, topics| job(shard, now, topics)),
                    None => return,
                },
                _ = tokio::time::sleep(wait) => self.with_topics(|shard, now, topics| Done {
                    effects: shard.tick(now, topics),
                    reply: None,
                }),
            };
            self.finish(done).await;
        }
    }

    fn with_topics(&mut self, f: impl FnOnce(&mut S, u64, &dyn TopicLookup) -> Done<S>) -> Done<S> {
        let image = self.meta.image().read();
        f(&mut self.shard, now_ms(), &ImageTopics(&image))
    }

    /// Appends the records, then sends the reply and hands on the outputs once everything so
    /// far is durable.
    async fn finish(&mut self, done: Done<S>) {
        let Done { effects, reply } = done;
        if !effects.records.is_empty() {
            if let Err(e) = self.append(&effects.records).await {
                // The shard already holds state the log does not: rebuild it from the log. The
                // dropped reply reaches its caller as COORDINATOR_NOT_AVAILABLE.
                tracing::error!(topic = self.settings.topic, partition = self.partition, error = %e, "coordinator records failed to append; reloading");
                self.reload().await;
                return;
            }
        }
        let outputs = effects.outputs;
        if reply.is_some() || !outputs.is_empty() {
            let target = self.end_offset;
            let mut durable = self.durable.clone().expect("loaded");
            let sink = self.settings.sink.clone();
            let engine = self.engine.clone();
            let send = move || {
                // A broker that may have been fenced answers nothing: its caller sees
                // COORDINATOR_NOT_AVAILABLE and asks the coordinator's new home.
                if !engine.lease_valid() {
                    tracing::warn!("lease lapsed; coordinator reply withheld");
                    return;
                }
                if let Some(reply) = reply {
                    reply();
                }
                for output in outputs {
                    sink.deliver(output);
                }
            };
            if *durable.borrow() >= target {
                send();
            } else {
                tokio::spawn(async move {
                    let wait = durable.wait_for(|end| *end >= target);
                    match tokio::time::timeout(Duration::from_millis(DURABLE_WAIT_MS_MAX), wait)
                        .await
                    {
                        Ok(Ok(_)) => send(),
                        _ => tracing::warn!(
                            target,
                            "coordinator records did not become durable; not replying"
                        ),
                    }
                });
            }
        }
        self.maybe_compact().await;
    }

    async fn append(&mut self, records: &[S::Record]) -> anyhow::Result<()> {
        self.engine.wait_for_room().await?;
        let now = now_ms() as i64;
        let count = records.len() as u32;
        let appended = self
            .engine
            .sequence(self.stream_id, count, now, |base, _epoch| {
                log::encode(records, base, now)
            })?;
        self.end_offset = appended.base_offset() + i64::from(count);
        self.written += records.len();
        Ok(())
    }

    async fn reload(&mut self) {
        self.settings.sink.reset();
        self.shard = (self.settings.new_shard)();
        if let Err(e) = self.load().await {
            tracing::error!(topic = self.settings.topic, partition = self.partition, error = %e, "coordinator partition failed to reload");
        }
    }

    /// Writes the live state at the tail, waits for it to be durable, and trims the records
    /// before it: the partition stays about as large as the state it holds.
    async fn maybe_compact(&mut self) {
        let live = self.shard.live_records();
        if self.written < self.settings.compaction_records_min.max(2 * live) {
            return;
        }
        let start = self.end_offset;
        let snapshot = self.shard.snapshot();
        for chunk in snapshot.chunks(SNAPSHOT_BATCH_RECORDS_MAX) {
            if let Err(e) = self.append(chunk).await {
                tracing::error!(topic = self.settings.topic, partition = self.partition, error = %e, "compaction failed to append; reloading");
                self.reload().await;
                return;
            }
        }
        let target = self.end_offset;
        let mut durable = self.durable.clone().expect("loaded");
        let wait = durable.wait_for(|end| *end >= target);
        if !matches!(
            tokio::time::timeout(Duration::from_millis(DURABLE_WAIT_MS_MAX), wait).await,
            Ok(Ok(_))
        ) {
            tracing::warn!(
                topic = self.settings.topic,
                partition = self.partition,
                "compaction snapshot did not become durable"
            );
            return;
        }
        match self.engine.trim(self.stream_id, start).await {
            Ok(()) => {
                tracing::info!(
                    topic = self.settings.topic,
                    partition = self.partition,
                    trimmed_to = start,
                    live = snapshot.len(),
                    "compacted coordinator partition"
                );
                self.written = snapshot.len();
            }
            Err(e) => {
                tracing::warn!(topic = self.settings.topic, partition = self.partition, error = %e, "compaction trim failed")
            }
        }
    }
}
