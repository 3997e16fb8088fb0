//! The `MetadataImage`: the in-memory replay of every committed metadata record. Nothing
//! changes it except [`MetadataImage::apply`]; every reader (produce, fetch, uploader, GC)
//! sees the cluster through it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::records::{MetadataRecord, NodeId, ObjectId, StreamId, StreamRange};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MetadataImage {
    #[serde(default)]
    pub cluster_id: Option<String>,
    pub brokers: BTreeMap<NodeId, BrokerImage>,
    pub topics: BTreeMap<Uuid, TopicImage>,
    pub topic_ids: BTreeMap<String, Uuid>,
    pub streams: BTreeMap<StreamId, StreamImage>,
    pub objects: BTreeMap<ObjectId, ObjectImage>,
    pub next_stream_id: StreamId,
    pub next_object_id: ObjectId,
    /// The first producer id no broker has been given.
    #[serde(default)]
    pub next_producer_id: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub node_id: NodeId,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub incarnation: u64,
    #[serde(default)]
    pub wal: Option<String>,
    /// May not lead partitions or write (its lease ran out, DESIGN.md §4).
    #[serde(default)]
    pub fenced: bool,
    /// Stopping (a controlled shutdown): it still serves what it leads, but is given nothing
    /// new: no new partitions, moves or rescues.
    #[serde(default)]
    pub shutting_down: bool,
}

