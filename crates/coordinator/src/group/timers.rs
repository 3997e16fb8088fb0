//! Deadlines a group shard waits on (sessions, rebalances, offset expiry). The shard never
//! reads a clock: the runtime passes the time in and asks for the next deadline.

use std::collections::{BTreeSet, HashMap};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A classic member's session.
    Session { group: String, member: String },
    /// A member that was given an id (MEMBER_ID_REQUIRED) and has not joined with it yet.
    PendingMember { group: String, member: String },
    /// The end of a classic group's join phase.
    Join { group: String },
    /// The end of a classic group's sync phase.
    Sync { group: String },
    /// A KIP-848 member's session.
    ConsumerSession { group: String, member: String },
    /// A KIP-848 member that must revoke partitions before this deadline.
    ConsumerRebalance { group: String, member: String },
    /// A classic member of a consumer group told to rejoin, which must do so by then.
    ClassicJoin { group: String, member: String },
    /// A classic member of a consumer group that joined and must sync by then.
    ClassicSync { group: String, member: String },
    /// The periodic sweep for expired offsets.
    OffsetExpiry,
}

#[derive(Default)]
pub struct Timers {
    by_deadline: BTreeSet<(u64, TimerKey)>,
    by_key: HashMap<TimerKey, u64>,
}

impl Timers {
    /// Sets `key` to fire at `at_ms`, replacing any earlier setting.
    pub fn schedule(&mut self, key: TimerKey, at_ms: u64) {
        self.cancel(&key);
        self.by_deadline.insert((at_ms, key.clone()));
        self.by_key.insert(key, at_ms);
    }

    pub fn cancel(&mut self, key: &TimerKey) {
        if let Some(at) = self.by_key.remove(key) {
            self.by_deadline.remove(&(at, key.clone()));
        }
    }

    pub fn is_scheduled(&self, key: &TimerKey) -> bool {
        self.by_key.contains_key(key)
    }

    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// Removes and returns the next timer due at `now_ms`, if any.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<TimerKey> {
        let (at, _) = self.by_deadline.first()?;
        if *at > now_ms {
            return None;
        }
        let (_, key) = self.by_deadline.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }

    /// Cancels every timer of `group`.
    pub fn cancel_group(&mut self, group: &str) {
        let keys: Vec<TimerKey> = self
            .by_key
            .keys()
            .filter(|k| key_group(k) == Some(group))
            .cloned()
            .collect();
        for k in keys {
            self.cancel(&k);
        }
    }
}

fn key_group(key: &TimerKey) -> Option<&str> {
    match key {
        TimerKey::Session { group, .. }
        | TimerKey::PendingMember { group, .. }
        | TimerKey::Join { group }
        | TimerKey::Sync { group }
        | TimerKey::ConsumerSession { group, .. }
        | TimerKey::ConsumerRebalance { group, .. }
        | TimerKey::ClassicJoin { group, .. }
        | TimerKey::ClassicSync { group, .. } => Some(group),
        TimerKey::OffsetExpiry => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order_and_reschedules() {
        let mut t = Timers::default();
        let a = TimerKey::Join { group: "a".into() };
        let b = TimerKey::Join { group: "b".into() };
        t.schedule(a.clone(), 10);
        t.schedule(b.clone(), 5);
        t.schedule(a.clone(), 3);
        assert_eq!(t.next_deadline_ms(), Some(3));
        assert_eq!(t.pop_due(2), None);
        assert_eq!(t.pop_due(20), Some(a));
        assert_eq!(t.pop_due(20), Some(b));
        assert_eq!(t.pop_due(20), None);
    }
}
