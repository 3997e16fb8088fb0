//! What the storage engine needs of cluster metadata: the image to read stream state from, and
//! a way to commit records (object commits, stream epochs, trims). On a controller node this is
//! the local controller; a broker-only node will forward to the active controller.

use strata_meta::controller::SubmitError;
use strata_meta::{Command, ControllerHandle, MetadataRecord, SharedImage};

#[async_trait::async_trait]
pub trait MetadataClient: Send + Sync + 'static {
    fn image(&self) -> &SharedImage;
    async fn submit(&self, command: Command) -> Result<Vec<MetadataRecord>, SubmitError>;
}

#[async_trait::async_trait]
impl MetadataClient for ControllerHandle {
    fn image(&self) -> &SharedImage {
        ControllerHandle::image(self)
    }

    async fn submit(&self, command: Command) -> Result<Vec<MetadataRecord>, SubmitError> {
        ControllerHandle::submit(self, command).await
    }
}
