//! ListPartitionReassignments: the partitions on their way to another broker, each with its
//! current leader (removing) and its target (adding).

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;

pub fn handle(
    broker: &Broker,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = broker.meta.image().read();
    // `None` asks for every topic; otherwise only the named partitions.
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let mut out = Vec::new();
    for topic in image.topics.values() {
        let named = match &wanted {
            None => None,
            Some(list) => match list.iter().find(|(n, _)| *n == topic.name) {
                Some((_, partitions)) => Some(partitions),
                None => continue,
            },
        };
        let mut partitions = Vec::new();
        for p in topic.partitions.values() {
            if named.is_some_and(|n| !n.contains(&p.partition)) {
                continue;
            }
            let Some(stream) = image.streams.get(&p.stream_id) else {
                continue;
            };
            let Some(target) = stream.moving_to else {
                continue;
            };
            partitions.push(
                OngoingPartitionReassignment::default()
                    .with_partition_index(p.partition)
                    .with_replicas(vec![BrokerId(stream.owner), BrokerId(target)])
                    .with_adding_replicas(vec![BrokerId(target)])
                    .with_removing_replicas(vec![BrokerId(stream.owner)]),
            );
        }
        if !partitions.is_empty() {
            out.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(out)
}
