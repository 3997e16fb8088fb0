//! The Raft state machine: committed entries replayed into the shared [`MetadataImage`], and
//! the latest snapshot of that image kept on disk so that a purged log can still be rebuilt.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};

use super::disk::{self, blocking};
use super::TypeConfig;
use crate::records::RECORD_VERSION;
use crate::{MetadataImage, SharedImage};

const SNAPSHOT_FILE: &str = "snapshot";

type Meta = SnapshotMeta<u64, BasicNode>;

pub struct StateMachine {
    image: SharedImage,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    snapshots: Arc<SnapshotFile>,
}

/// The snapshot on disk: a frame of [`SnapshotMeta`] JSON, then a frame of image JSON (the
/// same bytes Raft ships to a follower). Shared with builders, which run in their own tasks.
struct SnapshotFile {
    dir: PathBuf,
    /// Last log id of the snapshot on disk; the lock keeps writers from racing, and a slow
    /// build from replacing a newer installed snapshot.
    saved: tokio::sync::Mutex<Option<LogId<u64>>>,
}

fn snapshot_error(e: impl Into<io::Error>) -> StorageError<u64> {
    StorageError::from_io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e.into())
}

impl SnapshotFile {
    fn load(dir: &Path) -> io::Result<Option<(Meta, Vec<u8>)>> {
        let bytes = disk::read_or_empty(&dir.join(SNAPSHOT_FILE))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        // The file is replaced atomically, so damage here is real corruption, not a torn write.
        let corrupt = || io::Error::new(io::ErrorKind::InvalidData, "corrupt metadata snapshot");
        let (meta, n) = disk::decode_frame(&bytes).ok_or_else(corrupt)?;
        let meta: Meta = serde_json::from_slice(meta).map_err(|_| corrupt())?;
        let (image, _) = disk::decode_frame(&bytes[n..]).ok_or_else(corrupt)?;
        Ok(Some((meta, image.to_vec())))
    }

    async fn save(&self, meta: &Meta, image: &[u8]) -> io::Result<()> {
        let mut saved = self.saved.lock().await;
        if *saved >= meta.last_log_id {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(image.len() + 256);
        disk::encode_frame(&mut buf, &serde_json::to_vec(meta)?)?;
        disk::encode_frame(&mut buf, image)?;
        let dir = self.dir.clone();
        blocking(move || disk::write_atomic(&dir, SNAPSHOT_FILE, &buf)).await?;
        *saved = meta.last_log_id;
        tracing::info!(snapshot = %meta, "saved metadata snapshot");
        Ok(())
    }
}

impl StateMachine {
    /// Starts from the snapshot in `dir`, if any; Raft then re-applies the committed entries
    /// after it from the log.
    pub fn open(dir: &Path, image: SharedImage) -> io::Result<StateMachine> {
        let mut last_applied = None;
        let mut membership = StoredMembership::default();
        if let Some((meta, data)) = SnapshotFile::load(dir)? {
            let restored: MetadataImage = serde_json::from_slice(&data)?;
            *image.write() = restored;
            tracing::info!(snapshot = %meta, "restored metadata image from snapshot");
            last_applied = meta.last_log_id;
            membership = meta.last_membership;
        }
        Ok(StateMachine {
            image,
            last_applied,
            membership,
            snapshots: Arc::new(SnapshotFile {
                dir: dir.to_path_buf(),
                saved: tokio::sync::Mutex::new(last_applied),
            }),
        })
    }
}

/// A copy of the state taken between two applies, so that the build (which runs in its own
/// task) sees one consistent point of the log.
pub struct SnapshotBuilder {
    image: MetadataImage,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    snapshots: Arc<SnapshotFile>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let data = serde_json::to_vec(&self.image).map_err(snapshot_error)?;
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("{}-{millis}", self.last_applied.map_or(0, |l| l.index)),
        };
        self.snapshots
            .save(&meta, &data)
            .await
            .map_err(snapshot_error)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(envelopes) => {
                    // A newer record version may mean something this binary would misapply;
                    // stopping is safer than diverging from the other nodes.
                    if let Some(newer) = envelopes.iter().find(|e| e.v > RECORD_VERSION) {
                        let msg = format!(
                            "record version {} is newer than this binary's {RECORD_VERSION}",
                            newer.v
                        );
                        return Err(StorageIOError::apply(
                            entry.log_id,
                            openraft::AnyError::error(msg),
                        )
                        .into());
                    }
                    // One lock for the whole entry, so readers never see half a batch.
                    let mut image = self.image.write();
                    for envelope in &envelopes {
                        image.apply(&envelope.record);
                    }
                }
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            self.last_applied = Some(entry.log_id);
            responses.push(());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            image: self.image.read().clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let image: MetadataImage = serde_json::from_slice(&data).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), openraft::AnyError::new(&e))
        })?;
        self.snapshots
            .save(meta, &data)
            .await
            .map_err(snapshot_error)?;
        // The one place the image changes other than by `apply`: a follower too far behind
        // takes the leader's replayed image wholesale.
        *self.image.write() = image;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        tracing::info!(snapshot = %meta, "installed metadata snapshot");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let dir = self.snapshots.dir.clone();
        let loaded = blocking(move || SnapshotFile::load(&dir))
            .await
            .map_err(|e| {
                StorageError::from_io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e)
            })?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
