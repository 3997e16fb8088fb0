//! Record batches as producers send them (magic 2). Strata validates a batch before accepting
//! it and afterwards touches only the fields Kafka's broker sets: base offset and partition
//! leader epoch (outside the CRC), and max timestamp under `LogAppendTime` (CRC recomputed).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub const HEADER_BYTES: usize = 61;
const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
/// The CRC covers everything from the attributes on.
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;
/// Bytes counted by the batch length field start after base offset and length.
const LOG_OVERHEAD: usize = 12;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const CONTROL_BIT: i16 = 0x20;
const TRANSACTIONAL_BIT: i16 = 0x10;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Kafka's `CORRUPT_MESSAGE`.
    #[error("corrupt batch: {0}")]
    Corrupt(String),
    /// Kafka's `INVALID_RECORD`.
    #[error("invalid batch: {0}")]
    Invalid(String),
    /// Kafka's `MESSAGE_TOO_LARGE`.
    #[error("batch of {0} bytes is larger than max.message.bytes {1}")]
    TooLarge(usize, usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Whole batch size in bytes, header included.
    pub size_bytes: usize,
    pub leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("bounds checked"))
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("bounds checked"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("bounds checked"))
}

impl BatchHeader {
    /// Reads the header of the batch that starts `bytes`, checking only that it fits.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < LOG_OVERHEAD + 5 {
            return Err(BatchError::Corrupt(format!(
                "{} bytes is too short for a batch",
                bytes.len()
            )));
        }
        let magic = bytes[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::Invalid(format!(
                "message format v{magic} is not supported; producers must send magic 2 record batches"
            )));
        }
        let length = i32_at(bytes, BATCH_LENGTH);
        let size_bytes = LOG_OVERHEAD as i64 + length as i64;
        if size_bytes < HEADER_BYTES as i64 || size_bytes > bytes.len() as i64 {
            return Err(BatchError::Corrupt(format!(
                "batch length {length} does not fit the {} bytes sent",
                bytes.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: i64_at(bytes, BASE_OFFSET),
            size_bytes: size_bytes as usize,
            leader_epoch: i32_at(bytes, LEADER_EPOCH),
            magic,
            crc: u32::from_be_bytes(bytes[CRC..CRC + 4].try_into().expect("bounds checked")),
            attributes: i16_at(bytes, ATTRIBUTES),
            last_offset_delta: i32_at(bytes, LAST_OFFSET_DELTA),
            base_timestamp: i64_at(bytes, BASE_TIMESTAMP),
            max_timestamp: i64_at(bytes, MAX_TIMESTAMP),
            producer_id: i64_at(bytes, PRODUCER_ID),
            producer_epoch: i16_at(bytes, PRODUCER_EPOCH),
            base_sequence: i32_at(bytes, BASE_SEQUENCE),
            record_count: i32_at(bytes, RECORD_COUNT),
        })
    }

    /// Offsets this batch takes: `last_offset_delta + 1`.
    pub fn offset_count(&self) -> i64 {
        self.last_offset_delta as i64 + 1
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
}

/// Splits a produce request's records into validated batches. Every batch must be magic 2,
/// fit exactly, carry a correct CRC32C, hold at least one record with a consistent count, and
/// be at most `batch_bytes_max` bytes.
pub fn validate_batches(
    records: &Bytes,
    batch_bytes_max: usize,
) -> Result<Vec<(BatchHeader, Bytes)>, BatchError> {
    let mut batches = Vec::new();
    let mut at = 0;
    if records.is_empty() {
        return Err(BatchError::Invalid(
            "produce request holds no records".into(),
        ));
    }
    while at < records.len() {
        let header = BatchHeader::parse(&records[at..])?;
        if header.size_bytes > batch_bytes_max {
            return Err(BatchError::TooLarge(header.size_bytes, batch_bytes_max));
        }
        let batch = records.slice(at..at + header.size_bytes);
        let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
        if crc != header.crc {
            return Err(BatchError::Corrupt(format!(
                "CRC32C {crc:#010x} does not match the batch's {:#010x}",
                header.crc
            )));
        }
        if header.record_count < 1 || header.last_offset_delta < 0 {
            return Err(BatchError::Invalid(
                "a batch must hold at least one record".into(),
            ));
        }
        if header.record_count as i64 != header.offset_count() {
            return Err(BatchError::Invalid(format!(
                "record count {} does not match last offset delta {}",
                header.record_count, header.last_offset_delta
            )));
        }
        batches.push((header, batch));
        at += header.size_bytes;
    }
    Ok(batches)
}

/// Writes the broker-owned fields into a batch copy: base offset and leader epoch (outside the
/// CRC), and for `LogAppendTime` the timestamp type and max timestamp (CRC recomputed).
pub fn stamp(
    batch: &mut [u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time_ms: Option<i64>,
) {
    debug_assert!(batch.len() >= HEADER_BYTES);
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(now_ms) = log_append_time_ms {
        let attributes = i16_at(batch, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
        batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
        batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A transaction marker (Kafka's control batch: one control record whose key is version 0 and
/// the outcome, whose value is version 0 and the coordinator epoch), at base offset 0 until
/// [`stamp`]ed.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Bytes {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(if commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: timestamp_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    encode_uncompressed(std::slice::from_ref(&record))
}

/// The `index`th record of a batch the broker writes for itself at `base_offset` (coordinator
/// records, snapshots): no producer, creation time `timestamp_ms`. Its sequence keeps
/// `offset - sequence` the same across the batch, so [`encode_uncompressed`] makes one batch.
pub fn broker_record(
    base_offset: i64,
    index: usize,
    timestamp_ms: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: base_offset + index as i64,
        sequence: index as i32 - 1,
        timestamp: timestamp_ms,
        key,
        value,
        headers: Default::default(),
    }
}

/// Uncompressed magic-2 batches holding `records` (one batch while `offset - sequence` stays
/// the same from record to record).
pub fn encode_uncompressed(records: &[Record]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("uncompressed records encode");
    buf.freeze()
}

/// Kafka's control record types.
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;

/// The outcome a stored control batch marks, commit (true) or abort (false), with the epoch of
/// the coordinator that wrote it; `None` for other control records or an unreadable one.
/// Control batches are never compressed.
pub fn marker_outcome(batch: &[u8]) -> Option<(bool, i32)> {
    let mut at = HEADER_BYTES;
    let _length = varint(batch, &mut at)?;
    at += 1; // record attributes
    let _timestamp_delta = varint(batch, &mut at)?;
    let _offset_delta = varint(batch, &mut at)?;
    let key_len = varint(batch, &mut at)?;
    if key_len < 4 {
        return None;
    }
    let key = batch.get(at..at + 4)?;
    let commit = match i16::from_be_bytes([key[2], key[3]]) {
        CONTROL_COMMIT => true,
        CONTROL_ABORT => false,
        _ => return None,
    };
    at += key_len as usize;
    // The value: version (i16) and the coordinator epoch (i32); -1 when it is missing.
    let value_len = varint(batch, &mut at)?;
    let coordinator_epoch = match batch.get(at + 2..at + 6) {
        Some(e) if value_len >= 6 => i32::from_be_bytes([e[0], e[1], e[2], e[3]]),
        _ => -1,
    };
    Some((commit, coordinator_epoch))
}

/// A zigzag varint (Kafka's record fields), at most 10 bytes.
fn varint(b: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// Walks stored batches (already validated) from a byte slice: `(header, range)` pairs.
pub fn stored_batches(
    bytes: &[u8],
) -> impl Iterator<Item = (BatchHeader, std::ops::Range<usize>)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = BatchHeader::parse(bytes.get(at..)?).ok()?;
        let range = at..at + header.size_bytes;
        at += header.size_bytes;
        Some((header, range))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch when `offset - sequence` changes.
                sequence: i as i32 - 1,
                timestamp: 1_000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Default::default(),
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
        .unwrap();
        buf.freeze()
    }

    #[test]
    fn accepts_valid_batches_back_to_back() {
        let mut two = BytesMut::new();
        two.extend_from_slice(&batch(3));
        two.extend_from_slice(&batch(1));
        let batches = validate_batches(&two.freeze(), 1 << 20).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].0.record_count, 3);
        assert_eq!(batches[1].0.offset_count(), 1);
    }

    #[test]
    fn rejects_bad_crc_old_magic_truncation_and_size() {
        let good = batch(2);
        let mut bad = BytesMut::from(&good[..]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(
            validate_batches(&bad.freeze(), 1 << 20),
            Err(BatchError::Corrupt(_))
        ));

        let mut old = BytesMut::from(&good[..]);
        old[MAGIC] = 1;
        assert!(matches!(
            validate_batches(&old.freeze(), 1 << 20),
            Err(BatchError::Invalid(_))
        ));

        let cut = good.slice(..good.len() - 3);
        assert!(matches!(
            validate_batches(&cut, 1 << 20),
            Err(BatchError::Corrupt(_))
        ));

        assert!(matches!(
            validate_batches(&good, 10),
            Err(BatchError::TooLarge(_, 10))
        ));
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let mut b = BytesMut::from(&batch(2)[..]);
        stamp(&mut b, 42, 7, None);
        let header = BatchHeader::parse(&b).unwrap();
        assert_eq!((header.base_offset, header.leader_epoch), (42, 7));
        stamp(&mut b, 42, 7, Some(99));
        let batches = validate_batches(&b.freeze(), 1 << 20).unwrap();
        assert_eq!(batches[0].0.max_timestamp, 99);
        assert_eq!(
            batches[0].0.attributes & TIMESTAMP_TYPE_BIT,
            TIMESTAMP_TYPE_BIT
        );
    }

    #[test]
    fn markers_are_control_batches_that_say_their_outcome() {
        for commit in [true, false] {
            let m = marker_batch(42, 3, commit, 7, 1_000);
            let batches = validate_batches(&m, 1 << 20).expect("a valid batch");
            let (h, bytes) = &batches[0];
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.record_count),
                (42, 3, 1)
            );
            assert_eq!(marker_outcome(bytes), Some((commit, 7)));
        }
        assert_eq!(marker_outcome(&batch(1)), None, "not a control record key");
    }
}
