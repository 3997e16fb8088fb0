//! ListGroups: every group on this broker's coordinator partitions, filtered by state (v4)
//! and type (v5).

use std::sync::Arc;

use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};
use strata_coordinator::Effects;

use crate::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let shards = match broker.groups.shards(broker).await {
        Ok(s) => s,
        Err(e) => return ListGroupsResponse::default().with_error_code(e),
    };
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_string()).collect();
    let mut groups = Vec::new();
    for shard in shards {
        let (states, types) = (states.clone(), types.clone());
        match shard
            .call(move |shard, _, _| (shard.list_groups(&states, &types), Effects::default()))
            .await
        {
            Ok(list) => groups.extend(list),
            Err(e) => return ListGroupsResponse::default().with_error_code(e),
        }
    }
    if version < 4 {
        for g in &mut groups {
            g.group_state = Default::default();
        }
    }
    if version < 5 {
        for g in &mut groups {
            g.group_type = Default::default();
        }
    }
    ListGroupsResponse::default().with_groups(groups)
}
