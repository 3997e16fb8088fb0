//! Failover decisions: fencing a broker whose lease ran out, and opening its partitions on
//! live brokers once a rescuer has replayed its WAL (DESIGN.md §4). Pure, like every
//! controller decision.
//!
//! Invariants:
//! 1. Fencing bumps the epoch of every stream the broker owned, in the same batch that marks it
//!    fenced: from then on its object commits are refused.
//! 2. A stream being rescued is served by nobody; it opens for its new leader only after the
//!    rescuer committed what the fenced WAL held, at the end of that data.
//! 3. A fenced broker may register again only once none of its streams is being rescued.

use std::collections::BTreeSet;

use crate::controller::ControllerError;
use crate::image::MetadataImage;
use crate::placement;
use crate::records::{MetadataRecord, NodeId, StreamId};

/// Fences `node_id` and hands its streams to a rescuer picked among the live brokers. Nothing
/// when the broker is unknown or already fenced; only the fence when no broker is left to
/// rescue it (its partitions wait for it, or for another broker, to come back).
pub fn fence(image: &MetadataImage, node_id: NodeId) -> Vec<MetadataRecord> {
    match image.brokers.get(&node_id) {
        Some(broker) if !broker.fenced => {}
        _ => return Vec::new(),
    }
    let live = placement::rack_alternating(
        image
            .brokers
            .values()
            .filter(|b| !b.fenced && b.node_id != node_id)
            .map(|b| (b.node_id, b.rack.clone())),
    );
    let rescuer = (!live.is_empty()).then(|| live[node_id.unsigned_abs() as usize % live.len()]);
    let mut records = vec![MetadataRecord::BrokerFenced { node_id, rescuer }];
    let Some(rescuer) = rescuer else {
        return records;
    };
    for stream in image.streams.values().filter(|s| s.owner == node_id) {
        records.push(MetadataRecord::StreamOpened {
            stream_id: stream.stream_id,
            epoch: stream.epoch + 1,
            owner: rescuer,
            start_offset: stream.committed_end_offset,
            // A stream the fenced broker was itself rescuing still has its tail in the WAL
            // it was rescuing from.
            rescue_from: Some(stream.rescue_from.unwrap_or(node_id)),
        });
    }
    records
}

