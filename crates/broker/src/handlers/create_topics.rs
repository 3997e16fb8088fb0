//! CreateTopics: each topic with its partition count and configs, or only validated.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
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
        let partitions = if !topic.assignments.is_empty() {
            topic.assignments.len() as i32
        } else {
            topic.num_partitions
        };
        if topic.replication_factor == 0 || topic.replication_factor < -1 {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidReplicationFactor.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "Replication factor must be larger than 0, or -1 to use the default",
                    ))),
            );
            continue;
        }
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
