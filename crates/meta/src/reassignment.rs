//! Reassignment decisions (DESIGN.md §4): a partition moves by handing its streams from one
//! broker to another; no bytes of older data move. Pure, like every controller decision.
//!
//! Invariants:
//! 1. A move names a live, registered target; while it is in progress the streams keep their
//!    owner and epoch, so nothing changes for readers until the hand-over.
//! 2. Only the owner hands a stream over, after committing everything it appended; the target
//!    then opens it at the next epoch from the committed end.

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
        Some(b) if !b.fenced => {}
        _ => {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "broker {target} is not a live broker"
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
        if image.brokers.get(&target).is_none_or(|b| b.fenced) {
            continue; // the target died meanwhile (its fence cancels the move)
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

    #[test]
    fn a_partition_moves_by_handing_over_its_streams() {
        let mut image = MetadataImage::default();
        for node_id in 1..=2 {
            apply(
                &mut image,
                Command::RegisterBroker {
                    node_id,
                    host: "h".into(),
                    port: 9092,
                    rack: None,
                    incarnation: 1,
                    wal: None,
                },
            );
        }
        apply(
            &mut image,
            Command::CreateTopic {
                topic_id: Uuid::from_u128(0),
                name: "t".into(),
                partitions: 1,
                configs: BTreeMap::new(),
            },
        );
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
                    wal: None,
                },
            );
        }
        apply(
            &mut image,
            Command::CreateTopic {
                topic_id: Uuid::from_u128(0),
                name: "t".into(),
                partitions: 1,
                configs: BTreeMap::new(),
            },
        );
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
}
