//! OffsetCommit: a group's consumed positions, acknowledged once durable.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let failed = |req: &OffsetCommitRequest, e: i16| {
        OffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(e)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    };
    let shard = match broker.groups.shard_for(broker, &req.group_id).await {
        Ok(s) => s,
        Err(e) => return failed(&req, e),
    };
    let topics_only = req.clone();
    shard
        .call(move |shard, now_ms, topics| shard.offset_commit(now_ms, version, &req, topics))
        .await
        .unwrap_or_else(|e| failed(&topics_only, e))
}
