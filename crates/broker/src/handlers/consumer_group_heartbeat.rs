//! ConsumerGroupHeartbeat (KIP-848): join, stay, reconcile and leave in one API.

use std::sync::Arc;

use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::Client;
use crate::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    client: Client,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let result = match broker.groups.shard_for(broker, &req.group_id).await {
        Ok(shard) => {
            shard
                .call(move |shard, now_ms, topics| {
                    shard.consumer_heartbeat(
                        now_ms,
                        version,
                        &client.id,
                        &client.host,
                        &req,
                        topics,
                    )
                })
                .await
        }
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e)
            .with_member_epoch(-1)
    })
}
