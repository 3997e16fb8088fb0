//! Snapshots of a partition's producer state, in the partition's own state stream: a broker
//! that opens the partition (after a restart, and later a failover or a move) reads the last
//! snapshot and replays only the batches after it, not the whole log.
//!
//! Invariants:
//! 1. A snapshot at `offset` holds exactly the state of the batches below `offset`: it is taken
//!    under the partition's producer lock, which every producer batch and marker holds while it
//!    is sequenced, so none can land below `offset` after it.
//! 2. A snapshot is written after the batches it covers into the same WAL, so a durable
//!    snapshot never covers batches a crash lost; one that claims more than the partition
//!    holds is ignored all the same.
//! 3. The state stream keeps the newest durable snapshot: older ones are trimmed once it is
//!    durable.
//!
//! Each snapshot is one uncompressed magic-2 batch with one record: key `producer-state`,
//! value the versioned JSON of `docs/formats.md`.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use serde::{Deserialize, Serialize};
use strata_protocol::batch::{broker_record, encode_uncompressed, stamp};

use crate::producer_state::ProducerStates;

const VERSION: u16 = 0;
const KEY: &[u8] = b"producer-state";

#[derive(Serialize)]
struct Out<'a> {
    v: u16,
    offset: i64,
    state: &'a ProducerStates,
}

#[derive(Deserialize)]
struct In {
    v: u16,
    offset: i64,
    state: ProducerStates,
}

/// The snapshot of `state`, which covers the partition's batches below `offset`.
pub fn encode_value(state: &ProducerStates, offset: i64) -> Bytes {
    let value = serde_json::to_vec(&Out {
        v: VERSION,
        offset,
        state,
    })
    .expect("producer state serializes");
    Bytes::from(value)
}

/// The batch that holds a snapshot at `base_offset` of the state stream.
pub fn batch(value: Bytes, base_offset: i64, epoch: u64, now_ms: i64) -> Bytes {
    let record = broker_record(0, 0, now_ms, Some(Bytes::from_static(KEY)), Some(value));
    let mut batch = BytesMut::from(&encode_uncompressed(&[record])[..]);
    stamp(&mut batch, base_offset, epoch as i32, None);
    batch.freeze()
}

/// The snapshot in a stored batch: the offset it covers up to and the state.
pub fn decode(batch: &Bytes) -> Result<(i64, ProducerStates), String> {
    let set = RecordBatchDecoder::decode(&mut batch.clone()).map_err(|e| e.to_string())?;
    let record = set
        .records
        .iter()
        .find(|r| r.key.as_deref() == Some(KEY))
        .ok_or("no producer-state record")?;
    let value = record.value.as_ref().ok_or("no value")?;
    let snapshot: In = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    if snapshot.v != VERSION {
        return Err(format!("version {}", snapshot.v));
    }
    Ok((snapshot.offset, snapshot.state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_protocol::batch::BatchHeader;

    #[test]
    fn round_trips_the_state_it_covers() {
        let mut state = ProducerStates::default();
        let header = |pid: i64, attributes: i16, seq: i32| BatchHeader {
            base_offset: 0,
            size_bytes: 100,
            leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: 1,
            base_timestamp: 0,
            max_timestamp: 5,
            producer_id: pid,
            producer_epoch: 3,
            base_sequence: seq,
            record_count: 2,
        };
        state.record(&header(7, 0, 0), 0);
        state.record(&header(7, 0, 2), 2);
        state.record(&header(8, 0x10, 0), 4);
        state.record(&header(9, 0x10, 0), 6);
        state.record_marker(9, 3, 0, false, 8, 6);
        let batch = batch(encode_value(&state, 9), 41, 2, 1_000);
        let (offset, back) = decode(&batch).unwrap();
        assert_eq!(offset, 9);
        assert_eq!(back.last_stable_offset(9), 4, "8's transaction is open");
        assert_eq!(back.aborted_between(0, 9).len(), 1);
        assert_eq!(
            back.check(&header(7, 0, 2)),
            state.check(&header(7, 0, 2)),
            "a retry is still recognised"
        );
        assert_eq!(back.len(), state.len());
        let stored: Vec<_> = strata_protocol::batch::stored_batches(&batch).collect();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].0.base_offset, 41);
    }
}
