//! The runtime every coordinator shares: its internal topic (made on first use, partitioned
//! by key as in Kafka), one shard task per partition, and the log format of its records.

pub mod log;
pub mod task;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use strata_coordinator::partitioner::partition_for;
use strata_coordinator::CoordinatorShard;
use tokio::sync::OnceCell;

pub use task::{ImageTopics, OutputSink, ShardHandle, ShardSettings};

use crate::{topics, Broker};

pub struct Coordinator<S: CoordinatorShard> {
    settings: Arc<ShardSettings<S>>,
    /// The topic's partition count, used when it is made.
    partitions: i32,
    /// The partition count of the topic once it exists (made on first use).
    topic: OnceCell<i32>,
    /// The shards this node runs: partitions it leads, each with the leader epoch it was
    /// started for. A partition led elsewhere is answered with NOT_COORDINATOR.
    shards: Mutex<HashMap<i32, (i32, ShardHandle<S>)>>,
}

fn not_coordinator() -> i16 {
    ResponseError::NotCoordinator.code()
}

impl<S: CoordinatorShard> Coordinator<S> {
    pub fn new(settings: ShardSettings<S>, partitions: i32) -> Self {
        assert!(partitions > 0);
        Coordinator {
            settings: Arc::new(settings),
            partitions,
            topic: OnceCell::new(),
            shards: Mutex::new(HashMap::new()),
        }
    }

    pub fn topic(&self) -> &'static str {
        self.settings.topic
    }

    /// The topic's partition count, the topic made first if it does not exist yet.
    async fn partition_count(&self, broker: &Broker) -> Result<i32, i16> {
        self.topic
            .get_or_try_init(|| self.make_topic(broker))
            .await
            .copied()
    }

    /// The shards of every partition this node leads, started if they were not.
    pub async fn shards(&self, broker: &Broker) -> Result<Vec<ShardHandle<S>>, i16> {
        let count = self.partition_count(broker).await?;
        Ok((0..count)
            .filter_map(|p| self.shard(broker, p).ok())
            .collect())
    }

    /// The shard that holds `key` (a group id, a transactional id).
    pub async fn shard_for(&self, broker: &Broker, key: &str) -> Result<ShardHandle<S>, i16> {
        let partition = self.partition_of(broker, key).await?;
        self.shard(broker, partition)
    }

    /// The partition of `key`, once the topic exists.
    pub async fn partition_of(&self, broker: &Broker, key: &str) -> Result<i32, i16> {
        let count = self.partition_count(broker).await?;
        Ok(partition_for(key, count))
    }

    /// The shard of `partition` if this node leads it (started now if it was not running, or
    /// was started for an older leader epoch); NOT_COORDINATOR if another node leads it and
    /// UNKNOWN_TOPIC_OR_PARTITION if there is no such partition.
    pub fn shard(&self, broker: &Broker, partition: i32) -> Result<ShardHandle<S>, i16> {
        let (stream_id, leader_epoch) = {
            let image = broker.meta.image().read();
            let p = image
                .partition(self.topic(), partition)
                .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
            if p.leader != broker.config.node_id {
                return Err(not_coordinator());
            }
            (p.stream_id, p.leader_epoch)
        };
        let mut shards = self.shards.lock();
        if let Some((epoch, handle)) = shards.get(&partition) {
            if *epoch == leader_epoch && !handle.is_closed() {
                return Ok(handle.clone());
            }
        }
        let handle = task::spawn(
            broker.engine.clone(),
            broker.meta.clone(),
            partition,
            stream_id,
            self.settings.clone(),
        );
        shards.insert(partition, (leader_epoch, handle.clone()));
        Ok(handle)
    }

    /// Starts the shards of the partitions this node leads now if the topic already exists
    /// (after a restart), so that timers run and owed work resumes without waiting for a
    /// client.
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

    /// Makes the topic if it does not exist; returns its partition count.
    async fn make_topic(&self, broker: &Broker) -> Result<i32, i16> {
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
        let image = broker.meta.image().read();
        let t = image
            .topic_by_name(topic)
            .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        Ok(t.partitions.len() as i32)
    }
}

/// How often a cluster broker looks for coordinator partitions it has come to lead.
const FOLLOW_INTERVAL_MS: u64 = 500;

/// Starts the coordinator shards of internal partitions this broker comes to lead by failover
/// or reassignment, so their timers and owed work (transaction timeouts, markers) resume
/// without waiting for a client.
pub async fn run_follow(broker: Arc<Broker>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(FOLLOW_INTERVAL_MS)) => {}
            _ = stop.changed() => return,
        }
        broker.groups.start_if_present(&broker).await;
        broker.txns.start_if_present(&broker).await;
    }
}
