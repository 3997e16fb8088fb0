//! Objects on the object store: the format of a data object, and the block cache through which
//! cold reads fetch them.

pub mod block_cache;
pub mod format;
