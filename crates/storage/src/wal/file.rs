//! The `file` WAL backend: zero-filled segments (trimmed ones reused) on a local or shared block volume,
//! written by one thread that group-commits everything queued with a single `fdatasync`.
//! Recovery reads segments in LSN order and stops at the first record that is not intact.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::{decode_all, encode, encoded_len, Durable, Lsn, Wal, WalError, WalRecord};

/// A limit on one group commit, so one sync never waits behind an unbounded write.
const GROUP_COMMIT_BYTES_MAX: usize = 8 * 1024 * 1024;
/// A limit on the bytes of trimmed segments kept for reuse. A segment made anew is written full
/// of zeros first (see `allocate`); at full speed the WAL fills a second's worth of segments
/// between trims, and each one made anew costs a segment of extra writes, so the spares cover
/// that second.
const SPARE_BYTES_MAX: u64 = 1 << 30;
/// However large or small the segments, a few spares and not too many.
const SPARES_MIN: usize = 2;
const SPARES_MAX: usize = 64;

fn spares_max(segment_bytes: u64) -> usize {
    ((SPARE_BYTES_MAX / segment_bytes.max(1)) as usize).clamp(SPARES_MIN, SPARES_MAX)
}

fn spare_name(n: usize) -> String {
    format!("spare-{n}.wal.tmp")
}

/// Names the broker a WAL directory belongs to.
const OWNER_FILE: &str = "owner";

/// Marks `dir` as `node_id`'s WAL, or checks that it is: a rescuer must be able to tell a
/// fenced broker's WAL from a path that only looks like it (the same relative path on another
/// host, another broker's directory).
pub fn claim(dir: &Path, node_id: i32) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let path = dir.join(OWNER_FILE);
    match owner(dir) {
        Some(id) if id == node_id => Ok(()),
        Some(id) => Err(std::io::Error::other(format!(
            "WAL directory {} belongs to node {id}, not {node_id}",
            dir.display()
        ))),
        None => {
            fs::write(&path, node_id.to_string())?;
            sync_dir(dir)
        }
    }
}

/// The broker whose WAL `dir` is, if it is one.
pub fn owner(dir: &Path) -> Option<i32> {
    fs::read_to_string(dir.join(OWNER_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[derive(Clone, Debug)]
pub struct FileWalConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
}

enum Op {
    Append(Lsn, WalRecord, oneshot::Sender<Result<(), WalError>>),
    Trim(Lsn, oneshot::Sender<Result<(), WalError>>),
    Close(oneshot::Sender<()>),
}

pub struct FileWal {
    /// Held while assigning an LSN and queueing, so queue order is LSN order.
    next_lsn: Mutex<Lsn>,
    ops: mpsc::UnboundedSender<Op>,
    failed: Arc<AtomicBool>,
}

fn segment_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}.wal")
}

fn list_segments(dir: &Path) -> std::io::Result<Vec<(Lsn, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(lsn) = name.strip_suffix(".wal").and_then(|s| s.parse().ok()) {
            segments.push((lsn, path));
        }
    }
    segments.sort();
    Ok(segments)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a new segment full of zeros, so that appends overwrite blocks that are already
