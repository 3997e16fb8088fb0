//! Metadata: brokers, and topics with their partitions and leaders; auto-creates topics that
//! do not exist when the client allows it and the broker is configured to.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_meta::controller::validate_topic_name;
use strata_meta::image::{MetadataImage, TopicImage};
use uuid::Uuid;

use crate::{acl, topics, Broker};

pub async fn handle(broker: &Broker, version: i16, request: MetadataRequest) -> MetadataResponse {
    // Before v4 there is no flag and every request may auto-create.
    let may_create = version < 4 || request.allow_auto_topic_creation;
    let topic_ops = acl::reported(
        version >= 8 && request.include_topic_authorized_operations,
        acl::TOPIC_OPERATIONS,
    );
    let cluster_ops = acl::reported(
        (8..=10).contains(&version) && request.include_cluster_authorized_operations,
        acl::CLUSTER_OPERATIONS,
    );
    let mut results = Vec::new();
    // Before v1 an empty list means every topic; from v1 on that is a null list.
    let all = request.topics.is_none()
        || (version == 0 && request.topics.as_ref().is_some_and(|t| t.is_empty()));
    match request.topics.as_ref().filter(|_| !all) {
        None => {
            let image = broker.meta.image().read();
            results.extend(image.topics.values().map(|t| topic_result(t, topic_ops)));
        }
        Some(requested) => {
            for t in requested {
                results.push(
                    requested_topic(
                        broker,
                        t.name.as_ref().map(|n| n.0.to_string()),
                        t.topic_id,
                        may_create,
                        topic_ops,
                    )
                    .await,
                );
            }
        }
    }
    let image = broker.meta.image().read();
    MetadataResponse::default()
        .with_brokers(brokers(&image))
        .with_cluster_id(Some(StrBytes::from_string(
            broker.config.cluster_id.clone(),
        )))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_topics(results)
        .with_cluster_authorized_operations(cluster_ops)
}

async fn requested_topic(
    broker: &Broker,
    name: Option<String>,
    topic_id: Uuid,
    may_create: bool,
    topic_ops: i32,
) -> MetadataResponseTopic {
    let error = |code: i16, name: Option<String>| {
        MetadataResponseTopic::default()
            .with_error_code(code)
            .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(topic_id)
            .with_topic_authorized_operations(i32::MIN)
    };
    let Some(name) = name.or_else(|| topics::name_for_id(&broker.meta.image().read(), topic_id))
    else {
        return error(ResponseError::UnknownTopicId.code(), None);
    };
    if validate_topic_name(&name).is_err() {
        return error(ResponseError::InvalidTopicException.code(), Some(name));
    }
    let exists = broker.meta.image().read().topic_ids.contains_key(&name);
    if !exists {
        if !may_create {
            return error(ResponseError::UnknownTopicOrPartition.code(), Some(name));
        }
        if let Err(code) = topics::auto_create(broker, &name).await {
            return error(code, Some(name));
        }
    }
    let image = broker.meta.image().read();
    match image.topic_by_name(&name) {
        Some(topic) => topic_result(topic, topic_ops),
        None => error(ResponseError::UnknownTopicOrPartition.code(), Some(name)),
    }
}

fn brokers(image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    // As in Kafka, a fenced broker is not offered to clients.
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect()
}

fn topic_result(topic: &TopicImage, topic_ops: i32) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .values()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(vec![BrokerId(p.leader)])
                .with_isr_nodes(vec![BrokerId(p.leader)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(topic_ops)
}
