//! Strata's cluster metadata: typed records in a Raft-replicated log, replayed into the
//! [`MetadataImage`] that every other part reads. The controller turns requests into records
//! (sans-I/O); the quorum makes them durable and applies them.

pub mod controller;
pub mod failover;
pub mod image;
pub mod liveness;
pub mod placement;
pub mod raft;
pub mod reassignment;
pub mod records;
#[cfg(test)]
mod test_support;
pub mod topic_config;

pub use controller::{Command, ControllerError, ControllerHandle};
pub use image::MetadataImage;
pub use records::{MetadataRecord, NodeId, ObjectId, StreamId, StreamRange};

/// The image as every reader shares it: replay writes, everyone else reads.
pub type SharedImage = std::sync::Arc<parking_lot::RwLock<MetadataImage>>;
