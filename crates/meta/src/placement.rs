//! Where new partitions lead: spread over the registered brokers, alternating racks, so that a
//! topic's load and a rack's loss are both shared out. Pure, like every controller decision.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::image::MetadataImage;
use crate::records::NodeId;

/// The brokers in rack-alternating order: the first of each rack, then the second of each,
/// and so on (racks and the brokers within one in id order; brokers without a rack form one
/// rack of their own). Consecutive partitions then land in different racks whenever there
/// are several.
pub fn rack_alternating(
    brokers: impl IntoIterator<Item = (NodeId, Option<String>)>,
) -> Vec<NodeId> {
    let mut racks: BTreeMap<Option<String>, Vec<NodeId>> = BTreeMap::new();
    for (id, rack) in brokers {
        racks.entry(rack).or_default().push(id);
    }
    for ids in racks.values_mut() {
        ids.sort_unstable();
    }
    let rounds = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..rounds)
        .flat_map(|round| {
            racks
                .values()
                .filter_map(move |ids| ids.get(round).copied())
        })
        .collect()
}

/// Leaders of partitions `from..to` of `topic_id`: round robin over the brokers that may
/// lead, from a start the topic id picks (Kafka starts at random; the id keeps `decide`
/// pure). `None` when no broker may lead.
pub fn leaders(image: &MetadataImage, topic_id: Uuid, from: i32, to: i32) -> Option<Vec<NodeId>> {
    let order = rack_alternating(
        image
            .brokers
            .values()
            .filter(|b| b.may_lead())
            .map(|b| (b.node_id, b.rack.clone())),
    );
    if order.is_empty() {
        return None;
    }
    let start = (topic_id.as_u128() % order.len() as u128) as usize;
    Some(
        (from..to)
            .map(|p| order[(start + p as usize) % order.len()])
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn racks_alternate_and_every_broker_gets_a_turn() {
        let rack = |r: &str| Some(r.to_string());
        let order = rack_alternating([
            (1, rack("a")),
            (2, rack("a")),
            (3, rack("b")),
            (4, rack("c")),
            (5, rack("b")),
            (6, None),
        ]);
        assert_eq!(order, vec![6, 1, 3, 4, 2, 5]);
        assert_eq!(rack_alternating([(2, None), (1, None)]), vec![1, 2]);
        assert!(rack_alternating([]).is_empty());
    }

    #[test]
    fn partitions_spread_evenly_from_the_topic_start() {
        let mut image = MetadataImage::default();
        assert_eq!(leaders(&image, Uuid::from_u128(7), 0, 3), None);
        for id in 1..=3 {
            image.apply(&crate::MetadataRecord::RegisterBroker {
                node_id: id,
                host: "h".into(),
                port: 9092,
                rack: None,
                incarnation: 1,
                wal: None,
            });
        }
        let all = leaders(&image, Uuid::from_u128(7), 0, 6).unwrap();
        // 7 % 3 = 1: the second broker leads partition 0.
        assert_eq!(all, vec![2, 3, 1, 2, 3, 1]);
        // Added partitions go on where the round robin left off.
        assert_eq!(
            leaders(&image, Uuid::from_u128(7), 6, 8).unwrap(),
            vec![2, 3]
        );
    }
}
