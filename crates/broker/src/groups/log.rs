//! Group records in the `__consumer_offsets` log: each write is one Kafka record batch whose
//! records carry a group record's key and value, so the partition reads like any other.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_coordinator::group::records::GroupRecord;

/// One uncompressed magic-2 batch at `base_offset` holding `records`.
pub fn encode(records: &[GroupRecord], base_offset: i64, now_ms: i64) -> Bytes {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (key, value) = r.encode();
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base_offset + i as i64,
                // The encoder starts a new batch when `offset - sequence` changes: keep it fixed.
                sequence: i as i32 - 1,
                timestamp: now_ms,
                key: Some(key),
                value,
                headers: IndexMap::new(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("group records encode");
    buf.freeze()
}

/// The group records of a stored batch with their offsets; records that do not decode are
/// skipped with a warning (a client may have written to the topic).
pub fn decode(batch: &Bytes) -> Vec<(i64, GroupRecord)> {
    let mut buf = batch.clone();
    let set = match RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => set,
        Err(e) => {
            tracing::warn!(error = %e, "a __consumer_offsets batch failed to decode");
            return Vec::new();
        }
    };
    set.records
        .iter()
        .filter_map(|r| {
            let key = r.key.as_ref()?;
            match GroupRecord::decode(key, r.value.as_deref()) {
                Ok(g) => Some((r.offset, g)),
                Err(e) => {
                    tracing::warn!(offset = r.offset, error = ?e, "skipping a record that is not a group record");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_coordinator::group::records::RecordKey;

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
        let back = decode(&batch);
        assert_eq!(back.len(), 3);
        for (i, (offset, r)) in back.iter().enumerate() {
            assert_eq!(*offset, 40 + i as i64);
            assert_eq!(r, &records[i]);
        }
    }
}
