//! Rescue: this broker replays a fenced broker's WAL (DESIGN.md §4). For every stream the
//! controller handed it to rescue, it takes the records past the committed end from that WAL,
//! commits them as one object under the rescue epoch, and asks the controller to open the
//! streams on their new leaders. The fenced WAL is only read, never changed: its broker may
//! still be running.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_meta::{Command, NodeId, StreamId};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::error::{Result, StorageError};
use crate::uploader::UploadEntry;
use crate::wal::file::FileWal;
use crate::wal::object::ObjectWal;
use crate::wal::{Lsn, WalRecord};

/// How often the image is checked for streams to rescue.
const RESCUE_POLL_MS: u64 = 100;

/// Why a fenced broker's WAL cannot be read from here.
struct Unreachable(String);

/// A stream to rescue: `(id, rescue epoch, committed end)`.
type Rescued = (StreamId, u64, i64);

impl Engine {
    /// Rescues whatever the controller hands this broker, until `stop` changes.
    pub async fn run_rescues(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(RESCUE_POLL_MS)) => {}
                _ = stop.changed() => return,
            }
            for (fenced, streams) in self.rescues() {
                let started = Instant::now();
                match self.rescue(fenced, &streams).await {
                    Ok(records) => tracing::info!(
                        fenced,
                        streams = streams.len(),
                        records,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "rescued a fenced broker's streams"
                    ),
                    Err(e) => {
                        tracing::warn!(fenced, error = %e, "rescue failed; retrying")
                    }
                }
            }
        }
    }

    /// The streams this broker is to rescue, by the fenced broker whose WAL holds their tails.
    fn rescues(&self) -> BTreeMap<NodeId, Vec<Rescued>> {
        let image = self.meta.image().read();
        let mut work: BTreeMap<NodeId, Vec<Rescued>> = BTreeMap::new();
        for s in image.streams.values() {
            // A stream handed back to its own fenced broker waits for that broker's return.
            let owned = s.owner == self.config.node_id;
            if let (Some(fenced), true) = (s.rescue_from, owned && s.rescue_from != Some(s.owner)) {
                work.entry(fenced).or_default().push((
                    s.stream_id,
                    s.epoch,
                    s.committed_end_offset,
                ));
            }
        }
        work
    }

    /// Commits what `fenced`'s WAL holds of `streams` past their committed ends, then hands
    /// the streams on. Returns how many WAL records were rescued.
    async fn rescue(&self, fenced: NodeId, streams: &[Rescued]) -> Result<usize> {
        let location = self
            .meta
            .image()
            .read()
            .brokers
            .get(&fenced)
            .and_then(|b| b.wal.clone());
        let records = match &location {
            Some(location) => match self.read_wal(fenced, location).await? {
                Ok(records) => records,
                Err(Unreachable(why)) => {
                    // Only the fenced broker can replay it: give the streams back to it, to
                    // open when it returns (their partitions wait until then).
                    tracing::error!(fenced, why, "the fenced broker's WAL is out of reach; its partitions wait for it to return");
                    self.meta
                        .submit(Command::AbandonRescue {
                            rescuer: self.config.node_id,
                            fenced,
                            streams: streams.iter().map(|s| s.0).collect(),
                        })
                        .await
                        .map_err(|e| StorageError::Failed(e.to_string()))?;
                    return Ok(0);
                }
            },
            None => {
                tracing::error!(
                    fenced,
                    "the fenced broker registered no WAL location; its unuploaded tail is lost"
                );
                Vec::new()
            }
        };
        let mut parts = Vec::new();
        let mut rescued = 0;
        for &(stream_id, epoch, committed_end) in streams {
            let entries = tail(stream_id, committed_end, &records);
            rescued += entries.len();
            if !entries.is_empty() {
                parts.push((stream_id, epoch, entries));
            }
        }
        if !parts.is_empty() {
            self.commit_object(parts).await?;
        }
        self.meta
            .submit(Command::CompleteRescue {
                rescuer: self.config.node_id,
                streams: streams.iter().map(|s| s.0).collect(),
            })
            .await
            .map_err(|e| StorageError::Failed(e.to_string()))?;
        Ok(rescued)
    }

    /// Reads `fenced`'s WAL at `location`: `Ok(Err(Unreachable))` when this broker cannot
    /// reach it at all (a file WAL on a volume it does not share), `Err` for a failure worth
    /// retrying.
    async fn read_wal(
        &self,
        fenced: NodeId,
        location: &str,
    ) -> Result<std::result::Result<Vec<(Lsn, WalRecord)>, Unreachable>> {
        let failed = |e: crate::wal::WalError| StorageError::Failed(e.to_string());
        if let Some(prefix) = location.strip_prefix("object:") {
            return Ok(Ok(ObjectWal::read_foreign(&self.store, prefix)
                .await
                .map_err(failed)?));
        }
        let Some(dir) = location.strip_prefix("file:") else {
            return Ok(Err(Unreachable(format!("unknown WAL location {location}"))));
        };
        let dir = Path::new(dir).to_path_buf();
        if crate::wal::file::owner(&dir) != Some(fenced) {
            return Ok(Err(Unreachable(format!(
                "{} is not node {fenced}'s WAL here",
                dir.display()
            ))));
        }
        let records = tokio::task::spawn_blocking(move || FileWal::read_foreign(&dir))
            .await
            .map_err(|e| StorageError::Failed(e.to_string()))?
            .map_err(failed)?;
        Ok(Ok(records))
    }
}

