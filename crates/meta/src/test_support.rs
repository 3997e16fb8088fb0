//! Helpers for the controller's unit tests: images built the way the quorum builds them, by
//! deciding commands and applying their records.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::controller::{decide, Command};
use crate::image::MetadataImage;
use crate::records::{MetadataRecord, NodeId};

/// Decides `command` on `image` and applies its records; panics if it is refused.
pub fn apply(image: &mut MetadataImage, command: Command) -> Vec<MetadataRecord> {
    let records = decide(image, &command).unwrap();
    for r in &records {
        image.apply(r);
    }
    records
}

/// `RegisterBroker` for `node_id` at `incarnation`, with its WAL on the object store.
pub fn register(node_id: NodeId, incarnation: u64) -> Command {
    Command::RegisterBroker {
        node_id,
        host: "h".into(),
        port: 9092,
        rack: None,
        incarnation,
        wal: Some(format!("object:wal/node-{node_id}")),
    }
}

/// `CreateTopic` of `name`, whose id is `id`.
pub fn create_topic(id: u128, name: &str, partitions: i32) -> Command {
    Command::CreateTopic {
        topic_id: Uuid::from_u128(id),
        name: name.into(),
        partitions,
        configs: BTreeMap::new(),
    }
}

/// Brokers `1..=brokers` registered (incarnation 1), and topic `t` of `partitions`.
pub fn cluster(brokers: NodeId, partitions: i32) -> MetadataImage {
    let mut image = MetadataImage::default();
    for node_id in 1..=brokers {
        apply(&mut image, register(node_id, 1));
    }
    apply(&mut image, create_topic(0, "t", partitions));
    image
}
