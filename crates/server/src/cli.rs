//! The `strata` CLI commands that act on a running cluster through Kafka's own APIs:
//! `reassign` (AlterPartitionReassignments) and `drain` (moves every partition a broker leads
//! to the others, so that it can be stopped with nothing left behind).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use strata_broker::kafka_client::KafkaClient;

/// How long `--wait` waits for the moves to complete.
const WAIT_S_MAX: u64 = 120;
/// How the CLI names itself to brokers.
const CLIENT_ID: &str = "strata-cli";

#[derive(Args, Debug)]
pub struct ReassignArgs {
    /// Any broker of the cluster, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long)]
    pub topic: String,
    /// Partitions to move (repeat, or comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub partition: Vec<i32>,
    /// The broker that leads them from now on: one for all, or one per partition, in order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub to: Vec<i32>,
    /// Return once the moves are recorded, without waiting for the new leader.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Args, Debug)]
pub struct DrainArgs {
    /// Any broker of the cluster, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// The broker to empty.
    #[arg(long)]
    pub broker: i32,
    /// Return once the moves are recorded, without waiting for them.
    #[arg(long)]
    pub no_wait: bool,
}

type Moves = BTreeMap<String, Vec<(i32, i32)>>;

pub async fn reassign(args: ReassignArgs) -> anyhow::Result<()> {
    let targets = match args.to.as_slice() {
        [one] => vec![*one; args.partition.len()],
        many if many.len() == args.partition.len() => many.to_vec(),
        _ => bail!("--to names one broker, or one per --partition"),
    };
    let mut client = KafkaClient::connect(&args.bootstrap, CLIENT_ID).await?;
    let moves: Moves = BTreeMap::from([(
        args.topic.clone(),
        args.partition.iter().copied().zip(targets).collect(),
    )]);
    run(&mut client, moves, !args.no_wait).await
}

pub async fn drain(args: DrainArgs) -> anyhow::Result<()> {
    let mut client = KafkaClient::connect(&args.bootstrap, CLIENT_ID).await?;
    let metadata = metadata(&mut client).await?;
    let mut others: Vec<i32> = metadata
        .brokers
        .iter()
        .map(|b| b.node_id.0)
        .filter(|id| *id != args.broker)
        .collect();
    others.sort_unstable();
    if others.is_empty() {
        bail!(
            "broker {} is the only live broker: there is nowhere to move its partitions",
            args.broker
        );
    }
    // Each partition goes to the broker that leads the fewest so far.
    let mut load: BTreeMap<i32, usize> = others.iter().map(|id| (*id, 0)).collect();
    for t in &metadata.topics {
        for p in &t.partitions {
            if let Some(n) = load.get_mut(&p.leader_id.0) {
                *n += 1;
            }
        }
    }
    let mut moves: Moves = BTreeMap::new();
    for t in &metadata.topics {
        let Some(name) = &t.name else { continue };
        for p in t.partitions.iter().filter(|p| p.leader_id.0 == args.broker) {
            let (&target, n) = load.iter_mut().min_by_key(|(_, n)| **n).expect("others");
            *n += 1;
            moves
                .entry(name.0.to_string())
                .or_default()
                .push((p.partition_index, target));
        }
    }
    let count: usize = moves.values().map(Vec::len).sum();
    println!("broker {} leads {count} partitions", args.broker);
    if count == 0 {
        return Ok(());
    }
    run(&mut client, moves, !args.no_wait).await
}

async fn metadata(client: &mut KafkaClient) -> anyhow::Result<MetadataResponse> {
    // Metadata v12 with no topic list: every topic, internal ones included.
    client
        .send(12, &MetadataRequest::default().with_topics(None))
        .await
}

/// Sends the moves, reports each refusal, and with `wait` waits until every accepted move is
/// done: no longer listed as in progress, and led by its target.
async fn run(client: &mut KafkaClient, moves: Moves, wait: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(
            moves
                .iter()
                .map(|(topic, parts)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(p, to)| {
                                    ReassignablePartition::default()
                                        .with_partition_index(*p)
                                        .with_replicas(Some(vec![BrokerId(*to)]))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response = client.send(0, &request).await?;
    if response.error_code != 0 {
        bail!(
            "refused: error {} {:?}",
            response.error_code,
            response.error_message
        );
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for t in &response.responses {
        for p in &t.partitions {
            if p.error_code == 0 {
                let to = moves[t.name.0.as_str()]
                    .iter()
                    .find(|(part, _)| *part == p.partition_index)
                    .map(|(_, to)| *to)
                    .unwrap_or(-1);
                accepted.push((t.name.0.to_string(), p.partition_index, to));
            } else {
                refused += 1;
                eprintln!(
                    "{}-{}: error {} {}",
                    t.name.0,
                    p.partition_index,
                    p.error_code,
                    p.error_message.as_deref().unwrap_or("")
                );
            }
        }
    }
    println!("{} moves recorded, {refused} refused", accepted.len());
    if wait {
        let deadline = started + Duration::from_secs(WAIT_S_MAX);
        loop {
            let listed = client
                .send(
                    0,
                    &ListPartitionReassignmentsRequest::default().with_topics(None),
                )
                .await?;
            let metadata = metadata(client).await?;
            let leader = |topic: &str, partition: i32| {
                metadata
                    .topics
                    .iter()
                    .filter(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition_index == partition)
                    .map(|p| p.leader_id.0)
            };
            let pending = accepted
                .iter()
                .filter(|(t, p, to)| leader(t, *p) != Some(*to))
                .count();
            if listed.topics.is_empty() && pending == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("{pending} moves not done within {WAIT_S_MAX} s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!("done in {} ms", started.elapsed().as_millis());
    }
    if refused > 0 {
        bail!("{refused} moves refused");
    }
    Ok(())
}
