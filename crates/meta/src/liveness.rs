//! Broker liveness (DESIGN.md §4): brokers heartbeat to the active controller and hold a
//! time-bound lease; the controller fences a broker whose heartbeats stopped, but only after
//! the broker's lease has certainly run out.
//!
//! Invariants:
//! 1. A broker's lease ends `session_timeout_ms` after it SENT the heartbeat that granted it;
//!    the controller fences no earlier than `session_timeout_ms` + a margin after it RECEIVED
//!    the last one. So a broker whose clock runs at about the controller's rate stops
//!    acknowledging before anyone else may take its streams.
//! 2. Heartbeats are kept only in the active controller's memory: a new leader has seen none,
//!    so it waits a whole session (plus margin) after it started leading before fencing anybody.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::controller::{Command, ControllerHandle};
use crate::image::MetadataImage;
use crate::raft::send_heartbeat;
use crate::records::{MetadataRecord, NodeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    /// Kafka's broker.heartbeat.interval.ms.
    pub heartbeat_interval_ms: u64,
    /// Kafka's broker.session.timeout.ms: the lease a heartbeat grants.
    pub session_timeout_ms: u64,
}

impl LivenessConfig {
    /// How long past a lease the controller waits before fencing: room for clock-rate drift
    /// between broker and controller, and for the heartbeat's trip.
    pub fn fence_after(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms + self.session_timeout_ms / 10 + 100)
    }
}

/// A broker's permission to acknowledge writes, valid until a monotonic instant.
#[derive(Debug)]
pub struct Lease {
    /// `None`: a single node, which nobody can fence.
    until: Option<Mutex<Option<Instant>>>,
}

impl Lease {
    /// The lease of a node that is its own quorum: always valid.
    pub fn unlimited() -> Lease {
        Lease { until: None }
    }

    /// A cluster broker's lease: invalid until the first heartbeat is answered.
    pub fn new() -> Lease {
        Lease {
            until: Some(Mutex::new(None)),
        }
    }

    pub fn valid(&self) -> bool {
        match &self.until {
            None => true,
            Some(until) => until.lock().is_some_and(|u| Instant::now() < u),
        }
    }

    /// Extends the lease to `until` (never shortens it: answers may arrive out of order).
    pub fn extend(&self, until: Instant) {
        if let Some(current) = &self.until {
            let mut current = current.lock();
            if current.is_none_or(|c| c < until) {
                *current = Some(until);
            }
        }
    }
}

impl Default for Lease {
    fn default() -> Self {
        Lease::new()
    }
}

/// The active controller's view of heartbeats.
#[derive(Debug, Default)]
pub struct Heartbeats {
    /// Each broker's incarnation and the last time it was heard from (or, for an incarnation
    /// not yet heard from, when the sweep first saw it registered).
    seen: Mutex<HashMap<NodeId, (u64, Instant)>>,
    /// The term this node leads in and since when, as far as the sweep has observed.
    leading: Mutex<Option<(u64, Instant)>>,
}

impl Heartbeats {
    pub fn record(&self, node_id: NodeId, incarnation: u64, now: Instant) {
        self.seen.lock().insert(node_id, (incarnation, now));
    }

    /// Notes whether this node leads (and in which term); leading anew forgets every
    /// heartbeat seen before, so the whole session is waited out again (invariant 2).
    pub fn observe_leadership(&self, term: Option<u64>, now: Instant) {
        let mut leading = self.leading.lock();
        match (term, *leading) {
            (Some(t), Some((current, _))) if t == current => {}
            (Some(t), _) => {
                self.seen.lock().clear();
                *leading = Some((t, now));
            }
            (None, _) => *leading = None,
        }
    }

