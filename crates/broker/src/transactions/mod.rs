//! The transaction coordinator's runtime: the internal `__transaction_state` topic,
//! partitioned by transactional id as in Kafka, one shard task per partition, and the writer
//! of the markers its shards decide.

pub mod join;
pub mod markers;
pub mod requests;

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use strata_coordinator::txn::{MarkerJob, TxnConfig, TxnShard};

use crate::coordinator_runtime::{Coordinator, OutputSink, ShardHandle, ShardSettings};
use crate::Broker;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

pub type TxnShardHandle = ShardHandle<TxnShard>;

pub struct TxnCoordinator {
    inner: Coordinator<TxnShard>,
    /// Transactional ids whose markers are being written: one job per transaction at a time.
    writing: Arc<Mutex<HashSet<String>>>,
}

impl TxnCoordinator {
    /// `broker` is the broker this coordinator belongs to: markers are written through it.
    pub fn new(
        config: TxnConfig,
        partitions: i32,
        compaction_records_min: usize,
        broker: Weak<Broker>,
    ) -> Self {
        let settings = ShardSettings {
            topic: TRANSACTION_STATE_TOPIC,
            new_shard: Box::new(move || TxnShard::new(config.clone())),
            sink: Arc::new(MarkerWriter { broker }),
            compaction_records_min,
        };
        TxnCoordinator {
            inner: Coordinator::new(settings, partitions),
            writing: Arc::default(),
        }
    }

    /// Writes a job's markers and completes its transaction, unless a job for the same
    /// transaction is still running (a resend, or a reload, while the first one retries):
    /// two jobs could otherwise land a stale marker in the producer's next transaction.
    /// Returns `None` when it did not run.
    pub async fn write_markers(&self, broker: &Broker, job: MarkerJob) -> Option<Result<(), i16>> {
        let id = job.transactional_id.clone();
        if !self.writing.lock().insert(id.clone()) {
            return None;
        }
        // Released however the job ends, a dropped future included.
        struct Writing<'a>(&'a Mutex<HashSet<String>>, String);
        impl Drop for Writing<'_> {
            fn drop(&mut self) {
                self.0.lock().remove(&self.1);
            }
        }
        let _writing = Writing(&self.writing, id);
        Some(markers::complete(broker, job).await)
    }
}

impl Deref for TxnCoordinator {
    type Target = Coordinator<TxnShard>;

    fn deref(&self) -> &Coordinator<TxnShard> {
        &self.inner
    }
}

/// Writes the markers of transactions that a timeout, a fencing InitProducerId or a restart
/// decided; EndTxn writes its own and waits for them.
struct MarkerWriter {
    broker: Weak<Broker>,
}

impl OutputSink<MarkerJob> for MarkerWriter {
    fn deliver(&self, job: MarkerJob) {
        if let Some(broker) = self.broker.upgrade() {
            tokio::spawn(async move {
                if let Some(Err(code)) = broker.txns.write_markers(&broker, job).await {
                    tracing::warn!(code, "transaction markers not completed");
                }
            });
        }
    }
}
