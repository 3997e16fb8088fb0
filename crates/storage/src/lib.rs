//! Strata's stream storage engine (DESIGN.md §3): streams whose records are made durable in a
//! WAL, served hot from the log cache, uploaded into objects on an object store, and read cold
//! through a block cache.

pub mod engine;
pub mod error;
pub mod gc;
pub mod handover;
pub mod metadata;
pub mod object;
pub mod payload;
pub mod rescue;
pub mod stream;
pub mod uploader;
pub mod wal;

pub use engine::{Appended, Engine, EngineConfig, ReadResult};
pub use error::{Result, StorageError};
pub use metadata::MetadataClient;
pub use stream::{Stream, StreamOffsets};
