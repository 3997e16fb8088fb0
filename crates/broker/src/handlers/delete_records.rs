//! DeleteRecords: moves a partition's log start offset forward (-1 means the high watermark).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::{errors, topics, Broker};

pub async fn handle(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut out = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            partitions.push(
                match delete(broker, &name, p.partition_index, p.offset).await {
                    Ok(low) => result.with_low_watermark(low),
                    Err(code) => result.with_error_code(code),
                },
            );
        }
        out.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(out)
}

async fn delete(broker: &Broker, topic: &str, partition: i32, offset: i64) -> Result<i64, i16> {
    let target = topics::partition(&broker.meta.image().read(), topic, partition)?;
    let offsets = broker
        .engine
        .offsets(target.stream_id)
        .map_err(|e| errors::storage(&e))?;
    let offset = if offset == -1 {
        offsets.durable_end
    } else {
        offset
    };
    if offset < 0 || offset > offsets.durable_end {
        return Err(kafka_protocol::error::ResponseError::OffsetOutOfRange.code());
    }
    broker
        .engine
        .trim(target.stream_id, offset)
        .await
        .map_err(|e| errors::storage(&e))?;
    Ok(broker
        .engine
        .offsets(target.stream_id)
        .map_err(|e| errors::storage(&e))?
        .start_offset)
}
