//! Transaction markers: the control batch that ends a producer's transaction on a partition,
//! and the job that writes one to every partition of a transaction (here or through the
//! partition's leader) and then completes it.
//! Offsets committed in the transaction (`__consumer_offsets` partitions) are completed by
//! their group shard instead.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use strata_coordinator::txn::MarkerJob;
use strata_meta::{NodeId, StreamId};
use strata_protocol::batch::{marker_batch, stamp};

use crate::groups::OFFSETS_TOPIC;
use crate::{errors, topics, Broker};

/// Markers that fail (storage busy or failing, a leader moving) are tried again after this long.
const RETRY_BACKOFF_MS: u64 = 100;
/// Rounds of attempts before the job gives up; a restart or the next timeout check retries.
const ATTEMPTS_MAX: u32 = 300;
/// The WriteTxnMarkers version sent to other brokers (every version Strata serves has it).
const PEER_MARKERS_VERSION: i16 = 1;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Appends a marker for `producer_id` at `epoch`, written by the coordinator at
/// `coordinator_epoch`, to a partition's stream and records it in the partition's producer
/// state; resolves once it is durable. Returns its offset.
pub async fn write_marker(
    broker: &Broker,
    stream_id: StreamId,
    producer_id: i64,
    epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
) -> Result<i64, i16> {
    broker
        .engine
        .wait_for_room()
        .await
        .map_err(|e| errors::storage(&e))?;
    let appended = {
        let mut guard = broker
            .producers
            .lock(&broker.engine, stream_id)
            .await
            .map_err(|e| errors::storage(&e))?;
        let states = guard.as_mut().expect("loaded by lock");
        states
            .check_marker(producer_id, epoch, coordinator_epoch)
            .map_err(|e| e.code())?;
        let now = now_ms();
        let batch = marker_batch(producer_id, epoch, commit, coordinator_epoch, now);
        let appended = broker
            .engine
            .sequence(stream_id, 1, now, |base, leader_epoch| {
                let mut copy = BytesMut::from(&batch[..]);
                stamp(&mut copy, base, leader_epoch as i32, None);
                copy.freeze()
            })
            .map_err(|e| errors::storage(&e))?;
        states.record_marker(
            producer_id,
            epoch,
            coordinator_epoch,
            commit,
            appended.base_offset(),
            now,
        );
        appended
    };
    appended.durable().await.map_err(|e| errors::storage(&e))
}

/// Writes the job's marker to every partition of the transaction, then records the
/// transaction complete. Resolves once the Complete record is durable. Partitions this broker
/// leads are marked here; the others get one WriteTxnMarkers request per leader, as Kafka's
/// coordinator sends them. Failed partitions are tried again, each round routed afresh (a
/// partition may have moved), for as long as this broker still coordinates the transaction.
pub async fn complete(broker: &Broker, job: MarkerJob) -> Result<(), i16> {
    let mut pending = job.partitions.clone();
    // Markers carry the leader epoch of the coordinator's partition: once it has moved, a
    // leader that saw the new coordinator's markers refuses this one's (a late retry could
    // otherwise end the producer's next transaction).
    let coordinator_epoch = coordinator_epoch(broker, &job.transactional_id).await?;
    let fenced = ResponseError::TransactionCoordinatorFenced.code();
    for attempt in 1..=ATTEMPTS_MAX {
        // A coordinator that has moved away stops: the new one writes the markers again.
        broker.txns.shard_for(broker, &job.transactional_id).await?;
        let failed = write_round(broker, &job, coordinator_epoch, &pending).await;
        let Some((_, code)) = failed.first() else {
            break;
        };
        if attempt == ATTEMPTS_MAX {
            return Err(*code);
        }
        if failed.iter().any(|(_, code)| *code == fenced) {
            return Err(fenced);
        }
        if attempt == 1 {
            for ((topic, partition), code) in &failed {
                tracing::warn!(
                    topic,
                    partition,
                    code,
                    producer_id = job.producer_id,
                    "transaction marker failed; retrying"
                );
            }
        }
        pending = failed.into_iter().map(|(p, _)| p).collect();
        tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)).await;
    }
    let shard = broker.txns.shard_for(broker, &job.transactional_id).await?;
    shard
        .call(move |s, now_ms, _| ((), s.complete(now_ms, &job)))
        .await
}

type Failed = Vec<((String, i32), i16)>;

/// The leader epoch of the `__transaction_state` partition that holds `transactional_id`.
async fn coordinator_epoch(broker: &Broker, transactional_id: &str) -> Result<i32, i16> {
    let partition = broker.txns.partition_of(broker, transactional_id).await?;
    broker
        .meta
        .image()
        .read()
        .partition(super::TRANSACTION_STATE_TOPIC, partition)
        .map(|p| p.leader_epoch)
        .ok_or(ResponseError::CoordinatorNotAvailable.code())
}

