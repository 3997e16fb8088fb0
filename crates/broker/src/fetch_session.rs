//! Incremental fetch sessions (KIP-227): the broker remembers a consumer's partitions so that
//! later fetches send and receive only what changed. Bounded: the oldest session is evicted.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

/// `(topic, partition)` → what the session last said about it.
pub type SessionPartitions = BTreeMap<(String, i32), SessionPartition>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionPartition {
    pub topic_id: uuid::Uuid,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    /// What the last response said, so unchanged partitions can be left out.
    pub last_high_watermark: i64,
    pub last_log_start_offset: i64,
}

struct Session {
    epoch: i32,
    partitions: SessionPartitions,
    last_used: u64,
}

pub struct FetchSessions {
    sessions: Mutex<(HashMap<i32, Session>, u64, i32)>,
    sessions_max: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SessionError {
    NotFound,
    InvalidEpoch,
}

impl FetchSessions {
    pub fn new(sessions_max: usize) -> Self {
        FetchSessions {
            sessions: Mutex::new((HashMap::new(), 0, 0)),
            sessions_max,
        }
    }

    /// Starts a session holding `partitions`; returns its id (0 when none can be kept).
    pub fn create(&self, partitions: SessionPartitions) -> i32 {
        let mut guard = self.sessions.lock();
        let (sessions, clock, next_id) = &mut *guard;
        if self.sessions_max == 0 {
            return 0;
        }
        if sessions.len() >= self.sessions_max {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id)
            {
                sessions.remove(&oldest);
            }
        }
        *clock += 1;
        *next_id = next_id.wrapping_add(1).max(1);
        sessions.insert(
            *next_id,
            Session {
                epoch: 1,
                partitions,
                last_used: *clock,
            },
        );
        *next_id
    }

    /// Runs `f` on session `id` if `epoch` is the one it expects next, then advances it.
    pub fn update<R>(
        &self,
        id: i32,
        epoch: i32,
        f: impl FnOnce(&mut SessionPartitions) -> R,
    ) -> Result<R, SessionError> {
        let mut guard = self.sessions.lock();
        let (sessions, clock, _) = &mut *guard;
        let session = sessions.get_mut(&id).ok_or(SessionError::NotFound)?;
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        *clock += 1;
        session.last_used = *clock;
        session.epoch = session.epoch.wrapping_add(1).max(1);
        Ok(f(&mut session.partitions))
    }

    /// Runs `f` on session `id` without advancing its epoch.
    pub fn with<R>(&self, id: i32, f: impl FnOnce(&mut SessionPartitions) -> R) -> Option<R> {
        let mut guard = self.sessions.lock();
        guard.0.get_mut(&id).map(|s| f(&mut s.partitions))
    }

    pub fn remove(&self, id: i32) {
        self.sessions.lock().0.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_advance_and_sessions_are_bounded() {
        let sessions = FetchSessions::new(2);
        let a = sessions.create(SessionPartitions::new());
        assert_eq!(sessions.update(a, 1, |_| ()), Ok(()));
        assert_eq!(
            sessions.update(a, 1, |_| ()),
            Err(SessionError::InvalidEpoch)
        );
        assert_eq!(sessions.update(a, 2, |_| ()), Ok(()));
        let b = sessions.create(SessionPartitions::new());
        let _c = sessions.create(SessionPartitions::new());
        assert_eq!(
            sessions.update(a, 3, |_| ()),
            Err(SessionError::NotFound),
            "oldest evicted"
        );
        assert_eq!(sessions.update(b, 1, |_| ()), Ok(()));
    }
}
