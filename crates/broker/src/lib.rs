//! Strata's Kafka layer: the broker context that handlers share, the APIs it serves and their
//! versions, and one handler module per Kafka API.

pub mod acl;
pub mod coordinator_runtime;
pub mod errors;
pub mod fetch_session;
pub mod groups;
pub mod handlers;
pub mod kafka_client;
pub mod leader_hint;
pub mod peers;
pub mod producer_snapshot;
pub mod producer_state;
pub mod producers;
pub mod records;
pub mod retention;
pub mod timestamps;
pub mod topics;
pub mod transactions;
pub mod versions;

use std::sync::Arc;

use strata_coordinator::txn::TxnConfig;
use strata_coordinator::GroupConfig;
use strata_meta::NodeId;
use strata_storage::{Engine, MetadataClient};

/// Broker-wide settings, with Kafka's names in the comments.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub node_id: NodeId,
    /// Host and port clients are told to connect to (`advertised.listeners`).
    pub advertised_host: String,
    pub advertised_port: i32,
    pub rack: Option<String>,
    pub cluster_id: String,
    /// `auto.create.topics.enable`
    pub auto_create_topics: bool,
    /// `num.partitions`
    pub num_partitions: i32,
    /// `message.max.bytes`: the default of a topic's `max.message.bytes`.
    pub message_max_bytes: usize,
    /// A limit on how long a fetch may wait, whatever the client asks.
    pub fetch_wait_ms_max: u64,
    /// `max.incremental.fetch.session.cache.slots`
    pub fetch_sessions_max: usize,
    /// Group coordinator settings (`group.*`, `offsets.*`).
    pub groups: GroupConfig,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_partitions: i32,
    /// Records written to a `__consumer_offsets` partition before it is compacted.
    pub offsets_compaction_records_min: usize,
    /// Transaction coordinator settings (`transaction.*`).
    pub transactions: TxnConfig,
    /// `transaction.state.log.num.partitions`
    pub transaction_state_partitions: i32,
    /// `producer.id.expiration.ms`
    pub producer_id_expiration_ms: i64,
    /// Bytes of producer batches between two snapshots of a partition's producer state.
    pub producer_state_snapshot_interval_bytes: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            rack: None,
            cluster_id: "strata-cluster".into(),
            auto_create_topics: true,
            num_partitions: 1,
            message_max_bytes: 1_048_588,
            fetch_wait_ms_max: 30_000,
            fetch_sessions_max: 1_000,
            groups: GroupConfig::default(),
            offsets_topic_partitions: 50,
            offsets_compaction_records_min: 10_000,
            transactions: TxnConfig::default(),
            transaction_state_partitions: 50,
            producer_id_expiration_ms: 86_400_000,
            producer_state_snapshot_interval_bytes: 64 << 20,
        }
    }
}

/// What every handler sees.
pub struct Broker {
    pub config: BrokerConfig,
    pub engine: Arc<Engine>,
    pub meta: Arc<dyn MetadataClient>,
    pub fetch_sessions: fetch_session::FetchSessions,
    pub groups: groups::GroupCoordinator,
    pub producers: producers::Producers,
    pub txns: transactions::TxnCoordinator,
    pub peers: peers::Peers,
}

impl Broker {
    pub fn new(
        config: BrokerConfig,
        engine: Arc<Engine>,
        meta: Arc<dyn MetadataClient>,
    ) -> Arc<Broker> {
        let fetch_sessions = fetch_session::FetchSessions::new(config.fetch_sessions_max);
        let groups = groups::GroupCoordinator::new(
            config.groups.clone(),
            config.offsets_topic_partitions,
            config.offsets_compaction_records_min,
        );
        let producers = producers::Producers::new(
            config.producer_id_expiration_ms,
            config.producer_state_snapshot_interval_bytes,
            meta.image().clone(),
        );
        Arc::new_cyclic(|weak| Broker {
            txns: transactions::TxnCoordinator::new(
                config.transactions.clone(),
                config.transaction_state_partitions,
                config.offsets_compaction_records_min,
                weak.clone(),
            ),
            config,
            engine,
            meta,
            fetch_sessions,
            groups,
            producers,
            peers: peers::Peers::default(),
        })
    }
}
