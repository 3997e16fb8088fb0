//! OffsetForLeaderEpoch: the end offset of a leader epoch, from the stream's epoch history, so
//! consumers can detect log truncation after a leader change.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::{errors, topics, Broker};

pub fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut out = Vec::new();
    for topic in request.topics {
        let name = topic.topic.0.to_string();
        let partitions = topic
            .partitions
            .into_iter()
            .map(|p| {
                let response = EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1);
                match end_of_epoch(
                    broker,
                    &name,
                    p.partition,
                    p.current_leader_epoch,
                    p.leader_epoch,
                ) {
                    Ok((epoch, end)) => response.with_leader_epoch(epoch).with_end_offset(end),
                    Err(code) => response.with_error_code(code),
                }
            })
            .collect();
        out.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(out)
}

/// The largest epoch at or below `wanted` and the offset where the epoch after it begins (the
/// log end for the current epoch).
fn end_of_epoch(
    broker: &Broker,
    topic: &str,
    partition: i32,
    current: i32,
    wanted: i32,
) -> Result<(i32, i64), i16> {
    let (target, history) = {
        let image = broker.meta.image().read();
        let target = topics::partition(&image, topic, partition)?;
        let history = image
            .streams
            .get(&target.stream_id)
            .map(|s| s.epochs.clone())
            .unwrap_or_default();
        (target, history)
    };
    topics::check_leader_epoch(current, target.leader_epoch)?;
    let end = broker
        .engine
        .offsets(target.stream_id)
        .map_err(|e| errors::storage(&e))?
        .durable_end;
    let wanted = wanted as i64;
    // An epoch newer than the leader's is unknown here, as in Kafka's leader epoch cache.
    if wanted > target.leader_epoch as i64 {
        return Ok((-1, -1));
    }
    let Some(i) = history.iter().rposition(|(e, _)| (*e as i64) <= wanted) else {
        return Ok((-1, -1));
    };
    let epoch = history[i].0 as i32;
    let next_start = history.get(i + 1).map(|(_, start)| *start).unwrap_or(end);
    if next_start < 0 {
        return Err(ResponseError::UnknownServerError.code());
    }
    Ok((epoch, next_start))
}
