//! Heartbeat: a classic member says it is alive and learns whether a rebalance started.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use strata_coordinator::Effects;

use crate::Broker;

pub async fn handle(broker: &Arc<Broker>, req: HeartbeatRequest) -> HeartbeatResponse {
    let error = match broker.groups.shard_for(broker, &req.group_id).await {
        Ok(shard) => shard
            .call(move |shard, now_ms, _| (shard.heartbeat(now_ms, &req), Effects::default()))
            .await
            .unwrap_or_else(|e| e),
        Err(e) => e,
    };
    HeartbeatResponse::default().with_error_code(error)
}
