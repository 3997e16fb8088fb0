//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), latest
//! tiered (-5), or the first offset at or after a timestamp. Under read_committed, latest is
//! the last stable offset.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::{errors, timestamps, topics, Broker};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut out = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let response = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            partitions.push(
                match lookup(
                    broker,
                    version,
                    &name,
                    p.partition_index,
                    p.current_leader_epoch,
                    p.timestamp,
                    request.isolation_level == 1,
                )
                .await
                {
                    Ok((offset, timestamp, epoch)) => {
                        // The leader epoch is on the wire from v4 on.
                        let epoch = if version >= 4 { epoch } else { -1 };
                        response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(epoch)
                    }
                    Err(code) => response.with_error_code(code),
                },
            );
        }
        out.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(out)
}

async fn lookup(
    broker: &Broker,
    version: i16,
    topic: &str,
    partition: i32,
    current_epoch: i32,
    timestamp: i64,
    committed: bool,
) -> Result<(i64, i64, i32), i16> {
    let target = topics::partition(&broker.meta.image().read(), topic, partition)?;
    topics::check_leader_epoch(current_epoch, target.leader_epoch)?;
    let offsets = broker
        .engine
        .offsets(target.stream_id)
        .map_err(|e| errors::storage(&e))?;
    let epoch = target.leader_epoch;
    match timestamp {
        LATEST if committed => {
            let (lso, _) = broker
                .producers
                .stable_view(
                    &broker.engine,
                    target.stream_id,
                    offsets.durable_end,
                    true,
                    i64::MAX,
                )
                .await
                .map_err(|e| errors::storage(&e))?;
            Ok((lso, -1, epoch))
        }
        LATEST => Ok((offsets.durable_end, -1, epoch)),
        EARLIEST | EARLIEST_LOCAL => Ok((offsets.start_offset, -1, epoch)),
        LATEST_TIERED if version >= 9 => Ok((offsets.committed_end, -1, epoch)),
        MAX_TIMESTAMP if version >= 7 => {
            let found = timestamps::max_timestamp(broker, target.stream_id)
                .await
                .map_err(|e| errors::storage(&e))?;
            Ok(found.map_or((-1, -1, -1), |(o, t)| (o, t, epoch)))
        }
        t if t >= 0 => {
            let found = timestamps::first_at_or_after(broker, target.stream_id, t)
                .await
                .map_err(|e| errors::storage(&e))?;
            Ok(found.map_or((-1, -1, -1), |(o, t)| (o, t, epoch)))
        }
        _ => Err(ResponseError::UnsupportedVersion.code()),
    }
}
