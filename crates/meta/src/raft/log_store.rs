//! The Raft log on local disk: one append-only file of CRC-framed JSON entries, with the vote,
//! the committed and the purged log ids in a small state file that is replaced atomically.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::disk::{self, blocking};
use super::TypeConfig;

const LOG_FILE: &str = "log";
const STATE_FILE: &str = "state.json";

type Entries = Arc<RwLock<BTreeMap<u64, Entry<TypeConfig>>>>;

/// What must survive a restart besides the entries.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct HardState {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    /// Kept here because a purge may leave the log empty, and Raft still needs the last log id.
    purged: Option<LogId<u64>>,
}

pub struct LogStore {
    dir: PathBuf,
    file: Arc<File>,
    /// File offset of each entry's frame, so that truncating the tail is cutting the file.
    offsets: BTreeMap<u64, u64>,
    len: u64,
    state: HardState,
    reader: LogReader,
}

/// Reads come from memory: the metadata log is small, and replication tasks read concurrently
/// with appends.
#[derive(Clone)]
pub struct LogReader {
    entries: Entries,
}

fn io_error(subject: ErrorSubject<u64>, verb: ErrorVerb, e: io::Error) -> StorageError<u64> {
    StorageError::from_io_error(subject, verb, e)
}

fn to_io(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl LogStore {
    /// Loads the log under `dir`, dropping a torn or corrupt tail left by a crash mid-append
    /// (such entries were never acknowledged, since acknowledging waits for the fsync).
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let state: HardState = match disk::read_or_empty(&dir.join(STATE_FILE))? {
            bytes if bytes.is_empty() => HardState::default(),
            bytes => serde_json::from_slice(&bytes).map_err(to_io)?,
        };
        let path = dir.join(LOG_FILE);
        let data = disk::read_or_empty(&path)?;

        let mut entries = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        let mut next = state.purged.map(|p| p.index + 1);
        let mut pos = 0;
        while let Some((body, n)) = disk::decode_frame(&data[pos..]) {
            // A zero-filled tail (the file grew but the data never landed) checks out as an
            // empty frame.
            if body.is_empty() {
                break;
            }
            // A frame that passes its checksum was written whole: if it does not decode, it
            // is not a torn tail but an entry this binary cannot read, and must not be cut.
            let entry: Entry<TypeConfig> = serde_json::from_slice(body).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("undecodable entry at byte {pos} of {}: {e}", path.display()),
                )
            })?;
            let index = entry.log_id.index;
            // A crash between saving `purged` and rewriting the file leaves purged entries
            // at the front; they are skipped and dropped by the next purge.
            if next.is_some_and(|next| index < next) && entries.is_empty() {
                pos += n;
                continue;
            }
            if let Some(next) = next.filter(|next| *next != index) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "entry {index} where {next} was expected in {}",
                        path.display()
                    ),
                ));
            }
            offsets.insert(index, pos as u64);
            entries.insert(index, entry);
            next = Some(index + 1);
            pos += n;
        }

        let last = entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(state.purged);
        if state.committed > last {
            // Starting would silently forget committed metadata; an operator must look.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "metadata log in {} ends at {last:?} but {:?} was committed",
                    dir.display(),
                    state.committed
                ),
            ));
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if pos < data.len() {
            tracing::warn!(
                path = %path.display(),
                valid_bytes = pos,
                dropped_bytes = data.len() - pos,
                "dropping torn or corrupt tail of the metadata log"
            );
            file.set_len(pos as u64)?;
            file.sync_data()?;
        }
        disk::sync_dir(dir)?;

        tracing::info!(
            dir = %dir.display(),
            entries = entries.len(),
            purged = ?state.purged.map(|p| p.index),
            last = ?last.map(|l| l.index),
            "opened metadata log"
        );

        Ok(LogStore {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            offsets,
            len: pos as u64,
            state,
            reader: LogReader {
                entries: Arc::new(RwLock::new(entries)),
            },
        })
    }

    async fn save_state(&mut self, subject: ErrorSubject<u64>) -> Result<(), StorageError<u64>> {
        let bytes = serde_json::to_vec(&self.state)
            .map_err(|e| io_error(subject.clone(), ErrorVerb::Write, to_io(e)))?;
        let dir = self.dir.clone();
        blocking(move || disk::write_atomic(&dir, STATE_FILE, &bytes))
            .await
            .map_err(|e| io_error(subject, ErrorVerb::Write, e))
    }

    /// Rewrites the file with the entries still held; the rename makes the switch atomic.
    async fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut offsets = BTreeMap::new();
        for (index, entry) in self.reader.entries.read().iter() {
            offsets.insert(*index, buf.len() as u64);
            disk::encode_frame(&mut buf, &serde_json::to_vec(entry).map_err(to_io)?)?;
        }
        let len = buf.len() as u64;
        let dir = self.dir.clone();
        let file = blocking(move || {
            disk::write_atomic(&dir, LOG_FILE, &buf)?;
            OpenOptions::new().append(true).open(dir.join(LOG_FILE))
        })
        .await?;
        self.file = Arc::new(file);
        self.offsets = offsets;
        self.len = len;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .entries
            .read()
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        self.reader.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last = self
            .reader
            .entries
            .read()
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(self.state.purged);
        Ok(LogState {
            last_purged_log_id: self.state.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.state.vote = Some(*vote);
        self.save_state(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.state.vote)
    }

    /// Saved so that a restart re-applies everything committed before it accepts writes.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.state.committed = committed;
        self.save_state(ErrorSubject::Store).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write_err = |e| io_error(ErrorSubject::Logs, ErrorVerb::Write, e);
        let entries: Vec<_> = entries.into_iter().collect();
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for entry in &entries {
            offsets.push((entry.log_id.index, self.len + buf.len() as u64));
            let body = serde_json::to_vec(entry).map_err(|e| write_err(to_io(e)))?;
            disk::encode_frame(&mut buf, &body).map_err(write_err)?;
        }
        let written = buf.len() as u64;
        let file = self.file.clone();
        blocking(move || {
            (&*file).write_all(&buf)?;
            file.sync_data()
        })
        .await
        .map_err(write_err)?;

        self.len += written;
        self.offsets.extend(offsets);
        self.reader
            .entries
            .write()
            .extend(entries.into_iter().map(|e| (e.log_id.index, e)));
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    /// Removes the entries at and after `log_id` (a new leader overwrote them).
    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let Some((_, &offset)) = self.offsets.range(log_id.index..).next() else {
            return Ok(());
        };
        tracing::info!(from = log_id.index, "truncating the metadata log");
        let file = self.file.clone();
        blocking(move || {
            file.set_len(offset)?;
            file.sync_data()
        })
        .await
        .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.len = offset;
        self.offsets.split_off(&log_id.index);
        self.reader.entries.write().split_off(&log_id.index);
        Ok(())
    }

    /// Removes the entries up to and including `log_id`, which a snapshot now covers.
    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        tracing::info!(upto = log_id.index, "purging the metadata log");
        // `purged` is durable before the file shrinks, so a crash in between cannot leave a hole
        // between the last purged id and the first entry.
        self.state.purged = Some(log_id);
        self.save_state(ErrorSubject::Logs).await?;
        {
            let mut entries = self.reader.entries.write();
            *entries = entries.split_off(&(log_id.index + 1));
        }
        self.rewrite()
            .await
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}
