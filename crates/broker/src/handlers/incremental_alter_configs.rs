//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on single topic configs.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use strata_meta::{controller, topic_config, Command};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::{errors, Broker};

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let current = broker
            .meta
            .image()
            .read()
            .topic_by_name(&r.resource_name)
            .map(|t| t.configs.clone())
            .unwrap_or_default();
        let mut changes = Vec::new();
        let mut bad = None;
        for c in &r.configs {
            let name = c.name.to_string();
            let value = c.value.as_ref().map(|v| v.to_string());
            let list = |name: &str| -> Vec<String> {
                topic_config::effective(&current, name)
                    .map(|v| {
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            match c.config_operation {
                SET => changes.push((name, value)),
                DELETE => changes.push((name, None)),
                APPEND | SUBTRACT if name == "cleanup.policy" => {
                    let mut items = list(&name);
                    for v in value.iter().flat_map(|v| v.split(',')).map(str::trim) {
                        if c.config_operation == APPEND && !items.iter().any(|i| i == v) {
                            items.push(v.to_string());
                        } else if c.config_operation == SUBTRACT {
                            items.retain(|i| i != v);
                        }
                    }
                    changes.push((name, Some(items.join(","))));
                }
                _ => {
                    bad = Some(format!(
                        "Operation {} is not valid for {name}",
                        c.config_operation
                    ))
                }
            }
        }
        let (code, message) = match bad {
            Some(message) => (
                ResponseError::InvalidConfig.code(),
                Some(StrBytes::from_string(message)),
            ),
            None => {
                apply(
                    broker,
                    r.resource_type,
                    &r.resource_name,
                    changes,
                    false,
                    request.validate_only,
                )
                .await
            }
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Applies topic config changes (or only validates them); `(error code, message)`.
pub async fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: Vec<(String, Option<String>)>,
    replace: bool,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return (
                ResponseError::InvalidRequest.code(),
                Some(StrBytes::from_static_str("Strata's broker settings are static; set them with flags, environment or the config file")),
            )
        }
        _ => return (ResponseError::InvalidRequest.code(), Some(StrBytes::from_static_str("Unsupported resource type"))),
    }
    let command = Command::AlterTopicConfigs {
        name: name.to_string(),
        changes,
        replace,
    };
    let outcome = if validate_only {
        controller::decide(&broker.meta.image().read(), &command)
            .map(|_| ())
            .map_err(|e| (errors::controller(&e), e.to_string()))
    } else {
        broker
            .meta
            .submit(command)
            .await
            .map(|_| ())
            .map_err(|e| (errors::submit(&e), e.to_string()))
    };
    match outcome {
        Ok(()) => (0, None),
        Err((code, message)) => (code, Some(StrBytes::from_string(message))),
    }
}
