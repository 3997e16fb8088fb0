//! Stream payloads are Kafka v2 record batches, stored byte for byte. The engine reads only
//! their framing: base offset, length and last offset delta, all at fixed positions.

use bytes::Bytes;

const LOG_OVERHEAD: usize = 12;
const LAST_OFFSET_DELTA: usize = 23;
const MAX_TIMESTAMP: usize = 35;
pub const HEADER_BYTES: usize = 61;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub base_offset: i64,
    /// Exclusive.
    pub end_offset: i64,
    pub max_timestamp_ms: i64,
    pub size_bytes: usize,
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("bounds checked"))
}

/// The framing of the batch at the start of `bytes`, if a whole one is there.
pub fn bounds(bytes: &[u8]) -> Option<Bounds> {
    if bytes.len() < HEADER_BYTES {
        return None;
    }
    let length = i32::from_be_bytes(bytes[8..12].try_into().ok()?);
    let size_bytes = LOG_OVERHEAD.checked_add(usize::try_from(length).ok()?)?;
    if size_bytes < HEADER_BYTES || size_bytes > bytes.len() {
        return None;
    }
    let base_offset = i64_at(bytes, 0);
    let delta = i32::from_be_bytes(
        bytes[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4]
            .try_into()
            .ok()?,
    );
    Some(Bounds {
        base_offset,
        end_offset: base_offset + delta as i64 + 1,
        max_timestamp_ms: i64_at(bytes, MAX_TIMESTAMP),
        size_bytes,
    })
}

/// Splits stored bytes into batches, skipping those that end at or before `offset` and stopping
/// after `bytes_max` (at least one batch is always returned, as Kafka's fetch does).
pub fn batches_from(
    mut bytes: Bytes,
    offset: i64,
    bytes_max: usize,
    out: &mut Vec<Bytes>,
    taken: &mut usize,
) -> bool {
    while let Some(b) = bounds(&bytes) {
        let batch = bytes.split_to(b.size_bytes);
        if b.end_offset <= offset {
            continue;
        }
        if *taken > 0 && *taken + b.size_bytes > bytes_max {
            return false;
        }
        *taken += b.size_bytes;
        out.push(batch);
    }
    true
}
