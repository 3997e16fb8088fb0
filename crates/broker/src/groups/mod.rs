//! The group coordinator's runtime: the internal `__consumer_offsets` topic (made on first
//! use, partitioned by group as in Kafka) and one shard task per partition this node leads.

pub mod log;
pub mod shard;

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use strata_coordinator::partitioner::partition_for;
use strata_coordinator::GroupConfig;
use tokio::sync::OnceCell;

pub use shard::ShardHandle;
use shard::ShardSettings;

use crate::{topics, Broker};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub struct GroupCoordinator {
    settings: Arc<ShardSettings>,
    /// `offsets.topic.num.partitions`, used when the topic is made.
    partitions: i32,
    shards: OnceCell<Vec<ShardHandle>>,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, partitions: i32, compaction_records_min: usize) -> Self {
        assert!(partitions > 0);
        GroupCoordinator {
            settings: Arc::new(ShardSettings {
                config,
                compaction_records_min,
            }),
            partitions,
            shards: OnceCell::new(),
        }
    }

    /// The shard tasks, started (and the topic made) on first use.
    pub async fn shards(&self, broker: &Broker) -> Result<&[ShardHandle], i16> {
        self.shards
            .get_or_try_init(|| self.start(broker))
            .await
            .map(Vec::as_slice)
    }

    /// The shard that holds `group`.
    pub async fn shard_for(&self, broker: &Broker, group: &str) -> Result<ShardHandle, i16> {
        let shards = self.shards(broker).await?;
        Ok(shards[partition_for(group, shards.len() as i32) as usize].clone())
    }

    /// The `__consumer_offsets` partition of `group`, once the topic exists.
    pub async fn partition_of(&self, broker: &Broker, group: &str) -> Result<i32, i16> {
        let shards = self.shards(broker).await?;
        Ok(partition_for(group, shards.len() as i32))
    }

    /// Starts the shards now if the topic already exists (after a restart), so that sessions
    /// and offset expiry run without waiting for a client.
    pub async fn start_if_present(&self, broker: &Broker) {
        let present = broker
            .meta
            .image()
            .read()
            .topic_by_name(OFFSETS_TOPIC)
            .is_some();
        if present {
            if let Err(code) = self.shards(broker).await {
                tracing::warn!(code, "group coordinator did not start");
            }
        }
    }

    async fn start(&self, broker: &Broker) -> Result<Vec<ShardHandle>, i16> {
        let exists = broker
            .meta
            .image()
            .read()
            .topic_by_name(OFFSETS_TOPIC)
            .is_some();
        if !exists {
            let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
            match topics::create(broker, OFFSETS_TOPIC, self.partitions, configs, false).await {
                Ok(_) => {}
                Err((code, _)) if code == ResponseError::TopicAlreadyExists.code() => {}
                Err((code, message)) => {
                    tracing::warn!(code, message, "could not make {OFFSETS_TOPIC}");
                    return Err(ResponseError::CoordinatorNotAvailable.code());
                }
            }
        }
        let streams: Vec<(i32, u64)> = {
            let image = broker.meta.image().read();
            let topic = image
                .topic_by_name(OFFSETS_TOPIC)
                .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
            topic
                .partitions
                .values()
                .map(|p| (p.partition, p.stream_id))
                .collect()
        };
        Ok(streams
            .into_iter()
            .map(|(partition, stream_id)| {
                shard::spawn(
                    broker.engine.clone(),
                    broker.meta.clone(),
                    partition,
                    stream_id,
                    self.settings.clone(),
                )
            })
            .collect())
    }
}
