//! Failover decisions: fencing a broker whose lease ran out, and opening its partitions on
//! live brokers once they have replayed its WAL (DESIGN.md §4). Each partition's new leader is
//! its own rescuer: it is named at once (clients find it while it replays), and the data never
//! moves twice. Pure, like every controller decision.
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

/// Fences `node_id` and hands each of its partitions to a live broker, spread round robin in
/// rack-alternating order; that broker rescues the partition's streams. Nothing when the broker
/// is unknown or already fenced; only the fence when no broker is left to rescue it (its
/// partitions wait for it, or for another broker, to come back).
pub fn fence(image: &MetadataImage, node_id: NodeId) -> Vec<MetadataRecord> {
    match image.brokers.get(&node_id) {
        Some(broker) if !broker.fenced => {}
        _ => return Vec::new(),
    }
    let live = placement::rack_alternating(
        image
            .brokers
            .values()
            .filter(|b| b.may_lead() && b.node_id != node_id)
            .map(|b| (b.node_id, b.rack.clone())),
    );
    let start = node_id.unsigned_abs() as usize;
    let mut records = vec![MetadataRecord::BrokerFenced {
        node_id,
        rescuer: (!live.is_empty()).then(|| live[start % live.len()]),
    }];
    if live.is_empty() {
        return records;
    }
    records.extend(crate::reassignment::cancel_moves_onto(image, node_id));
    let owned = |id: &StreamId| image.streams.get(id).filter(|s| s.owner == node_id);
    let mut moved = 0;
    for topic in image.topics.values() {
        for p in topic.partitions.values() {
            let streams: Vec<_> = std::iter::once(p.stream_id)
                .chain(p.state_stream_id)
                .filter_map(|id| owned(&id))
                .collect();
            if streams.is_empty() {
                continue;
            }
            let leader = live[(start + moved) % live.len()];
            moved += 1;
            for stream in streams {
                records.push(MetadataRecord::StreamOpened {
                    stream_id: stream.stream_id,
                    epoch: stream.epoch + 1,
                    owner: leader,
                    start_offset: stream.committed_end_offset,
                    // A stream the fenced broker was itself rescuing still has its tail in
                    // the WAL it was rescuing from.
                    rescue_from: Some(stream.rescue_from.unwrap_or(node_id)),
                });
            }
        }
    }
    records
}

/// Opens each rescued stream for its rescuer, which leads it from now on, at the end of what
/// the rescuer committed.
pub fn complete_rescue(
    image: &MetadataImage,
    rescuer: NodeId,
    streams: &[StreamId],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut records = Vec::new();
    let mut seen = BTreeSet::new();
    for id in streams {
        let Some(stream) = image.streams.get(id) else {
            continue; // deleted meanwhile
        };
        if stream.owner != rescuer || stream.rescue_from.is_none() {
            return Err(ControllerError::InvalidRequest(format!(
                "stream {id} is not being rescued by broker {rescuer}"
            )));
        }
        if seen.insert(*id) {
            records.push(MetadataRecord::StreamOpened {
                stream_id: *id,
                epoch: stream.epoch + 1,
                owner: rescuer,
                start_offset: stream.committed_end_offset,
                rescue_from: None,
            });
        }
    }
    Ok(records)
}

