//! DescribeConfigs: a topic's configs (its own, then defaults) and the broker's static settings.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use strata_meta::topic_config;

use crate::Broker;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// Kafka's `ConfigSource` values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub fn handle(
    broker: &Broker,
    version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|n| n == name));
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let image = broker.meta.image().read();
                    let Some(topic) = image.topic_by_name(&r.resource_name) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let configs = topic_config::TOPIC_CONFIGS
                        .iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, default)| {
                            let (value, source) = match topic.configs.get(*name) {
                                Some(v) => (v.clone(), SOURCE_TOPIC),
                                None => (default.to_string(), SOURCE_DEFAULT),
                            };
                            entry(version, name, value, source, request.include_synonyms)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let configs = broker_configs(broker)
                        .into_iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, value)| {
                            entry(
                                version,
                                name,
                                value,
                                SOURCE_STATIC_BROKER,
                                request.include_synonyms,
                            )
                            .with_read_only(true)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                _ => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "Unsupported resource type",
                    ))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(
    version: i16,
    name: &'static str,
    value: String,
    source: i8,
    synonyms: bool,
) -> DescribeConfigsResourceResult {
    let value = Some(StrBytes::from_string(value));
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(value.clone())
        .with_config_source(if version == 0 { -1 } else { source })
        .with_config_type(config_type(name));
    if synonyms {
        e = e.with_synonyms(vec![DescribeConfigsSynonym::default()
            .with_name(StrBytes::from_static_str(name))
            .with_value(value)
            .with_source(source)]);
    }
    e
}

/// Kafka's `ConfigType`: BOOLEAN 1, STRING 2, INT 3, LONG 5, DOUBLE 6, LIST 7.
fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => 7,
        "compression.type" | "message.timestamp.type" => 2,
        "preallocate"
        | "remote.storage.enable"
        | "unclean.leader.election.enable"
        | "auto.create.topics.enable" => 1,
        "min.cleanable.dirty.ratio" => 6,
        "max.message.bytes"
        | "min.insync.replicas"
        | "segment.bytes"
        | "index.interval.bytes"
        | "segment.index.bytes"
        | "num.partitions"
        | "message.max.bytes" => 3,
        _ => 5,
    }
}

fn broker_configs(broker: &Broker) -> Vec<(&'static str, String)> {
    let c = &broker.config;
    vec![
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("num.partitions", c.num_partitions.to_string()),
        ("message.max.bytes", c.message_max_bytes.to_string()),
        ("default.replication.factor", "1".into()),
        (
            "log.retention.ms",
            topic_config::default_value("retention.ms")
                .unwrap_or("-1")
                .into(),
        ),
        ("broker.id", c.node_id.to_string()),
    ]
}
