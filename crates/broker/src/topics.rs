//! Topic lookups shared by handlers: from names and ids to partitions and their streams, topic
//! creation (explicit and automatic) and per-topic limits.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use strata_meta::image::{MetadataImage, TopicImage};
use strata_meta::{topic_config, Command, StreamId};
use uuid::Uuid;

use crate::{errors, Broker};

/// Where a partition's log lives and the epoch its leader writes with.
#[derive(Clone, Copy, Debug)]
pub struct PartitionRef {
    pub stream_id: StreamId,
    pub leader_epoch: i32,
}

pub fn partition(image: &MetadataImage, topic: &str, partition: i32) -> Result<PartitionRef, i16> {
    let p = image
        .partition(topic, partition)
        .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
    Ok(PartitionRef {
        stream_id: p.stream_id,
        leader_epoch: p.leader_epoch,
    })
}

/// The ids of every registered broker.
pub fn broker_ids(broker: &Broker) -> Vec<i32> {
    broker.meta.image().read().brokers.keys().copied().collect()
}

pub fn name_for_id(image: &MetadataImage, topic_id: Uuid) -> Option<String> {
    image.topics.get(&topic_id).map(|t| t.name.clone())
}

/// The effective `max.message.bytes` of a topic.
pub fn max_message_bytes(broker: &Broker, topic: &TopicImage) -> usize {
    topic
        .configs
        .get("max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(broker.config.message_max_bytes)
}

pub fn log_append_time(topic: &TopicImage) -> bool {
    topic_config::effective(&topic.configs, "message.timestamp.type") == Some("LogAppendTime")
}

/// Checks that `current` (a client's view of the leader epoch, -1 for none) matches ours.
pub fn check_leader_epoch(current: i32, ours: i32) -> Result<(), i16> {
    if current < 0 || current == ours {
        Ok(())
    } else if current < ours {
        Err(ResponseError::FencedLeaderEpoch.code())
    } else {
        Err(ResponseError::UnknownLeaderEpoch.code())
    }
}

/// Creates a topic; with `validate_only`, only checks that it could be created.
pub async fn create(
    broker: &Broker,
    name: &str,
    partitions: i32,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<Uuid, (i16, String)> {
    let command = Command::CreateTopic {
        topic_id: Uuid::new_v4(),
        name: name.to_string(),
        partitions: if partitions < 0 {
            broker.config.num_partitions
        } else {
            partitions
        },
        configs,
    };
    if validate_only {
        let image = broker.meta.image().read();
        return strata_meta::controller::decide(&image, &command)
            .map(|_| Uuid::nil())
            .map_err(|e| (errors::controller(&e), e.to_string()));
    }
    let records = broker
        .meta
        .submit(command)
        .await
        .map_err(|e| (errors::submit(&e), e.to_string()))?;
    match records.first() {
        Some(strata_meta::MetadataRecord::Topic { topic_id, .. }) => Ok(*topic_id),
        _ => Err((
            ResponseError::UnknownServerError.code(),
            "no topic record".into(),
        )),
    }
}

/// Auto-creates `name` if the broker allows it; a race with another creator is success.
pub async fn auto_create(broker: &Broker, name: &str) -> Result<(), i16> {
    if !broker.config.auto_create_topics {
        return Err(ResponseError::UnknownTopicOrPartition.code());
    }
    match create(broker, name, -1, BTreeMap::new(), false).await {
        Ok(_) => Ok(()),
        Err((code, _)) if code == ResponseError::TopicAlreadyExists.code() => Ok(()),
        Err((code, _)) => Err(code),
    }
}
