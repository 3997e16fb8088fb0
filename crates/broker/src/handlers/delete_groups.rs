//! DeleteGroups: removes empty groups and their offsets.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use strata_coordinator::Effects;

use crate::Broker;

pub async fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let error = match broker.groups.shard_for(broker, &id).await {
            Ok(shard) => {
                let key = id.to_string();
                shard
                    .call(move |shard, _, _| {
                        let mut fx = Effects::default();
                        let e = shard.delete_group(&key, &mut fx);
                        (e, fx)
                    })
                    .await
                    .unwrap_or_else(|e| e)
            }
            Err(e) => e,
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
