//! OffsetDelete: removes a group's offsets for topics it no longer consumes.

use std::sync::Arc;

use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::Broker;

pub async fn handle(broker: &Arc<Broker>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let result = match broker.groups.shard_for(broker, &req.group_id).await {
        Ok(shard) => {
            shard
                .call(move |shard, _, topics| shard.offset_delete(&req, topics))
                .await
        }
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| OffsetDeleteResponse::default().with_error_code(e))
}
