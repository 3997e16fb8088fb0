//! KIP-848 server-side assignors: `uniform` (balanced and sticky) and `range` (contiguous
//! ranges per topic). Both are pure functions of the members and the topics.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::records::TopicPartitions;

/// One member as an assignor sees it.
pub struct MemberSpec<'a> {
    pub member_id: &'a str,
    pub topics: BTreeSet<&'a str>,
    /// The member's previous target, for stickiness.
    pub previous: Option<&'a TopicPartitions>,
}

pub fn assign(
    name: &str,
    members: &[MemberSpec<'_>],
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> BTreeMap<String, TopicPartitions> {
    match name {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

fn empty(members: &[MemberSpec<'_>]) -> BTreeMap<String, TopicPartitions> {
    members
        .iter()
        .map(|m| (m.member_id.to_string(), TopicPartitions::new()))
        .collect()
}

fn add(out: &mut BTreeMap<String, TopicPartitions>, member: &str, topic: Uuid, partition: i32) {
    let list = out
        .get_mut(member)
        .expect("every member has an entry")
        .entry(topic)
        .or_default();
    list.push(partition);
    list.sort_unstable();
}

/// For each topic, its subscribers in member-id order take contiguous ranges; the first
/// `partitions % subscribers` take one more.
pub fn range(
    members: &[MemberSpec<'_>],
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out = empty(members);
    for (name, (id, count)) in topics {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(name.as_str()))
            .map(|m| m.member_id)
            .collect();
        subscribers.sort_unstable();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            for p in next..next + take {
                add(&mut out, member, *id, p);
            }
            next += take;
        }
    }
    out
}

/// Every partition goes to a subscriber; members keep what they had up to their fair share,
/// the rest goes to whoever has least, then single moves even out what is left.
pub fn uniform(
    members: &[MemberSpec<'_>],
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out = empty(members);
    let mut ids: Vec<&str> = members.iter().map(|m| m.member_id).collect();
    ids.sort_unstable();
    let eligible = |topic: &str| -> Vec<&str> {
        let mut e: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.member_id)
            .collect();
        e.sort_unstable();
        e
    };
    let partitions: Vec<(&str, Uuid, i32)> = topics
        .iter()
        .flat_map(|(name, (id, count))| (0..*count).map(move |p| (name.as_str(), *id, p)))
        .filter(|(name, _, _)| members.iter().any(|m| m.topics.contains(name)))
        .collect();
    if ids.is_empty() || partitions.is_empty() {
        return out;
    }
    let share = partitions.len().div_ceil(ids.len());
    let mut counts: BTreeMap<&str, usize> = ids.iter().map(|m| (*m, 0)).collect();
    let mut owner: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
    // Stickiness: keep previous partitions that are still valid, up to the fair share.
    for m in members {
        let Some(prev) = m.previous else { continue };
        for (topic, parts) in prev {
            let Some((name, (_, count))) = topics.iter().find(|(_, (id, _))| id == topic) else {
                continue;
            };
            if !m.topics.contains(name.as_str()) {
                continue;
            }
            for p in parts {
                if *p < *count && counts[m.member_id] < share && !owner.contains_key(&(*topic, *p))
                {
                    owner.insert((*topic, *p), m.member_id);
                    *counts.get_mut(m.member_id).expect("listed") += 1;
                }
            }
        }
    }
    for (name, topic, p) in &partitions {
        if owner.contains_key(&(*topic, *p)) {
            continue;
        }
        let choice = eligible(name)
            .into_iter()
            .min_by_key(|m| (counts[m], *m))
            .expect("only subscribed topics are listed");
        owner.insert((*topic, *p), choice);
        *counts.get_mut(choice).expect("listed") += 1;
    }
    // Even out: move one partition at a time from the fullest member to an eligible emptier one.
    let topic_name: BTreeMap<Uuid, &str> = topics
        .iter()
        .map(|(n, (id, _))| (*id, n.as_str()))
        .collect();
    for _ in 0..partitions.len() {
        let mut moved = false;
        let mut order: Vec<&str> = ids.clone();
        order.sort_by_key(|m| std::cmp::Reverse(counts[m]));
        'outer: for from in &order {
            for ((topic, _), o) in owner.iter_mut() {
                if o != from {
                    continue;
                }
                let to = eligible(topic_name[topic])
                    .into_iter()
                    .filter(|m| counts[m] + 1 < counts[from])
                    .min_by_key(|m| (counts[m], *m));
                if let Some(to) = to {
                    *o = to;
                    *counts.get_mut(from).expect("listed") -= 1;
                    *counts.get_mut(to).expect("listed") += 1;
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    for ((topic, p), member) in owner {
        add(&mut out, member, topic, p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(id: &'a str, topics: &[&'a str]) -> MemberSpec<'a> {
        MemberSpec {
            member_id: id,
            topics: topics.iter().copied().collect(),
            previous: None,
        }
    }

    fn count(a: &TopicPartitions) -> usize {
        a.values().map(Vec::len).sum()
    }

    #[test]
    fn range_splits_each_topic() {
        let t = Uuid::from_u128(1);
        let topics = BTreeMap::from([("t".to_string(), (t, 5))]);
        let out = range(&[spec("a", &["t"]), spec("b", &["t"])], &topics);
        assert_eq!(out["a"][&t], vec![0, 1, 2]);
        assert_eq!(out["b"][&t], vec![3, 4]);
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let t = Uuid::from_u128(1);
        let topics = BTreeMap::from([("t".to_string(), (t, 12))]);
        let three = [spec("a", &["t"]), spec("b", &["t"]), spec("c", &["t"])];
        let first = uniform(&three, &topics);
        assert!(first.values().all(|a| count(a) == 4));
        // A fourth member takes 3 partitions and everybody else keeps 3 of theirs.
        let mut four: Vec<MemberSpec> = ["a", "b", "c"]
            .iter()
            .map(|id| MemberSpec {
                member_id: id,
                topics: ["t"].into_iter().collect(),
                previous: Some(&first[*id]),
            })
            .collect();
        four.push(spec("d", &["t"]));
        let second = uniform(&four, &topics);
        assert!(second.values().all(|a| count(a) == 3));
        for id in ["a", "b", "c"] {
            let kept = second[id][&t]
                .iter()
                .filter(|p| first[id][&t].contains(p))
                .count();
            assert_eq!(kept, 3, "{id} keeps its partitions");
        }
        let mut all: Vec<i32> = second.values().flat_map(|a| a[&t].clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let (t, u) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let topics = BTreeMap::from([("t".to_string(), (t, 4)), ("u".to_string(), (u, 4))]);
        let out = uniform(&[spec("a", &["t"]), spec("b", &["t", "u"])], &topics);
        assert!(!out["a"].contains_key(&u));
        assert_eq!(count(&out["a"]) + count(&out["b"]), 8);
    }
}