impl BrokerImage {
    /// May be given partitions to lead: new ones, moved ones, rescued ones.
    pub fn may_lead(&self) -> bool {
        !self.fenced && !self.shutting_down
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopicImage {
    pub topic_id: Uuid,
    pub name: String,
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub partition: i32,
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub stream_id: StreamId,
    /// Snapshots of the partition's producer state, if it has the stream.
    #[serde(default)]
    pub state_stream_id: Option<StreamId>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StreamImage {
    pub stream_id: StreamId,
    pub epoch: u64,
    pub owner: NodeId,
    /// First offset still readable.
    pub start_offset: i64,
    /// End (exclusive) of what committed objects hold; the WAL may hold more.
    pub committed_end_offset: i64,
    /// `(epoch, first offset of that epoch)`, ascending.
    pub epochs: Vec<(u64, i64)>,
    /// The fenced broker whose WAL `owner` is replaying; the stream is not served meanwhile.
    #[serde(default)]
    pub rescue_from: Option<NodeId>,
    /// A reassignment in progress: the broker the stream moves to.
    #[serde(default)]
    pub moving_to: Option<NodeId>,
    /// Committed ranges by start offset.
    pub ranges: BTreeMap<i64, (ObjectId, StreamRange)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectState {
    Prepared,
    Committed,
    MarkedForDeletion { marked_at_ms: u64 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ObjectImage {
    pub object_id: ObjectId,
    pub key: String,
    pub node_id: NodeId,
    pub prepared_at_ms: u64,
    pub size_bytes: u64,
    pub state: ObjectState,
}

impl MetadataImage {
    /// Replays one committed record. Total: the controller validated the record before it was
    /// committed, so replay never fails; a record that no longer fits (e.g. its topic is gone)
    /// is a no-op.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterId { cluster_id } => {
                self.cluster_id.get_or_insert_with(|| cluster_id.clone());
            }
            MetadataRecord::RegisterBroker {
                node_id,
                host,
                port,
                rack,
                incarnation,
                wal,
            } => {
                self.brokers.insert(
                    *node_id,
                    BrokerImage {
                        node_id: *node_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        incarnation: *incarnation,
                        wal: wal.clone(),
                        fenced: false,
                        shutting_down: false,
                    },
                );
            }
            MetadataRecord::BrokerFenced { node_id, .. } => {
                if let Some(broker) = self.brokers.get_mut(node_id) {
                    broker.fenced = true;
                }
            }
            MetadataRecord::BrokerShuttingDown { node_id } => {
                if let Some(broker) = self.brokers.get_mut(node_id) {
                    broker.shutting_down = true;
                }
            }
            MetadataRecord::Topic {
                topic_id,
                name,
                configs,
            } => {
                self.topic_ids.insert(name.clone(), *topic_id);
                self.topics.insert(
                    *topic_id,
                    TopicImage {
                        topic_id: *topic_id,
                        name: name.clone(),
                        configs: configs.clone(),
                        partitions: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::TopicConfig {
                topic_id,
                key,
                value,
            } => {
                if let Some(topic) = self.topics.get_mut(topic_id) {
                    match value {
                        Some(value) => topic.configs.insert(key.clone(), value.clone()),
                        None => topic.configs.remove(key),
                    };
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(topic) = self.topics.remove(topic_id) {
                    self.topic_ids.remove(&topic.name);
                    for partition in topic.partitions.values() {
                        self.streams.remove(&partition.stream_id);
                        if let Some(state) = partition.state_stream_id {
                            self.streams.remove(&state);
                        }
                    }
                }
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                leader,
                leader_epoch,
                stream_id,
                state_stream_id,
            } => {
                let streams = std::iter::once(*stream_id).chain(*state_stream_id);
                for id in streams.clone() {
                    self.next_stream_id = self.next_stream_id.max(id + 1);
                }
                let Some(topic) = self.topics.get_mut(topic_id) else {
                    return;
                };
                topic.partitions.insert(
                    *partition,
                    PartitionImage {
                        partition: *partition,
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        stream_id: *stream_id,
                        state_stream_id: *state_stream_id,
                    },
                );
                for id in streams {
                    self.streams.entry(id).or_insert_with(|| StreamImage {
                        stream_id: id,
                        owner: *leader,
                        ..Default::default()
                    });
                }
            }
            MetadataRecord::StreamOpened {
                stream_id,
                epoch,
                owner,
                start_offset,
                rescue_from,
            } => {
                let Some(stream) = self.streams.get_mut(stream_id) else {
                    return;
                };
                debug_assert!(*epoch > stream.epoch, "stream epochs only grow");
                stream.epoch = *epoch;
                stream.owner = *owner;
                stream.rescue_from = *rescue_from;
                // Opened anywhere, a stream is no longer on its way: the move is done (or a
                // failover overtook it).
                stream.moving_to = None;
                // A rescue epoch writes nothing of its own: the data it commits belongs to the
                // epoch before, whose end is where the next real epoch starts.
                if rescue_from.is_none() {
                    stream.epochs.push((*epoch, *start_offset));
                }
                // The partition's leader epoch follows the stream's epoch.
                for topic in self.topics.values_mut() {
                    for partition in topic.partitions.values_mut() {
                        if partition.stream_id == *stream_id {
                            partition.leader = *owner;
                            partition.leader_epoch = *epoch as i32;
                        }
                    }
                }
            }
            MetadataRecord::StreamsMoving { streams, target } => {
                for id in streams {
                    if let Some(stream) = self.streams.get_mut(id) {
                        stream.moving_to = *target;
                    }
                }
            }
            MetadataRecord::StreamTrimmed {
                stream_id,
                start_offset,
            } => {
                let Some(stream) = self.streams.get_mut(stream_id) else {
                    return;
                };
                stream.start_offset = stream.start_offset.max(*start_offset);
                let start = stream.start_offset;
                stream
                    .ranges
                    .retain(|_, (_, range)| range.end_offset > start);
            }
            MetadataRecord::ProducerIds {
                first_id, count, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(first_id + count);
            }
            MetadataRecord::ObjectPrepared {
                object_id,
                key,
                node_id,
                prepared_at_ms,
            } => {
                self.next_object_id = self.next_object_id.max(object_id + 1);
                self.objects.insert(
                    *object_id,
                    ObjectImage {
                        object_id: *object_id,
                        key: key.clone(),
                        node_id: *node_id,
                        prepared_at_ms: *prepared_at_ms,
                        size_bytes: 0,
                        state: ObjectState::Prepared,
                    },
                );
            }
            MetadataRecord::ObjectCommitted {
                object_id,
                size_bytes,
                ranges,
            } => {
                let Some(object) = self.objects.get_mut(object_id) else {
                    return;
                };
                object.size_bytes = *size_bytes;
                object.state = ObjectState::Committed;
                for range in ranges {
                    let Some(stream) = self.streams.get_mut(&range.stream_id) else {
                        continue;
                    };
                    debug_assert_eq!(range.start_offset, stream.committed_end_offset);
                    stream.committed_end_offset = range.end_offset;
                    if range.end_offset > stream.start_offset {
                        stream
                            .ranges
                            .insert(range.start_offset, (*object_id, range.clone()));
                    }
                }
            }
            MetadataRecord::ObjectMarkedForDeletion {
                object_id,
                marked_at_ms,
            } => {
                if let Some(object) = self.objects.get_mut(object_id) {
                    object.state = ObjectState::MarkedForDeletion {
                        marked_at_ms: *marked_at_ms,
                    };
                }
            }
            MetadataRecord::ObjectDestroyed { object_id } => {
                self.objects.remove(object_id);
            }
        }
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topic_by_name(topic)?.partitions.get(&partition)
    }

    /// The stream of `stream_id`'s producer-state snapshots, if its partition has one.
    pub fn state_stream_of(&self, stream_id: StreamId) -> Option<StreamId> {
        self.topics
            .values()
            .flat_map(|t| t.partitions.values())
            .find(|p| p.stream_id == stream_id)?
            .state_stream_id
    }

    /// Objects that some stream still reads from.
    pub fn referenced_objects(&self) -> BTreeSet<ObjectId> {
        self.streams
            .values()
            .flat_map(|s| s.ranges.values().map(|(id, _)| *id))
            .collect()
    }

    /// The committed ranges of `stream_id` that hold `offset` or anything after it.
    pub fn ranges_from(&self, stream_id: StreamId, offset: i64) -> Vec<(ObjectId, StreamRange)> {
        let Some(stream) = self.streams.get(&stream_id) else {
            return Vec::new();
        };
        let first = stream
            .ranges
            .range(..=offset)
            .next_back()
            .map(|(start, _)| *start)
            .unwrap_or(i64::MIN);
        stream
            .ranges
            .range(first..)
            .filter(|(_, (_, r))| r.end_offset > offset)
            .map(|(_, v)| v.clone())
            .collect()
    }
}
