//! Controller decisions: a request becomes the records that carry it out, or a Kafka-level
//! error. `decide` is pure (time and ids are passed in); [`ControllerHandle`] serializes
//! decisions and makes their records durable through the quorum before answering.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::{MetadataImage, ObjectState};
use crate::raft::Quorum;
use crate::records::{MetadataRecord, NodeId, ObjectId, StreamId, StreamRange};
use crate::topic_config;

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_LEN_MAX: usize = 249;
/// A limit on partitions per topic, so one request cannot make the image explode.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Names the cluster unless it already has a name.
    InitCluster {
        cluster_id: String,
    },
    RegisterBroker {
        node_id: NodeId,
        host: String,
        port: i32,
        rack: Option<String>,
        incarnation: u64,
        wal: Option<String>,
    },
    /// The broker is stopping and hands its partitions over first (controlled shutdown).
    ShutDownBroker {
        node_id: NodeId,
        /// The incarnation that is stopping: a newer one is not marked for it.
        incarnation: u64,
    },
    /// The broker's lease ran out: fence it and hand its streams to a rescuer.
    FenceBroker {
        node_id: NodeId,
        /// The incarnation whose heartbeats stopped: a newer one is not fenced for it.
        incarnation: u64,
    },
    /// `rescuer` has committed what the fenced brokers' WALs held of `streams`: open each
    /// partition's streams for the broker that leads it from now on.
    CompleteRescue {
        rescuer: NodeId,
        streams: Vec<StreamId>,
    },
    /// `rescuer` cannot reach `fenced`'s WAL: the streams go back to `fenced`, which replays
    /// them itself when it returns.
    AbandonRescue {
        rescuer: NodeId,
        fenced: NodeId,
        streams: Vec<StreamId>,
    },
    /// Moves one partition to `target` (`None` cancels a move in progress).
    ReassignPartition {
        topic: String,
        partition: i32,
        target: Option<NodeId>,
    },
    /// `owner` has committed everything it held of `streams`, which are moving: open them for
    /// their targets.
    HandOver {
        owner: NodeId,
        streams: Vec<StreamId>,
    },
    CreateTopic {
        topic_id: Uuid,
        name: String,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        total: i32,
    },
    /// `replace` drops every config not named (AlterConfigs); otherwise only the named ones
    /// change (IncrementalAlterConfigs).
    AlterTopicConfigs {
        name: String,
        changes: Vec<(String, Option<String>)>,
        replace: bool,
    },
    /// Opens each `(stream, start offset)` for `owner` with its next epoch, fencing every older
    /// writer. One command for many streams, so a broker start is one metadata write.
    OpenStreams {
        owner: NodeId,
        streams: Vec<(StreamId, i64)>,
    },
    TrimStream {
        stream_id: StreamId,
        start_offset: i64,
    },
    PrepareObject {
        node_id: NodeId,
        now_ms: u64,
    },
    CommitObject {
        object_id: ObjectId,
        size_bytes: u64,
        ranges: Vec<StreamRange>,
    },
    MarkObjectsForDeletion {
        object_ids: Vec<ObjectId>,
        now_ms: u64,
    },
    DestroyObjects {
        object_ids: Vec<ObjectId>,
    },
    /// The next block of producer ids for `node_id`.
    AllocateProducerIds {
        node_id: NodeId,
    },
}

/// Producer ids per block, as in Kafka.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("stream {stream_id}: epoch {epoch} is fenced (current {current})")]
    FencedEpoch {
        stream_id: StreamId,
        epoch: u64,
        current: u64,
    },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no broker is available to lead new partitions")]
    NoBrokers,
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("no reassignment is in progress for this partition")]
    NoReassignmentInProgress,
}

