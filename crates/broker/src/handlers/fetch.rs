//! Fetch: whole batches from each partition's stream, long-polling until `min_bytes` have
//! arrived or `max_wait_ms` has passed, within `max_bytes` and each partition's limit. Supports
//! incremental fetch sessions (KIP-227). A read_committed fetch stops at the last stable
//! offset and lists the aborted transactions in what it returns, for the client to drop.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_protocol::batch::stored_batches;
use tokio::sync::watch;
use uuid::Uuid;

use crate::fetch_session::{SessionError, SessionPartition, SessionPartitions};
use crate::{errors, topics, Broker};

/// One partition a fetch asks for.
#[derive(Clone, Debug)]
struct Wanted {
    topic: String,
    topic_id: Uuid,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: i32,
}

pub async fn handle(broker: &Broker, version: i16, request: FetchRequest) -> FetchResponse {
    let by_id = version >= 13;
    let image_name = |id: Uuid| topics::name_for_id(&broker.meta.image().read(), id);
    let mut unknown_ids = Vec::new();
    let mut wanted = Vec::new();
    for t in &request.topics {
        let name = if by_id {
            image_name(t.topic_id)
        } else {
            Some(t.topic.0.to_string())
        };
        let Some(name) = name else {
            unknown_ids.push((
                t.topic_id,
                t.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
            ));
            continue;
        };
        for p in &t.partitions {
            wanted.push(Wanted {
                topic: name.clone(),
                topic_id: t.topic_id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
            });
        }
    }

    // Sessions: a full fetch (epoch 0 or -1) or an increment of an existing session.
    let mut session_id = 0;
    let mut incremental = false;
    match (request.session_id, request.session_epoch) {
        (id, -1) => {
            if id != 0 {
                broker.fetch_sessions.remove(id);
            }
        }
        (id, 0) => {
            if id != 0 {
                broker.fetch_sessions.remove(id);
            }
            session_id = broker.fetch_sessions.create(to_session(&wanted));
        }
        (id, epoch) => {
            let forgotten: Vec<(String, i32)> = request
                .forgotten_topics_data
                .iter()
                .flat_map(|f| {
                    let name = if by_id {
                        image_name(f.topic_id)
                    } else {
                        Some(f.topic.0.to_string())
                    };
                    f.partitions
                        .iter()
                        .filter_map(move |p| name.clone().map(|n| (n, *p)))
                })
                .collect();
            let updated = broker.fetch_sessions.update(id, epoch, |partitions| {
                for key in &forgotten {
                    partitions.remove(key);
                }
                for w in &wanted {
                    let entry = partitions
                        .entry((w.topic.clone(), w.partition))
                        .or_default();
                    entry.topic_id = w.topic_id;
                    entry.fetch_offset = w.fetch_offset;
                    entry.partition_max_bytes = w.partition_max_bytes;
                    entry.current_leader_epoch = w.current_leader_epoch;
                    entry.last_high_watermark = -1;
                }
                partitions.clone()
            });
            match updated {
                Ok(partitions) => {
                    session_id = id;
                    incremental = true;
                    wanted = from_session(&partitions);
                }
                Err(e) => {
                    let code = match e {
                        SessionError::NotFound => ResponseError::FetchSessionIdNotFound,
                        SessionError::InvalidEpoch => ResponseError::InvalidFetchSessionEpoch,
                    };
                    return FetchResponse::default().with_error_code(code.code());
                }
            }
        }
    }

    let max_wait = Duration::from_millis(
        (request.max_wait_ms.max(0) as u64).min(broker.config.fetch_wait_ms_max),
    );
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 {
        usize::MAX
    } else {
        request.max_bytes as usize
    };
    // Subscribed before the first read, so data arriving in between still wakes the wait.
    let mut waits: Vec<watch::Receiver<i64>> = wanted
        .iter()
        .filter_map(|w| {
            let p = topics::partition(&broker.meta.image().read(), &w.topic, w.partition).ok()?;
            broker.engine.stream(p.stream_id).map(|s| s.subscribe())
        })
        .collect();
    let committed = request.isolation_level == READ_COMMITTED;
    let mut results = read_all(broker, &wanted, max_bytes, committed).await;
    loop {
        let total: usize = results.iter().map(|r| r.bytes).sum();
        let any_error = results.iter().any(|r| r.data.error_code != 0);
        if total >= min_bytes.max(1) || any_error || tokio::time::Instant::now() >= deadline {
            break;
        }
        if waits.is_empty() {
            tokio::time::sleep_until(deadline).await;
            break;
        }
        let changed = select_all(waits.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            break;
        }
        for w in waits.iter_mut() {
            w.borrow_and_update();
        }
        results = read_all(broker, &wanted, max_bytes, committed).await;
    }

    if session_id != 0 {
        remember(broker, session_id, &wanted, &mut results);
    }
    let mut topics_out: Vec<FetchableTopicResponse> = Vec::new();
    for (w, r) in wanted.iter().zip(results) {
        if incremental && r.bytes == 0 && r.data.error_code == 0 && !r.changed {
            continue;
        }
        let name = TopicName(StrBytes::from_string(w.topic.clone()));
        match topics_out.last_mut() {
            Some(t) if t.topic == name => t.partitions.push(r.data),
            _ => topics_out.push(
                FetchableTopicResponse::default()
                    .with_topic(name)
                    .with_topic_id(w.topic_id)
                    .with_partitions(vec![r.data]),
            ),
        }
    }
    for (topic_id, partitions) in unknown_ids {
        topics_out.push(
            FetchableTopicResponse::default()
                .with_topic_id(topic_id)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p)
                                .with_error_code(ResponseError::UnknownTopicId.code())
                        })
                        .collect(),
                ),
        );
    }
    metrics::counter!("strata_fetch_requests_total").increment(1);
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(topics_out)
}

