//! CreatePartitions: grows a topic to a new partition count (or validates that it could).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use strata_meta::{controller, Command};

use crate::{errors, topics, Broker};

pub async fn handle(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        if let Some(assignments) = &topic.assignments {
            let current = broker
                .meta
                .image()
                .read()
                .topic_by_name(&topic.name.0)
                .map_or(0, |t| t.partitions.len() as i32);
            let brokers = topics::broker_ids(broker);
            let unknown = assignments
                .iter()
                .flat_map(|a| &a.broker_ids)
                .any(|b| !brokers.contains(&b.0));
            if unknown || assignments.len() as i32 != topic.count - current {
                results.push(
                    result
                        .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Assignments must name each new partition",
                        ))),
                );
                continue;
            }
        }
        let command = Command::CreatePartitions {
            name: topic.name.0.to_string(),
            total: topic.count,
        };
        let outcome = if request.validate_only {
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
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
