//! Configuration: one schema read from flags, `STRATA_*` environment variables and a TOML file,
//! in that order of precedence, then defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use strata_coordinator::txn::TxnConfig;
use strata_coordinator::{GroupConfig, MigrationPolicy};
use strata_meta::liveness::LivenessConfig;

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "A Kafka-compatible broker whose log lives on shared storage"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Runs a node (by default a single-node broker and controller).
    Serve(Box<Settings>),
    /// Moves partitions to another broker (Kafka's AlterPartitionReassignments).
    Reassign(crate::cli::ReassignArgs),
    /// Moves every partition a broker leads to the other brokers.
    Drain(crate::cli::DrainArgs),
}

/// Every setting, each optional so that flags, environment and file can be layered.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML file with any of these settings (dashes become underscores).
    #[arg(long, env = "STRATA_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Kafka listener. Default 127.0.0.1:9092.
    #[arg(long, env = "STRATA_LISTEN")]
    pub listen: Option<String>,
    /// Address clients are told to connect to. Default: the listener's.
    #[arg(long, env = "STRATA_ADVERTISE")]
    pub advertise: Option<String>,
    /// Where the file WAL, the local object store and the metadata log live. Default ./strata-data.
    #[arg(long, env = "STRATA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin HTTP listener (/metrics, /healthz). Default 127.0.0.1:9099.
    #[arg(long, env = "STRATA_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// `s3://BUCKET?endpoint=URL&region=R` or `file:///PATH`. Default: a directory in the data dir.
    #[arg(long, env = "STRATA_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// `file`, `file:PATH` or `object`. Default file (under the data dir).
    #[arg(long, env = "STRATA_WAL")]
    pub wal: Option<String>,
    /// Object WAL: longest wait before a batch is written. Default 250.
    #[arg(long, env = "STRATA_WAL_OBJECT_WINDOW_MS")]
    pub wal_object_window_ms: Option<u64>,
    /// Object WAL: a batch is written once it holds this much. Default 8 MiB.
    #[arg(long, env = "STRATA_WAL_OBJECT_WINDOW_BYTES")]
    pub wal_object_window_bytes: Option<usize>,
    /// File WAL segment size. Default 64 MiB.
    #[arg(long, env = "STRATA_WAL_SEGMENT_BYTES")]
    pub wal_segment_bytes: Option<u64>,
    #[arg(long, env = "STRATA_NODE_ID")]
    pub node_id: Option<i32>,
    #[arg(long, env = "STRATA_RACK")]
    pub rack: Option<String>,
    /// `broker,controller` (a broker that votes in the metadata quorum) or `broker` (one that
    /// follows it). Default broker,controller.
    #[arg(long, env = "STRATA_ROLES")]
    pub roles: Option<String>,
    /// Where this node answers the metadata quorum's traffic. Default: its entry in
    /// --controller-quorum (required for a node that does not vote).
    #[arg(long, env = "STRATA_CONTROLLER_LISTEN")]
    pub controller_listen: Option<String>,
    /// The voters, `ID@HOST:PORT,...`, the same list on every node. Default: none, a single
    /// node that is its own one-voter quorum.
    #[arg(long, env = "STRATA_CONTROLLER_QUORUM")]
    pub controller_quorum: Option<String>,
    /// Kafka's broker.heartbeat.interval.ms (cluster mode). Default 250.
    #[arg(long, env = "STRATA_BROKER_HEARTBEAT_INTERVAL_MS")]
    pub broker_heartbeat_interval_ms: Option<u64>,
    /// Kafka's broker.session.timeout.ms: a broker not heard from for this long (plus a
    /// margin) is fenced and its partitions fail over (cluster mode). Default 2000.
    #[arg(long, env = "STRATA_BROKER_SESSION_TIMEOUT_MS")]
    pub broker_session_timeout_ms: Option<u64>,
    /// Kafka's controlled.shutdown.enable: on SIGTERM a broker in a cluster hands every
    /// partition it leads to the others before it stops. Default true.
    #[arg(long, env = "STRATA_CONTROLLED_SHUTDOWN_ENABLE")]
    pub controlled_shutdown_enable: Option<bool>,
    /// Kafka's auto.create.topics.enable. Default true.
    #[arg(long, env = "STRATA_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Kafka's num.partitions, for auto-created topics. Default 1.
    #[arg(long, env = "STRATA_NUM_PARTITIONS")]
    pub num_partitions: Option<i32>,
    /// Kafka's message.max.bytes. Default 1048588.
    #[arg(long, env = "STRATA_MESSAGE_MAX_BYTES")]
    pub message_max_bytes: Option<usize>,
    /// Kafka's socket.request.max.bytes. Default 100 MiB.
    #[arg(long, env = "STRATA_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Kafka's max.connections. Default 10000.
    #[arg(long, env = "STRATA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// How often cached WAL data is uploaded to objects. Default 5000.
    #[arg(long, env = "STRATA_UPLOAD_INTERVAL_MS")]
    pub upload_interval_ms: Option<u64>,
    /// Log cache limit. Default 512 MiB.
    #[arg(long, env = "STRATA_LOG_CACHE_BYTES")]
    pub log_cache_bytes: Option<usize>,
    /// Block cache limit for cold reads. Default 256 MiB.
    #[arg(long, env = "STRATA_BLOCK_CACHE_BYTES")]
    pub block_cache_bytes: Option<u64>,
    /// Kafka's log.retention.check.interval.ms. Default 300000.
    #[arg(long, env = "STRATA_RETENTION_CHECK_INTERVAL_MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// How long an unreferenced object lives before it is deleted. Default 60000.
    #[arg(long, env = "STRATA_OBJECT_GC_GRACE_MS")]
    pub object_gc_grace_ms: Option<u64>,
    /// How often object GC runs. Default 30000.
    #[arg(long, env = "STRATA_GC_INTERVAL_MS")]
    pub gc_interval_ms: Option<u64>,
    /// Kafka's group.initial.rebalance.delay.ms. Default 3000.
    #[arg(long, env = "STRATA_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Kafka's group.min.session.timeout.ms. Default 6000.
    #[arg(long, env = "STRATA_GROUP_MIN_SESSION_TIMEOUT_MS")]
    pub group_min_session_timeout_ms: Option<i32>,
    /// Kafka's group.max.session.timeout.ms. Default 1800000.
    #[arg(long, env = "STRATA_GROUP_MAX_SESSION_TIMEOUT_MS")]
    pub group_max_session_timeout_ms: Option<i32>,
    /// Kafka's group.max.size. Default unlimited.
    #[arg(long, env = "STRATA_GROUP_MAX_SIZE")]
    pub group_max_size: Option<usize>,
    /// Kafka's group.consumer.session.timeout.ms (KIP-848 groups). Default 45000.
    #[arg(long, env = "STRATA_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    pub group_consumer_session_timeout_ms: Option<i32>,
    /// Kafka's group.consumer.heartbeat.interval.ms (KIP-848 groups). Default 5000.
    #[arg(long, env = "STRATA_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    pub group_consumer_heartbeat_interval_ms: Option<i32>,
    /// Kafka's group.consumer.migration.policy: which live groups change kind when a member
    /// of the other protocol joins (disabled, upgrade, downgrade, bidirectional). Default
    /// bidirectional.
    #[arg(long, env = "STRATA_GROUP_CONSUMER_MIGRATION_POLICY")]
    pub group_consumer_migration_policy: Option<MigrationPolicy>,
    /// Kafka's offsets.topic.num.partitions. Default 50.
    #[arg(long, env = "STRATA_OFFSETS_TOPIC_NUM_PARTITIONS")]
    pub offsets_topic_num_partitions: Option<i32>,
    /// Kafka's offsets.retention.minutes. Default 10080 (7 days).
    #[arg(long, env = "STRATA_OFFSETS_RETENTION_MINUTES")]
    pub offsets_retention_minutes: Option<u64>,
    /// Kafka's offsets.retention.check.interval.ms. Default 600000.
    #[arg(long, env = "STRATA_OFFSETS_RETENTION_CHECK_INTERVAL_MS")]
    pub offsets_retention_check_interval_ms: Option<u64>,
    /// Records written to a __consumer_offsets partition before it is compacted. Default 10000.
    #[arg(long, env = "STRATA_OFFSETS_COMPACTION_RECORDS")]
    pub offsets_compaction_records: Option<usize>,
    /// Kafka's transaction.state.log.num.partitions. Default 50.
    #[arg(long, env = "STRATA_TRANSACTION_STATE_LOG_NUM_PARTITIONS")]
    pub transaction_state_log_num_partitions: Option<i32>,
    /// Kafka's transaction.max.timeout.ms: the longest transaction timeout a producer may ask
    /// for. Default 900000.
    #[arg(long, env = "STRATA_TRANSACTION_MAX_TIMEOUT_MS")]
    pub transaction_max_timeout_ms: Option<i32>,
    /// Kafka's transaction.abort.timed.out.transaction.cleanup.interval.ms. Default 10000.
    #[arg(
        long,
        env = "STRATA_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS"
    )]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<u64>,
    /// Kafka's producer.id.expiration.ms: a partition forgets an idle producer's sequences
    /// after this long. Default 86400000 (1 day).
    #[arg(long, env = "STRATA_PRODUCER_ID_EXPIRATION_MS")]
    pub producer_id_expiration_ms: Option<i64>,
    /// A partition snapshots its producer state after this many bytes of producer batches, so
    /// that a broker opening it replays at most this much. Default 67108864 (64 MiB).
    #[arg(long, env = "STRATA_PRODUCER_STATE_SNAPSHOT_INTERVAL_BYTES")]
    pub producer_state_snapshot_interval_bytes: Option<u64>,
    /// Kafka's transactional.id.expiration.ms. Default 604800000 (7 days).
    #[arg(long, env = "STRATA_TRANSACTIONAL_ID_EXPIRATION_MS")]
    pub transactional_id_expiration_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalKind {
    File(PathBuf),
    Object,
}

