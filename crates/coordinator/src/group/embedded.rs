//! The consumer protocol embedded in classic JoinGroup and SyncGroup bytes: the subscription a
//! classic consumer sends and the assignment it expects back. The broker reads and writes it
//! only for classic members of consumer groups, whose assignment the broker computes.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::records::TopicPartitions as Partitions;
use super::TopicLookup;

/// The newest version of both structures this codec knows; newer ones decode as it, as in
/// Kafka's clients.
const VERSION_MAX: i16 = 3;

/// The version a member's protocol metadata starts with.
pub fn version(metadata: &[u8]) -> Option<i16> {
    (metadata.len() >= 2).then(|| i16::from_be_bytes([metadata[0], metadata[1]]))
}

pub fn decode_subscription(metadata: &Bytes) -> Option<ConsumerProtocolSubscription> {
    let version = version(metadata)?;
    if version < 0 {
        return None;
    }
    let mut buf = metadata.slice(2..);
    ConsumerProtocolSubscription::decode(&mut buf, version.min(VERSION_MAX)).ok()
}

/// Topic names and partitions of an assignment; empty bytes are an empty assignment.
pub fn decode_assignment(bytes: &Bytes) -> Option<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let version = version(bytes)?;
    if version < 0 {
        return None;
    }
    let mut buf = bytes.slice(2..);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version.min(VERSION_MAX)).ok()?;
    Some(
        a.assigned_partitions
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect(),
    )
}

/// An assignment as a classic consumer reads it, in the version of its subscription.
pub fn encode_assignment(partitions: &Partitions, topics: &dyn TopicLookup, version: i16) -> Bytes {
    let version = version.clamp(0, VERSION_MAX);
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .filter_map(|(id, ps)| {
                let (name, _) = topics.by_id(*id)?;
                Some(
                    AssignedTopic::default()
                        .with_topic(StrBytes::from(name).into())
                        .with_partitions(ps.clone()),
                )
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    assignment
        .encode(&mut buf, version)
        .expect("an assignment of known topics encodes");
    buf.freeze()
}

/// Named partitions as topic ids; topics that do not exist (any more) are dropped.
pub fn by_id<'a>(
    named: impl IntoIterator<Item = (&'a str, &'a [i32])>,
    topics: &dyn TopicLookup,
) -> Partitions {
    let mut out = Partitions::new();
    for (name, ps) in named {
        let Some((id, count)) = topics.by_name(name) else {
            continue;
        };
        let list = out.entry(id).or_default();
        list.extend(ps.iter().filter(|p| (0..count).contains(*p)));
        list.sort_unstable();
        list.dedup();
        if list.is_empty() {
            out.remove(&id);
        }
    }
    out
}

/// The topics a subscription names.
pub fn topics_of(s: &ConsumerProtocolSubscription) -> Vec<String> {
    let mut names: Vec<String> = s.topics.iter().map(|t| t.to_string()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The partitions a subscription says its member owns (cooperative clients send them).
pub fn owned_of(s: &ConsumerProtocolSubscription, topics: &dyn TopicLookup) -> Partitions {
    by_id(
        s.owned_partitions
            .iter()
            .map(|t| (t.topic.as_str(), t.partitions.as_slice())),
        topics,
    )
}
