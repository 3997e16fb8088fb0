//! Strata's coordinators: state machines that own consumer-group and transaction state. They do no I/O: a
//! request goes in with the time, records to append and replies to send come out, and state
//! is rebuilt after a restart by replaying the records (`../shared/DESIGN.md` §5).

pub mod group;
pub mod partitioner;
pub mod shard;
pub mod txn;

pub use group::{Effects, GroupConfig, GroupShard, MigrationPolicy, ReplyId};
pub use shard::{CoordinatorRecord, CoordinatorShard, TopicLookup};
