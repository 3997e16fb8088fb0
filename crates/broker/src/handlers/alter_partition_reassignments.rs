//! AlterPartitionReassignments: moves partitions to other brokers (one replica each: the
//! broker that will lead it), or cancels moves in progress. The request is answered once the
//! moves are recorded; the brokers hand the partitions over right after
//! (ListPartitionReassignments shows what is still moving).

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_meta::Command;

use crate::{errors, Broker};

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let moves = topic.partitions.into_iter().map(|p| {
            let name = name.clone();
            async move {
                let result = reassign(broker, &name, p.partition_index, p.replicas).await;
                let response = ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index);
                match result {
                    Ok(()) => response,
                    Err((code, message)) => response
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_string(message))),
                }
            }
        });
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(join_all(moves).await),
        );
    }
    let mut response = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if version >= 1 {
        response.allow_replication_factor_change = request.allow_replication_factor_change;
    }
    response
}

async fn reassign(
    broker: &Broker,
    topic: &str,
    partition: i32,
    replicas: Option<Vec<kafka_protocol::messages::BrokerId>>,
) -> Result<(), (i16, String)> {
    let target = match replicas.as_deref() {
        None => None,
        Some([one]) => Some(one.0),
        Some([]) => {
            return Err((
                ResponseError::InvalidReplicaAssignment.code(),
                "the replica list is empty".into(),
            ))
        }
        Some(other) => {
            return Err((
                ResponseError::InvalidReplicationFactor.code(),
                format!(
                "a partition has exactly one replica, its leader, on shared storage; {} were named",
                other.len()
            ),
            ))
        }
    };
    broker
        .meta
        .submit(Command::ReassignPartition {
            topic: topic.to_string(),
            partition,
            target,
        })
        .await
        .map(|_| ())
        .map_err(|e| (errors::submit(&e), e.to_string()))
}
