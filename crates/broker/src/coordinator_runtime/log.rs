//! Coordinator records in their internal topic's log: each write is one Kafka record batch
//! whose records carry a coordinator record's key and value, so the partition reads like any
//! other.

use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use strata_coordinator::CoordinatorRecord;
use strata_protocol::batch::{broker_record, encode_uncompressed};

/// One uncompressed magic-2 batch at `base_offset` holding `records`.
pub fn encode<R: CoordinatorRecord>(records: &[R], base_offset: i64, now_ms: i64) -> Bytes {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (key, value) = r.encode();
            broker_record(base_offset, i, now_ms, Some(key), value)
        })
        .collect();
    encode_uncompressed(&records)
}

/// The coordinator records of a stored batch with their offsets; records that do not decode
/// are skipped with a warning (a client may have written to the topic).
pub fn decode<R: CoordinatorRecord>(batch: &Bytes) -> Vec<(i64, R)> {
    let mut buf = batch.clone();
    let set = match RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => set,
        Err(e) => {
            tracing::warn!(error = %e, "a coordinator batch failed to decode");
            return Vec::new();
        }
    };
    set.records
        .iter()
        .filter_map(|r| {
            let key = r.key.as_ref()?;
            match R::decode(key, r.value.as_deref()) {
                Ok(g) => Some((r.offset, g)),
                Err(e) => {
                    tracing::warn!(offset = r.offset, error = ?e, "skipping a record that is not a coordinator record");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_coordinator::group::records::{GroupRecord, RecordKey};

    #[test]
    fn round_trips_with_offsets() {
        let records: Vec<GroupRecord> = (0..3)
            .map(|i| {
                GroupRecord::tombstone(RecordKey::ClassicGroup {
                    group: format!("g{i}"),
                })
            })
            .collect();
        let batch = encode(&records, 40, 1);
        let back: Vec<(i64, GroupRecord)> = decode(&batch);
        assert_eq!(back.len(), 3);
        for (i, (offset, r)) in back.iter().enumerate() {
            assert_eq!(*offset, 40 + i as i64);
            assert_eq!(r, &records[i]);
        }
    }
}
