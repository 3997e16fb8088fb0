//! DescribeGroups: state, protocol and members of classic groups.

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use strata_coordinator::Effects;

use crate::{acl, Broker};

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let ops = acl::reported(req.include_authorized_operations, acl::GROUP_OPERATIONS);
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let result = match broker.groups.shard_for(broker, &id).await {
            Ok(shard) => {
                let key = id.to_string();
                shard
                    .call(move |shard, _, _| {
                        (shard.describe_group(&key, version, ops), Effects::default())
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        groups.push(result.unwrap_or_else(|e| {
            DescribedGroup::default()
                .with_group_id(id.clone())
                .with_error_code(e)
        }));
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
