//! The `object` WAL backend: appends gathered for a window (time or bytes, whichever comes
//! first) and written as one object. Any broker that can reach the object store can replay a
//! dead broker's WAL from it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::{decode_all, encode, Durable, Lsn, Wal, WalError, WalRecord};

#[derive(Clone, Debug)]
pub struct ObjectWalConfig {
    /// Key prefix of this broker's WAL objects, e.g. `wal/node-1`.
    pub prefix: String,
    pub window_ms: u64,
    pub window_bytes: usize,
    /// A limit on each PUT; a PUT that times out is retried with the same key and bytes.
    pub put_timeout_ms: u64,
    pub put_attempts_max: u32,
}

enum Op {
    Append(Lsn, WalRecord, oneshot::Sender<Result<(), WalError>>),
    /// Write what the window holds now instead of at its end.
    Flush,
    Close(oneshot::Sender<()>),
}

pub struct ObjectWal {
    next_lsn: Mutex<Lsn>,
    ops: mpsc::UnboundedSender<Op>,
    failed: Arc<AtomicBool>,
    store: Arc<dyn ObjectStore>,
    /// `(first lsn, last lsn, key)` of every WAL object not yet trimmed.
    objects: Arc<Mutex<Vec<(Lsn, Lsn, Path)>>>,
}

fn object_name(prefix: &str, first: Lsn, last: Lsn) -> Path {
    Path::from(format!("{prefix}/{first:020}-{last:020}.wal"))
}

