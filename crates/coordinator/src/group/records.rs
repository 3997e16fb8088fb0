//! The records a group shard writes to its `__consumer_offsets` partition: a key naming the
//! entity and a value holding its latest state, or no value (a tombstone) once it is gone.
//! Replaying them in order rebuilds the shard; `docs/formats.md` documents them (version 1).

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::shard::CoordinatorRecord;
pub use crate::shard::DecodeError;

pub const VERSION: u16 = 1;

/// Partitions of topics, by topic id: how KIP-848 assignments are kept.
pub type TopicPartitions = BTreeMap<Uuid, Vec<i32>>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKey {
    /// A committed offset.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A classic group as of its last completed rebalance.
    ClassicGroup { group: String },
    /// A KIP-848 group's epoch and the topic sizes it was computed for.
    ConsumerGroup { group: String },
    /// A KIP-848 member's subscription.
    ConsumerMember { group: String, member: String },
    /// A KIP-848 group's target assignment.
    ConsumerTarget { group: String },
    /// A KIP-848 member's current assignment and epoch.
    ConsumerAssignment { group: String, member: String },
    /// An offset committed inside a transaction, applied (or dropped) by its marker.
    PendingOffset {
        group: String,
        topic: String,
        partition: i32,
        producer_id: i64,
    },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. }
            | RecordKey::ClassicGroup { group }
            | RecordKey::ConsumerGroup { group }
            | RecordKey::ConsumerMember { group, .. }
            | RecordKey::ConsumerTarget { group }
            | RecordKey::ConsumerAssignment { group, .. }
            | RecordKey::PendingOffset { group, .. } => group,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordValue {
    Offset(OffsetValue),
    ClassicGroup(ClassicGroupValue),
    ConsumerGroup(ConsumerGroupValue),
    ConsumerMember(ConsumerMemberValue),
    ConsumerTarget(ConsumerTargetValue),
    ConsumerAssignment(ConsumerAssignmentValue),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicGroupValue {
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state; offsets of an empty group expire from here.
    pub state_ms: u64,
    pub members: Vec<ClassicMemberValue>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicMemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the group's protocol, base64.
    #[serde(with = "b64")]
    pub subscription: Bytes,
    #[serde(with = "b64")]
    pub assignment: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroupValue {
    pub epoch: i32,
    /// Partition counts of the subscribed topics when `epoch` was set.
    pub topic_partitions: BTreeMap<String, i32>,
    pub state_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMemberValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    /// A regular expression (RE2 syntax, whole-name match) adding every topic it matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Set for a member that speaks the classic protocol inside a consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classic: Option<ClassicMetadata>,
}

/// What a classic member of a consumer group sent in its last JoinGroup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicMetadata {
    pub session_timeout_ms: i32,
    /// Its protocols in order of preference: name and metadata (base64).
    pub protocols: Vec<ClassicProtocol>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicProtocol {
    pub name: String,
    #[serde(with = "b64")]
    pub metadata: Bytes,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerTargetValue {
    pub epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, TopicPartitions>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerAssignmentValue {
    pub member_epoch: i32,
    pub previous_epoch: i32,
    pub assigned: TopicPartitions,
    pub pending_revocation: TopicPartitions,
}

/// One record: a key and its value, or a tombstone.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRecord {
    pub key: RecordKey,
    pub value: Option<RecordValue>,
}

#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    v: u16,
    #[serde(flatten)]
    body: T,
}

impl GroupRecord {
    pub fn put(key: RecordKey, value: RecordValue) -> GroupRecord {
        GroupRecord {
            key,
            value: Some(value),
        }
    }

    pub fn tombstone(key: RecordKey) -> GroupRecord {
        GroupRecord { key, value: None }
    }

    /// The Kafka record key and value bytes.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let key = serde_json::to_vec(&Versioned {
            v: VERSION,
            body: &self.key,
        })
        .expect("record keys serialize");
        let value = self.value.as_ref().map(|v| {
            Bytes::from(
                serde_json::to_vec(&Versioned {
                    v: VERSION,
                    body: v,
                })
                .expect("record values serialize"),
            )
        });
        (Bytes::from(key), value)
    }

    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, DecodeError> {
        let key: Versioned<RecordKey> =
            serde_json::from_slice(key).map_err(|e| DecodeError(format!("key: {e}")))?;
        if key.v != VERSION {
            return Err(DecodeError(format!("key version {}", key.v)));
        }
        let value = match value {
            None => None,
            Some(v) => {
                let v: Versioned<RecordValue> =
                    serde_json::from_slice(v).map_err(|e| DecodeError(format!("value: {e}")))?;
                if v.v != VERSION {
                    return Err(DecodeError(format!("value version {}", v.v)));
                }
                Some(v.body)
            }
        };
        Ok(GroupRecord {
            key: key.body,
            value,
        })
    }
}

mod b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

impl CoordinatorRecord for GroupRecord {
    fn encode(&self) -> (Bytes, Option<Bytes>) {
        GroupRecord::encode(self)
    }

    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, DecodeError> {
        GroupRecord::decode(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let records = [
            GroupRecord::put(
                RecordKey::Offset {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 3,
                },
                RecordValue::Offset(OffsetValue {
                    offset: 42,
                    leader_epoch: 1,
                    metadata: Some("m".into()),
                    commit_ms: 7,
                }),
            ),
            GroupRecord::tombstone(RecordKey::ClassicGroup { group: "g".into() }),
            GroupRecord::put(
                RecordKey::ClassicGroup { group: "g".into() },
                RecordValue::ClassicGroup(ClassicGroupValue {
                    protocol_type: Some("consumer".into()),
                    generation: 2,
                    protocol: Some("range".into()),
                    leader: Some("m1".into()),
                    state_ms: 9,
                    members: vec![ClassicMemberValue {
                        member_id: "m1".into(),
                        instance_id: None,
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        session_timeout_ms: 10_000,
                        rebalance_timeout_ms: 30_000,
                        subscription: Bytes::from_static(&[0, 1, 2, 255]),
                        assignment: Bytes::new(),
                    }],
                }),
            ),
        ];
        for r in records {
            let (k, v) = r.encode();
            assert_eq!(GroupRecord::decode(&k, v.as_deref()).unwrap(), r);
        }
    }

    #[test]
    fn refuses_unknown_versions() {
        assert!(GroupRecord::decode(br#"{"v":2,"classic_group":{"group":"g"}}"#, None).is_err());
        assert!(GroupRecord::decode(b"not json", None).is_err());
    }
}
