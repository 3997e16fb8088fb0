//! CreateTopics: each topic with its partition count and configs, or only validated.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use strata_meta::topic_config;

use crate::{topics, Broker};

/// Kafka's `ConfigSource.DEFAULT_CONFIG` and `TOPIC_CONFIG`.
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_TOPIC: i8 = 1;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for (i, topic) in request.topics.iter().enumerate() {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        if request.topics[..i].iter().any(|t| t.name == topic.name) {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "Duplicate topic name in request",
                    ))),
            );
            continue;
        }
        if let Err((code, message)) = check_replicas(broker, topic) {
            results.push(
                result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            );
            continue;
        }
        let partitions = if !topic.assignments.is_empty() {
            topic.assignments.len() as i32
        } else {
            topic.num_partitions
        };
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        match topics::create(
            broker,
            &name,
            partitions,
            configs.clone(),
            request.validate_only,
        )
        .await
        {
            Ok(topic_id) => {
                let partitions = if partitions < 0 {
                    broker.config.num_partitions
                } else {
                    partitions
                };
                // Strata keeps one copy on shared storage; the factor is reported, not replicated.
                let rf = if topic.replication_factor < 0 {
                    1
                } else {
                    topic.replication_factor
                };
                let mut r = result
                    .with_topic_id(topic_id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf);
                if version >= 5 {
                    r = r.with_configs(Some(described_configs(&configs)));
                }
                results.push(r);
            }
            Err((code, message)) => results.push(
                result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            ),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// Kafka's checks on replication: a factor the cluster can hold, or an explicit assignment to
/// brokers that exist (never both). Strata keeps one copy on shared storage, so the factor is
/// checked and reported, not replicated.
fn check_replicas(broker: &Broker, topic: &CreatableTopic) -> Result<(), (ResponseError, String)> {
    let brokers = topics::broker_ids(broker);
    if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        for a in &topic.assignments {
            if let Some(unknown) = a.broker_ids.iter().find(|b| !brokers.contains(&b.0)) {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!("Unknown broker {} in assignment", unknown.0),
                ));
            }
        }
        return Ok(());
    }
    if topic.replication_factor == 0 || topic.replication_factor < -1 {
        return Err((
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default".into(),
        ));
    }
    if topic.replication_factor > 0 && topic.replication_factor as usize > brokers.len() {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!("Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only {} broker(s) are registered.", topic.replication_factor, topic.replication_factor, brokers.len()),
        ));
    }
    Ok(())
}

fn described_configs(configs: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    topic_config::TOPIC_CONFIGS
        .iter()
        .map(|(name, default)| {
            let (value, source) = match configs.get(*name) {
                Some(v) => (v.clone(), SOURCE_TOPIC),
                None => (default.to_string(), SOURCE_DEFAULT),
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source)
        })
        .collect()
}