/// How a node takes part in a cluster's metadata quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Votes in the quorum (`controller` role) or only follows it.
    pub voter: bool,
    pub controller_listen: String,
    /// Voter node id -> controller address.
    pub quorum: BTreeMap<u64, String>,
    pub liveness: LivenessConfig,
    /// Hand partitions over before stopping (`controlled.shutdown.enable`).
    pub controlled_shutdown: bool,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: String,
    pub advertise: String,
    pub data_dir: PathBuf,
    pub admin_listen: String,
    pub object_store: Option<String>,
    pub wal: WalKind,
    pub wal_object_window_ms: u64,
    pub wal_object_window_bytes: usize,
    pub wal_segment_bytes: u64,
    pub node_id: i32,
    pub rack: Option<String>,
    /// `None`: a single node, its own one-voter quorum.
    pub cluster: Option<ClusterConfig>,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub message_max_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    pub upload_interval_ms: u64,
    pub log_cache_bytes: usize,
    pub block_cache_bytes: u64,
    pub retention_check_interval_ms: u64,
    pub object_gc_grace_ms: u64,
    pub gc_interval_ms: u64,
    pub groups: GroupConfig,
    pub offsets_topic_partitions: i32,
    pub offsets_compaction_records: usize,
    pub transactions: TxnConfig,
    pub transaction_state_partitions: i32,
    pub producer_id_expiration_ms: i64,
    pub producer_state_snapshot_interval_bytes: u64,
}

