//! WriteTxnMarkers: a transaction coordinator asks this broker to end producers' transactions
//! on partitions it leads. Strata's own coordinator writes its markers directly; this API
//! serves other coordinators (and tools) with Kafka's answers.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::groups::OFFSETS_TOPIC;
use crate::transactions::markers;
use crate::{topics, Broker};

pub async fn handle(broker: &Broker, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut out = Vec::with_capacity(req.markers.len());
    for m in &req.markers {
        let mut topics_out = Vec::with_capacity(m.topics.len());
        for t in &m.topics {
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for &p in &t.partition_indexes {
                let code = write(
                    broker,
                    &t.name,
                    p,
                    m.producer_id.0,
                    m.producer_epoch,
                    m.transaction_result,
                )
                .await;
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(code),
                );
            }
            topics_out.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        out.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics_out),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(out)
}

async fn write(
    broker: &Broker,
    topic: &str,
    partition: i32,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> i16 {
    if topic == OFFSETS_TOPIC {
        let shard = match broker.groups.shard(broker, partition) {
            Ok(shard) => shard,
            Err(code) => return code,
        };
        return match shard
            .call(move |s, now_ms, _| ((), s.complete_txn(now_ms, pid, epoch, commit)))
            .await
        {
            Ok(()) => 0,
            Err(code) => code,
        };
    }
    let stream_id = match topics::partition(&broker.meta.image().read(), topic, partition) {
        Ok(p) => p.stream_id,
        Err(code) => return code,
    };
    match markers::write_marker(broker, stream_id, pid, epoch, commit).await {
        Ok(_) => 0,
        Err(code) => code,
    }
}
