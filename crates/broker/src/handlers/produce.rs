//! Produce: validate each partition's record batches, assign offsets, make them durable in the
//! WAL, answer. Two phases: [`sequence`] validates and assigns offsets to every batch of the
//! request without waiting on the WAL; the future it returns waits for durability and builds the
//! answer. A connection sequences its requests one after another but lets their durability waits
//! overlap, so pipelined requests share group commits and are never reordered.

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_protocol::batch::{stamp, validate_batches, BatchHeader};
use strata_storage::{Appended, StorageError};
use uuid::Uuid;

use crate::groups::OFFSETS_TOPIC;
use crate::producer_state::Plan;
use crate::transactions::join::{self, Refused};
use crate::transactions::TRANSACTION_STATE_TOPIC;
use crate::{errors, leader_hint, topics, Broker};

type PartitionError = (i16, Option<String>);

/// One partition's batches, sequenced (or refused).
struct Sequenced {
    index: i32,
    stream_id: u64,
    appended: Result<Outcome, PartitionError>,
    append_time_ms: i64,
}

enum Outcome {
    Appended(Vec<Appended>),
    /// A producer's retry of batches already in the log (`[base, end)`): nothing appended.
    Duplicate {
        base_offset: i64,
        end_offset: i64,
    },
}

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    sequence(broker, version, request).await.await
}

/// Assigns offsets to every batch of the request, in request order; the returned future resolves
/// to the response (none for acks=0) once the batches are durable.
pub async fn sequence(
    broker: &Arc<Broker>,
    version: i16,
    request: ProduceRequest,
) -> impl Future<Output = Option<ProduceResponse>> + Send + 'static {
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|t| t.to_string());
    // KIP-890 transactions version 2: from v12 a transactional produce adds its partition to
    // the transaction itself, and the client sends no AddPartitionsToTxn.
    let txn = TxnProduce {
        id: transactional_id.as_deref(),
        adds_partitions: version >= 12,
    };
    // Backpressure applies before anything is sequenced, so order never depends on it.
    let room = if matches!(acks, -1..=1) {
        broker
            .engine
            .wait_for_room()
            .await
            .map_err(|e| storage_error(&e))
    } else {
        Err((
            ResponseError::InvalidRequiredAcks.code(),
            Some(format!("acks={acks} is not -1, 0 or 1")),
        ))
    };
    let mut topics_out: Vec<(TopicName, Uuid, Vec<Sequenced>)> =
        Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = if version >= 13 {
            topics::name_for_id(&broker.meta.image().read(), topic.topic_id)
        } else {
            Some(topic.name.0.to_string())
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let refused = |e: PartitionError| Sequenced {
                index: p.index,
                stream_id: 0,
                appended: Err(e),
                append_time_ms: -1,
            };
            let sequenced = match (&name, &room) {
                (None, _) => refused((ResponseError::UnknownTopicId.code(), None)),
                (_, Err(e)) => refused(e.clone()),
                (Some(name), Ok(())) => sequence_partition(broker, name, p.index, p.records, txn)
                    .await
                    .unwrap_or_else(refused),
            };
            partitions.push(sequenced);
        }
        topics_out.push((topic.name, topic.topic_id, partitions));
    }
    let broker = broker.clone();
    async move {
        let mut responses = Vec::with_capacity(topics_out.len());
        for (name, topic_id, partitions) in topics_out {
            let mut out = Vec::with_capacity(partitions.len());
            for p in partitions {
                out.push(complete(&broker, p).await);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
                    .with_partition_responses(out),
            );
        }
        if acks == 0 {
            return None;
        }
        metrics::counter!("strata_produce_requests_total").increment(1);
        let mut response = ProduceResponse::default().with_responses(responses);
        leader_hint::add_to_produce(&broker, version, &mut response);
        Some(response)
    }
}

/// The transaction a produce request writes for.
#[derive(Clone, Copy)]
struct TxnProduce<'a> {
    id: Option<&'a str>,
    /// The partition joins the transaction rather than being verified to be in it.
    adds_partitions: bool,
}

