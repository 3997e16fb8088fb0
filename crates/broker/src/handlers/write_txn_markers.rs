//! WriteTxnMarkers: a transaction coordinator on another broker asks this one to end
//! producers' transactions on partitions it leads (a coordinator marks its own partitions
//! directly).

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::transactions::markers;
use crate::Broker;

pub async fn handle(broker: &Broker, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut out = Vec::with_capacity(req.markers.len());
    for m in &req.markers {
        let mut topics_out = Vec::with_capacity(m.topics.len());
        for t in &m.topics {
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for &p in &t.partition_indexes {
                let (pid, epoch) = (m.producer_id.0, m.producer_epoch);
                let code = markers::mark(broker, &t.name, p, pid, epoch, m.transaction_result)
                    .await
                    .err()
                    .unwrap_or(0);
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
