//! WriteTxnMarkers: a transaction coordinator on another broker asks this one to end
//! producers' transactions on partitions it leads (a coordinator marks its own partitions
//! directly).

use futures::future::join_all;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::transactions::markers;
use crate::Broker;

pub async fn handle(broker: &Broker, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    // Every partition at once: each waits for its marker to be durable, and they share the
    // WAL's group commits (one after another, a large transaction would take a window each).
    let marks = req.markers.iter().flat_map(|m| {
        m.topics.iter().flat_map(move |t| {
            t.partition_indexes.iter().map(move |&p| async move {
                let (pid, epoch) = (m.producer_id.0, m.producer_epoch);
                let (coordinator_epoch, commit) = (m.coordinator_epoch, m.transaction_result);
                markers::mark(broker, &t.name, p, pid, epoch, coordinator_epoch, commit)
                    .await
                    .err()
                    .unwrap_or(0)
            })
        })
    });
    let mut codes = join_all(marks).await.into_iter();
    let mut out = Vec::with_capacity(req.markers.len());
    for m in &req.markers {
        let mut topics_out = Vec::with_capacity(m.topics.len());
        for t in &m.topics {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(codes.next().expect("one code per partition"))
                })
                .collect();
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
