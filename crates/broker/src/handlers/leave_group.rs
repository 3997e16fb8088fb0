//! LeaveGroup: classic members leave (one, or a batch from v3), and the rest rebalance.

use std::sync::Arc;

use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let result = match broker.groups.shard_for(broker, &req.group_id).await {
        Ok(shard) => {
            shard
                .call(move |shard, now_ms, topics| shard.leave_group(now_ms, version, &req, topics))
                .await
        }
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| LeaveGroupResponse::default().with_error_code(e))
}