impl Config {
    /// Layers flags and environment (`cli`) over the TOML file, over defaults.
    pub fn resolve(cli: Settings) -> anyhow::Result<Config> {
        let file: Settings = match &cli.config {
            Some(path) => toml::from_str(&std::fs::read_to_string(path)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            None => Settings::default(),
        };
        let groups = groups(&cli, &file);
        let transactions = transactions(&cli, &file);
        let listen = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:9092".into());
        let data_dir = cli
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| "strata-data".into());
        let wal = match cli.wal.or(file.wal).as_deref() {
            None | Some("file") => WalKind::File(data_dir.join("wal")),
            Some("object") => WalKind::Object,
            Some(other) => match other.strip_prefix("file:") {
                Some(path) => WalKind::File(path.into()),
                None => anyhow::bail!("--wal must be file, file:PATH or object, not {other}"),
            },
        };
        let node_id = cli.node_id.or(file.node_id).unwrap_or(1);
        let liveness = LivenessConfig {
            heartbeat_interval_ms: cli
                .broker_heartbeat_interval_ms
                .or(file.broker_heartbeat_interval_ms)
                .unwrap_or(250),
            session_timeout_ms: cli
                .broker_session_timeout_ms
                .or(file.broker_session_timeout_ms)
                .unwrap_or(2_000),
        };
        anyhow::ensure!(
            liveness.heartbeat_interval_ms >= 10
                && liveness.session_timeout_ms >= 2 * liveness.heartbeat_interval_ms,
            "broker-session-timeout-ms must be at least twice broker-heartbeat-interval-ms (at least 10)"
        );
        let cluster = cluster(
            node_id,
            cli.roles.or(file.roles).as_deref(),
            cli.controller_listen.or(file.controller_listen),
            cli.controller_quorum.or(file.controller_quorum).as_deref(),
        )?
        .map(|c| ClusterConfig {
            liveness,
            controlled_shutdown: cli
                .controlled_shutdown_enable
                .or(file.controlled_shutdown_enable)
                .unwrap_or(true),
            ..c
        });
        let config = Config {
            advertise: cli
                .advertise
                .or(file.advertise)
                .unwrap_or_else(|| listen.clone()),
            listen,
            admin_listen: cli
                .admin_listen
                .or(file.admin_listen)
                .unwrap_or_else(|| "127.0.0.1:9099".into()),
            object_store: cli.object_store.or(file.object_store),
            wal,
            wal_object_window_ms: cli
                .wal_object_window_ms
                .or(file.wal_object_window_ms)
                .unwrap_or(250),
            wal_object_window_bytes: cli
                .wal_object_window_bytes
                .or(file.wal_object_window_bytes)
                .unwrap_or(8 << 20),
            wal_segment_bytes: cli
                .wal_segment_bytes
                .or(file.wal_segment_bytes)
                .unwrap_or(64 << 20),
            node_id,
            rack: cli.rack.or(file.rack),
            cluster,
            auto_create_topics: cli
                .auto_create_topics
                .or(file.auto_create_topics)
                .unwrap_or(true),
            num_partitions: cli.num_partitions.or(file.num_partitions).unwrap_or(1),
            message_max_bytes: cli
                .message_max_bytes
                .or(file.message_max_bytes)
                .unwrap_or(1_048_588),
            max_frame_bytes: cli
                .max_frame_bytes
                .or(file.max_frame_bytes)
                .unwrap_or(100 << 20),
            max_connections: cli
                .max_connections
                .or(file.max_connections)
                .unwrap_or(10_000),
            upload_interval_ms: cli
                .upload_interval_ms
                .or(file.upload_interval_ms)
                .unwrap_or(5_000),
            log_cache_bytes: cli
                .log_cache_bytes
                .or(file.log_cache_bytes)
                .unwrap_or(512 << 20),
            block_cache_bytes: cli
                .block_cache_bytes
                .or(file.block_cache_bytes)
                .unwrap_or(256 << 20),
            retention_check_interval_ms: cli
                .retention_check_interval_ms
                .or(file.retention_check_interval_ms)
                .unwrap_or(300_000),
            object_gc_grace_ms: cli
                .object_gc_grace_ms
                .or(file.object_gc_grace_ms)
                .unwrap_or(60_000),
            gc_interval_ms: cli.gc_interval_ms.or(file.gc_interval_ms).unwrap_or(30_000),
            groups,
            offsets_topic_partitions: cli
                .offsets_topic_num_partitions
                .or(file.offsets_topic_num_partitions)
                .unwrap_or(50),
            offsets_compaction_records: cli
                .offsets_compaction_records
                .or(file.offsets_compaction_records)
                .unwrap_or(10_000),
            transactions,
            producer_id_expiration_ms: cli
                .producer_id_expiration_ms
                .or(file.producer_id_expiration_ms)
                .unwrap_or(86_400_000),
            producer_state_snapshot_interval_bytes: cli
                .producer_state_snapshot_interval_bytes
                .or(file.producer_state_snapshot_interval_bytes)
                .unwrap_or(64 << 20),
            transaction_state_partitions: cli
                .transaction_state_log_num_partitions
                .or(file.transaction_state_log_num_partitions)
                .unwrap_or(50),
            data_dir,
        };
        anyhow::ensure!(
            config.producer_id_expiration_ms >= 1,
            "producer-id-expiration-ms must be at least 1"
        );
        anyhow::ensure!(
            config.producer_state_snapshot_interval_bytes >= 1,
            "producer-state-snapshot-interval-bytes must be at least 1"
        );
        anyhow::ensure!(
            config.transaction_state_partitions >= 1,
            "transaction-state-log-num-partitions must be at least 1"
        );
        anyhow::ensure!(
            config.transactions.max_timeout_ms >= 1,
            "transaction-max-timeout-ms must be at least 1"
        );
        anyhow::ensure!(
            config.transactions.abort_check_interval_ms >= 1,
            "transaction-abort-timed-out-transaction-cleanup-interval-ms must be at least 1"
        );
        anyhow::ensure!(
            config.offsets_topic_partitions >= 1,
            "offsets-topic-num-partitions must be at least 1"
        );
        anyhow::ensure!(
            config.groups.min_session_timeout_ms <= config.groups.max_session_timeout_ms,
            "group-min-session-timeout-ms must not exceed group-max-session-timeout-ms"
        );
        anyhow::ensure!(
            config.num_partitions >= 1,
            "num-partitions must be at least 1"
        );
        anyhow::ensure!(
            config.max_frame_bytes >= 1024,
            "max-frame-bytes must be at least 1024"
        );
        anyhow::ensure!(
            config.max_connections >= 1,
            "max-connections must be at least 1"
        );
        Ok(config)
    }