/// Gives streams `rescuer` cannot rescue back to the fenced broker whose WAL holds their
/// tails; it opens them itself when it registers again (its own WAL replay is the rescue).
pub fn abandon_rescue(
    image: &MetadataImage,
    rescuer: NodeId,
    fenced: NodeId,
    streams: &[StreamId],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut records = Vec::new();
    for id in streams {
        let Some(stream) = image.streams.get(id) else {
            continue;
        };
        if stream.owner != rescuer || stream.rescue_from != Some(fenced) {
            return Err(ControllerError::InvalidRequest(format!(
                "stream {id} is not being rescued by broker {rescuer} from {fenced}"
            )));
        }
        records.push(MetadataRecord::StreamOpened {
            stream_id: *id,
            epoch: stream.epoch + 1,
            owner: fenced,
            start_offset: stream.committed_end_offset,
            rescue_from: Some(fenced),
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::controller::{decide, Command};
    use crate::test_support::{self, apply};

    fn cluster() -> MetadataImage {
        test_support::cluster(3, 6)
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

        let records = apply(
            &mut image,
            Command::FenceBroker {
                node_id: 3,
                incarnation: 1,
            },
        );
        assert!(matches!(
            records[0],
            MetadataRecord::BrokerFenced {
                rescuer: Some(_),
                ..
            }
        ));
        assert!(image.brokers[&3].fenced);
        // Invariant 1: every stream it owned has a newer epoch and a live owner that rescues
        // it, unserved meanwhile; its two partitions went to different brokers.
        let rescued: Vec<StreamId> = image
            .streams
            .values()
            .filter(|s| s.rescue_from == Some(3))
            .map(|s| s.stream_id)
            .collect();
        assert_eq!(rescued.len(), 4, "two partitions, two streams each");
        for id in &rescued {
            assert_eq!(image.streams[id].epoch, before[id] + 1);
            assert_ne!(image.streams[id].owner, 3);
        }
        assert_eq!((led(&image, 1), led(&image, 2), led(&image, 3)), (3, 3, 0));
        // Fencing twice changes nothing; it may not register while being rescued (invariant 3).
        assert!(decide(
            &image,
            &Command::FenceBroker {
                node_id: 3,
                incarnation: 1
            }
        )
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
        // Each rescuer completes only its own streams.
        let of = |node: NodeId| -> Vec<StreamId> {
            rescued
                .iter()
                .copied()
                .filter(|id| image.streams[id].owner == node)
                .collect()
        };
        let (mine, theirs) = (of(1), of(2));
        assert_eq!((mine.len(), theirs.len()), (2, 2));
        let complete = |rescuer, streams| Command::CompleteRescue { rescuer, streams };
        assert!(decide(&image, &complete(1, theirs.clone())).is_err());
        apply(&mut image, complete(1, mine));
        assert!(decide(&image, &register).is_err(), "still rescuing");
        apply(&mut image, complete(2, theirs));
        assert_eq!((led(&image, 1), led(&image, 2), led(&image, 3)), (3, 3, 0));
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
        apply(
            &mut image,
            Command::FenceBroker {
                node_id: 1,
                incarnation: 1,
            },
        );
        apply(
            &mut image,
            Command::FenceBroker {
                node_id: 2,
                incarnation: 1,
            },
        );
        let records = apply(
            &mut image,
            Command::FenceBroker {
                node_id: 3,
                incarnation: 1,
            },
        );
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

    #[test]
    fn a_rescue_out_of_reach_waits_for_the_fenced_broker_to_replay_itself() {
        let mut image = cluster();
        apply(
            &mut image,
            Command::FenceBroker {
                node_id: 3,
                incarnation: 1,
            },
        );
        let register = Command::RegisterBroker {
            node_id: 3,
            host: "h".into(),
            port: 9092,
            rack: None,
            incarnation: 2,
            wal: None,
        };
        for rescuer in [1, 2] {
            let streams: Vec<StreamId> = image
                .streams
                .values()
                .filter(|s| s.owner == rescuer && s.rescue_from == Some(3))
                .map(|s| s.stream_id)
                .collect();
            assert!(decide(&image, &register).is_err());
            apply(
                &mut image,
                Command::AbandonRescue {
                    rescuer,
                    fenced: 3,
                    streams,
                },
            );
        }
        // Back with its streams, unserved until it opens them from its own WAL.
        let mine: Vec<StreamId> = image
            .streams
            .values()
            .filter(|s| s.owner == 3)
            .map(|s| s.stream_id)
            .collect();
        assert_eq!(mine.len(), 4);
        assert!(decide(
            &image,
            &Command::OpenStreams {
                owner: 1,
                streams: vec![(mine[0], 0)]
            }
        )
        .is_err());
        apply(&mut image, register);
        let open = mine.iter().map(|id| (*id, 0)).collect();
        apply(
            &mut image,
            Command::OpenStreams {
                owner: 3,
                streams: open,
            },
        );
        assert!(mine
            .iter()
            .all(|id| image.streams[id].rescue_from.is_none()));
    }
}