    /// Unfenced brokers not heard from for longer than `config.fence_after()`, counting from
    /// when this node started leading for brokers it has not heard from at all.
    pub fn expired(
        &self,
        image: &MetadataImage,
        config: &LivenessConfig,
        now: Instant,
    ) -> Vec<NodeId> {
        let Some((_, since)) = *self.leading.lock() else {
            return Vec::new();
        };
        let mut seen = self.seen.lock();
        image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                let heard = seen.entry(b.node_id).or_insert((b.incarnation, since));
                // A new incarnation (a broker that registered again) gets a whole session.
                if heard.0 != b.incarnation {
                    *heard = (b.incarnation, now);
                }
                now.saturating_duration_since(heard.1.max(since)) > config.fence_after()
            })
            .map(|b| b.node_id)
            .collect()
    }
}

impl ControllerHandle {
    /// Takes a broker's heartbeat: whether the broker is fenced (a stale incarnation is), or
    /// why it was not taken. Only the active controller takes heartbeats, and only once a
    /// quorum has confirmed it still leads: a deposed leader must not extend leases.
    pub async fn heartbeat(&self, node_id: NodeId, incarnation: u64) -> Result<bool, String> {
        if self.quorum().leading_term().is_none() {
            return Err("not the active controller".into());
        }
        self.quorum()
            .caught_up()
            .await
            .map_err(|e| format!("leadership not confirmed: {e}"))?;
        {
            let image = self.image().read();
            let broker = image
                .brokers
                .get(&node_id)
                .ok_or_else(|| format!("broker {node_id} is not registered"))?;
            if broker.fenced || broker.incarnation != incarnation {
                return Ok(true);
            }
        }
        self.heartbeats.record(node_id, incarnation, Instant::now());
        Ok(false)
    }
}

/// The sweep every voter runs and only the active controller acts on: it fences the brokers
/// whose heartbeats stopped, which hands their streams to a rescuer.
pub async fn run_sweep(
    controller: Arc<ControllerHandle>,
    config: LivenessConfig,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(config.heartbeat_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let term = controller.quorum().leading_term();
        // Kafka's ActiveControllerCount: 1 on the active controller.
        metrics::gauge!("strata_controller_active_count").set(if term.is_some() {
            1.0
        } else {
            0.0
        });
        controller.heartbeats.observe_leadership(term, now);
        let Some(term) = term else {
            continue;
        };
        let expired: Vec<(NodeId, u64)> = {
            let image = controller.image().read();
            controller
                .heartbeats
                .expired(&image, &config, now)
                .into_iter()
                .map(|id| (id, image.brokers[&id].incarnation))
                .collect()
        };
        for (node_id, incarnation) in expired {
            tracing::warn!(node_id, "broker missed its heartbeats; fencing it");
            let fence = Command::FenceBroker {
                node_id,
                incarnation,
            };
            match controller.submit_as_leader(term, &fence).await {
                Ok(records) => {
                    if let Some(MetadataRecord::BrokerFenced { rescuer, .. }) = records.first() {
                        tracing::warn!(node_id, ?rescuer, "broker fenced");
                    }
                }
                Err(e) => tracing::warn!(node_id, error = %e, "fencing failed; retrying"),
            }
        }
    }
}

