//! The transaction coordinator's runtime: the internal `__transaction_state` topic,
//! partitioned by transactional id as in Kafka, one shard task per partition, and the writer
//! of the markers its shards decide.

pub mod markers;
pub mod requests;

use std::ops::Deref;
use std::sync::{Arc, Weak};

use strata_coordinator::txn::{MarkerJob, TxnConfig, TxnShard};

use crate::coordinator_runtime::{Coordinator, OutputSink, ShardHandle, ShardSettings};
use crate::Broker;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

pub type TxnShardHandle = ShardHandle<TxnShard>;

pub struct TxnCoordinator {
    inner: Coordinator<TxnShard>,
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
        }
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
                if let Err(code) = markers::complete(&broker, job).await {
                    tracing::warn!(code, "transaction markers not completed");
                }
            });
        }
    }
}
