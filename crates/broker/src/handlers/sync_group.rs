//! SyncGroup: the leader hands in the assignment; every member waits for its share.

use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use strata_coordinator::group::classic::sync_error;
use strata_coordinator::group::Deferred;

use crate::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let shard = match broker.groups.shard_for(broker, &req.group_id).await {
        Ok(s) => s,
        Err(e) => return sync_error(e),
    };
    let result = broker
        .groups
        .call_deferred(&shard, move |shard, now_ms, reply, topics| {
            shard.sync_group(now_ms, reply, version, &req, topics)
        })
        .await;
    match result {
        Ok(Deferred::Sync(r)) => r,
        Ok(Deferred::Join(_)) => unreachable!("a sync is answered with a sync response"),
        Err(e) => sync_error(e),
    }
}
