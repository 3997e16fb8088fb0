//! Decoding the records inside a stored batch, for the few places the broker must look at
//! individual records: offset-by-timestamp lookups.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

/// `(offset, timestamp)` of every record in `batch`, decompressing if needed.
pub fn offsets_and_timestamps(batch: &Bytes) -> Vec<(i64, i64)> {
    let mut buf = batch.clone();
    match RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => set
            .records
            .iter()
            .map(|r| (r.offset, r.timestamp))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "stored batch failed to decode");
            Vec::new()
        }
    }
}