struct PartitionResult {
    data: PartitionData,
    bytes: usize,
    /// High watermark or log start moved since the session last answered.
    changed: bool,
}

const READ_COMMITTED: i8 = 1;

async fn read_all(
    broker: &Broker,
    wanted: &[Wanted],
    max_bytes: usize,
    committed: bool,
) -> Vec<PartitionResult> {
    let mut left = max_bytes;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let r = read_partition(broker, w, left, committed).await;
        left = left.saturating_sub(r.bytes);
        out.push(r);
    }
    out
}

async fn read_partition(
    broker: &Broker,
    w: &Wanted,
    bytes_left: usize,
    committed: bool,
) -> PartitionResult {
    let data = PartitionData::default()
        .with_partition_index(w.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_aborted_transactions(committed.then(Vec::new));
    let error = |code: i16| PartitionResult {
        data: data.clone().with_error_code(code),
        bytes: 0,
        changed: true,
    };
    let target = match topics::partition(&broker.meta.image().read(), &w.topic, w.partition) {
        Ok(t) => t,
        Err(code) => return error(code),
    };
    if let Err(code) = topics::check_leader_epoch(w.current_leader_epoch, target.leader_epoch) {
        return error(code);
    }
    let limit = (w.partition_max_bytes.max(0) as usize).min(bytes_left);
    // Past the overall limit only an empty answer fits, but the offsets still go back.
    let limit_bytes = if bytes_left == 0 { 0 } else { limit.max(1) };
    let result = if limit_bytes == 0 {
        broker
            .engine
            .offsets(target.stream_id)
            .map(|o| strata_storage::ReadResult {
                start_offset: o.start_offset,
                durable_end: o.durable_end,
                ..Default::default()
            })
    } else {
        broker
            .engine
            .read(target.stream_id, w.fetch_offset, limit_bytes)
            .await
    };
    match result {
        Ok(mut read) => {
            let stable = broker
                .producers
                .stable_view(
                    &broker.engine,
                    target.stream_id,
                    read.durable_end,
                    committed,
                    w.fetch_offset,
                )
                .await;
            let (lso, aborted) = match stable {
                Ok(v) => v,
                Err(e) => return error(errors::storage(&e)),
            };
            let mut aborted_out = None;
            if committed {
                read.bytes = cut_at(&mut read.batches, lso);
                let end = last_offset(&read.batches).map_or(w.fetch_offset, |l| l + 1);
                aborted_out = Some(
                    aborted
                        .into_iter()
                        .filter(|a| a.first_offset < end)
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(a.producer_id.into())
                                .with_first_offset(a.first_offset)
                        })
                        .collect(),
                );
            }
            let records = concat(&read.batches);
            PartitionResult {
                bytes: read.bytes,
                changed: true,
                data: data
                    .with_high_watermark(read.durable_end)
                    .with_last_stable_offset(lso)
                    .with_log_start_offset(read.start_offset)
                    .with_aborted_transactions(aborted_out)
                    .with_records(Some(records)),
            }
        }
        Err(e) => {
            let mut r = error(errors::storage(&e));
            if let Ok(o) = broker.engine.offsets(target.stream_id) {
                r.data = r
                    .data
                    .with_high_watermark(o.durable_end)
                    .with_log_start_offset(o.start_offset);
            }
            r
        }
    }
}

