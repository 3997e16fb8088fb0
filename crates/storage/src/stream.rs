//! A stream as its owning broker holds it: the epoch it writes with, its offsets, and its tail
//! in the log cache (every appended batch not yet evicted, in offset order).

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use strata_meta::StreamId;
use tokio::sync::watch;

use crate::wal::Lsn;

#[derive(Debug)]
pub(crate) struct Entry {
    pub base_offset: i64,
    pub end_offset: i64,
    pub max_timestamp_ms: i64,
    pub lsn: Lsn,
    pub bytes: Bytes,
    /// In a committed object; the cache may evict it.
    pub uploaded: bool,
}

#[derive(Debug)]
pub(crate) struct StreamState {
    pub epoch: u64,
    pub start_offset: i64,
    /// Next offset to assign.
    pub next_offset: i64,
    /// Everything below is durable in the WAL: Kafka's high watermark.
    pub durable_end: i64,
    /// Everything below is in committed objects.
    pub committed_end: i64,
    pub entries: VecDeque<Entry>,
    pub fenced: bool,
    /// Being handed over to another broker: no more appends, uploads go on.
    pub closing: bool,
}

pub struct Stream {
    pub id: StreamId,
    pub(crate) state: Mutex<StreamState>,
    /// The durable end, for fetches waiting on new data.
    pub(crate) durable: watch::Sender<i64>,
}

impl Stream {
    pub(crate) fn new(id: StreamId, epoch: u64, start_offset: i64, committed_end: i64) -> Stream {
        Stream {
            id,
            state: Mutex::new(StreamState {
                epoch,
                start_offset,
                next_offset: committed_end,
                durable_end: committed_end,
                committed_end,
                entries: VecDeque::new(),
                fenced: false,
                closing: false,
            }),
            durable: watch::channel(committed_end).0,
        }
    }

    /// Waits for the durable end to move past `offset` (a fetch's long poll).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.durable.subscribe()
    }

    pub fn offsets(&self) -> StreamOffsets {
        let s = self.state.lock();
        StreamOffsets {
            epoch: s.epoch,
            start_offset: s.start_offset,
            next_offset: s.next_offset,
            durable_end: s.durable_end,
            committed_end: s.committed_end,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamOffsets {
    pub epoch: u64,
    pub start_offset: i64,
    /// Where the next append goes: the end of everything sequenced, durable or not.
    pub next_offset: i64,
    pub durable_end: i64,
    pub committed_end: i64,
}

impl StreamState {
    /// Index of the first cached entry holding an offset at or after `offset`.
    pub fn entry_at(&self, offset: i64) -> Option<usize> {
        let front = self.entries.front()?;
        if offset < front.base_offset {
            return None;
        }
        let i = self.entries.partition_point(|e| e.end_offset <= offset);
        (i < self.entries.len()).then_some(i)
    }
}
