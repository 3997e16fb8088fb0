//! Storage errors, in two tiers: what a caller can act on (Kafka maps each to an error code)
//! and the internal cause carried inside.

use strata_meta::StreamId;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("stream {0} is not open on this broker")]
    UnknownStream(StreamId),
    #[error("stream {stream_id} was fenced by a newer epoch")]
    Fenced { stream_id: StreamId },
    #[error("offset {offset} is outside [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    /// The WAL or object store failed; the broker must restart and recover.
    #[error("storage failed: {0}")]
    Failed(String),
    /// Retriable: the log cache is full or a dependency is slow.
    #[error("storage is busy: {0}")]
    Busy(String),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
