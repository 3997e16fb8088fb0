//! Reassignment decisions (DESIGN.md §4): a partition moves by handing its streams from one
//! broker to another; no bytes of older data move. Pure, like every controller decision.
//!
//! Invariants:
//! 1. A move names a live, registered target; while it is in progress the streams keep their
//!    owner and epoch, so nothing changes for readers until the hand-over.
//! 2. Only the owner hands a stream over, after committing everything it appended; the target
//!    then opens it at the next epoch from the committed end.

use std::collections::BTreeMap;

use crate::controller::ControllerError;
use crate::image::MetadataImage;
use crate::records::{MetadataRecord, NodeId, StreamId};

/// Starts (or, with no target, cancels) the move of one partition.
pub fn reassign(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<NodeId>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let p = image
        .partition(topic, partition)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let streams: Vec<StreamId> = std::iter::once(p.stream_id)
        .chain(p.state_stream_id)
        .collect();
    let data = image
        .streams
        .get(&p.stream_id)
        .ok_or(ControllerError::UnknownTopicOrPartition)?;
    let Some(target) = target else {
        if data.moving_to.is_none() {
            return Err(ControllerError::NoReassignmentInProgress);
        }
        return Ok(vec![MetadataRecord::StreamsMoving {
            streams,
            target: None,
        }]);
    };
    match image.brokers.get(&target) {
        Some(b) if b.may_lead() => {}
        _ => {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "broker {target} is not a live broker (or is shutting down)"
            )))
        }
    }
    if data.rescue_from.is_some() {
        return Err(ControllerError::InvalidRequest(format!(
            "partition {topic}-{partition} is being rescued after a failover; retry"
        )));
    }
    if data.owner == target {
        // Back to where it is: as in Kafka, a move in progress is reverted.
        return Ok(match data.moving_to {
            Some(_) => vec![MetadataRecord::StreamsMoving {
                streams,
                target: None,
            }],
            None => Vec::new(),
        });
    }
    if data.moving_to == Some(target) {
        return Ok(Vec::new()); // on its way
    }
    Ok(vec![MetadataRecord::StreamsMoving {
        streams,
        target: Some(target),
    }])
}

/// Opens each of `streams` that `owner` holds and is moving for its target.
pub fn hand_over(
    image: &MetadataImage,
    owner: NodeId,
    streams: &[StreamId],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut records = Vec::new();
    for id in streams {
        let Some(stream) = image.streams.get(id) else {
            continue; // deleted meanwhile
        };
        let Some(target) = stream.moving_to else {
            continue; // cancelled meanwhile: the owner keeps it
        };
        if image.brokers.get(&target).is_none_or(|b| !b.may_lead()) {
            continue; // the target died or is stopping (which cancels the move)
        }
        if stream.owner != owner {
            return Err(ControllerError::InvalidRequest(format!(
                "stream {id} is not broker {owner}'s to hand over"
            )));
        }
        records.push(MetadataRecord::StreamOpened {
            stream_id: *id,
            epoch: stream.epoch + 1,
            owner: target,
            start_offset: stream.committed_end_offset,
            rescue_from: None,
        });
    }
    Ok(records)
}

/// Marks `node` as stopping; moves onto it are cancelled (their sources keep the partitions).
pub fn shut_down(image: &MetadataImage, node: NodeId) -> Vec<MetadataRecord> {
    std::iter::once(MetadataRecord::BrokerShuttingDown { node_id: node })
        .chain(cancel_moves_onto(image, node))
        .collect()
}

/// Cancels the moves onto `node` (it is fenced or stopping): their sources keep the streams.
pub(crate) fn cancel_moves_onto(image: &MetadataImage, node: NodeId) -> Option<MetadataRecord> {
    let streams: Vec<StreamId> = image
        .streams
        .values()
        .filter(|s| s.moving_to == Some(node) && s.owner != node)
        .map(|s| s.stream_id)
        .collect();
    (!streams.is_empty()).then_some(MetadataRecord::StreamsMoving {
        streams,
        target: None,
    })
}