/// The stream's records from `committed_end` on, in offset order, as far as they continue one
/// another. A later record at an offset already taken replaces what was there: it was written
/// by a later epoch, after the earlier one was fenced without being acknowledged.
fn tail(stream_id: StreamId, committed_end: i64, records: &[(Lsn, WalRecord)]) -> Vec<UploadEntry> {
    let mut entries: Vec<UploadEntry> = Vec::new();
    for (_, r) in records.iter().filter(|(_, r)| r.stream_id == stream_id) {
        let end = r.base_offset + i64::from(r.offset_count);
        if end <= committed_end {
            continue;
        }
        // Drop whatever this record overwrites.
        while entries.last().is_some_and(|e| e.0 >= r.base_offset) {
            entries.pop();
        }
        let next = entries.last().map_or(committed_end, |e| e.1);
        if r.base_offset != next {
            tracing::error!(
                stream_id,
                at = r.base_offset,
                expected = next,
                "the fenced WAL has a gap in this stream; rescuing what comes before it"
            );
            break;
        }
        entries.push((r.base_offset, end, r.max_timestamp_ms, r.payload.clone()));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(stream_id: u64, epoch: u64, base: i64, count: u32) -> (Lsn, WalRecord) {
        (
            0,
            WalRecord {
                stream_id,
                epoch,
                base_offset: base,
                offset_count: count,
                max_timestamp_ms: base,
                payload: Bytes::from(format!("{stream_id}/{epoch}/{base}")),
            },
        )
    }

    #[test]
    fn the_tail_starts_at_the_committed_end_and_later_writes_win() {
        let records = vec![
            record(1, 1, 0, 5),
            record(2, 1, 0, 3),
            record(1, 1, 5, 5),
            record(1, 1, 10, 5),
            // A later epoch rewrote from 10 (the earlier 10..15 was never acknowledged).
            record(1, 2, 10, 2),
            record(1, 2, 12, 1),
        ];
        let got: Vec<(i64, i64, Bytes)> = tail(1, 5, &records)
            .into_iter()
            .map(|e| (e.0, e.1, e.3))
            .collect();
        assert_eq!(
            got,
            vec![
                (5, 10, Bytes::from("1/1/5")),
                (10, 12, Bytes::from("1/2/10")),
                (12, 13, Bytes::from("1/2/12")),
            ]
        );
        assert!(tail(1, 13, &records).is_empty());
        assert!(tail(3, 0, &records).is_empty());
        // A gap ends the tail.
        let gap = vec![record(1, 1, 0, 2), record(1, 1, 5, 1)];
        assert_eq!(tail(1, 0, &gap).len(), 1);
    }
}
