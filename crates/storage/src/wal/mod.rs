//! The write-ahead log: where an append becomes durable before it is acknowledged. One WAL per
//! broker, shared by all its streams, group-committed. Two backends keep one contract:
//! [`file::FileWal`] (preallocated segments, `fdatasync`) and [`object::ObjectWal`] (batches
//! written as objects).
//!
//! Invariants every backend keeps:
//! 1. LSNs are assigned in call order of [`Wal::append`], dense, starting after the recovered
//!    tail; records become durable in LSN order, so a durable LSN implies every smaller one is.
//! 2. An append's future resolves `Ok` only once the record is durable on the WAL medium.
//! 3. After a crash, [`Wal::open`]-time recovery yields exactly a prefix of the appended records
//!    that includes every record whose append resolved `Ok`, each intact (CRC-checked).
//! 4. [`Wal::trim`] removes only records below the given LSN; the caller trims only what is in
//!    committed objects, so trim never passes the last committed upload.
//! 5. Once a write fails, the WAL fails every later append: nothing after a hole is ever
//!    acknowledged.

pub mod file;
pub mod object;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::sync::oneshot;

pub type Lsn = u64;

/// One append: a batch of a stream's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    pub stream_id: u64,
    pub epoch: u64,
    pub base_offset: i64,
    /// Offsets the payload takes.
    pub offset_count: u32,
    pub max_timestamp_ms: i64,
    pub payload: Bytes,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL I/O failed: {0}")]
    Io(String),
    #[error("WAL is closed")]
    Closed,
}

/// Resolves once the record is durable.
pub type Durable = oneshot::Receiver<Result<(), WalError>>;

#[async_trait::async_trait]
pub trait Wal: Send + Sync + 'static {
    /// Assigns the record the next LSN and queues it; the receiver resolves once it is durable.
    fn append(&self, record: WalRecord) -> Result<(Lsn, Durable), WalError>;
    /// The LSN the next append will get.
    fn next_lsn(&self) -> Lsn;
    /// Asks that what is queued be made durable now rather than when a batching window ends
    /// (a hand-over is waiting for it). A hint: backends that do not batch ignore it.
    fn flush(&self) {}
    /// Drops every record below `lsn`.
    async fn trim(&self, lsn: Lsn) -> Result<(), WalError>;
    /// Flushes what is queued and stops; later appends fail with `Closed`.
    async fn close(&self);
}

/// `len u32 | crc32c u32 | lsn u64 | stream u64 | epoch u64 | base i64 | count u32 | max_ts i64 | payload`;
/// `len` counts the bytes after the CRC, the CRC covers them. See `docs/formats.md`.
pub const FRAME_HEADER_BYTES: usize = 8;
const FIXED_BODY_BYTES: usize = 8 + 8 + 8 + 8 + 4 + 8;
/// A limit on one record, so a corrupt length never makes recovery allocate wildly.
pub const RECORD_BYTES_MAX: usize = 128 * 1024 * 1024;

pub fn encoded_len(record: &WalRecord) -> usize {
    FRAME_HEADER_BYTES + FIXED_BODY_BYTES + record.payload.len()
}

pub fn encode(buf: &mut BytesMut, lsn: Lsn, record: &WalRecord) {
    let start = buf.len();
    buf.put_u32((FIXED_BODY_BYTES + record.payload.len()) as u32);
    buf.put_u32(0);
    buf.put_u64(lsn);
    buf.put_u64(record.stream_id);
    buf.put_u64(record.epoch);
    buf.put_i64(record.base_offset);
    buf.put_u32(record.offset_count);
    buf.put_i64(record.max_timestamp_ms);
    buf.put_slice(&record.payload);
    let crc = crc32c::crc32c(&buf[start + FRAME_HEADER_BYTES..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Decodes the frame at the start of `bytes`: `Some((lsn, record, frame_len))`, or `None` when
/// what is there is not a whole, intact frame (a torn write, preallocated zeros, garbage).
pub fn decode(bytes: &Bytes) -> Option<(Lsn, WalRecord, usize)> {
    if bytes.len() < FRAME_HEADER_BYTES + FIXED_BODY_BYTES {
        return None;
    }
    let len = u32::from_be_bytes(bytes[0..4].try_into().ok()?) as usize;
    if !(FIXED_BODY_BYTES..=RECORD_BYTES_MAX).contains(&len)
        || bytes.len() < FRAME_HEADER_BYTES + len
    {
        return None;
    }
    let crc = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
    let body = bytes.slice(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len);
    if crc32c::crc32c(&body) != crc {
        return None;
    }
    let mut b = body.clone();
    let lsn = b.get_u64();
    let record = WalRecord {
        stream_id: b.get_u64(),
        epoch: b.get_u64(),
        base_offset: b.get_i64(),
        offset_count: b.get_u32(),
        max_timestamp_ms: b.get_i64(),
        payload: body.slice(FIXED_BODY_BYTES..),
    };
    Some((lsn, record, FRAME_HEADER_BYTES + len))
}

/// Decodes consecutive frames, stopping at the first that is not intact.
pub fn decode_all(mut bytes: Bytes) -> Vec<(Lsn, WalRecord)> {
    let mut out = Vec::new();
    while let Some((lsn, record, len)) = decode(&bytes) {
        out.push((lsn, record));
        bytes.advance(len);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(stream_id: u64, base_offset: i64, payload: &'static [u8]) -> WalRecord {
        WalRecord {
            stream_id,
            epoch: 3,
            base_offset,
            offset_count: 1,
            max_timestamp_ms: 17,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn frames_round_trip_and_stop_at_damage() {
        let mut buf = BytesMut::new();
        encode(&mut buf, 7, &record(1, 0, b"hello"));
        encode(&mut buf, 8, &record(2, 5, b"world"));
        let whole = buf.clone().freeze();
        let got = decode_all(whole);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], (8, record(2, 5, b"world")));

        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(decode_all(buf.clone().freeze()).len(), 1);
        buf.truncate(buf.len() - 3);
        assert_eq!(decode_all(buf.freeze()).len(), 1);
        assert!(decode_all(Bytes::from(vec![0u8; 4096])).is_empty());
    }
}
