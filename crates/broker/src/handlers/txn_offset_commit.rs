//! TxnOffsetCommit: a transactional producer commits a group's offsets; they stay pending in
//! the group's shard until the transaction's marker applies or drops them. From v5 (KIP-890
//! transactions version 2) the request adds the group's partition to the transaction itself,
//! and the client sends no AddOffsetsToTxn.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::groups::OFFSETS_TOPIC;
use crate::transactions::join::{self, Refused};
use crate::transactions::requests;
use crate::Broker;

pub async fn handle(
    broker: &Broker,
    version: i16,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    match commit(broker, version, &req).await {
        Ok(response) => response,
        Err(code) => all_failed(&req, code),
    }
}

async fn commit(
    broker: &Broker,
    version: i16,
    req: &TxnOffsetCommitRequest,
) -> Result<TxnOffsetCommitResponse, i16> {
    if req.group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId.code());
    }
    // The producer must own the transaction and have added the group's partition to it.
    let id = req.transactional_id.to_string();
    let partition = broker.groups.partition_of(broker, &req.group_id).await?;
    let (pid, epoch, add) = (req.producer_id.0, req.producer_epoch, version >= 5);
    match join::join(broker, &id, pid, epoch, add, OFFSETS_TOPIC, partition).await {
        Ok(true) => {}
        Ok(false) => return Err(ResponseError::InvalidTxnState.code()),
        // Not this group's coordinator that is unavailable, but the client retries the same.
        Err(Refused::Unreachable(_)) => return Err(ResponseError::CoordinatorNotAvailable.code()),
        Err(Refused::Code(code)) => {
            return Err(match ResponseError::try_from_code(code) {
                Some(ResponseError::NotCoordinator) => {
                    ResponseError::CoordinatorNotAvailable.code()
                }
                Some(e) => requests::code_for(version, 3, e),
                None => code,
            })
        }
    }
    let group_shard = broker.groups.shard_for(broker, &req.group_id).await?;
    let req = req.clone();
    group_shard
        .call(move |s, now_ms, topics| s.txn_offset_commit(now_ms, &req, topics))
        .await
}

fn all_failed(req: &TxnOffsetCommitRequest, code: i16) -> TxnOffsetCommitResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
