//! What every coordinator shard is to its runtime: a state machine over one partition of an
//! internal topic, rebuilt by replaying that partition's records (Kafka's coordinator
//! runtime pattern). The broker runs each shard on one task; see `strata-broker`'s
//! `coordinator_runtime`.
//!
//! Invariants a shard keeps:
//! 1. Persistent state changes only by [`CoordinatorShard::replay`]; a call that writes
//!    records replays them itself before returning them.
//! 2. Outputs ([`Effects::outputs`]) are acted on only once every record of that call and
//!    of every earlier call is durable.
//! 3. Replaying [`CoordinatorShard::snapshot`] alone rebuilds the persistent state.
//! 4. A shard never reads a clock or does I/O; time comes in as `now_ms`.

use bytes::Bytes;
use uuid::Uuid;

/// A record as stored in the internal topic: Kafka record key and value (a tombstone has no
/// value).
pub trait CoordinatorRecord: Sized + Send + Sync + 'static {
    fn encode(&self) -> (Bytes, Option<Bytes>);
    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, DecodeError>;
}

#[derive(Debug)]
pub struct DecodeError(pub String);

/// What a call asks of the runtime: records to append, then outputs to act on once durable.
#[derive(Debug)]
pub struct Effects<R, O> {
    pub records: Vec<R>,
    pub outputs: Vec<O>,
}

impl<R, O> Default for Effects<R, O> {
    fn default() -> Self {
        Effects {
            records: Vec::new(),
            outputs: Vec::new(),
        }
    }
}

/// What a shard may know of topics: their ids and partition counts.
pub trait TopicLookup {
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)>;
    fn by_id(&self, id: Uuid) -> Option<(String, i32)>;
    /// Every topic's name, for regular-expression subscriptions.
    fn names(&self) -> Vec<String>;
}

pub trait CoordinatorShard: Send + 'static {
    type Record: CoordinatorRecord;
    type Output: Send + 'static;

    fn replay(&mut self, record: &Self::Record);
    /// Called once the partition has been replayed: starts timers and returns the work that
    /// loaded state still owes (e.g. transaction markers not yet written).
    fn loaded(&mut self, now_ms: u64) -> Vec<Self::Output>;
    fn next_deadline_ms(&self) -> Option<u64>;
    /// Fires every timer due at `now_ms`.
    fn tick(
        &mut self,
        now_ms: u64,
        topics: &dyn TopicLookup,
    ) -> Effects<Self::Record, Self::Output>;
    /// The live state as records (invariant 3).
    fn snapshot(&self) -> Vec<Self::Record>;
    /// How many records [`CoordinatorShard::snapshot`] would write.
    fn live_records(&self) -> usize;
}