/// Marks each of `partitions` once; returns those that failed, with their error codes.
async fn write_round(
    broker: &Broker,
    job: &MarkerJob,
    coordinator_epoch: i32,
    partitions: &[(String, i32)],
) -> Failed {
    let mut local = Vec::new();
    let mut remote: BTreeMap<NodeId, Vec<(String, i32)>> = BTreeMap::new();
    {
        let image = broker.meta.image().read();
        for (topic, partition) in partitions {
            match image.partition(topic, *partition) {
                // Deleted since it joined the transaction: nothing left to mark, as in Kafka.
                None => {}
                Some(p) if p.leader == broker.config.node_id => {
                    local.push((topic.clone(), *partition))
                }
                Some(p) => remote
                    .entry(p.leader)
                    .or_default()
                    .push((topic.clone(), *partition)),
            }
        }
    }
    let local = join_all(local.into_iter().map(|(topic, partition)| async move {
        let code = write_one(broker, job, coordinator_epoch, &topic, partition)
            .await
            .err();
        code.map(|code| ((topic, partition), code))
    }));
    let remote = join_all(
        remote
            .into_iter()
            .map(|(node, partitions)| send(broker, job, coordinator_epoch, node, partitions)),
    );
    let (local, remote) = futures::join!(local, remote);
    local
        .into_iter()
        .flatten()
        .chain(remote.into_iter().flatten())
        .collect()
}

/// Sends the job's marker for `partitions` to their leader `node`.
async fn send(
    broker: &Broker,
    job: &MarkerJob,
    coordinator_epoch: i32,
    node: NodeId,
    partitions: Vec<(String, i32)>,
) -> Failed {
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for (topic, partition) in &partitions {
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partition_indexes.push(*partition),
            None => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_indexes(vec![*partition]),
            ),
        }
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(job.producer_id))
            .with_producer_epoch(job.producer_epoch)
            .with_transaction_result(job.commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(topics)]);
    let response = match broker
        .peers
        .send(broker, node, PEER_MARKERS_VERSION, &request)
        .await
    {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(node, %error, "transaction markers not sent");
            let code = ResponseError::NetworkException.code();
            return partitions.into_iter().map(|p| (p, code)).collect();
        }
    };
    let mut failed: Failed = partitions
        .into_iter()
        .map(|p| (p, ResponseError::UnknownServerError.code()))
        .collect();
    for marker in response.markers {
        for t in marker.topics {
            for r in t.partitions {
                let done = r.error_code == 0
                    // A newer epoch already ended this producer's transactions there.
                    || r.error_code == ResponseError::InvalidProducerEpoch.code();
                let key = |(p, _): &((String, i32), i16)| {
                    p.0 == t.name.as_str() && p.1 == r.partition_index
                };
                if done {
                    failed.retain(|f| !key(f));
                } else if let Some(f) = failed.iter_mut().find(|f| key(f)) {
                    f.1 = r.error_code;
                }
            }
        }
    }
    failed
}

async fn write_one(
    broker: &Broker,
    job: &MarkerJob,
    coordinator_epoch: i32,
    topic: &str,
    partition: i32,
) -> Result<(), i16> {
    let (pid, epoch, commit) = (job.producer_id, job.producer_epoch, job.commit);
    match mark(
        broker,
        topic,
        partition,
        pid,
        epoch,
        coordinator_epoch,
        commit,
    )
    .await
    {
        Ok(()) => Ok(()),
        // Deleted since it joined the transaction: nothing left to mark, as in Kafka.
        Err(code) if code == ResponseError::UnknownTopicOrPartition.code() => Ok(()),
        // A newer epoch already ended this producer's transactions here.
        Err(code) if code == ResponseError::InvalidProducerEpoch.code() => Ok(()),
        Err(code) => Err(code),
    }
}

/// Ends `pid`'s transaction on a partition this broker leads, with Kafka's error codes: a
/// marker in a data partition, or the producer's pending offsets in a `__consumer_offsets`
/// partition, completed by its group shard.
pub async fn mark(
    broker: &Broker,
    topic: &str,
    partition: i32,
    pid: i64,
    epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
) -> Result<(), i16> {
    if topic == OFFSETS_TOPIC {
        let shard = broker.groups.shard(broker, partition)?;
        return shard
            .call(move |s, now_ms, _| ((), s.complete_txn(now_ms, pid, epoch, commit)))
            .await;
    }
    let stream_id = topics::partition(&broker.meta.image().read(), topic, partition)?.stream_id;
    write_marker(broker, stream_id, pid, epoch, coordinator_epoch, commit)
        .await
        .map(|_| ())
}
