//! Metadata records: the only way cluster metadata changes. Each committed batch of records is
//! replayed into the [`crate::MetadataImage`]; startup, following the leader and crash recovery
//! all go through that one replay path.
//!
//! Records are persisted in the Raft log as versioned JSON envelopes (see `docs/formats.md`).
//! A new field gets `#[serde(default)]`; a changed meaning gets a new record type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Version of the record envelope; bumped when a record's meaning changes incompatibly.
/// 2: a partition takes two stream ids (its log and its producer-state snapshots); a binary
/// that knows only 1 would hand the second one out again, so it must refuse these records.
pub const RECORD_VERSION: u16 = 2;

pub type NodeId = i32;
pub type StreamId = u64;
pub type ObjectId = u64;

/// One stream's slice inside a committed object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRange {
    pub stream_id: StreamId,
    /// The writer's epoch for this stream; commits from older epochs are rejected.
    pub epoch: u64,
    pub start_offset: i64,
    /// Exclusive.
    pub end_offset: i64,
    /// Largest record timestamp in the range, for time-based retention.
    #[serde(default)]
    pub max_timestamp_ms: i64,
    /// Byte position of the range's first batch inside the object.
    pub position: u64,
    pub size_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// The cluster's id, set once by the first node to start (Kafka's cluster.id).
    ClusterId {
        cluster_id: String,
    },
    /// A broker joined (or rejoined, with a new incarnation).
    RegisterBroker {
        node_id: NodeId,
        host: String,
        port: i32,
        #[serde(default)]
        rack: Option<String>,
        incarnation: u64,
        /// Where the broker's WAL lives, for a rescuer to replay: `object:PREFIX` (on the
        /// cluster's object store) or `file:PATH`.
        #[serde(default)]
        wal: Option<String>,
    },
    /// The broker's lease ran out: it may no longer write, and `rescuer` replays its WAL.
    /// Its streams are reopened for the rescuer in the same batch.
    BrokerFenced {
        node_id: NodeId,
        rescuer: Option<NodeId>,
    },
    /// The broker is stopping (a controlled shutdown): it is given nothing new to lead until
    /// it registers again.
    BrokerShuttingDown {
        node_id: NodeId,
    },
    Topic {
        topic_id: Uuid,
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Set (`Some`) or remove (`None`) one topic config.
    TopicConfig {
        topic_id: Uuid,
        key: String,
        value: Option<String>,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// A partition, the stream that holds its log and the stream that holds snapshots of its
    /// producer state (none for partitions created before those existed).
    Partition {
        topic_id: Uuid,
        partition: i32,
        leader: NodeId,
        leader_epoch: i32,
        stream_id: StreamId,
        #[serde(default)]
        state_stream_id: Option<StreamId>,
    },
    /// A writer opened the stream with a new epoch; older epochs are fenced from now on.
    /// `start_offset` is where the epoch's first record goes (for OffsetForLeaderEpoch).
    StreamOpened {
        stream_id: StreamId,
        epoch: u64,
        owner: NodeId,
        start_offset: i64,
        /// Set while `owner` rescues the stream: the fenced broker whose WAL may hold the
        /// stream's tail. Nobody serves the stream until its rescue completes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rescue_from: Option<NodeId>,
    },
    /// The streams (one partition's) are to move to `target` (`None`: the move is cancelled).
    /// Their owner stops appending, commits what it holds to objects and hands them over;
    /// the `StreamOpened` for the target ends the move.
    StreamsMoving {
        streams: Vec<StreamId>,
        target: Option<NodeId>,
    },
    /// Records below `start_offset` are gone (retention, DeleteRecords).
    StreamTrimmed {
        stream_id: StreamId,
        start_offset: i64,
    },
    /// An upload is about to be written at `key`; if it never commits, GC deletes it.
    ObjectPrepared {
        object_id: ObjectId,
        key: String,
        node_id: NodeId,
        prepared_at_ms: u64,
    },
    ObjectCommitted {
        object_id: ObjectId,
        size_bytes: u64,
        ranges: Vec<StreamRange>,
    },
    /// Nothing references the object any more; it is deleted after the grace period.
    ObjectMarkedForDeletion {
        object_id: ObjectId,
        marked_at_ms: u64,
    },
    /// The object is gone from the object store.
    ObjectDestroyed {
        object_id: ObjectId,
    },
    /// Producer ids `[first_id, first_id + count)` belong to `node_id` (Kafka's
    /// ProducerIdsRecord): ids are never handed out twice, across restarts and brokers.
    ProducerIds {
        node_id: NodeId,
        first_id: i64,
        count: i64,
    },
}

/// The persisted form of a record: the envelope names its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEnvelope {
    pub v: u16,
    #[serde(flatten)]
    pub record: MetadataRecord,
}

impl From<MetadataRecord> for RecordEnvelope {
    fn from(record: MetadataRecord) -> Self {
        RecordEnvelope {
            v: RECORD_VERSION,
            record,
        }
    }
}
