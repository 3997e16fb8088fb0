//! Offsets by time, for ListOffsets: the first record at or after a timestamp, and the record
//! with the largest timestamp. Committed ranges carry their largest timestamp, so whole ranges
//! are skipped without reading them; only candidate batches are decoded.

use strata_meta::StreamId;
use strata_protocol::BatchHeader;
use strata_storage::StorageError;

use crate::records::offsets_and_timestamps;
use crate::Broker;

/// Bytes read per step while scanning.
const SCAN_STEP_BYTES: usize = 1024 * 1024;

/// `(offset, timestamp)` of the first record whose timestamp is at least `timestamp`.
pub async fn first_at_or_after(
    broker: &Broker,
    stream_id: StreamId,
    timestamp: i64,
) -> Result<Option<(i64, i64)>, StorageError> {
    let offsets = broker.engine.offsets(stream_id)?;
    let from = {
        let image = broker.meta.image().read();
        image
            .streams
            .get(&stream_id)
            .and_then(|s| {
                s.ranges
                    .values()
                    .find(|(_, r)| r.max_timestamp_ms >= timestamp)
                    .map(|(_, r)| r.start_offset)
            })
            .unwrap_or(offsets.committed_end)
            .max(offsets.start_offset)
    };
    let mut found = None;
    scan(
        broker,
        stream_id,
        from,
        offsets.durable_end,
        |header, batch| {
            if header.max_timestamp < timestamp {
                return true;
            }
            found = record_where(header, batch, offsets.start_offset, |ts| ts >= timestamp);
            found.is_none()
        },
    )
    .await?;
    Ok(found)
}

/// `(offset, timestamp)` of the first record with the largest timestamp.
pub async fn max_timestamp(
    broker: &Broker,
    stream_id: StreamId,
) -> Result<Option<(i64, i64)>, StorageError> {
    let offsets = broker.engine.offsets(stream_id)?;
    let best_range = {
        let image = broker.meta.image().read();
        image.streams.get(&stream_id).and_then(|s| {
            s.ranges
                .values()
                .filter(|(_, r)| r.end_offset > offsets.start_offset)
                .max_by_key(|(_, r)| (r.max_timestamp_ms, std::cmp::Reverse(r.start_offset)))
                .map(|(_, r)| (r.start_offset.max(offsets.start_offset), r.end_offset))
        })
    };
    let mut best: Option<(BatchHeader, bytes::Bytes)> = None;
    let mut consider = |header: &BatchHeader, batch: &bytes::Bytes| {
        if best
            .as_ref()
            .is_none_or(|(b, _)| header.max_timestamp > b.max_timestamp)
        {
            best = Some((*header, batch.clone()));
        }
        true
    };
    if let Some((start, end)) = best_range {
        scan(broker, stream_id, start, end, &mut consider).await?;
    }
    let tail_start = offsets.committed_end.max(offsets.start_offset);
    scan(
        broker,
        stream_id,
        tail_start,
        offsets.durable_end,
        &mut consider,
    )
    .await?;
    Ok(best.and_then(|(header, batch)| {
        record_where(&header, &batch, offsets.start_offset, |ts| {
            ts >= header.max_timestamp
        })
    }))
}

/// The first record of the batch at or after `start` (the log start: a batch may straddle it)
/// whose timestamp satisfies `pred`. Under `LogAppendTime` every record carries the batch's max
/// timestamp.
fn record_where(
    header: &BatchHeader,
    batch: &bytes::Bytes,
    start: i64,
    pred: impl Fn(i64) -> bool,
) -> Option<(i64, i64)> {
    const LOG_APPEND_TIME: i16 = 0x08;
    if header.attributes & LOG_APPEND_TIME != 0 {
        let first = header.base_offset.max(start);
        let found = pred(header.max_timestamp) && first <= header.last_offset();
        return found.then_some((first, header.max_timestamp));
    }
    offsets_and_timestamps(batch)
        .into_iter()
        .find(|(offset, ts)| *offset >= start && pred(*ts))
}

/// Calls `visit` on every batch in `[from, to)` until it returns false.
async fn scan(
    broker: &Broker,
    stream_id: StreamId,
    from: i64,
    to: i64,
    mut visit: impl FnMut(&BatchHeader, &bytes::Bytes) -> bool,
) -> Result<(), StorageError> {
    let mut offset = from;
    while offset < to {
        let read = broker
            .engine
            .read(stream_id, offset, SCAN_STEP_BYTES)
            .await?;
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            let Ok(header) = BatchHeader::parse(batch) else {
                return Ok(());
            };
            if header.last_offset() < offset {
                continue;
            }
            if !visit(&header, batch) {
                return Ok(());
            }
            offset = header.last_offset() + 1;
        }
    }
    Ok(())
}
