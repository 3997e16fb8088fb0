//! The embedded object store: a local directory whose objects are written around the page cache.
//!
//! Uploads are the broker's largest writes: every produced byte once, in objects of up to an
//! upload interval's worth. Written through the page cache, each object costs a copy into fresh
//! cache pages (on a VM that hands free memory back to its host, the dearest memory there is),
//! and its fsync then flushes all of it at once while the WAL's small syncs wait behind it on the
//! same disk. With `O_DIRECT` an object goes to the disk from one reused, aligned buffer in
//! `WRITE_BYTES` pieces, so a WAL sync waits behind at most one piece. Reads, lists and deletes
//! are `LocalFileSystem`'s. A directory that refuses `O_DIRECT` (tmpfs) gets plain writes.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Direct I/O needs buffers, offsets and lengths aligned to the device's block size; 4 KiB
/// covers every common one.
const ALIGN_BYTES: usize = 4096;
/// One write to the disk: large enough to stream, small enough that a WAL sync queued behind it
/// waits about a millisecond.
const WRITE_BYTES: usize = 1 << 20;
/// Aligned buffers kept for reuse; more concurrent PUTs allocate and drop their own.
const BUFFERS_MAX: usize = 4;

pub struct LocalStore {
    inner: Arc<LocalFileSystem>,
    /// Cleared for good the first time a direct write is refused as invalid (a filesystem that
    /// opens files with `O_DIRECT` but wants another alignment).
    direct: AtomicBool,
    buffers: Arc<Mutex<Vec<Aligned>>>,
}

impl LocalStore {
    pub fn new(dir: &FsPath) -> anyhow::Result<LocalStore> {
        // Objects are fsynced (file and directory) before a PUT returns: the WAL is trimmed once
        // an object is committed, so the object must be as durable as the WAL it replaces.
        let inner = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
        Ok(LocalStore {
            inner: Arc::new(inner),
            direct: AtomicBool::new(supports_direct_io(dir)),
            buffers: Arc::default(),
        })
    }
}

/// Whether files in `dir` can be opened with `O_DIRECT`.
fn supports_direct_io(dir: &FsPath) -> bool {
    let probe = dir.join(format!(".direct-probe-{}", std::process::id()));
    let ok = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

/// A `WRITE_BYTES` buffer at an `ALIGN_BYTES` boundary, carved from a larger vector.
struct Aligned {
    vec: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new() -> Aligned {
        let vec = vec![0u8; WRITE_BYTES + ALIGN_BYTES];
        let start = vec.as_ptr().align_offset(ALIGN_BYTES);
        assert!(start < ALIGN_BYTES);
        Aligned { vec, start }
    }

    fn bytes(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..self.start + WRITE_BYTES]
    }
}

/// A staging name beside `path` that `LocalFileSystem` treats as an unfinished upload: a `#` and
/// digits, which it leaves out of listings.
fn staging_path(path: &FsPath) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.as_os_str().to_owned();
    name.push(format!("#{}{n:08}", std::process::id()));
    name.into()
}

/// Creates `dir` and any missing parents, each made durable in its own parent, as
/// `LocalFileSystem` does: an object in a directory that a crash forgets is lost with it.
fn create_dirs_durably(dir: &FsPath) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.exists()) {
        missing.push(d);
        at = d.parent();
    }
    fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// Writes `payload` to `path` durably: staged with `O_DIRECT` writes, its length set, synced,
