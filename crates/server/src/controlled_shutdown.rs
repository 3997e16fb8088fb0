//! Controlled shutdown (Kafka's `controlled.shutdown.enable`): before a broker in a cluster
//! stops, it marks itself as stopping (so that it is given nothing new) and hands every
//! partition it leads to the live brokers, still serving meanwhile. Clients are told of the
//! new leaders within tens of milliseconds instead of waiting for this broker's session to run
//! out and its WAL to be replayed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use strata_meta::{reassignment, Command, NodeId};
use strata_storage::MetadataClient;

/// A limit on the whole hand-over; whatever is left fails over after the session.
const WAIT_MS_MAX: u64 = 10_000;
/// A limit on one metadata command: a quorum that has lost its majority (a whole cluster
/// stopping) does not hold a broker's exit up.
const SUBMIT_MS_MAX: u64 = 2_000;
/// How often the metadata is checked for what this broker still leads.
const POLL_MS: u64 = 20;

/// Marks `node` as stopping, then moves every partition it leads to the other live brokers
/// until it leads none, no broker is left to take them, or [`WAIT_MS_MAX`] has passed.
pub async fn run(meta: &Arc<dyn MetadataClient>, node: NodeId, incarnation: u64) {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(WAIT_MS_MAX);
    let marked = Command::ShutDownBroker {
        node_id: node,
        incarnation,
    };
    if !submit(meta, marked).await {
        tracing::warn!("controlled shutdown: not marked as stopping; handing over anyway");
    }
    loop {
        let (led, moving, moves) = {
            let image = meta.image().read();
            let led: Vec<_> = image
                .topics
                .values()
                .flat_map(|t| t.partitions.values())
                .filter(|p| p.leader == node)
                .collect();
            let moving = led.iter().any(|p| {
                image
                    .streams
                    .get(&p.stream_id)
                    .is_some_and(|s| s.moving_to.is_some())
            });
            (led.len(), moving, reassignment::drain(&image, node))
        };
        if led == 0 {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "controlled shutdown: every partition handed over"
            );
            return;
        }
        if Instant::now() > deadline {
            tracing::warn!(
                partitions = led,
                "controlled shutdown: still leading partitions"
            );
            return;
        }
        if !moving {
            // First round, or moves cancelled because their target is stopping too.
            if moves.is_empty() {
                tracing::warn!(
                    partitions = led,
                    "controlled shutdown: no live broker to take the partitions"
                );
                return;
            }
            tracing::info!(
                partitions = moves.len(),
                "controlled shutdown: moving partitions"
            );
            let submitted = moves.into_iter().map(|(topic, partition, target)| {
                let command = Command::ReassignPartition {
                    topic,
                    partition,
                    target: Some(target),
                };
                submit(meta, command)
            });
            let refused = join_all(submitted).await.iter().filter(|ok| !**ok).count();
            if refused > 0 {
                // Typically a target that is stopping too; the next round picks again.
                tracing::info!(refused, "controlled shutdown: moves refused");
            }
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Submits `command`; false if it was refused or not answered in time.
async fn submit(meta: &Arc<dyn MetadataClient>, command: Command) -> bool {
    let limit = Duration::from_millis(SUBMIT_MS_MAX);
    match tokio::time::timeout(limit, meta.submit(command.clone())).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::debug!(?command, error = %e, "controlled shutdown: refused");
            false
        }
        Err(_) => {
            tracing::warn!(?command, "controlled shutdown: no answer from the quorum");
            false
        }
    }
}