/// Drops every batch at or past `end_offset` (whole batches only); returns the bytes left.
fn cut_at(chunks: &mut Vec<Bytes>, end_offset: i64) -> usize {
    let mut kept = Vec::with_capacity(chunks.len());
    'chunks: for chunk in chunks.drain(..) {
        for (h, range) in stored_batches(&chunk) {
            if h.base_offset >= end_offset {
                if range.start > 0 {
                    kept.push(chunk.slice(..range.start));
                }
                break 'chunks;
            }
        }
        kept.push(chunk);
    }
    *chunks = kept;
    chunks.iter().map(|c| c.len()).sum()
}

/// The last offset of the last batch read.
fn last_offset(chunks: &[Bytes]) -> Option<i64> {
    stored_batches(chunks.last()?)
        .last()
        .map(|(h, _)| h.last_offset())
}

fn concat(batches: &[Bytes]) -> Bytes {
    match batches {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut out = BytesMut::with_capacity(many.iter().map(|b| b.len()).sum());
            for b in many {
                out.extend_from_slice(b);
            }
            out.freeze()
        }
    }
}

fn to_session(wanted: &[Wanted]) -> SessionPartitions {
    wanted
        .iter()
        .map(|w| {
            (
                (w.topic.clone(), w.partition),
                SessionPartition {
                    topic_id: w.topic_id,
                    fetch_offset: w.fetch_offset,
                    partition_max_bytes: w.partition_max_bytes,
                    current_leader_epoch: w.current_leader_epoch,
                    last_high_watermark: -1,
                    last_log_start_offset: -1,
                },
            )
        })
        .collect()
}

fn from_session(partitions: &SessionPartitions) -> Vec<Wanted> {
    partitions
        .iter()
        .map(|((topic, partition), s)| Wanted {
            topic: topic.clone(),
            topic_id: s.topic_id,
            partition: *partition,
            fetch_offset: s.fetch_offset,
            partition_max_bytes: s.partition_max_bytes,
            current_leader_epoch: s.current_leader_epoch,
        })
        .collect()
}

/// Records what this answer tells the client, and marks which partitions changed since the
/// session's last answer: an incremental response leaves out the ones that did not.
fn remember(broker: &Broker, session_id: i32, wanted: &[Wanted], results: &mut [PartitionResult]) {
    broker.fetch_sessions.with(session_id, |partitions| {
        for (w, r) in wanted.iter().zip(results.iter_mut()) {
            if let Some(s) = partitions.get_mut(&(w.topic.clone(), w.partition)) {
                r.changed = s.last_high_watermark != r.data.high_watermark
                    || s.last_log_start_offset != r.data.log_start_offset;
                s.last_high_watermark = r.data.high_watermark;
                s.last_log_start_offset = r.data.log_start_offset;
            }
        }
    });
}