fn parse_name(path: &Path) -> Option<(Lsn, Lsn)> {
    let name = path.filename()?.strip_suffix(".wal")?;
    let (first, last) = name.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// What a WAL's objects hold: the intact records of the unbroken chain, the objects of that
/// chain, and the objects past a break in it (which hold nothing acknowledged).
struct Read {
    recovered: Vec<(Lsn, WalRecord)>,
    kept: Vec<(Lsn, Lsn, Path)>,
    broken: Vec<Path>,
    next_lsn: Lsn,
}

impl ObjectWal {
    /// Reads the WAL under `prefix` without changing it: a rescuer replaying a fenced broker's
    /// WAL while that broker may still be running.
    pub async fn read_foreign(
        store: &Arc<dyn ObjectStore>,
        prefix: &str,
    ) -> Result<Vec<(Lsn, WalRecord)>, WalError> {
        Ok(Self::read(store, prefix).await?.recovered)
    }

    async fn read(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Read, WalError> {
        let io = |e: object_store::Error| WalError::Io(e.to_string());
        let prefix = Path::from(prefix);
        let mut listed: Vec<(Lsn, Lsn, Path)> = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect::<Vec<_>>()
            .await
            .map_err(io)?
            .into_iter()
            .filter_map(|path| parse_name(&path).map(|(f, l)| (f, l, path)))
            .collect();
        listed.sort();
        let mut recovered = Vec::new();
        let mut kept = Vec::new();
        let mut broken = Vec::new();
        let mut expected: Option<Lsn> = None;
        for (first, last, path) in listed {
            if expected.is_some_and(|e| e != first) {
                // A break in the chain: nothing past it was acknowledged.
                broken.push(path);
                continue;
            }
            let bytes = store
                .get(&path)
                .await
                .map_err(io)?
                .bytes()
                .await
                .map_err(io)?;
            let mut next = first;
            for (lsn, record) in decode_all(bytes) {
                if lsn != next {
                    break;
                }
                recovered.push((lsn, record));
                next += 1;
            }
            if next != last + 1 {
                return Err(WalError::Io(format!("WAL object {path} is damaged")));
            }
            expected = Some(next);
            kept.push((first, last, path));
        }
        Ok(Read {
            recovered,
            kept,
            broken,
            next_lsn: expected.unwrap_or(0),
        })
    }

    pub async fn open(
        store: Arc<dyn ObjectStore>,
        config: ObjectWalConfig,
    ) -> Result<(ObjectWal, Vec<(Lsn, WalRecord)>), WalError> {
        let Read {
            recovered,
            kept,
            broken,
            next_lsn,
        } = Self::read(&store, &config.prefix).await?;
        for path in broken {
            store
                .delete(&path)
                .await
                .map_err(|e| WalError::Io(e.to_string()))?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let failed = Arc::new(AtomicBool::new(false));
        let objects = Arc::new(Mutex::new(kept));
        tokio::spawn(
            Writer {
                store: store.clone(),
                config,
                objects: objects.clone(),
                failed: failed.clone(),
            }
            .run(rx),
        );
        Ok((
            ObjectWal {
                next_lsn: Mutex::new(next_lsn),
                ops: tx,
                failed,
                store,
                objects,
            },
            recovered,
        ))
    }
}

#[async_trait::async_trait]
impl Wal for ObjectWal {
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

    fn flush(&self) {
        let _ = self.ops.send(Op::Flush);
    }

    async fn trim(&self, lsn: Lsn) -> Result<(), WalError> {
        let doomed: Vec<Path> = {
            let mut objects = self.objects.lock();
            let doomed = objects
                .iter()
                .filter(|(_, last, _)| *last < lsn)
                .map(|(_, _, p)| p.clone())
                .collect();
            objects.retain(|(_, last, _)| *last >= lsn);
            doomed
        };
        for path in doomed {
            self.store
                .delete(&path)
                .await
                .map_err(|e| WalError::Io(e.to_string()))?;
        }
        Ok(())
    }

    async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.ops.send(Op::Close(done)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Writer {
    store: Arc<dyn ObjectStore>,
    config: ObjectWalConfig,
    objects: Arc<Mutex<Vec<(Lsn, Lsn, Path)>>>,
    failed: Arc<AtomicBool>,
}

impl Writer {
    async fn run(self, mut ops: mpsc::UnboundedReceiver<Op>) {
        let window = Duration::from_millis(self.config.window_ms);
        while let Some(op) = ops.recv().await {
            let opened = Instant::now();
            let deadline = tokio::time::Instant::now() + window;
            let mut buf = BytesMut::new();
            let mut waiting = Vec::new();
            let mut range: Option<(Lsn, Lsn)> = None;
            let mut close = None;
            let mut next = Some(op);
            loop {
                match next.take() {
                    Some(Op::Append(lsn, record, done)) => {
                        encode(&mut buf, lsn, &record);
                        range = Some((range.map_or(lsn, |r| r.0), lsn));
                        waiting.push(done);
                    }
                    Some(Op::Close(done)) => {
                        close = Some(done);
                        break;
                    }
                    Some(Op::Flush) => break,
                    None => {}
                }
                if buf.len() >= self.config.window_bytes {
                    break;
                }
                match tokio::time::timeout_at(deadline, ops.recv()).await {
                    Ok(Some(op)) => next = Some(op),
                    Ok(None) | Err(_) => break,
                }
            }
            if let Some((first, last)) = range {
                let result = if self.failed.load(Ordering::Acquire) {
                    Err(WalError::Io("an earlier WAL write failed".into()))
                } else {
                    self.put(first, last, buf.freeze(), opened).await
                };
                if let Err(e) = &result {
                    self.failed.store(true, Ordering::Release);
                    tracing::error!(error = %e, "WAL object write failed; no later append will be acknowledged");
                }
                for done in waiting {
                    let _ = done.send(result.clone());
                }
            }
            if let Some(done) = close {
                let _ = done.send(());
                return;
            }
        }
    }

    /// Writes one window's object; `opened` is when its first append arrived, so the recorded
    /// sync time is what an append waits: the window plus the PUT.
    async fn put(
        &self,
        first: Lsn,
        last: Lsn,
        bytes: Bytes,
        opened: Instant,
    ) -> Result<(), WalError> {
        let path = object_name(&self.config.prefix, first, last);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let put = self.store.put(&path, PutPayload::from(bytes.clone()));
            let timeout = Duration::from_millis(self.config.put_timeout_ms);
            let error = match tokio::time::timeout(timeout, put).await {
                Ok(Ok(_)) => break,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("PUT timed out after {timeout:?}"),
            };
            if attempt >= self.config.put_attempts_max {
                return Err(WalError::Io(format!("{path}: {error}")));
            }
            tracing::warn!(%path, attempt, %error, "WAL object PUT failed; retrying");
            tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
        }
        metrics::histogram!("strata_wal_sync_seconds").record(opened.elapsed().as_secs_f64());
        metrics::counter!("strata_wal_bytes_written_total").increment(bytes.len() as u64);
        self.objects.lock().push((first, last, path));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::*;
    use object_store::memory::InMemory;

    fn config() -> ObjectWalConfig {
        ObjectWalConfig {
            prefix: "wal/node-1".into(),
            window_ms: 20,
            window_bytes: 1024,
            put_timeout_ms: 5_000,
            put_attempts_max: 3,
        }
    }

    #[tokio::test]
    async fn appends_are_recovered_from_objects_and_trimmed() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (wal, recovered) = ObjectWal::open(store.clone(), config()).await.unwrap();
        assert!(recovered.is_empty());
        let mut pending = Vec::new();
        for i in 0..50 {
            pending.push(wal.append(record(2, i, b"payload-bytes")).unwrap().1);
        }
        for p in pending {
            p.await.unwrap().unwrap();
        }
        wal.close().await;
        let (wal, recovered) = ObjectWal::open(store.clone(), config()).await.unwrap();
        assert_eq!(recovered.len(), 50);
        assert!(recovered
            .iter()
            .enumerate()
            .all(|(i, (lsn, r))| *lsn == i as u64 && r.base_offset == i as i64));
        wal.trim(50).await.unwrap();
        wal.close().await;
        let (wal, recovered) = ObjectWal::open(store, config()).await.unwrap();
        assert!(recovered.is_empty());
        assert_eq!(
            wal.next_lsn(),
            0,
            "an empty WAL restarts its LSNs; the engine tolerates it"
        );
    }
}
