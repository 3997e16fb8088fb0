//! The runtime every coordinator shares: its internal topic (made on first use, partitioned
//! by key as in Kafka), one shard task per partition, and the log format of its records.

pub mod log;
pub mod task;

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use strata_coordinator::partitioner::partition_for;
use strata_coordinator::CoordinatorShard;
use tokio::sync::OnceCell;

pub use task::{ImageTopics, OutputSink, ShardHandle, ShardSettings};

use crate::{topics, Broker};

pub struct Coordinator<S: CoordinatorShard> {
    settings: Arc<ShardSettings<S>>,
    /// The topic's partition count, used when it is made.
    partitions: i32,
    shards: OnceCell<Vec<ShardHandle<S>>>,
}

impl<S: CoordinatorShard> Coordinator<S> {
    pub fn new(settings: ShardSettings<S>, partitions: i32) -> Self {
        assert!(partitions > 0);
        Coordinator {
            settings: Arc::new(settings),
            partitions,
            shards: OnceCell::new(),
        }
    }

    pub fn topic(&self) -> &'static str {
        self.settings.topic
    }

    /// The shard tasks, started (and the topic made) on first use.
    pub async fn shards(&self, broker: &Broker) -> Result<&[ShardHandle<S>], i16> {
        self.shards
            .get_or_try_init(|| self.start(broker))
            .await
            .map(Vec::as_slice)
    }

    /// The shard that holds `key` (a group id, a transactional id).
    pub async fn shard_for(&self, broker: &Broker, key: &str) -> Result<ShardHandle<S>, i16> {
        let shards = self.shards(broker).await?;
        Ok(shards[partition_for(key, shards.len() as i32) as usize].clone())
    }

    /// The partition of `key`, once the topic exists.
    pub async fn partition_of(&self, broker: &Broker, key: &str) -> Result<i32, i16> {
        let shards = self.shards(broker).await?;
        Ok(partition_for(key, shards.len() as i32))
    }

    /// The shard of partition `partition`, if the coordinator runs.
    pub fn shard_of_partition(&self, partition: i32) -> Option<ShardHandle<S>> {
        self.shards
            .get()?
            .get(usize::try_from(partition).ok()?)
            .cloned()
    }

    /// Starts the shards now if the topic already exists (after a restart), so that timers
    /// run and owed work resumes without waiting for a client.
    pub async fn start_if_present(&self, broker: &Broker) {
        let present = broker
            .meta
            .image()
            .read()
            .topic_by_name(self.topic())
            .is_some();
        if present {
            if let Err(code) = self.shards(broker).await {
                tracing::warn!(code, topic = self.topic(), "coordinator did not start");
            }
        }
    }

    async fn start(&self, broker: &Broker) -> Result<Vec<ShardHandle<S>>, i16> {
        let topic = self.topic();
        let exists = broker.meta.image().read().topic_by_name(topic).is_some();
        if !exists {
            let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
            match topics::create(broker, topic, self.partitions, configs, false).await {
                Ok(_) => {}
                Err((code, _)) if code == ResponseError::TopicAlreadyExists.code() => {}
                Err((code, message)) => {
                    tracing::warn!(code, message, "could not make {topic}");
                    return Err(ResponseError::CoordinatorNotAvailable.code());
                }
            }
        }
        let streams: Vec<(i32, u64)> = {
            let image = broker.meta.image().read();
            let t = image
                .topic_by_name(topic)
                .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
            t.partitions
                .values()
                .map(|p| (p.partition, p.stream_id))
                .collect()
        };
        Ok(streams
            .into_iter()
            .map(|(partition, stream_id)| {
                task::spawn(
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
