//! The group coordinator's runtime: the internal `__consumer_offsets` topic, partitioned by
//! group as in Kafka, with one shard task per partition, and the JoinGroup/SyncGroup replies
//! that a shard sends later than the call that asked.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use strata_coordinator::group::Deferred;
use strata_coordinator::{Effects, GroupConfig, GroupShard, ReplyId, TopicLookup};
use tokio::sync::oneshot;

use crate::coordinator_runtime::{Coordinator, OutputSink, ShardHandle, ShardSettings};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub type GroupShardHandle = ShardHandle<GroupShard>;

pub struct GroupCoordinator {
    inner: Coordinator<GroupShard>,
    replies: Arc<DeferredReplies>,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, partitions: i32, compaction_records_min: usize) -> Self {
        let replies = Arc::new(DeferredReplies::default());
        let settings = ShardSettings {
            topic: OFFSETS_TOPIC,
            new_shard: Box::new(move || GroupShard::new(config.clone())),
            sink: replies.clone(),
            compaction_records_min,
        };
        GroupCoordinator {
            inner: Coordinator::new(settings, partitions),
            replies,
        }
    }

    /// Runs `f` on `shard` with a reply id the shard may answer later (JoinGroup, SyncGroup).
    pub async fn call_deferred(
        &self,
        shard: &GroupShardHandle,
        f: impl FnOnce(&mut GroupShard, u64, ReplyId, &dyn TopicLookup) -> Effects + Send + 'static,
    ) -> Result<Deferred, i16> {
        let (id, rx) = self.replies.register();
        shard
            .call(move |s, now_ms, topics| ((), f(s, now_ms, id, topics)))
            .await?;
        rx.await
            .map_err(|_| ResponseError::CoordinatorNotAvailable.code())
    }
}

impl Deref for GroupCoordinator {
    type Target = Coordinator<GroupShard>;

    fn deref(&self) -> &Coordinator<GroupShard> {
        &self.inner
    }
}

/// Callers waiting for a deferred reply, by reply id.
#[derive(Default)]
struct DeferredReplies {
    next: AtomicU64,
    waiting: Mutex<HashMap<ReplyId, oneshot::Sender<Deferred>>>,
}

impl DeferredReplies {
    fn register(&self) -> (ReplyId, oneshot::Receiver<Deferred>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        (id, rx)
    }
}

impl OutputSink<(ReplyId, Deferred)> for DeferredReplies {
    fn deliver(&self, (id, reply): (ReplyId, Deferred)) {
        if let Some(tx) = self.waiting.lock().remove(&id) {
            let _ = tx.send(reply);
        }
    }

    /// Dropping the senders answers their callers with COORDINATOR_NOT_AVAILABLE.
    fn reset(&self) {
        self.waiting.lock().clear();
    }
}