    /// `(host, port)` clients are told to connect to.
    pub fn advertised(&self) -> anyhow::Result<(String, i32)> {
        let (host, port) = self.advertise.rsplit_once(':').ok_or_else(|| {
            anyhow::anyhow!("--advertise must be HOST:PORT, not {}", self.advertise)
        })?;
        Ok((host.trim_matches(['[', ']']).to_string(), port.parse()?))
    }
}

/// The node's part in a cluster, from `--roles`, `--controller-listen` and
/// `--controller-quorum`; `None` for a single node.
fn cluster(
    node_id: i32,
    roles: Option<&str>,
    listen: Option<String>,
    quorum: Option<&str>,
) -> anyhow::Result<Option<ClusterConfig>> {
    let mut roles: Vec<&str> = roles
        .unwrap_or("broker,controller")
        .split(',')
        .map(str::trim)
        .collect();
    roles.sort_unstable();
    let voter = match roles.as_slice() {
        ["broker", "controller"] => true,
        ["broker"] => false,
        _ => anyhow::bail!("--roles must be broker,controller or broker, not {roles:?}"),
    };
    let Some(quorum) = quorum else {
        anyhow::ensure!(
            voter,
            "a node with --roles broker needs --controller-quorum to follow"
        );
        return Ok(None);
    };
    let mut voters = BTreeMap::new();
    for entry in quorum.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry.split_once('@').ok_or_else(|| {
            anyhow::anyhow!("--controller-quorum entry {entry} is not ID@HOST:PORT")
        })?;
        let id: u64 = id
            .parse()
            .map_err(|_| anyhow::anyhow!("--controller-quorum entry {entry}: bad node id"))?;
        anyhow::ensure!(
            addr.contains(':'),
            "--controller-quorum entry {entry}: address must be HOST:PORT"
        );
        anyhow::ensure!(
            voters.insert(id, addr.to_string()).is_none(),
            "--controller-quorum names node {id} twice"
        );
    }
    anyhow::ensure!(!voters.is_empty(), "--controller-quorum names no voters");
    let own = u64::try_from(node_id).ok().and_then(|id| voters.get(&id));
    anyhow::ensure!(
        own.is_some() == voter,
        "node {node_id}: a voter must be in --controller-quorum and a broker-only node must not be"
    );
    let controller_listen = match (listen, own) {
        (Some(listen), _) => listen,
        (None, Some(own)) => own.clone(),
        (None, None) => anyhow::bail!("a node with --roles broker needs --controller-listen"),
    };
    Ok(Some(ClusterConfig {
        voter,
        controller_listen,
        quorum: voters,
        // Replaced by the configured values in `resolve`.
        liveness: LivenessConfig {
            heartbeat_interval_ms: 250,
            session_timeout_ms: 2_000,
        },
        controlled_shutdown: true,
    }))
}

