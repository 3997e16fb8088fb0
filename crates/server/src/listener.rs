//! The Kafka listener: accepts connections up to a limit, serves each on its own task, and on
//! shutdown stops accepting and waits for in-flight requests to finish.

use std::sync::Arc;
use std::time::Duration;

use strata_broker::Broker;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::connection;

pub async fn run(
    broker: Arc<Broker>,
    listener: TcpListener,
    connections_max: usize,
    frame_bytes_max: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(connections_max));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit.expect("never closed"),
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (socket, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        metrics::counter!("strata_connections_accepted_total").increment(1);
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            connection::serve(broker, socket, frame_bytes_max, shutdown).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    // Connections finish the request they are in, then close.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections did not finish within 30 s; closing them");
    }
}
