//! ConsumerGroupDescribe (KIP-848): epochs, members, assignments and targets.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};
use strata_coordinator::Effects;

use crate::{acl, Broker};

pub async fn handle(
    broker: &Arc<Broker>,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let ops = acl::reported(req.include_authorized_operations, acl::GROUP_OPERATIONS);
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids {
        let result = match broker.groups.shard_for(broker, &id).await {
            Ok(shard) => {
                let key = id.to_string();
                shard
                    .call(move |shard, _, topics| {
                        (
                            shard.consumer_describe(&key, ops, topics),
                            Effects::default(),
                        )
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
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