/// Where an object's bytes live; the hashed prefix spreads keys over the store's partitions.
pub fn object_key(object_id: ObjectId) -> String {
    let spread = (object_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16;
    format!("data/{spread:04x}/{object_id:016x}.sobj")
}

/// Kafka's rules for a topic name.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let invalid = |why: &str| Err(ControllerError::InvalidTopic(why.to_string()));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty");
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"");
    }
    if name.len() > TOPIC_NAME_LEN_MAX {
        return invalid("Topic name is illegal, it can't be longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("Topic name is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

fn validate_configs<'a>(
    configs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), ControllerError> {
    for (name, value) in configs {
        topic_config::validate(name, value).map_err(ControllerError::InvalidConfig)?;
    }
    Ok(())
}

/// Partitions `from..to` of a topic, each with its two streams opened for the broker that
/// [`placement`](crate::placement) picks to lead it.
fn partition_records(
    image: &MetadataImage,
    topic_id: Uuid,
    from: i32,
    to: i32,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let leaders =
        crate::placement::leaders(image, topic_id, from, to).ok_or(ControllerError::NoBrokers)?;
    let mut records = Vec::new();
    for (i, (partition, leader)) in (from..to).zip(leaders).enumerate() {
        let stream_id = image.next_stream_id + 2 * i as u64;
        let state_stream_id = stream_id + 1;
        records.push(MetadataRecord::Partition {
            topic_id,
            partition,
            leader,
            leader_epoch: 0,
            stream_id,
            state_stream_id: Some(state_stream_id),
        });
        for stream_id in [stream_id, state_stream_id] {
            records.push(MetadataRecord::StreamOpened {
                stream_id,
                epoch: 1,
                owner: leader,
                start_offset: 0,
                rescue_from: None,
            });
        }
    }
    Ok(records)
}

/// Turns a command into the records that carry it out. Pure: same image, same command, same
/// records.
pub fn decide(
    image: &MetadataImage,
    command: &Command,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    match command {
        Command::InitCluster { cluster_id } => Ok(match image.cluster_id {
            Some(_) => Vec::new(),
            None => vec![MetadataRecord::ClusterId {
                cluster_id: cluster_id.clone(),
            }],
        }),
        Command::RegisterBroker {
            node_id,
            host,
            port,
            rack,
            incarnation,
            wal,
        } => {
            // Its WAL is being replayed: it may not write to it again until that is done.
            // Streams handed back to it, it replays itself.
            if image
                .streams
                .values()
                .any(|s| s.rescue_from == Some(*node_id) && s.owner != *node_id)
            {
                return Err(ControllerError::InvalidRequest(format!(
                    "broker {node_id} is being rescued; it may register once that is done"
                )));
            }
            Ok(vec![MetadataRecord::RegisterBroker {
                node_id: *node_id,
                host: host.clone(),
                port: *port,
                rack: rack.clone(),
                incarnation: *incarnation,
                wal: wal.clone(),
            }])
        }
        Command::FenceBroker {
            node_id,
            incarnation,
        } => Ok(match image.brokers.get(node_id) {
            Some(b) if b.incarnation == *incarnation => crate::failover::fence(image, *node_id),
            _ => Vec::new(),
        }),
        Command::ShutDownBroker {
            node_id,
            incarnation,
        } => Ok(match image.brokers.get(node_id) {
            Some(b) if b.incarnation == *incarnation && b.may_lead() => {
                crate::reassignment::shut_down(image, *node_id)
            }
            _ => Vec::new(),
        }),
        Command::ReassignPartition {
            topic,
            partition,
            target,
        } => crate::reassignment::reassign(image, topic, *partition, *target),
        Command::HandOver { owner, streams } => {
            crate::reassignment::hand_over(image, *owner, streams)
        }
        Command::CompleteRescue { rescuer, streams } => {
            crate::failover::complete_rescue(image, *rescuer, streams)
        }
        Command::AbandonRescue {
            rescuer,
            fenced,
            streams,
        } => crate::failover::abandon_rescue(image, *rescuer, *fenced, streams),
        Command::CreateTopic {
            topic_id,
            name,
            partitions,
            configs,
        } => {
            validate_topic_name(name)?;
            if image.topic_ids.contains_key(name) {
                return Err(ControllerError::TopicAlreadyExists(name.clone()));
            }
            // Kafka's metric names turn '.' into '_', so such names may not coexist.
            let collides = |n: &str| n.replace('.', "_") == name.replace('.', "_");
            if let Some(other) = image.topic_ids.keys().find(|n| collides(n)) {
                return Err(ControllerError::InvalidTopic(format!(
                    "Topic '{name}' collides with existing topic: {other}"
                )));
            }
            if *partitions < 1 || *partitions > PARTITIONS_PER_TOPIC_MAX {
                return Err(ControllerError::InvalidPartitions(format!(
                    "Number of partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}"
                )));
            }
            validate_configs(configs)?;
            let mut records = vec![MetadataRecord::Topic {
                topic_id: *topic_id,
                name: name.clone(),
                configs: configs.clone(),
            }];
            records.extend(partition_records(image, *topic_id, 0, *partitions)?);
            Ok(records)
        }
        Command::DeleteTopic { name } => {
            let topic = image
                .topic_by_name(name)
                .ok_or(ControllerError::UnknownTopicOrPartition)?;
            Ok(vec![MetadataRecord::RemoveTopic {
                topic_id: topic.topic_id,
            }])
        }
        Command::CreatePartitions { name, total } => {
            let topic = image
                .topic_by_name(name)
                .ok_or(ControllerError::UnknownTopicOrPartition)?;
            let current = topic.partitions.len() as i32;
            if *total <= current {
                return Err(ControllerError::InvalidPartitions(format!(
                    "Topic currently has {current} partitions, which is higher than the requested {total}."
                )));
            }
            if *total > PARTITIONS_PER_TOPIC_MAX {
                return Err(ControllerError::InvalidPartitions(format!(
                    "Number of partitions must be at most {PARTITIONS_PER_TOPIC_MAX}"
                )));
            }
            partition_records(image, topic.topic_id, current, *total)
        }
        Command::AlterTopicConfigs {
            name,
            changes,
            replace,
        } => {
            let topic = image
                .topic_by_name(name)
                .ok_or(ControllerError::UnknownTopicOrPartition)?;
            for (key, value) in changes {
                match value {
                    Some(value) => topic_config::validate(key, value)
                        .map_err(ControllerError::InvalidConfig)?,
                    None if topic_config::default_value(key).is_none() => {
                        return Err(ControllerError::InvalidConfig(format!(
                            "Unknown topic config name: {key}"
                        )))
                    }
                    None => {}
                }
            }
            let mut records = Vec::new();
            if *replace {
                for key in topic.configs.keys() {
                    if !changes.iter().any(|(k, _)| k == key) {
                        records.push(MetadataRecord::TopicConfig {
                            topic_id: topic.topic_id,
                            key: key.clone(),
                            value: None,
                        });
                    }
                }
            }
            records.extend(
                changes
                    .iter()
                    .map(|(key, value)| MetadataRecord::TopicConfig {
                        topic_id: topic.topic_id,
                        key: key.clone(),
                        value: value.clone(),
                    }),
            );
            Ok(records)
        }
        Command::OpenStreams { owner, streams } => {
            let mut records = Vec::with_capacity(streams.len());
            for (stream_id, start_offset) in streams {
                let stream = image
                    .streams
                    .get(stream_id)
                    .ok_or(ControllerError::UnknownTopicOrPartition)?;
                // Only a stream handed back to its own fenced owner opens while rescued.
                if stream
                    .rescue_from
                    .is_some_and(|from| from != *owner || stream.owner != *owner)
                {
                    return Err(ControllerError::InvalidRequest(format!(
                        "stream {stream_id} is being rescued"
                    )));
                }
                if *start_offset < stream.committed_end_offset {
                    return Err(ControllerError::InvalidRequest(format!(
                        "stream {stream_id} opened at {start_offset} below its committed end {}",
                        stream.committed_end_offset
                    )));
                }
                records.push(MetadataRecord::StreamOpened {
                    stream_id: *stream_id,
                    epoch: stream.epoch + 1,
                    owner: *owner,
                    start_offset: *start_offset,
                    rescue_from: None,
                });
            }
            Ok(records)
        }
        Command::TrimStream {
            stream_id,
            start_offset,
        } => {
            let stream = image
                .streams
                .get(stream_id)
                .ok_or(ControllerError::UnknownTopicOrPartition)?;
            if *start_offset <= stream.start_offset {
                return Ok(Vec::new());
            }
            Ok(vec![MetadataRecord::StreamTrimmed {
                stream_id: *stream_id,
                start_offset: *start_offset,
            }])
        }
        Command::AllocateProducerIds { node_id } => {
            let first_id = image.next_producer_id;
            if first_id > i64::MAX - PRODUCER_ID_BLOCK_SIZE {
                return Err(ControllerError::InvalidRequest(
                    "producer ids are exhausted".into(),
                ));
            }
            Ok(vec![MetadataRecord::ProducerIds {
                node_id: *node_id,
                first_id,
                count: PRODUCER_ID_BLOCK_SIZE,
            }])
        }
        Command::PrepareObject { node_id, now_ms } => {
            let object_id = image.next_object_id;
            Ok(vec![MetadataRecord::ObjectPrepared {
                object_id,
                key: object_key(object_id),
                node_id: *node_id,
                prepared_at_ms: *now_ms,
            }])
        }
        Command::CommitObject {
            object_id,
            size_bytes,
            ranges,
        } => {
            let object = image.objects.get(object_id).ok_or_else(|| {
                ControllerError::InvalidRequest(format!("unknown object {object_id}"))
            })?;
            if object.state != ObjectState::Prepared {
                return Err(ControllerError::InvalidRequest(format!(
                    "object {object_id} is not prepared"
                )));
            }
            let mut live = Vec::with_capacity(ranges.len());
            for range in ranges {
                // A stream deleted while its data was uploading simply drops out.
                let Some(stream) = image.streams.get(&range.stream_id) else {
                    continue;
                };
                if range.epoch != stream.epoch {
                    return Err(ControllerError::FencedEpoch {
                        stream_id: range.stream_id,
                        epoch: range.epoch,
                        current: stream.epoch,
                    });
                }
                if range.start_offset != stream.committed_end_offset
                    || range.end_offset <= range.start_offset
                {
                    return Err(ControllerError::InvalidRequest(format!(
                        "stream {}: range [{}, {}) does not continue committed end {}",
                        range.stream_id,
                        range.start_offset,
                        range.end_offset,
                        stream.committed_end_offset
                    )));
                }
                live.push(range.clone());
            }
            Ok(vec![MetadataRecord::ObjectCommitted {
                object_id: *object_id,
                size_bytes: *size_bytes,
                ranges: live,
            }])
        }
        Command::MarkObjectsForDeletion { object_ids, now_ms } => Ok(object_ids
            .iter()
            .filter(|id| image.objects.contains_key(id))
            .map(|id| MetadataRecord::ObjectMarkedForDeletion {
                object_id: *id,
                marked_at_ms: *now_ms,
            })
            .collect()),
        Command::DestroyObjects { object_ids } => Ok(object_ids
            .iter()
            .filter(|id| image.objects.contains_key(id))
            .map(|id| MetadataRecord::ObjectDestroyed { object_id: *id })
            .collect()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// The quorum could not make the records durable; retriable from the client's view.
    #[error("metadata quorum: {0}")]
    Quorum(#[from] anyhow::Error),
}

/// A [`SubmitError`] as it crosses the wire from the leader.
#[derive(Debug, Serialize, Deserialize)]
pub enum Refused {
    Controller(ControllerError),
    Quorum(String),
}

impl From<SubmitError> for Refused {
    fn from(e: SubmitError) -> Refused {
        match e {
            SubmitError::Controller(e) => Refused::Controller(e),
            SubmitError::Quorum(e) => Refused::Quorum(e.to_string()),
        }
    }
}

impl From<Refused> for SubmitError {
    fn from(e: Refused) -> SubmitError {
        match e {
            Refused::Controller(e) => SubmitError::Controller(e),
            Refused::Quorum(e) => SubmitError::Quorum(anyhow::anyhow!(e)),
        }
    }
}

/// How long a command may look for a leader that can decide it.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause before asking again while no leader is known.
const NO_LEADER_BACKOFF: Duration = Duration::from_millis(50);

/// Serializes controller decisions: each decision sees the image with every earlier decision
/// applied, so two racing creates of one topic cannot both succeed. Only the quorum's leader
/// decides; any other node forwards the command to it.
pub struct ControllerHandle {
    quorum: Quorum,
    decide_lock: tokio::sync::Mutex<()>,
    /// Heartbeats this node received while it led.
    pub(crate) heartbeats: crate::liveness::Heartbeats,
}

impl ControllerHandle {
    pub fn new(quorum: Quorum) -> Arc<Self> {
        let handle = Arc::new(ControllerHandle {
            quorum,
            decide_lock: tokio::sync::Mutex::new(()),
            heartbeats: Default::default(),
        });
        handle.quorum.serve_submissions(Arc::downgrade(&handle));
        handle
    }

    pub fn image(&self) -> &crate::SharedImage {
        self.quorum.image()
    }

    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// Decides, replicates and applies; returns the records once they are in this node's
    /// image. A node that does not lead forwards the command to the leader.
    pub async fn submit(&self, command: Command) -> Result<Vec<MetadataRecord>, SubmitError> {
        Ok(self.submit_indexed(&command).await?.0)
    }

    /// [`ControllerHandle::submit`], with the log index of the records (0 when none).
    pub async fn submit_indexed(
        &self,
        command: &Command,
    ) -> Result<(Vec<MetadataRecord>, u64), SubmitError> {
        let deadline = Instant::now() + SUBMIT_TIMEOUT;
        loop {
            match self.quorum.leader_addr().await {
                Some((leader, _)) if leader == self.quorum.node_id() => {
                    // `None`: it only believed it led (a stale vote after a restart, or it was
                    // just deposed); nothing was written, so ask again.
                    if let Some(decided) = self.decide_and_write(command).await? {
                        return Ok(decided);
                    }
                }
                Some((_, addr)) => match crate::raft::forward(&addr, command).await {
                    Ok(answer) => {
                        let (records, index) = answer.map_err(SubmitError::from)?;
                        // Read-your-writes: the records are in this node's image too.
                        self.quorum.wait_applied(index, deadline).await?;
                        return Ok((records, index));
                    }
                    // Not sent: the leader moved or is starting; ask again.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(SubmitError::Quorum(e.into())),
                },
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(SubmitError::Quorum(anyhow::anyhow!(
                    "no metadata leader within {SUBMIT_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(NO_LEADER_BACKOFF).await;
        }
    }

    /// Decides `command` only if this node still leads in `term` once it has caught up: for
    /// decisions that rest on what this leader alone observed (heartbeats), which a later
    /// leader must not take over.
    pub async fn submit_as_leader(
        &self,
        term: u64,
        command: &Command,
    ) -> Result<Vec<MetadataRecord>, SubmitError> {
        let _serial = self.decide_lock.lock().await;
        self.quorum.caught_up().await?;
        if self.quorum.leading_term() != Some(term) {
            return Err(SubmitError::Quorum(anyhow::anyhow!(
                "no longer the leader of term {term}"
            )));
        }
        let records = decide(&self.quorum.image().read(), command)?;
        if !records.is_empty() {
            self.quorum.write(records.clone()).await?;
        }
        Ok(records)
    }

    /// Decides and writes as the leader; `None` when a quorum does not confirm this node leads.
    async fn decide_and_write(
        &self,
        command: &Command,
    ) -> Result<Option<(Vec<MetadataRecord>, u64)>, SubmitError> {
        let _serial = self.decide_lock.lock().await;
        // A new leader may not have applied all it committed: decide on the whole log.
        if let Err(e) = self.quorum.caught_up().await {
            tracing::debug!(error = %e, "not confirmed as the metadata leader");
            return Ok(None);
        }
        let records = decide(&self.quorum.image().read(), command)?;
        // With nothing to write, the decision rests on what this leader has applied: a node
        // that forwarded the command waits for that much before it reads its own image.
        let index = if records.is_empty() {
            self.quorum.applied_index()
        } else {
            self.quorum.write(records.clone()).await?
        };
        Ok(Some((records, index)))
    }
}
