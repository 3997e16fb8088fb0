//! Checking that a partition is in a producer's transaction before writing to it (KIP-890):
//! a partition leader (for a transactional produce) or a group coordinator (for
//! TxnOffsetCommit) asks the transaction coordinator, here or on the broker that leads the
//! transactional id's `__transaction_state` partition, with the batched AddPartitionsToTxn
//! brokers send. With transactions version 2 the partition is added rather than checked.

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use kafka_protocol::error::ResponseError;

use super::TRANSACTION_STATE_TOPIC;
use crate::Broker;

/// Why a partition could not be checked.
#[derive(Debug)]
pub enum Refused {
    /// The coordinator's error code (PRODUCER_FENCED, CONCURRENT_TRANSACTIONS, ...).
    Code(i16),
    /// The coordinator's broker did not answer.
    Unreachable(String),
}

/// Is (topic, partition) in the open transaction of `producer_id` at `epoch`? With `add`, it
/// joins the transaction instead of being checked.
pub async fn join(
    broker: &Broker,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    add: bool,
    topic: &str,
    partition: i32,
) -> Result<bool, Refused> {
    if transactional_id.is_empty() {
        return Err(Refused::Code(ResponseError::InvalidRequest.code()));
    }
    let shard = match broker.txns.shard_for(broker, transactional_id).await {
        Ok(shard) => shard,
        Err(code) if code == ResponseError::NotCoordinator.code() => {
            let id = transactional_id;
            return match ask(broker, id, producer_id, epoch, add, topic, partition).await {
                Ok(0) => Ok(true),
                Ok(code) if code == ResponseError::TransactionAbortable.code() && !add => Ok(false),
                Ok(code) => Err(Refused::Code(code)),
                Err(why) => Err(Refused::Unreachable(why)),
            };
        }
        Err(code) => return Err(Refused::Code(code)),
    };
    let (id, asked) = (
        transactional_id.to_string(),
        [(topic.to_string(), partition)],
    );
    let answer = if add {
        shard
            .call(move |s, now_ms, _| s.add_partitions(now_ms, &id, producer_id, epoch, &asked))
            .await
            .map(|added| added.map(|()| Vec::new()))
    } else {
        shard
            .read(move |s| s.verify(&id, producer_id, epoch, &asked))
            .await
    };
    match answer {
        Ok(Ok(missing)) => Ok(missing.is_empty()),
        Ok(Err(e)) => Err(Refused::Code(e.code())),
        Err(code) => Err(Refused::Code(code)),
    }
}

/// The first AddPartitionsToTxn version with the batched form brokers send.
const ADD_PARTITIONS_VERSION: i16 = 4;

/// Asks the coordinator of `transactional_id` on another broker. Returns its error code for
/// the partition (0 when it is in the transaction), or why it was not reached.
async fn ask(
    broker: &Broker,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    add: bool,
    topic: &str,
    partition: i32,
) -> Result<i16, String> {
    let state_partition = broker
        .txns
        .partition_of(broker, transactional_id)
        .await
        .map_err(|code| format!("error {code}"))?;
    let coordinator = broker
        .meta
        .image()
        .read()
        .partition(TRANSACTION_STATE_TOPIC, state_partition)
        .map(|p| p.leader)
        .ok_or_else(|| "no transaction state partition".to_string())?;
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_verify_only(!add)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![partition])]),
    ]);
    let response = broker
        .peers
        .send(broker, coordinator, ADD_PARTITIONS_VERSION, &request)
        .await
        .map_err(|e| e.to_string())?;
    if response.error_code != 0 {
        return Ok(response.error_code);
    }
    response
        .results_by_transaction
        .iter()
        .flat_map(|t| &t.topic_results)
        .filter(|t| t.name.as_str() == topic)
        .flat_map(|t| &t.results_by_partition)
        .find(|r| r.partition_index == partition)
        .map(|r| r.partition_error_code)
        .ok_or_else(|| "the coordinator did not answer for the partition".to_string())
}
