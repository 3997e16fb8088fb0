//! Retention: moves each stream's start past data older than `retention.ms` or beyond
//! `retention.bytes`, a committed range at a time, as Kafka deletes whole segments. The objects
//! left without readers are then deleted by the storage engine's GC.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strata_meta::topic_config;
use tokio::sync::watch;

use crate::Broker;

pub async fn run(broker: Arc<Broker>, interval_ms: u64, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = stop.changed() => return,
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for (stream_id, start) in trim_points(&broker, now_ms) {
            if let Err(e) = broker.engine.trim(stream_id, start).await {
                tracing::warn!(stream_id, error = %e, "retention trim failed");
            }
        }
    }
}

/// `(stream, new start offset)` for every stream with ranges past its retention.
pub fn trim_points(broker: &Broker, now_ms: i64) -> Vec<(u64, i64)> {
    let image = broker.meta.image().read();
    let mut out = Vec::new();
    for topic in image.topics.values() {
        let policy = topic_config::effective(&topic.configs, "cleanup.policy").unwrap_or("delete");
        if !policy.split(',').any(|p| p.trim() == "delete") {
            continue;
        }
        let retention_ms = topic_config::effective_i64(&topic.configs, "retention.ms");
        let retention_bytes = topic_config::effective_i64(&topic.configs, "retention.bytes");
        for p in topic.partitions.values() {
            let Some(stream) = image.streams.get(&p.stream_id) else {
                continue;
            };
            let ranges: Vec<_> = stream.ranges.values().map(|(_, r)| r).collect();
            let total: i64 = ranges.iter().map(|r| r.size_bytes as i64).sum();
            let mut left = total;
            let mut start = stream.start_offset;
            for r in &ranges {
                let too_old = retention_ms >= 0 && r.max_timestamp_ms < now_ms - retention_ms;
                let too_big = retention_bytes >= 0 && left > retention_bytes;
                if !(too_old || too_big) {
                    break;
                }
                start = r.end_offset;
                left -= r.size_bytes as i64;
            }
            if start > stream.start_offset {
                out.push((p.stream_id, start));
            }
        }
    }
    out
}