/// Opens each rescued stream's partition on the broker placement picks now, at the end of
/// what the rescuer committed.
pub fn complete_rescue(
    image: &MetadataImage,
    rescuer: NodeId,
    streams: &[StreamId],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut rescued = BTreeSet::new();
    for id in streams {
        let Some(stream) = image.streams.get(id) else {
            continue; // deleted meanwhile
        };
        if stream.owner != rescuer || stream.rescue_from.is_none() {
            return Err(ControllerError::InvalidRequest(format!(
                "stream {id} is not being rescued by broker {rescuer}"
            )));
        }
        rescued.insert(*id);
    }
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in topic.partitions.values() {
            let streams: Vec<StreamId> = std::iter::once(p.stream_id)
                .chain(p.state_stream_id)
                .filter(|id| rescued.contains(id))
                .collect();
            if streams.is_empty() {
                continue;
            }
            let leader = placement::leaders(image, topic.topic_id, p.partition, p.partition + 1)
                .and_then(|l| l.first().copied())
                .unwrap_or(rescuer);
            for id in streams {
                let stream = &image.streams[&id];
                records.push(MetadataRecord::StreamOpened {
                    stream_id: id,
                    epoch: stream.epoch + 1,
                    owner: leader,
                    start_offset: stream.committed_end_offset,
                    rescue_from: None,
                });
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::controller::{decide, Command};

    fn apply(image: &mut MetadataImage, command: Command) -> Vec<MetadataRecord> {
        let records = decide(image, &command).unwrap();
        for r in &records {
            image.apply(r);
        }
        records
    }

    fn cluster() -> MetadataImage {
        let mut image = MetadataImage::default();
        for node_id in 1..=3 {
            apply(
                &mut image,
                Command::RegisterBroker {
                    node_id,
                    host: "h".into(),
                    port: 9092,
                    rack: None,
                    incarnation: 1,
                    wal: Some(format!("object:wal/node-{node_id}")),
                },
            );
        }
        apply(
            &mut image,
            Command::CreateTopic {
                topic_id: Uuid::from_u128(0),
                name: "t".into(),
                partitions: 6,
                configs: BTreeMap::new(),
            },
        );
        image
    }

    #[test]
    fn a_fenced_brokers_partitions_open_elsewhere_only_after_the_rescue() {
        let mut image = cluster();
        let led = |image: &MetadataImage, node: NodeId| {
            image
                .topics
                .values()
                .next()
                .unwrap()
                .partitions
                .values()
                .filter(|p| p.leader == node)
                .count()
        };
        assert_eq!((led(&image, 1), led(&image, 2), led(&image, 3)), (2, 2, 2));
        let before: BTreeMap<StreamId, u64> = image
            .streams
            .values()
            .map(|s| (s.stream_id, s.epoch))
            .collect();

        let records = apply(&mut image, Command::FenceBroker { node_id: 3 });
        let MetadataRecord::BrokerFenced {
            rescuer: Some(rescuer),
            ..
        } = records[0]
        else {
            panic!("no rescuer: {records:?}");
        };
        assert_ne!(rescuer, 3);
        assert!(image.brokers[&3].fenced);
        // Invariant 1: every stream it owned has a newer epoch, held by the rescuer, unserved.
        let rescued: Vec<StreamId> = image
            .streams
            .values()
            .filter(|s| s.rescue_from == Some(3))
            .map(|s| s.stream_id)
            .collect();
        assert_eq!(rescued.len(), 4, "two partitions, two streams each");
        for id in &rescued {
            assert_eq!(image.streams[id].epoch, before[id] + 1);
            assert_eq!(image.streams[id].owner, rescuer);
        }
        // Fencing twice changes nothing; it may not register while being rescued (invariant 3).
        assert!(decide(&image, &Command::FenceBroker { node_id: 3 })
            .unwrap()
            .is_empty());
        let register = Command::RegisterBroker {
            node_id: 3,
            host: "h".into(),
            port: 9092,
            rack: None,
            incarnation: 2,
            wal: None,
        };
        assert!(decide(&image, &register).is_err());
        // Only the rescuer completes the rescue.
        let other = (1..=2).find(|n| *n != rescuer).unwrap();
        assert!(decide(
            &image,
            &Command::CompleteRescue {
                rescuer: other,
                streams: rescued.clone()
            }
        )
        .is_err());

        apply(
            &mut image,
            Command::CompleteRescue {
                rescuer,
                streams: rescued.clone(),
            },
        );
        assert_eq!(led(&image, 3), 0);
        assert_eq!(led(&image, 1) + led(&image, 2), 6);
        for id in &rescued {
            let s = &image.streams[id];
            assert_eq!(s.rescue_from, None);
            assert_eq!(s.epoch, before[id] + 2);
            // The rescue epoch wrote nothing of its own: only the new leader's epoch is listed.
            assert_eq!(
                s.epochs.iter().map(|e| e.0).collect::<Vec<_>>(),
                vec![1, before[id] + 2]
            );
        }
        // Each partition's two streams stay together.
        for p in image.topics.values().next().unwrap().partitions.values() {
            let state = p.state_stream_id.unwrap();
            assert_eq!(
                image.streams[&p.stream_id].owner,
                image.streams[&state].owner
            );
        }
        // Now it may come back, unfenced, leading nothing until new partitions are placed.
        apply(&mut image, register);
        assert!(!image.brokers[&3].fenced);
    }

    #[test]
    fn a_broker_alone_is_fenced_but_keeps_its_streams() {
        let mut image = cluster();
        apply(&mut image, Command::FenceBroker { node_id: 1 });
        apply(&mut image, Command::FenceBroker { node_id: 2 });
        let records = apply(&mut image, Command::FenceBroker { node_id: 3 });
        assert_eq!(
            records,
            vec![MetadataRecord::BrokerFenced {
                node_id: 3,
                rescuer: None
            }]
        );
        // New partitions have nowhere to go.
        assert!(decide(
            &image,
            &Command::CreateTopic {
                topic_id: Uuid::from_u128(1),
                name: "u".into(),
                partitions: 1,
                configs: BTreeMap::new(),
            }
        )
        .is_err());
    }
}
