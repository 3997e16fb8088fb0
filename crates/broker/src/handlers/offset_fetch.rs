//! OffsetFetch: committed offsets of one group (up to v7) or of many (v8 on).

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;
use strata_coordinator::group::offsets::Committed;
use strata_coordinator::Effects;

use crate::Broker;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let wanted: Wanted = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let member = (version >= 9)
                .then(|| {
                    g.member_id
                        .as_ref()
                        .map(|m| (m.to_string(), g.member_epoch))
                })
                .flatten();
            let (error, topics) =
                fetch(broker, &g.group_id, member, wanted, req.require_stable).await;
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(error)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(name, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(StrBytes::from(name).into())
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|c| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(c.partition)
                                                    .with_committed_offset(c.offset)
                                                    .with_committed_leader_epoch(c.leader_epoch)
                                                    .with_metadata(Some(c.metadata.into()))
                                                    .with_error_code(c.error)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let require_stable = version >= 7 && req.require_stable;
    let (error, topics) = fetch(broker, &req.group_id, None, wanted.clone(), require_stable).await;
    // Before v2 there is no group-level error: it goes on every partition.
    let topics = if error != 0 && version < 2 {
        wanted
            .unwrap_or_default()
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().map(Committed::none).collect()))
            .collect()
    } else {
        topics
    };
    let partition_error = if version < 2 { error } else { 0 };
    let mut response = OffsetFetchResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(name, ps)| {
                OffsetFetchResponseTopic::default()
                    .with_name(StrBytes::from(name).into())
                    .with_partitions(
                        ps.into_iter()
                            .map(|c| {
                                let mut p = OffsetFetchResponsePartition::default()
                                    .with_partition_index(c.partition)
                                    .with_committed_offset(c.offset)
                                    .with_metadata(Some(c.metadata.into()))
                                    .with_error_code(if c.error != 0 {
                                        c.error
                                    } else {
                                        partition_error
                                    });
                                if version >= 5 {
                                    p.committed_leader_epoch = c.leader_epoch;
                                }
                                p
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    if version >= 2 {
        response.error_code = error;
    }
    response
}

/// The group-level error and the committed offsets.
async fn fetch(
    broker: &Broker,
    group: &str,
    member: Option<(String, i32)>,
    wanted: Wanted,
    require_stable: bool,
) -> (i16, Vec<(String, Vec<Committed>)>) {
    let shard = match broker.groups.shard_for(broker, group).await {
        Ok(s) => s,
        Err(e) => return (e, Vec::new()),
    };
    let group = group.to_string();
    let result = shard
        .call(move |shard, _, _| {
            if let Some((member_id, epoch)) = &member {
                if let Err(e) = shard.validate_fetch(&group, member_id, *epoch) {
                    return ((e, Vec::new()), Effects::default());
                }
            }
            let offsets = shard.offset_fetch(&group, wanted, require_stable);
            ((0, offsets), Effects::default())
        })
        .await;
    result.unwrap_or_else(|e| (e, Vec::new()))
}
