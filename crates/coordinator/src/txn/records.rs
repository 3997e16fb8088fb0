//! The records of `__transaction_state`: one per transactional id, keyed by it, holding the
//! whole state of its current transaction (a tombstone once the id expires). Versioned JSON,
//! documented in `docs/formats.md`.

use std::collections::BTreeSet;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::shard::{CoordinatorRecord, DecodeError};

const VERSION: u16 = 0;

/// Kafka's transaction states, with Kafka's names on the wire (DescribeTransactions,
/// ListTransactions filters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Markers are owed: the outcome is decided and not yet written to every partition.
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// A transactional id's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnValue {
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhaustion), or -1: a retry of the
    /// InitProducerId that rotated it is recognised by it.
    pub prev_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, or -1: a retried bump is recognised by it.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the current transaction (topic, partition).
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction began (its first AddPartitionsToTxn).
    pub start_ms: u64,
    pub update_ms: u64,
    /// The producer id the producer goes on with once this transaction completes, or -1: set
    /// when an epoch bump at EndTxn (transactions version 2) ran out of epochs.
    #[serde(default = "no_producer_id")]
    pub next_producer_id: i64,
    /// The last EndTxn bumped the epoch (KIP-890 transactions version 2): a retry of it comes
    /// with the epoch before.
    #[serde(default)]
    pub epoch_bump: bool,
}

fn no_producer_id() -> i64 {
    -1
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnValue>,
}

#[derive(Serialize, Deserialize)]
struct Key<'a> {
    v: u16,
    transactional_id: std::borrow::Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    v: u16,
    #[serde(flatten)]
    body: T,
}

impl CoordinatorRecord for TxnRecord {
    fn encode(&self) -> (Bytes, Option<Bytes>) {
        let key = serde_json::to_vec(&Key {
            v: VERSION,
            transactional_id: (&*self.transactional_id).into(),
        })
        .expect("keys serialize");
        let value = self.value.as_ref().map(|body| {
            Bytes::from(
                serde_json::to_vec(&Versioned { v: VERSION, body }).expect("values serialize"),
            )
        });
        (Bytes::from(key), value)
    }

    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord, DecodeError> {
        let key: Key = serde_json::from_slice(key).map_err(|e| DecodeError(format!("key: {e}")))?;
        if key.v != VERSION {
            return Err(DecodeError(format!("key version {}", key.v)));
        }
        let value = match value {
            None => None,
            Some(v) => {
                let v: Versioned<TxnValue> =
                    serde_json::from_slice(v).map_err(|e| DecodeError(format!("value: {e}")))?;
                if v.v != VERSION {
                    return Err(DecodeError(format!("value version {}", v.v)));
                }
                Some(v.body)
            }
        };
        Ok(TxnRecord {
            transactional_id: key.transactional_id.into_owned(),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let record = TxnRecord {
            transactional_id: "t-1".into(),
            value: Some(TxnValue {
                producer_id: 7,
                prev_producer_id: -1,
                producer_epoch: 3,
                last_producer_epoch: 2,
                timeout_ms: 60_000,
                state: TxnState::Ongoing,
                partitions: [("a".to_string(), 0), ("b".to_string(), 2)].into(),
                start_ms: 10,
                update_ms: 11,
                next_producer_id: -1,
                epoch_bump: true,
            }),
        };
        let (k, v) = record.encode();
        assert_eq!(TxnRecord::decode(&k, v.as_deref()).unwrap(), record);
        // Values written before the epoch-bump fields read with their defaults.
        let old = br#"{"v":0,"producer_id":7,"prev_producer_id":-1,"producer_epoch":3,"last_producer_epoch":2,"timeout_ms":60000,"state":"Empty","partitions":[],"start_ms":0,"update_ms":1}"#;
        let v = TxnRecord::decode(&k, Some(old)).unwrap().value.unwrap();
        assert_eq!((v.next_producer_id, v.epoch_bump), (-1, false));
        let tomb = TxnRecord {
            transactional_id: "t-1".into(),
            value: None,
        };
        let (k, v) = tomb.encode();
        assert_eq!(TxnRecord::decode(&k, v.as_deref()).unwrap(), tomb);
    }
}
