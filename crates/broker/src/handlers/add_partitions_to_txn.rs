//! AddPartitionsToTxn: partitions join a producer's transaction (v0–3, from clients), or, in
//! the batched form brokers send (v4+), several transactions are added to or only verified
//! (KIP-890).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};

use crate::transactions::requests;
use crate::Broker;

pub async fn handle(
    broker: &Broker,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let results = one(
            broker,
            version,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            &req.v3_and_below_topics,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let results = one(
            broker,
            version,
            &t.transactional_id,
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &t.topics,
        )
        .await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

/// One transaction's partitions with an error code each, as Kafka answers: unknown
/// partitions fail with UNKNOWN_TOPIC_OR_PARTITION and the others with OPERATION_NOT_ATTEMPTED.
async fn one(
    broker: &Broker,
    version: i16,
    transactional_id: &TransactionalId,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    let unknown: Vec<bool> = partitions
        .iter()
        .map(|(t, p)| !requests::partition_exists(broker, t, *p))
        .collect();
    let codes: Vec<i16> = if unknown.iter().any(|u| *u) {
        unknown
            .iter()
            .map(|u| {
                if *u {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            })
            .collect()
    } else {
        let id = transactional_id.to_string();
        match requests::shard(broker, &id).await {
            Err(code) => vec![code; partitions.len()],
            Ok(shard) if verify_only => {
                let asked = partitions.clone();
                match shard
                    .read(move |s| s.verify(&id, producer_id, epoch, &asked))
                    .await
                {
                    Ok(Ok(missing)) => partitions
                        .iter()
                        .map(|p| {
                            missing
                                .iter()
                                .find(|(m, _)| m == p)
                                .map_or(0, |(_, e)| e.code())
                        })
                        .collect(),
                    Ok(Err(e)) => vec![requests::code_for(version, 2, e); partitions.len()],
                    Err(code) => vec![code; partitions.len()],
                }
            }
            Ok(shard) => {
                let asked = partitions.clone();
                let result = shard
                    .call(move |s, now_ms, _| {
                        s.add_partitions(now_ms, &id, producer_id, epoch, &asked)
                    })
                    .await;
                let code = match result {
                    Ok(Ok(())) => 0,
                    Ok(Err(e)) => requests::code_for(version, 2, e),
                    Err(code) => code,
                };
                vec![code; partitions.len()]
            }
        }
    };
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), code) in partitions.into_iter().zip(codes) {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(partition)
            .with_partition_error_code(code);
        match out.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.results_by_partition.push(result),
            None => out.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(topic.into()))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    out
}
