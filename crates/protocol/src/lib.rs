//! Strata's edge of the Kafka wire: framing, request decoding into typed messages (codecs come
//! from `kafka-protocol`), and validation of the record batches producers send.

pub mod batch;
pub mod frame;
pub mod request;

pub use batch::{BatchError, BatchHeader};
pub use frame::{FrameError, FrameReader};
pub use request::{DecodeError, Request};
