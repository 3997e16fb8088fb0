//! Requests from this broker to the others, in Kafka's own protocol: a transaction coordinator
//! sends the markers of a transaction to the brokers that lead its partitions. Connections
//! are kept per peer and reused; one that fails is dropped.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context};
use kafka_protocol::protocol::Request;
use parking_lot::Mutex;
use strata_meta::NodeId;

use crate::kafka_client::KafkaClient;
use crate::Broker;

/// How brokers name themselves to each other.
const CLIENT_ID: &str = "strata-broker";
/// A limit on one request to a peer, connecting included.
const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Idle connections kept per peer; requests beyond them open (and then keep) more, up to this.
const IDLE_CONNECTIONS_MAX: usize = 8;

#[derive(Default)]
pub struct Peers {
    /// Idle connections by peer, each with the address it was opened to: a peer that
    /// registers again at another address is reached there.
    idle: Mutex<HashMap<NodeId, Vec<(String, KafkaClient)>>>,
}

impl Peers {
    /// Sends `body` at `version` to broker `node` and reads its response.
    pub async fn send<R: Request>(
        &self,
        broker: &Broker,
        node: NodeId,
        version: i16,
        body: &R,
    ) -> anyhow::Result<R::Response> {
        let addr = {
            let image = broker.meta.image().read();
            let peer = image
                .brokers
                .get(&node)
                .filter(|b| !b.fenced)
                .ok_or_else(|| anyhow!("broker {node} is not registered or is fenced"))?;
            format!("{}:{}", peer.host, peer.port)
        };
        let reused = {
            let mut idle = self.idle.lock();
            let pool = idle.entry(node).or_default();
            pool.retain(|(a, _)| *a == addr);
            pool.pop()
        };
        let exchange = async {
            // An idle connection may have been closed by a peer that restarted since: one
            // that fails is replaced by a new one once.
            if let Some((_, mut client)) = reused {
                if let Ok(response) = client.send(version, body).await {
                    return anyhow::Ok((client, response));
                }
            }
            let mut client = KafkaClient::connect(&addr, CLIENT_ID).await?;
            let response = client.send(version, body).await?;
            anyhow::Ok((client, response))
        };
        let (client, response) =
            tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), exchange)
                .await
                .with_context(|| format!("no answer from broker {node} at {addr}"))??;
        let mut idle = self.idle.lock();
        let pool = idle.entry(node).or_default();
        if pool.len() < IDLE_CONNECTIONS_MAX {
            pool.push((addr, client));
        }
        Ok(response)
    }
}