/// renamed into place, and the directory synced.
fn write_direct(path: &FsPath, payload: &PutPayload, buffer: &mut Aligned) -> io::Result<()> {
    let dir = path
        .parent()
        .expect("object paths are inside the store's directory");
    create_dirs_durably(dir)?;
    let staging = staging_path(path);
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT)
            .open(&staging)?;
        let buf = buffer.bytes();
        let mut filled = 0;
        let mut offset = 0u64;
        for chunk in payload.iter() {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let n = rest.len().min(WRITE_BYTES - filled);
                buf[filled..filled + n].copy_from_slice(&rest[..n]);
                filled += n;
                rest = &rest[n..];
                if filled == WRITE_BYTES {
                    file.write_all_at(buf, offset)?;
                    offset += WRITE_BYTES as u64;
                    filled = 0;
                }
            }
        }
        if filled > 0 {
            // The last piece is padded to the block size, and the file cut back to its length.
            let padded = filled.next_multiple_of(ALIGN_BYTES);
            buf[filled..padded].fill(0);
            file.write_all_at(&buf[..padded], offset)?;
        }
        file.set_len(payload.content_length() as u64)?;
        file.sync_all()?;
        fs::rename(&staging, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&staging);
    }
    result
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direct = self.direct.load(Ordering::Relaxed);
        write!(f, "LocalStore(direct={direct}, {})", self.inner)
    }
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let plain = matches!(opts.mode, PutMode::Overwrite) && opts.attributes.is_empty();
        if !self.direct.load(Ordering::Acquire) || !plain {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let path = self.inner.path_to_filesystem(location)?;
        let buffers = self.buffers.clone();
        let retry = payload.clone();
        let written = tokio::task::spawn_blocking(move || {
            let reused = buffers.lock().expect("poisoned").pop();
            let mut buffer = reused.unwrap_or_else(Aligned::new);
            let result = write_direct(&path, &payload, &mut buffer);
            let mut pool = buffers.lock().expect("poisoned");
            if pool.len() < BUFFERS_MAX {
                pool.push(buffer);
            }
            result.map_err(|source| (path, source))
        })
        .await
        .map_err(|e| object_store::Error::JoinError { source: e })?;
        if let Err((path, source)) = &written {
            if source.raw_os_error() == Some(libc::EINVAL) {
                tracing::warn!(path = %path.display(), "direct writes refused; writing objects through the page cache from now on");
                self.direct.store(false, Ordering::Release);
                return self.inner.put_opts(location, retry, opts).await;
            }
        }
        written.map_err(|(path, source)| object_store::Error::Generic {
            store: "LocalStore",
            source: format!("writing {}: {source}", path.display()).into(),
        })?;
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;

    use super::*;

    fn payload(sizes: &[usize]) -> (PutPayload, Vec<u8>) {
        let mut all = Vec::new();
        let chunks: Vec<Bytes> = sizes
            .iter()
            .map(|&n| {
                let chunk: Vec<u8> = (0..n).map(|i| ((all.len() + i) % 251) as u8).collect();
                all.extend_from_slice(&chunk);
                Bytes::from(chunk)
            })
            .collect();
        (chunks.into_iter().collect(), all)
    }

    #[tokio::test]
    async fn objects_read_back_whole_whatever_their_size_and_chunks() {
        // Under the target directory, not /tmp: tmpfs would refuse O_DIRECT.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        if !store.direct.load(Ordering::Acquire) {
            eprintln!("this filesystem refuses O_DIRECT: testing the plain writes only");
        }
        let cases: &[&[usize]] = &[
            &[1],
            &[4096],
            &[WRITE_BYTES],
            &[WRITE_BYTES - 1, 2, 5000],
            &[300_000, 900_000, 1_000_001, 17],
            &[],
        ];
        for (n, sizes) in cases.iter().enumerate() {
            let (payload, expected) = payload(sizes);
            let location = Path::from(format!("objects/{n}.obj"));
            store.put(&location, payload).await.unwrap();
            let got = store.get(&location).await.unwrap().bytes().await.unwrap();
            assert_eq!(got.len(), expected.len(), "object {n}");
            assert!(got[..] == expected[..], "object {n}");
        }
        // Staging files never show: every object listed is one that was put.
        let listed: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
        assert_eq!(listed.len(), cases.len());
        // An overwrite replaces the object.
        let location = Path::from("objects/0.obj");
        let (payload, expected) = payload(&[10_000]);
        store.put(&location, payload).await.unwrap();
        let got = store.get(&location).await.unwrap().bytes().await.unwrap();
        assert!(got[..] == expected[..]);
        store.delete(&location).await.unwrap();
        assert!(store.get(&location).await.is_err());
    }
}