/// The transaction coordinator's settings, each layered like the rest.
fn transactions(cli: &Settings, file: &Settings) -> TxnConfig {
    let d = TxnConfig::default();
    TxnConfig {
        max_timeout_ms: cli
            .transaction_max_timeout_ms
            .or(file.transaction_max_timeout_ms)
            .unwrap_or(d.max_timeout_ms),
        abort_check_interval_ms: cli
            .transaction_abort_timed_out_transaction_cleanup_interval_ms
            .or(file.transaction_abort_timed_out_transaction_cleanup_interval_ms)
            .unwrap_or(d.abort_check_interval_ms),
        id_expiration_ms: cli
            .transactional_id_expiration_ms
            .or(file.transactional_id_expiration_ms)
            .unwrap_or(d.id_expiration_ms),
    }
}

/// The group coordinator's settings, each layered like the rest.
fn groups(cli: &Settings, file: &Settings) -> GroupConfig {
    let d = GroupConfig::default();
    GroupConfig {
        initial_rebalance_delay_ms: cli
            .group_initial_rebalance_delay_ms
            .or(file.group_initial_rebalance_delay_ms)
            .unwrap_or(d.initial_rebalance_delay_ms),
        min_session_timeout_ms: cli
            .group_min_session_timeout_ms
            .or(file.group_min_session_timeout_ms)
            .unwrap_or(d.min_session_timeout_ms),
        max_session_timeout_ms: cli
            .group_max_session_timeout_ms
            .or(file.group_max_session_timeout_ms)
            .unwrap_or(d.max_session_timeout_ms),
        max_size: cli
            .group_max_size
            .or(file.group_max_size)
            .unwrap_or(d.max_size),
        consumer_session_timeout_ms: cli
            .group_consumer_session_timeout_ms
            .or(file.group_consumer_session_timeout_ms)
            .unwrap_or(d.consumer_session_timeout_ms),
        consumer_heartbeat_interval_ms: cli
            .group_consumer_heartbeat_interval_ms
            .or(file.group_consumer_heartbeat_interval_ms)
            .unwrap_or(d.consumer_heartbeat_interval_ms),
        migration_policy: cli
            .group_consumer_migration_policy
            .or(file.group_consumer_migration_policy)
            .unwrap_or(d.migration_policy),
        offsets_retention_ms: cli
            .offsets_retention_minutes
            .or(file.offsets_retention_minutes)
            .map_or(d.offsets_retention_ms, |m| m * 60_000),
        offsets_retention_check_interval_ms: cli
            .offsets_retention_check_interval_ms
            .or(file.offsets_retention_check_interval_ms)
            .unwrap_or(d.offsets_retention_check_interval_ms),
        ..d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nnum_partitions = 3\nwal = \"object\"\n",
        )
        .unwrap();
        let cli = Settings {
            config: Some(path),
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let c = Config::resolve(cli).unwrap();
        assert_eq!(c.listen, "127.0.0.1:2");
        assert_eq!(c.advertise, "127.0.0.1:2");
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.wal, WalKind::Object);
        assert_eq!(c.admin_listen, "127.0.0.1:9099");
        assert_eq!(c.cluster, None);
        assert!(Config::resolve(Settings {
            wal: Some("disk".into()),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn a_cluster_node_names_its_roles_and_the_voters() {
        let quorum = Some("1@127.0.0.1:9193, 2@127.0.0.1:9293,3@127.0.0.1:9393");
        let voter = cluster(2, None, None, quorum).unwrap().unwrap();
        assert!(voter.voter);
        assert_eq!(voter.controller_listen, "127.0.0.1:9293");
        assert_eq!(voter.quorum.len(), 3);
        let follower = cluster(4, Some("broker"), Some("127.0.0.1:9493".into()), quorum)
            .unwrap()
            .unwrap();
        assert!(!follower.voter);
        assert_eq!(follower.controller_listen, "127.0.0.1:9493");
        // A voter outside the list, a follower inside it, no listener, bad entries.
        assert!(cluster(4, None, None, quorum).is_err());
        assert!(cluster(1, Some("broker"), Some("h:1".into()), quorum).is_err());
        assert!(cluster(4, Some("broker"), None, quorum).is_err());
        assert!(cluster(4, Some("broker"), None, None).is_err());
        assert!(cluster(1, Some("controller"), None, quorum).is_err());
        assert!(cluster(1, None, None, Some("1@h:1,1@h:2")).is_err());
        assert!(cluster(1, None, None, Some("x@h:1")).is_err());
        assert_eq!(cluster(1, None, None, None).unwrap(), None);
    }
}
