//! JoinGroup: a classic member joins (or rejoins) its group; the reply waits for the
//! rebalance to finish.

use std::sync::Arc;

use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use strata_coordinator::group::classic::{join_error, Joiner};
use strata_coordinator::group::Deferred;

use super::Client;
use crate::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    client: Client,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let member_id = req.member_id.to_string();
    let shard = match broker.groups.shard_for(broker, &req.group_id).await {
        Ok(s) => s,
        Err(e) => return join_error(version, &member_id, e),
    };
    let result = broker
        .groups
        .call_deferred(&shard, move |shard, now_ms, reply, topics| {
            let joiner = Joiner {
                client_id: &client.id,
                client_host: &client.host,
            };
            shard.join_group(now_ms, reply, version, joiner, &req, topics)
        })
        .await;
    match result {
        Ok(Deferred::Join(r)) => r,
        Ok(Deferred::Sync(_)) => unreachable!("a join is answered with a join response"),
        Err(e) => join_error(version, &member_id, e),
    }
}
