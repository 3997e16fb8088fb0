//! Produce: validate each partition's record batches, assign offsets, make them durable in the
//! WAL, answer. Partitions of one request are appended concurrently so that they share a group
//! commit; batches of one partition go in order.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use strata_protocol::batch::{stamp, validate_batches};

use crate::{errors, topics, Broker};

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut topic_futures = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = if version >= 13 {
            topics::name_for_id(&broker.meta.image().read(), topic.topic_id)
        } else {
            Some(topic.name.0.to_string())
        };
        topic_futures.push(async move {
            let partitions = join_all(topic.partition_data.into_iter().map(|p| {
                let name = name.clone();
                async move {
                    let response = PartitionProduceResponse::default().with_index(p.index);
                    let Some(name) = name else {
                        return response.with_error_code(ResponseError::UnknownTopicId.code());
                    };
                    match produce_partition(broker, &name, p.index, p.records).await {
                        Ok((base_offset, log_start_offset, append_time)) => response
                            .with_base_offset(base_offset)
                            .with_log_start_offset(log_start_offset)
                            .with_log_append_time_ms(append_time),
                        Err((code, message)) => response
                            .with_error_code(code)
                            .with_base_offset(-1)
                            .with_error_message(message.map(StrBytes::from_string)),
                    }
                }
            }))
            .await;
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions)
        });
    }
    let responses = join_all(topic_futures).await;
    if acks == 0 {
        return None;
    }
    metrics::counter!("strata_produce_requests_total").increment(1);
    Some(ProduceResponse::default().with_responses(responses))
}

type PartitionError = (i16, Option<String>);

/// Appends one partition's batches; `(base offset, log start offset, log append time or -1)`.
async fn produce_partition(
    broker: &Broker,
    topic: &str,
    partition: i32,
    records: Option<Bytes>,
) -> Result<(i64, i64, i64), PartitionError> {
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
    let append_time_ms = append_time.then(now_ms);
    let mut first_base = None;
    for (header, bytes) in batches {
        let max_timestamp = append_time_ms.unwrap_or(header.max_timestamp);
        let base = broker
            .engine
            .append(
                target.stream_id,
                header.offset_count() as u32,
                max_timestamp,
                |base, epoch| {
                    let mut copy = BytesMut::from(&bytes[..]);
                    stamp(&mut copy, base, epoch as i32, append_time_ms);
                    copy.freeze()
                },
            )
            .await
            .map_err(|e| (errors::storage(&e), Some(e.to_string())))?;
        first_base.get_or_insert(base);
        metrics::counter!("strata_produce_bytes_total").increment(bytes.len() as u64);
    }
    let start = broker
        .engine
        .offsets(target.stream_id)
        .map(|o| o.start_offset)
        .unwrap_or(0);
    Ok((
        first_base.unwrap_or(-1),
        start,
        append_time_ms.unwrap_or(-1),
    ))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
