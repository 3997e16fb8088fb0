//! One task per `__consumer_offsets` partition: it loads the partition by replaying its
//! records, then runs requests and timers against the [`GroupShard`] one at a time, appends
//! the records they produce to the partition's stream, and answers only once those records
//! are durable. It also compacts the partition: it writes the live state again at the tail
//! and trims everything before it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use strata_coordinator::group::records::GroupRecord;
use strata_coordinator::group::Deferred;
use strata_coordinator::{Effects, GroupConfig, GroupShard, ReplyId, TopicLookup};
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

/// What a job hands back: records to append, then a reply to send once they are durable.
pub struct Done {
    effects: Effects,
    reply: Option<Box<dyn FnOnce() + Send>>,
}

pub struct Ctx<'a> {
    shard: &'a mut GroupShard,
    now_ms: u64,
    topics: &'a dyn TopicLookup,
    replies: &'a mut HashMap<ReplyId, oneshot::Sender<Deferred>>,
    next_reply: &'a mut ReplyId,
}

type Job = Box<dyn FnOnce(&mut Ctx<'_>) -> Done + Send>;

fn unavailable() -> i16 {
    ResponseError::CoordinatorNotAvailable.code()
}

/// The way into a shard's task.
#[derive(Clone)]
pub struct ShardHandle {
    jobs: mpsc::Sender<Job>,
}

impl ShardHandle {
    /// Runs `f` on the shard; resolves with its result once its records are durable.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut GroupShard, u64, &dyn TopicLookup) -> (R, Effects) + Send + 'static,
    ) -> Result<R, i16> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let (r, effects) = f(ctx.shard, ctx.now_ms, ctx.topics);
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

    /// Runs `f` with a reply id the shard may answer later (JoinGroup, SyncGroup).
    pub async fn call_deferred(
        &self,
        f: impl FnOnce(&mut GroupShard, u64, ReplyId, &dyn TopicLookup) -> Effects + Send + 'static,
    ) -> Result<Deferred, i16> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let id = *ctx.next_reply;
            *ctx.next_reply += 1;
            ctx.replies.insert(id, tx);
            Done {
                effects: f(ctx.shard, ctx.now_ms, id, ctx.topics),
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

pub struct ShardSettings {
    pub config: GroupConfig,
    /// Compact once this many records were written since the last compaction (and at least
    /// twice the live records).
    pub compaction_records_min: usize,
}

pub fn spawn(
    engine: Arc<Engine>,
    meta: Arc<dyn MetadataClient>,
    partition: i32,
    stream_id: StreamId,
    settings: Arc<ShardSettings>,
) -> ShardHandle {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH_MAX);
    let mut task = ShardTask {
        shard: GroupShard::new(settings.config.clone()),
        settings,
        engine,
        meta,
        partition,
        stream_id,
        durable: None,
        end_offset: 0,
        written: 0,
        replies: HashMap::new(),
        next_reply: 0,
    };
    tokio::spawn(async move {
        if let Err(e) = task.load().await {
            tracing::error!(partition, error = %e, "group coordinator partition failed to load");
            return;
        }
        task.run(rx).await;
    });
    ShardHandle { jobs: tx }
}

struct ShardTask {
    shard: GroupShard,
    settings: Arc<ShardSettings>,
    engine: Arc<Engine>,
    meta: Arc<dyn MetadataClient>,
    partition: i32,
    stream_id: StreamId,
    durable: Option<watch::Receiver<i64>>,
    /// The end of what this task has appended.
    end_offset: i64,
    /// Records written since the last compaction.
    written: usize,
    replies: HashMap<ReplyId, oneshot::Sender<Deferred>>,
    next_reply: ReplyId,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ShardTask {
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
                for (_, record) in log::decode(batch) {
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
        self.shard.loaded(now_ms());
        tracing::info!(
            partition = self.partition,
            records,
            groups = self.shard.live_records(),
            "group coordinator partition loaded"
        );
        Ok(())
    }

    async fn run(&mut self, mut jobs: mpsc::Receiver<Job>) {
        loop {
            let wait = self
                .shard
                .next_deadline_ms()
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms())))
                .unwrap_or(Duration::from_secs(3_600));
            let done = tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => self.with_ctx(|ctx| job(ctx)),
                    None => return,
                },
                _ = tokio::time::sleep(wait) => self.with_ctx(|ctx| Done {
                    effects: ctx.shard.tick(ctx.now_ms, ctx.topics),
                    reply: None,
                }),
            };
            self.finish(done).await;
        }
    }

    fn with_ctx(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> Done) -> Done {
        let image = self.meta.image().read();
        let topics = ImageTopics(&image);
        let mut ctx = Ctx {
            shard: &mut self.shard,
            now_ms: now_ms(),
            topics: &topics,
            replies: &mut self.replies,
            next_reply: &mut self.next_reply,
        };
        f(&mut ctx)
    }

    /// Appends the records, then sends the replies once everything so far is durable.
    async fn finish(&mut self, done: Done) {
        let Done { effects, reply } = done;
        let deferred: Vec<(oneshot::Sender<Deferred>, Deferred)> = effects
            .replies
            .into_iter()
            .filter_map(|(id, d)| self.replies.remove(&id).map(|tx| (tx, d)))
            .collect();
        if !effects.records.is_empty() {
            if let Err(e) = self.append(&effects.records).await {
                // The shard already holds state the log does not: rebuild it from the log. The
                // dropped replies reach their callers as COORDINATOR_NOT_AVAILABLE.
                tracing::error!(partition = self.partition, error = %e, "group records failed to append; reloading");
                self.reload().await;
                return;
            }
        }
        if reply.is_some() || !deferred.is_empty() {
            let target = self.end_offset;
            let mut durable = self.durable.clone().expect("loaded");
            let send = move || {
                if let Some(reply) = reply {
                    reply();
                }
                for (tx, d) in deferred {
                    let _ = tx.send(d);
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
                            "group records did not become durable; not replying"
                        ),
                    }
                });
            }
        }
        self.maybe_compact().await;
    }

    async fn append(&mut self, records: &[GroupRecord]) -> anyhow::Result<()> {
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
        self.replies.clear();
        self.shard = GroupShard::new(self.settings.config.clone());
        if let Err(e) = self.load().await {
            tracing::error!(partition = self.partition, error = %e, "group coordinator partition failed to reload");
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
                tracing::error!(partition = self.partition, error = %e, "compaction failed to append; reloading");
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
                partition = self.partition,
                "compaction snapshot did not become durable"
            );
            return;
        }
        match self.engine.trim(self.stream_id, start).await {
            Ok(()) => {
                tracing::info!(
                    partition = self.partition,
                    trimmed_to = start,
                    live = snapshot.len(),
                    "compacted group partition"
                );
                self.written = snapshot.len();
            }
            Err(e) => {
                tracing::warn!(partition = self.partition, error = %e, "compaction trim failed")
            }
        }
    }
}