/// allocated and written. On a preallocated (`fallocate`) file the blocks are unwritten
/// extents: the first write to each one is a metadata change, so every `fdatasync` must wait
/// for a journal commit, which on ext4 also waits for other files' dirty data (the objects
/// being uploaded). Over written blocks `fdatasync` flushes only the WAL's own data.
fn allocate(path: &Path, bytes: u64) -> std::io::Result<()> {
    use std::io::Write;
    const CHUNK_BYTES: usize = 1 << 20;
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    let zeros = vec![0u8; CHUNK_BYTES];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK_BYTES as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

impl FileWal {
    /// Opens the WAL in `config.dir`, returning it and every intact record from before, in LSN
    /// order.
    pub fn open(config: FileWalConfig) -> Result<(FileWal, Vec<(Lsn, WalRecord)>), WalError> {
        let io = |e: std::io::Error| WalError::Io(e.to_string());
        fs::create_dir_all(&config.dir).map_err(io)?;
        let (recovered, mut segments, keep, next_lsn) = Self::read(&config.dir)?;
        // Segments past a break in the chain hold nothing that was acknowledged.
        for (_, path) in segments.drain(keep..) {
            fs::remove_file(path).map_err(io)?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let failed = Arc::new(AtomicBool::new(false));
        let writer = Writer::start(&config, segments, next_lsn, failed.clone()).map_err(io)?;
        let writer_failed = failed.clone();
        std::thread::Builder::new()
            .name("strata-wal".into())
            .spawn(move || writer.run(rx, writer_failed))
            .map_err(io)?;
        Ok((
            FileWal {
                next_lsn: Mutex::new(next_lsn),
                ops: tx,
                failed,
            },
            recovered,
        ))
    }

    /// Reads the WAL in `dir` without changing it: the intact records of the unbroken chain of
    /// segments, every segment, how many of them that chain spans, and the next LSN. A rescuer
    /// reads a fenced broker's WAL this way.
    #[allow(clippy::type_complexity)]
    fn read(
        dir: &Path,
    ) -> Result<(Vec<(Lsn, WalRecord)>, Vec<(Lsn, PathBuf)>, usize, Lsn), WalError> {
        let io = |e: std::io::Error| WalError::Io(e.to_string());
        let segments = list_segments(dir).map_err(io)?;
        let mut recovered = Vec::new();
        let mut expected: Option<Lsn> = None;
        let mut keep = 0;
        for (first_lsn, path) in &segments {
            if expected.is_some_and(|e| e != *first_lsn) {
                break;
            }
            let bytes = Bytes::from(fs::read(path).map_err(io)?);
            let mut next = *first_lsn;
            for (lsn, record) in decode_all(bytes) {
                if lsn != next {
                    break;
                }
                recovered.push((lsn, record));
                next += 1;
            }
            expected = Some(next);
            keep += 1;
        }
        Ok((recovered, segments, keep, expected.unwrap_or(0)))
    }

    /// The intact records of the WAL in `dir`, read without changing it.
    pub fn read_foreign(dir: &Path) -> Result<Vec<(Lsn, WalRecord)>, WalError> {
        Ok(Self::read(dir)?.0)
    }
}

#[async_trait::async_trait]
impl Wal for FileWal {
    fn append(&self, record: WalRecord) -> Result<(Lsn, Durable), WalError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(WalError::Io("an earlier WAL write failed".into()));
        }
        let (done, durable) = oneshot::channel();
        let mut next = self.next_lsn.lock();
        let lsn = *next;
        self.ops
            .send(Op::Append(lsn, record, done))
            .map_err(|_| WalError::Closed)?;
        *next += 1;
        Ok((lsn, durable))
    }

    fn next_lsn(&self) -> Lsn {
        *self.next_lsn.lock()
    }

    async fn trim(&self, lsn: Lsn) -> Result<(), WalError> {
        let (done, rx) = oneshot::channel();
        self.ops
            .send(Op::Trim(lsn, done))
            .map_err(|_| WalError::Closed)?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.ops.send(Op::Close(done)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The WAL thread's state: the open segment and the ones still holding untrimmed records.
struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    /// `(first lsn, path)` of every segment, the last one open for writing.
    segments: Vec<(Lsn, PathBuf)>,
    file: File,
    position: u64,
    capacity: u64,
    spares: Arc<Spares>,
    /// Trimmed segments go to the recycler thread: renaming or deleting them and syncing the
    /// directory costs a journal commit, which appends should not wait for.
    recycle: Option<std::sync::mpsc::Sender<Recycle>>,
    recycler: Option<std::thread::JoinHandle<()>>,
}

/// Trimmed segments kept for reuse: their blocks are written already, so appending over them
/// costs no allocation, no extent conversion and no zero-filling.
struct Spares {
    dir: PathBuf,
    segment_bytes: u64,
    /// Held across each rename into or out of the list, so a name is never given twice.
    paths: Mutex<Vec<PathBuf>>,
}

/// Segments to recycle, and whom to tell once that is durable.
type Recycle = (Vec<PathBuf>, oneshot::Sender<Result<(), WalError>>);

impl Spares {
    /// Keeps each segment as a spare while there is room, deletes it otherwise, then makes the
    /// directory durable. A segment must not survive under its name: recovery would follow the
    /// chain from it, find the gap after it, and drop the newer segments.
    fn recycle(&self, segments: Vec<PathBuf>) -> std::io::Result<()> {
        for path in segments {
            let reusable = fs::metadata(&path).is_ok_and(|m| m.len() == self.segment_bytes);
            let mut paths = self.paths.lock();
            let free = (0..spares_max(self.segment_bytes))
                .map(|n| self.dir.join(spare_name(n)))
                .find(|p| !paths.contains(p));
            match free.filter(|_| reusable) {
                Some(spare) if fs::rename(&path, &spare).is_ok() => paths.push(spare),
                _ => fs::remove_file(&path)?,
            }
        }
        sync_dir(&self.dir)
    }

    /// Renames a spare to `path`, if there is one; the caller syncs the directory.
    fn take(&self, path: &Path) -> std::io::Result<bool> {
        let mut paths = self.paths.lock();
        let Some(spare) = paths.pop() else {
            return Ok(false);
        };
        fs::rename(&spare, path)?;
        Ok(true)
    }
}

fn run_recycler(
    spares: Arc<Spares>,
    jobs: std::sync::mpsc::Receiver<Recycle>,
    failed: Arc<AtomicBool>,
) {
    for (segments, done) in jobs {
        let result = spares.recycle(segments);
        if let Err(e) = &result {
            // A trimmed segment may still be on disk under its name: stop acknowledging, so
            // nothing acknowledged depends on a WAL that recovery could cut short.
            failed.store(true, Ordering::Release);
            tracing::error!(error = %e, "recycling trimmed WAL segments failed; no later append will be acknowledged");
        }
        let _ = done.send(result.map_err(|e| WalError::Io(e.to_string())));
    }
}

impl Writer {
    fn start(
        config: &FileWalConfig,
        segments: Vec<(Lsn, PathBuf)>,
        next_lsn: Lsn,
        failed: Arc<AtomicBool>,
    ) -> std::io::Result<Writer> {
        // Spares of the right size and within the limit are kept; any other (left by another
        // segment size or limit) is deleted.
        let mut found = Vec::new();
        let wanted: Vec<PathBuf> = (0..spares_max(config.segment_bytes))
            .map(|n| config.dir.join(spare_name(n)))
            .collect();
        for entry in fs::read_dir(&config.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !(name.starts_with("spare-") && name.ends_with(".wal.tmp")) {
                continue;
            }
            if wanted.contains(&path)
                && fs::metadata(&path).is_ok_and(|m| m.len() == config.segment_bytes)
            {
                found.push(path);
            } else {
                fs::remove_file(&path)?;
            }
        }
        let spares = Arc::new(Spares {
            dir: config.dir.clone(),
            segment_bytes: config.segment_bytes,
            paths: Mutex::new(found),
        });
        let (recycle, jobs) = std::sync::mpsc::channel();
        let recycler_spares = spares.clone();
        let recycler = std::thread::Builder::new()
            .name("strata-wal-recycle".into())
            .spawn(move || run_recycler(recycler_spares, jobs, failed))?;
        let mut writer = Writer {
            dir: config.dir.clone(),
            segment_bytes: config.segment_bytes,
            segments,
            file: File::open("/dev/null")?,
            position: 0,
            capacity: 0,
            spares,
            recycle: Some(recycle),
            recycler: Some(recycler),
        };
        // A fresh segment after recovery: whatever torn tail the last one had stays behind
        // the chain break and is never read again.
        writer.roll(next_lsn, 0)?;
        Ok(writer)
    }

    /// Starts a new segment whose first record is `first_lsn`, reusing the spare if there is
    /// one. A reused segment still holds old frames past what is written; their LSNs are below
    /// anything in the chain, so recovery stops at them.
    fn roll(&mut self, first_lsn: Lsn, needed: u64) -> std::io::Result<()> {
        let path = self.dir.join(segment_name(first_lsn));
        let capacity = self.segment_bytes.max(needed);
        if capacity != self.segment_bytes || !self.spares.take(&path)? {
            allocate(&path, capacity)?;
        }
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new().write(true).open(&path)?;
        self.position = 0;
        self.capacity = capacity;
        self.segments.retain(|(lsn, _)| *lsn != first_lsn);
        self.segments.push((first_lsn, path));
        Ok(())
    }

    fn run(mut self, mut ops: mpsc::UnboundedReceiver<Op>, failed: Arc<AtomicBool>) {
        let mut buf = BytesMut::with_capacity(GROUP_COMMIT_BYTES_MAX);
        let mut waiting: Vec<oneshot::Sender<Result<(), WalError>>> = Vec::new();
        let mut error: Option<WalError> = None;
        while let Some(op) = ops.blocking_recv() {
            let mut next = Some(op);
            let mut close = None;
            let mut trims = Vec::new();
            // Group commit: take everything already queued, up to the limit.
            while let Some(op) = next.take() {
                match op {
                    Op::Append(lsn, record, done) => {
                        if error.is_none() {
                            if let Err(e) = self.stage(&mut buf, lsn, &record) {
                                error = Some(WalError::Io(e.to_string()));
                            }
                        }
                        waiting.push(done);
                    }
                    Op::Trim(lsn, done) => trims.push((lsn, done)),
                    Op::Close(done) => {
                        close = Some(done);
                        break;
                    }
                }
                if buf.len() < GROUP_COMMIT_BYTES_MAX {
                    next = ops.try_recv().ok();
                }
            }
            if error.is_none() {
                if let Err(e) = self.flush(&mut buf) {
                    error = Some(WalError::Io(e.to_string()));
                }
            }
            if let Some(e) = &error {
                failed.store(true, Ordering::Release);
                tracing::error!(error = %e, "WAL write failed; no later append will be acknowledged");
            }
            let result = match &error {
                None => Ok(()),
                Some(e) => Err(e.clone()),
            };
            for done in waiting.drain(..) {
                let _ = done.send(result.clone());
            }
            for (lsn, done) in trims {
                let trimmed = self.trim(lsn);
                if trimmed.is_empty() {
                    let _ = done.send(Ok(()));
                } else if let Some(recycle) = &self.recycle {
                    if let Err(std::sync::mpsc::SendError((_, done))) =
                        recycle.send((trimmed, done))
                    {
                        let _ = done.send(Err(WalError::Closed));
                    }
                }
            }
            if let Some(done) = close {
                // Whoever reopens this directory must find the recycler's work done.
                self.recycle = None;
                if let Some(recycler) = self.recycler.take() {
                    let _ = recycler.join();
                }
                let _ = done.send(());
                return;
            }
        }
    }

    /// Appends the record's frame to `buf`, writing out and rolling the segment when full.
    fn stage(&mut self, buf: &mut BytesMut, lsn: Lsn, record: &WalRecord) -> std::io::Result<()> {
        let len = encoded_len(record) as u64;
        if self.position + buf.len() as u64 + len > self.capacity {
            self.write_out(buf)?;
            self.file.sync_data()?;
            self.roll(lsn, len)?;
        }
        encode(buf, lsn, record);
        Ok(())
    }

    fn write_out(&mut self, buf: &mut BytesMut) -> std::io::Result<()> {
        if !buf.is_empty() {
            self.file.write_all_at(buf, self.position)?;
            self.position += buf.len() as u64;
            metrics::counter!("strata_wal_bytes_written_total").increment(buf.len() as u64);
            buf.clear();
        }
        Ok(())
    }

    fn flush(&mut self, buf: &mut BytesMut) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.write_out(buf)?;
        let started = Instant::now();
        self.file.sync_data()?;
        metrics::histogram!("strata_wal_sync_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Takes out every segment whose records are all below `lsn`, for the recycler; the open
    /// one stays.
    fn trim(&mut self, lsn: Lsn) -> Vec<PathBuf> {
        let mut trimmed = Vec::new();
        while self.segments.len() > 1 && self.segments[1].0 <= lsn {
            trimmed.push(self.segments.remove(0).1);
        }
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::*;

    fn config(dir: &Path, segment_bytes: u64) -> FileWalConfig {
        FileWalConfig {
            dir: dir.to_path_buf(),
            segment_bytes,
        }
    }

    #[tokio::test]
    async fn appends_survive_reopen_across_segments_and_trim() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, recovered) = FileWal::open(config(dir.path(), 256)).unwrap();
        assert!(recovered.is_empty());
        let mut pending = Vec::new();
        for i in 0..20 {
            let (lsn, durable) = wal.append(record(1, i, b"0123456789")).unwrap();
            assert_eq!(lsn, i as u64);
            pending.push(durable);
        }
        for durable in pending {
            durable.await.unwrap().unwrap();
        }
        wal.trim(10).await.unwrap();
        let spares = || {
            fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("spare-")
                })
                .count()
        };
        assert!(spares() > 0, "the recycler kept trimmed segments as spares");
        // Rolling now reuses trimmed segments, whose old frames must never come back.
        for i in 20..40 {
            let (lsn, durable) = wal.append(record(2, i, b"abcdefghij")).unwrap();
            assert_eq!(lsn, i as u64);
            durable.await.unwrap().unwrap();
        }
        wal.close().await;

        let (wal, recovered) = FileWal::open(config(dir.path(), 256)).unwrap();
        let lsns: Vec<Lsn> = recovered.iter().map(|(l, _)| *l).collect();
        assert!(
            lsns.first().copied().unwrap() <= 10,
            "trim keeps what is at or above it"
        );
        assert_eq!(*lsns.last().unwrap(), 39);
        assert!(lsns.windows(2).all(|w| w[1] == w[0] + 1));
        for (lsn, r) in &recovered {
            let (stream, payload): (u64, &[u8]) = if *lsn < 20 {
                (1, b"0123456789")
            } else {
                (2, b"abcdefghij")
            };
            assert_eq!(
                (r.stream_id, r.base_offset, &r.payload[..]),
                (stream, *lsn as i64, payload)
            );
        }
        assert_eq!(wal.next_lsn(), 40);
        wal.close().await;
        assert!(spares() <= spares_max(256));
    }

    #[tokio::test]
    async fn recovery_stops_at_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = FileWal::open(config(dir.path(), 4096)).unwrap();
        for i in 0..3 {
            wal.append(record(1, i, b"abc"))
                .unwrap()
                .1
                .await
                .unwrap()
                .unwrap();
        }
        wal.close().await;
        let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        // Damage the third record's payload.
        let frame = encoded_len(&record(1, 0, b"abc")) as u64;
        file.write_all_at(b"X", 2 * frame + frame - 1).unwrap();
        drop(file);

        let (wal, recovered) = FileWal::open(config(dir.path(), 4096)).unwrap();
        assert_eq!(recovered.len(), 2);
        // New appends continue the chain and are recovered after the torn one is skipped.
        wal.append(record(1, 2, b"new"))
            .unwrap()
            .1
            .await
            .unwrap()
            .unwrap();
        wal.close().await;
        let (_, recovered) = FileWal::open(config(dir.path(), 4096)).unwrap();
        assert_eq!(recovered.len(), 3);
        assert_eq!(recovered[2].1.payload, Bytes::from_static(b"new"));
    }
}