/// Validates one partition's batches and sequences them into its stream. Batches of idempotent
/// producers are checked against the partition's producer state first, under its lock; the
/// first transactional batch of a transaction on the partition is verified with (or added to)
/// the transaction coordinator (KIP-890) under the same lock, so no marker can slip in between.
async fn sequence_partition(
    broker: &Broker,
    topic: &str,
    partition: i32,
    records: Option<Bytes>,
    txn: TxnProduce<'_>,
) -> Result<Sequenced, PartitionError> {
    if topic == OFFSETS_TOPIC || topic == TRANSACTION_STATE_TOPIC {
        // Coordinators replay these logs: clients may not write to them, as in Kafka.
        return Err((
            ResponseError::InvalidTopicException.code(),
            Some(format!("Cannot append to internal topic {topic}")),
        ));
    }
    let (target, batch_bytes_max, append_time) = {
        let image = broker.meta.image().read();
        let t = image
            .topic_by_name(topic)
            .ok_or((ResponseError::UnknownTopicOrPartition.code(), None))?;
        let target = topics::partition(&image, topic, partition).map_err(|c| (c, None))?;
        (
            target,
            topics::max_message_bytes(broker, t),
            topics::log_append_time(t),
        )
    };
    let records = records.ok_or((
        ResponseError::InvalidRecord.code(),
        Some("records are null".into()),
    ))?;
    let batches = validate_batches(&records, batch_bytes_max)
        .map_err(|e| (errors::batch(&e), Some(e.to_string())))?;
    if batches.iter().any(|(h, _)| h.is_control()) {
        return Err((
            ResponseError::InvalidRecord.code(),
            Some("clients may not write control records".into()),
        ));
    }
    // Kafka takes one batch per partition per request; Strata takes several, but from one
    // producer at one epoch, so that the checks and the transaction join below cover them all.
    let mut writers = batches
        .iter()
        .filter(|(h, _)| h.producer_id >= 0)
        .map(|(h, _)| (h.producer_id, h.producer_epoch));
    if let Some(first) = writers.next() {
        if writers.any(|w| w != first) {
            return Err((
                ResponseError::InvalidRecord.code(),
                Some("the batches of one partition must come from one producer epoch".into()),
            ));
        }
    }
    // A produce racing a reassignment waits for its end, then is answered by the new owner.
    if !broker.engine.wait_while_closing(target.stream_id).await {
        return Err((ResponseError::NotLeaderOrFollower.code(), None));
    }
    let append_time_ms = append_time.then(now_ms);
    let mut producers = None;
    if batches.iter().any(|(h, _)| h.producer_id >= 0) {
        let mut guard = broker
            .producers
            .lock(&broker.engine, target.stream_id)
            .await
            .map_err(|e| storage_error(&e))?;
        let states = guard.as_mut().expect("loaded by lock");
        let headers: Vec<&BatchHeader> = batches.iter().map(|(h, _)| h).collect();
        let plan = states
            .plan(&headers)
            .map_err(|(e, message)| (e.code(), Some(message)))?;
        if let Plan::Duplicate {
            base_offset,
            last_offset,
        } = plan
        {
            return Ok(Sequenced {
                index: partition,
                stream_id: target.stream_id,
                appended: Ok(Outcome::Duplicate {
                    base_offset,
                    end_offset: last_offset + 1,
                }),
                append_time_ms: append_time_ms.unwrap_or(-1),
            });
        }
        if let Some((h, _)) = batches.iter().find(|(h, _)| h.is_transactional()) {
            if !states.in_transaction(h.producer_id, h.producer_epoch) {
                join_transaction(broker, txn, topic, partition, h).await?;
            }
        }
        producers = Some(guard);
    }
    let mut appended = Vec::with_capacity(batches.len());
    for (header, bytes) in batches {
        let max_timestamp = append_time_ms.unwrap_or(header.max_timestamp);
        let a = broker
            .engine
            .sequence(
                target.stream_id,
                header.offset_count() as u32,
                max_timestamp,
                |base, epoch| {
                    let mut copy = BytesMut::from(&bytes[..]);
                    stamp(&mut copy, base, epoch as i32, append_time_ms);
                    copy.freeze()
                },
            )
            .map_err(|e| (errors::storage(&e), Some(e.to_string())))?;
        if let Some(states) = producers.as_mut().and_then(|g| g.as_mut()) {
            states.record(&header, a.base_offset());
        }
        metrics::counter!("strata_produce_bytes_total").increment(bytes.len() as u64);
        appended.push(a);
    }
    if let Some(states) = producers.as_mut().and_then(|g| g.as_mut()) {
        broker
            .producers
            .maybe_snapshot(&broker.engine, target.stream_id, states);
    }
    Ok(Sequenced {
        index: partition,
        stream_id: target.stream_id,
        appended: Ok(Outcome::Appended(appended)),
        append_time_ms: append_time_ms.unwrap_or(-1),
    })
}

