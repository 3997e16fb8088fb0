//! What the transaction handlers share: finding a transactional id's shard and Kafka's
//! error code for a fenced producer at older API versions.

use kafka_protocol::error::ResponseError;

use super::TxnShardHandle;
use crate::Broker;

/// The shard of `transactional_id`, or the error to answer with.
pub async fn shard(broker: &Broker, transactional_id: &str) -> Result<TxnShardHandle, i16> {
    if transactional_id.is_empty() {
        return Err(ResponseError::InvalidRequest.code());
    }
    broker.txns.shard_for(broker, transactional_id).await
}

/// KIP-588: versions before `fenced_since` report PRODUCER_FENCED as INVALID_PRODUCER_EPOCH.
pub fn code_for(version: i16, fenced_since: i16, error: ResponseError) -> i16 {
    if error == ResponseError::ProducerFenced && version < fenced_since {
        ResponseError::InvalidProducerEpoch.code()
    } else {
        error.code()
    }
}

/// Is (topic, partition) a partition that exists?
pub fn partition_exists(broker: &Broker, topic: &str, partition: i32) -> bool {
    broker
        .meta
        .image()
        .read()
        .partition(topic, partition)
        .is_some()
}
