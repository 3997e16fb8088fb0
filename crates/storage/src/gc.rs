//! Garbage collection of objects: an object that no stream reads any more (compacted, trimmed
//! by retention, its topic deleted) or whose upload never committed is marked, and deleted from
//! the object store after a grace period that lets in-flight reads finish.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::ObjectStoreExt;
use strata_meta::image::ObjectState;
use strata_meta::Command;
use tokio::sync::watch;

use crate::engine::Engine;
use crate::error::{Result, StorageError};
use crate::uploader::now_ms;

impl Engine {
    pub async fn run_gc(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.config.gc_interval_ms);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.collect_garbage(now_ms()).await {
                tracing::warn!(error = %e, "object GC round failed");
            }
        }
    }

    /// One GC round; returns how many objects were deleted from the store.
    pub async fn collect_garbage(&self, now_ms: u64) -> Result<usize> {
        let grace = self.config.object_gc_grace_ms;
        let (to_mark, to_destroy) = {
            let image = self.meta.image().read();
            let referenced = image.referenced_objects();
            let mut to_mark = Vec::new();
            let mut to_destroy = Vec::new();
            for object in image.objects.values() {
                match object.state {
                    ObjectState::Committed if !referenced.contains(&object.object_id) => {
                        to_mark.push(object.object_id)
                    }
                    ObjectState::Prepared
                        if now_ms.saturating_sub(object.prepared_at_ms) > grace =>
                    {
                        to_mark.push(object.object_id)
                    }
                    ObjectState::MarkedForDeletion { marked_at_ms }
                        if now_ms.saturating_sub(marked_at_ms) > grace =>
                    {
                        to_destroy.push((object.object_id, object.key.clone()))
                    }
                    _ => {}
                }
            }
            (to_mark, to_destroy)
        };
        let failed = |e: strata_meta::controller::SubmitError| StorageError::Failed(e.to_string());
        if !to_mark.is_empty() {
            self.meta
                .submit(Command::MarkObjectsForDeletion {
                    object_ids: to_mark,
                    now_ms,
                })
                .await
                .map_err(failed)?;
        }
        let mut destroyed = Vec::new();
        for (object_id, key) in to_destroy {
            match self.store.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => destroyed.push(object_id),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "object delete failed; retried next round")
                }
            }
        }
        let count = destroyed.len();
        if count > 0 {
            self.meta
                .submit(Command::DestroyObjects {
                    object_ids: destroyed,
                })
                .await
                .map_err(failed)?;
            metrics::counter!("strata_objects_deleted_total").increment(count as u64);
        }
        Ok(count)
    }
}