/// A broker's heartbeats to the active controller, one per interval; each answered one
/// extends `lease` from when it was sent (invariant 1). Returns `true` when the controller
/// says this broker is fenced, `false` when stopped.
pub async fn run_heartbeats(
    controller: Arc<ControllerHandle>,
    node_id: NodeId,
    incarnation: u64,
    config: LivenessConfig,
    lease: Arc<Lease>,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let interval = Duration::from_millis(config.heartbeat_interval_ms);
    let session = Duration::from_millis(config.session_timeout_ms);
    loop {
        let sent = Instant::now();
        let answer = match controller.quorum().leader_addr().await {
            Some((leader, _)) if leader == controller.quorum().node_id() => {
                controller.heartbeat(node_id, incarnation).await
            }
            Some((_, addr)) => send_heartbeat(&addr, node_id, incarnation, interval)
                .await
                .map_err(|e| e.to_string())
                .and_then(|answer| answer),
            None => Err("no metadata leader known".into()),
        };
        match answer {
            Ok(false) => lease.extend(sent + session),
            Ok(true) => return true,
            Err(why) => tracing::debug!(why, "heartbeat not taken"),
        }
        tokio::select! {
            _ = tokio::time::sleep_until((sent + interval).into()) => {}
            _ = stop.changed() => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetadataRecord;

    const CONFIG: LivenessConfig = LivenessConfig {
        heartbeat_interval_ms: 500,
        session_timeout_ms: 3_000,
    };

    fn image(brokers: &[NodeId]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in brokers {
            image.apply(&MetadataRecord::RegisterBroker {
                node_id: *id,
                host: "h".into(),
                port: 1,
                rack: None,
                incarnation: 1,
                wal: None,
            });
        }
        image
    }

    #[test]
    fn a_broker_is_fenced_only_after_its_lease_has_run_out() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let image = image(&[1, 2]);
        let beats = Heartbeats::default();
        // Not leading: nobody is fenced.
        assert!(beats.expired(&image, &CONFIG, at(60_000)).is_empty());
        beats.observe_leadership(Some(3), at(0));
        beats.record(1, 1, at(1_000));
        beats.record(2, 1, at(1_000));
        // A lease taken just before the last heartbeat was received ends before the fence.
        let lease = Lease::new();
        lease.extend(at(1_000) + Duration::from_millis(CONFIG.session_timeout_ms));
        assert!(beats.expired(&image, &CONFIG, at(4_000)).is_empty());
        beats.record(2, 1, at(3_500));
        let fence_at = at(1_000) + CONFIG.fence_after() + Duration::from_millis(1);
        assert_eq!(beats.expired(&image, &CONFIG, fence_at), vec![1]);
        assert!(fence_at > at(1_000) + Duration::from_millis(CONFIG.session_timeout_ms));
        // A fenced broker is not fenced again.
        let mut fenced = image.clone();
        fenced.apply(&MetadataRecord::BrokerFenced {
            node_id: 1,
            rescuer: Some(2),
        });
        assert!(beats.expired(&fenced, &CONFIG, fence_at).is_empty());
        // Registering again (a new incarnation) starts a new session from when it is noticed,
        // whatever was heard from the old one.
        fenced.apply(&MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "h".into(),
            port: 1,
            rack: None,
            incarnation: 2,
            wal: None,
        });
        let noticed = at(30_000);
        assert!(!beats.expired(&fenced, &CONFIG, noticed).contains(&1));
        assert!(!beats
            .expired(&fenced, &CONFIG, noticed + CONFIG.fence_after())
            .contains(&1));
        beats.record(1, 2, noticed + Duration::from_millis(100));
        assert!(!beats
            .expired(&fenced, &CONFIG, noticed + CONFIG.fence_after())
            .contains(&1));
    }

    #[test]
    fn a_new_leader_waits_a_whole_session_before_fencing() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let image = image(&[1]);
        let beats = Heartbeats::default();
        beats.observe_leadership(Some(1), at(0));
        beats.record(1, 1, at(0));
        // Another term: what was seen before counts for nothing, and neither does silence
        // before this node led.
        beats.observe_leadership(Some(2), at(10_000));
        assert!(beats
            .expired(&image, &CONFIG, at(10_000) + CONFIG.fence_after())
            .is_empty());
        assert_eq!(
            beats.expired(&image, &CONFIG, at(10_001) + CONFIG.fence_after()),
            vec![1]
        );
        beats.observe_leadership(None, at(20_000));
        assert!(beats.expired(&image, &CONFIG, at(60_000)).is_empty());
    }

    #[test]
    fn a_lease_grows_and_lapses() {
        assert!(Lease::unlimited().valid());
        let lease = Lease::new();
        assert!(!lease.valid(), "no lease before the first heartbeat");
        lease.extend(Instant::now() + Duration::from_secs(60));
        assert!(lease.valid());
        lease.extend(Instant::now());
        assert!(lease.valid(), "an older answer never shortens the lease");
        let lapsed = Lease::new();
        lapsed.extend(Instant::now());
        std::thread::sleep(Duration::from_millis(2));
        assert!(!lapsed.valid());
    }
}