/// Asks the transaction coordinator whether the producer added this partition to its open
/// transaction (or, from Produce v12, adds it), answering with the produce errors Kafka gives
/// clients.
async fn join_transaction(
    broker: &Broker,
    txn: TxnProduce<'_>,
    topic: &str,
    partition: i32,
    h: &BatchHeader,
) -> Result<(), PartitionError> {
    let not_added = || {
        (
            ResponseError::InvalidTxnState.code(),
            Some("Partition was not added to the transaction".into()),
        )
    };
    let retriable = |why: String| {
        (
            ResponseError::NotEnoughReplicas.code(),
            Some(format!(
                "Unable to verify the partition has been added to the transaction: {why}"
            )),
        )
    };
    let Some(id) = txn.id else {
        return Err(not_added());
    };
    let (pid, epoch, add) = (h.producer_id, h.producer_epoch, txn.adds_partitions);
    match join::join(broker, id, pid, epoch, add, topic, partition).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_added()),
        Err(Refused::Unreachable(why)) => Err(retriable(why)),
        Err(Refused::Code(code)) => match ResponseError::try_from_code(code) {
            Some(ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch) => Err((
                ResponseError::InvalidProducerEpoch.code(),
                Some("the producer was fenced".into()),
            )),
            Some(e) if e.is_retriable() => Err(retriable(format!("{e:?}"))),
            _ => Err((code, None)),
        },
    }
}

/// Waits for a partition's batches to be durable and answers for it.
async fn complete(broker: &Broker, p: Sequenced) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(p.index);
    let failed = |(code, message): PartitionError| {
        PartitionProduceResponse::default()
            .with_index(p.index)
            .with_error_code(code)
            .with_base_offset(-1)
            .with_error_message(message.map(StrBytes::from_string))
    };
    let appended = match p.appended {
        Ok(Outcome::Appended(a)) => a,
        Ok(Outcome::Duplicate {
            base_offset,
            end_offset,
        }) => {
            // The original may still be on its way to the WAL: answer once it is durable.
            if let Err(e) = durable_to(broker, p.stream_id, end_offset).await {
                return failed(storage_error(&e));
            }
            return response
                .with_base_offset(base_offset)
                .with_log_start_offset(log_start(broker, p.stream_id))
                .with_log_append_time_ms(p.append_time_ms);
        }
        Err(e) => return failed(e),
    };
    let mut base_offset = -1;
    for (i, a) in appended.into_iter().enumerate() {
        match a.durable().await {
            Ok(base) if i == 0 => base_offset = base,
            Ok(_) => {}
            Err(e) => return failed(storage_error(&e)),
        }
    }
    response
        .with_base_offset(base_offset)
        .with_log_start_offset(log_start(broker, p.stream_id))
        .with_log_append_time_ms(p.append_time_ms)
}

fn log_start(broker: &Broker, stream_id: u64) -> i64 {
    broker
        .engine
        .offsets(stream_id)
        .map(|o| o.start_offset)
        .unwrap_or(0)
}

/// Waits until the stream is durable up to `end_offset`.
async fn durable_to(broker: &Broker, stream_id: u64, end_offset: i64) -> Result<(), StorageError> {
    let stream = broker
        .engine
        .stream(stream_id)
        .ok_or(StorageError::UnknownStream(stream_id))?;
    let mut durable = stream.subscribe();
    durable
        .wait_for(|end| *end >= end_offset)
        .await
        .map_err(|_| StorageError::Fenced { stream_id })?;
    // A retried batch is acknowledged under the same lease rule as a new one.
    if !broker.engine.lease_valid() {
        return Err(StorageError::Fenced { stream_id });
    }
    Ok(())
}

fn storage_error(e: &StorageError) -> PartitionError {
    (errors::storage(e), Some(e.to_string()))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
