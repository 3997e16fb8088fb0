//! KIP-951: a produce refused with NOT_LEADER_OR_FOLLOWER names the partition's current
//! leader and how to reach it, so a client (librdkafka 2.5+, the Java client 3.7+) goes
//! there at once instead of waiting for a metadata refresh: after a reassignment or a
//! failover the first refused request already points at the new owner.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{LeaderIdAndEpoch, NodeEndpoint};
use kafka_protocol::messages::{BrokerId, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use crate::{topics, Broker};

/// The first Produce version with leader hints.
const PRODUCE_VERSION_MIN: i16 = 10;

/// Adds the current leader to every partition of `response` refused as not led here.
pub fn add_to_produce(broker: &Broker, version: i16, response: &mut ProduceResponse) {
    if version < PRODUCE_VERSION_MIN {
        return;
    }
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    let image = broker.meta.image().read();
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    for topic in &mut response.responses {
        let name = match topics::name_for_id(&image, topic.topic_id) {
            Some(name) if version >= 13 => name,
            _ => topic.name.to_string(),
        };
        for p in &mut topic.partition_responses {
            if p.error_code != not_leader {
                continue;
            }
            let Some(leader) = image.partition(&name, p.index) else {
                continue;
            };
            let Some(node) = image.brokers.get(&leader.leader).filter(|b| !b.fenced) else {
                continue;
            };
            if node.node_id == broker.config.node_id {
                continue;
            }
            p.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(node.node_id))
                .with_leader_epoch(leader.leader_epoch);
            if !endpoints.iter().any(|e| e.node_id.0 == node.node_id) {
                endpoints.push(
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(node.node_id))
                        .with_host(StrBytes::from_string(node.host.clone()))
                        .with_port(node.port)
                        .with_rack(node.rack.clone().map(StrBytes::from_string)),
                );
            }
        }
    }
    response.node_endpoints = endpoints;
}