/// Where each partition `node` leads should go so that it leads none (a drain, or a
/// controlled shutdown): to the live broker that leads the fewest partitions so far, ties to
/// the lowest id. Empty when `node` leads nothing or no other broker may lead.
pub fn drain(image: &MetadataImage, node: NodeId) -> Vec<(String, i32, NodeId)> {
    let mut load: BTreeMap<NodeId, usize> = image
        .brokers
        .values()
        .filter(|b| b.may_lead() && b.node_id != node)
        .map(|b| (b.node_id, 0))
        .collect();
    if load.is_empty() {
        return Vec::new();
    }
    let partitions = || {
        image
            .topics
            .values()
            .flat_map(|t| t.partitions.values().map(move |p| (t, p)))
    };
    for (_, p) in partitions() {
        if let Some(n) = load.get_mut(&p.leader) {
            *n += 1;
        }
    }
    let mut moves = Vec::new();
    for (topic, p) in partitions().filter(|(_, p)| p.leader == node) {
        let (&target, n) = load
            .iter_mut()
            .min_by_key(|(id, n)| (**n, **id))
            .expect("another live broker");
        *n += 1;
        moves.push((topic.name.clone(), p.partition, target));
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::{decide, Command};
    use crate::test_support::{apply, cluster, create_topic, register};

    #[test]
    fn a_partition_moves_by_handing_over_its_streams() {
        let mut image = cluster(2, 1);
        let p = image.partition("t", 0).unwrap().clone();
        let (source, target) = (p.leader, 3 - p.leader);
        let state = p.state_stream_id.unwrap();
        let move_to = |target| Command::ReassignPartition {
            topic: "t".into(),
            partition: 0,
            target,
        };
        // Bad targets and nothing to cancel.
        assert!(matches!(
            decide(&image, &move_to(Some(9))),
            Err(ControllerError::InvalidReplicaAssignment(_))
        ));
        assert_eq!(
            decide(&image, &move_to(None)),
            Err(ControllerError::NoReassignmentInProgress)
        );
        assert!(decide(&image, &move_to(Some(source))).unwrap().is_empty());

        apply(&mut image, move_to(Some(target)));
        // Invariant 1: nothing changes for readers yet.
        assert_eq!(image.partition("t", 0).unwrap().leader, source);
        assert_eq!(image.streams[&p.stream_id].moving_to, Some(target));
        assert_eq!(image.streams[&state].moving_to, Some(target));
        // Invariant 2: only the owner hands over.
        let streams = vec![p.stream_id, state];
        assert!(decide(
            &image,
            &Command::HandOver {
                owner: target,
                streams: streams.clone()
            }
        )
        .is_err());
        let epoch = image.streams[&p.stream_id].epoch;
        apply(
            &mut image,
            Command::HandOver {
                owner: source,
                streams: streams.clone(),
            },
        );
        let moved = image.partition("t", 0).unwrap();
        assert_eq!(moved.leader, target);
        assert_eq!(moved.leader_epoch as u64, epoch + 1);
        assert_eq!(image.streams[&state].owner, target);
        assert_eq!(image.streams[&p.stream_id].moving_to, None);
        // A cancelled move is not handed over.
        apply(&mut image, move_to(Some(source)));
        apply(&mut image, move_to(None));
        assert!(decide(
            &image,
            &Command::HandOver {
                owner: target,
                streams
            }
        )
        .unwrap()
        .is_empty());
        assert_eq!(image.partition("t", 0).unwrap().leader, target);
    }

    #[test]
    fn moving_back_reverts_and_a_dead_target_cancels() {
        let mut image = cluster(3, 1);
        let p = image.partition("t", 0).unwrap().clone();
        let source = p.leader;
        let (a, b) = match source {
            1 => (2, 3),
            2 => (1, 3),
            _ => (1, 2),
        };
        let move_to = |target| Command::ReassignPartition {
            topic: "t".into(),
            partition: 0,
            target: Some(target),
        };
        // Asking for the current leader while a move is on reverts the move.
        apply(&mut image, move_to(a));
        apply(&mut image, move_to(source));
        assert_eq!(image.streams[&p.stream_id].moving_to, None);
        // A target that dies cancels the move: its source keeps the partition.
        apply(&mut image, move_to(b));
        apply(
            &mut image,
            Command::FenceBroker {
                node_id: b,
                incarnation: 1,
            },
        );
        assert_eq!(image.streams[&p.stream_id].moving_to, None);
        assert_eq!(image.partition("t", 0).unwrap().leader, source);
        let streams = vec![p.stream_id];
        assert!(decide(
            &image,
            &Command::HandOver {
                owner: source,
                streams
            }
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn a_drain_spreads_a_brokers_partitions_over_the_others() {
        let mut image = cluster(3, 12);
        let moves = drain(&image, 2);
        assert_eq!(moves.len(), 4, "node 2 leads a third of 12");
        for (topic, partition, target) in &moves {
            assert_eq!(image.partition(topic, *partition).unwrap().leader, 2);
            apply(
                &mut image,
                Command::ReassignPartition {
                    topic: topic.clone(),
                    partition: *partition,
                    target: Some(*target),
                },
            );
        }
        let streams: Vec<StreamId> = image.streams.keys().copied().collect();
        apply(&mut image, Command::HandOver { owner: 2, streams });
        let led = |node| {
            (0..12)
                .filter(|p| image.partition("t", *p).unwrap().leader == node)
                .count()
        };
        assert_eq!((led(1), led(2), led(3)), (6, 0, 6));
        assert!(drain(&image, 2).is_empty());
        // With no other live broker there is nowhere to go.
        let mut alone = MetadataImage::default();
        apply(&mut alone, register(1, 1));
        apply(&mut alone, create_topic(1, "t", 2));
        assert!(drain(&alone, 1).is_empty());
    }

    #[test]
    fn a_broker_shutting_down_is_given_nothing_new() {
        let mut image = cluster(3, 3);
        let p = (0..3)
            .find(|p| image.partition("t", *p).unwrap().leader == 1)
            .unwrap();
        let move_to = |target| Command::ReassignPartition {
            topic: "t".into(),
            partition: p,
            target: Some(target),
        };
        apply(&mut image, move_to(3));
        // A stale incarnation is not marked; the current one is, and the move onto it ends.
        let stale = Command::ShutDownBroker {
            node_id: 3,
            incarnation: 0,
        };
        assert!(decide(&image, &stale).unwrap().is_empty());
        apply(
            &mut image,
            Command::ShutDownBroker {
                node_id: 3,
                incarnation: 1,
            },
        );
        assert!(image.brokers[&3].shutting_down);
        let data = image.partition("t", p).unwrap().stream_id;
        assert_eq!(image.streams[&data].moving_to, None);
        assert!(matches!(
            decide(&image, &move_to(3)),
            Err(ControllerError::InvalidReplicaAssignment(_))
        ));
        assert!(drain(&image, 1).iter().all(|(_, _, target)| *target == 2));
        apply(&mut image, create_topic(1, "u", 4));
        let leaders: Vec<NodeId> = (0..4)
            .map(|p| image.partition("u", p).unwrap().leader)
            .collect();
        assert!(!leaders.contains(&3), "{leaders:?}");
        // Registering again (a new incarnation) makes it a broker like any other.
        apply(&mut image, register(3, 2));
        assert!(image.brokers[&3].may_lead());
    }
}
