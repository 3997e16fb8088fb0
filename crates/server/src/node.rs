//! A running node: opens the metadata quorum, the WAL and the storage engine, registers the
//! broker, starts the listeners and background tasks, and shuts them down in order.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use strata_broker::{coordinator_runtime, retention, Broker, BrokerConfig};
use strata_meta::controller::SubmitError;
use strata_meta::liveness::{self, Lease};
use strata_meta::raft::Quorum;
use strata_meta::{Command, ControllerError, ControllerHandle};
use strata_storage::object::block_cache::BlockCacheConfig;
use strata_storage::wal::file::{FileWal, FileWalConfig};
use strata_storage::wal::object::{ObjectWal, ObjectWalConfig};
use strata_storage::wal::Wal;
use strata_storage::{Engine, EngineConfig, MetadataClient};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, WalKind};
use crate::{admin, controlled_shutdown, listener, store};

pub async fn run(
    config: Config,
    metrics: PrometheusHandle,
    cold: tokio::runtime::Handle,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let (host, port) = config.advertised()?;

    let quorum = open_quorum(&config).await?;
    let controller = ControllerHandle::new(quorum);
    let meta: Arc<dyn MetadataClient> = controller.clone();
    // Every node proposes its own id; the first one the quorum decides names the cluster.
    meta.submit(Command::InitCluster {
        cluster_id: proposed_cluster_id(&config)?,
    })
    .await?;
    let cluster_id = meta
        .image()
        .read()
        .cluster_id
        .clone()
        .context("the cluster has no id")?;
    let incarnation = now_ms();
    register(&meta, &config, &host, port, incarnation).await?;
    // A cluster broker acknowledges nothing until a heartbeat grants it a lease.
    let lease = Arc::new(match config.cluster {
        Some(_) => Lease::new(),
        None => Lease::unlimited(),
    });

    // Heartbeats start at once: opening the engine may take a while, and a broker that is
    // silent that long would be fenced during its own start.
    let (stop, stopped) = watch::channel(false);
    let mut heartbeats = config.cluster.as_ref().map(|cluster| {
        tokio::spawn(liveness::run_heartbeats(
            controller.clone(),
            config.node_id,
            incarnation,
            cluster.liveness,
            lease.clone(),
            stopped.clone(),
        ))
    });

    let store = store::open(config.object_store.as_deref(), &config.data_dir)?;
    let (wal, recovered): (Arc<dyn Wal>, _) = match &config.wal {
        WalKind::File(dir) => {
            strata_storage::wal::file::claim(dir, config.node_id)?;
            let (wal, recovered) = FileWal::open(FileWalConfig {
                dir: dir.clone(),
                segment_bytes: config.wal_segment_bytes,
            })?;
            (Arc::new(wal), recovered)
        }
        WalKind::Object => {
            let (wal, recovered) = ObjectWal::open(
                store.clone(),
                ObjectWalConfig {
                    prefix: wal_prefix(config.node_id),
                    window_ms: config.wal_object_window_ms,
                    window_bytes: config.wal_object_window_bytes,
                    put_timeout_ms: 10_000,
                    put_attempts_max: 5,
                },
            )
            .await?;
            (Arc::new(wal), recovered)
        }
    };
    let engine_config = EngineConfig {
        node_id: config.node_id,
        log_cache_bytes_max: config.log_cache_bytes,
        upload_interval_ms: config.upload_interval_ms,
        block_cache: BlockCacheConfig {
            cache_bytes_max: config.block_cache_bytes,
            ..EngineConfig::default().block_cache
        },
        object_gc_grace_ms: config.object_gc_grace_ms,
        gc_interval_ms: config.gc_interval_ms,
        lease: lease.clone(),
        ..EngineConfig::default()
    };
    let engine = Engine::open(engine_config, wal, recovered, store, meta.clone(), cold).await?;

    let broker = Broker::new(
        BrokerConfig {
            node_id: config.node_id,
            advertised_host: host,
            advertised_port: port,
            rack: config.rack.clone(),
            cluster_id,
            auto_create_topics: config.auto_create_topics,
            num_partitions: config.num_partitions,
            message_max_bytes: config.message_max_bytes,
            groups: config.groups.clone(),
            offsets_topic_partitions: config.offsets_topic_partitions,
            offsets_compaction_records_min: config.offsets_compaction_records,
            transactions: config.transactions.clone(),
            transaction_state_partitions: config.transaction_state_partitions,
            producer_id_expiration_ms: config.producer_id_expiration_ms,
            producer_state_snapshot_interval_bytes: config.producer_state_snapshot_interval_bytes,
            ..BrokerConfig::default()
        },
        engine.clone(),
        meta,
    );
    // Coordinator state is loaded before clients come, so sessions, expiry and transaction
    // timeouts run from the start, and markers owed from before the restart are written.
    broker.groups.start_if_present(&broker).await;
    broker.txns.start_if_present(&broker).await;

    let mut background = vec![
        tokio::spawn(engine.clone().run_uploader(stopped.clone())),
        tokio::spawn(engine.clone().run_gc(stopped.clone())),
        tokio::spawn(retention::run(
            broker.clone(),
            config.retention_check_interval_ms,
            stopped.clone(),
        )),
    ];
    if let Some(cluster) = &config.cluster {
        background.push(tokio::spawn(engine.clone().run_rescues(stopped.clone())));
        background.push(tokio::spawn(engine.clone().run_handovers(stopped.clone())));
        background.push(tokio::spawn(coordinator_runtime::run_follow(
            broker.clone(),
            stopped.clone(),
        )));
        if cluster.voter {
            background.push(tokio::spawn(liveness::run_sweep(
                controller.clone(),
                cluster.liveness,
                stopped.clone(),
            )));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !lease.valid() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "no heartbeat answered by the active controller within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (close, closed) = watch::channel(false);
    let admin_listener = TcpListener::bind(&config.admin_listen).await?;
    let admin = tokio::spawn(admin::run(
        admin_listener,
        metrics,
        engine.clone(),
        closed.clone(),
    ));
    let kafka_listener = TcpListener::bind(&config.listen).await?;
    tracing::info!(listen = %config.listen, advertise = %config.advertise, admin = %config.admin_listen,
        data_dir = %config.data_dir.display(), "strata is serving");
    let kafka = tokio::spawn(listener::run(
        broker.clone(),
        kafka_listener,
        config.max_connections,
        config.max_frame_bytes,
        closed,
    ));

    let fenced = async {
        match heartbeats.as_mut() {
            Some(task) => task.await.unwrap_or(false),
            None => std::future::pending().await,
        }
    };
    let fenced = tokio::select! {
        _ = shutdown_signal() => false,
        fenced = fenced => fenced,
    };
    if fenced {
        // Its partitions are someone else's now; it can rejoin only as a new incarnation.
        tracing::error!("the controller fenced this broker; stopping (restart it to rejoin)");
    } else if config
        .cluster
        .as_ref()
        .is_some_and(|c| c.controlled_shutdown)
    {
        controlled_shutdown::run(&broker.meta, config.node_id, incarnation).await;
    }
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    let _ = close.send(true);
    let _ = kafka.await;
    let _ = stop.send(true);
    for task in background {
        let _ = task.await;
    }
    tracing::info!("uploading what is in the WAL");
    engine.shutdown().await;
    let _ = admin.await;
    controller.quorum().shutdown().await?;
    tracing::info!("stopped");
    anyhow::ensure!(!fenced, "fenced by the controller");
    Ok(())
}

/// Registers this broker, with where its WAL lives for a rescuer. While a rescuer is still
/// replaying this broker's WAL from before, registration is refused: it waits for that.
async fn register(
    meta: &Arc<dyn MetadataClient>,
    config: &Config,
    host: &str,
    port: i32,
    incarnation: u64,
) -> anyhow::Result<()> {
    let wal = match &config.wal {
        WalKind::Object => format!("object:{}", wal_prefix(config.node_id)),
        WalKind::File(dir) => format!("file:{}", std::path::absolute(dir)?.display()),
    };
    let command = Command::RegisterBroker {
        node_id: config.node_id,
        host: host.to_string(),
        port,
        rack: config.rack.clone(),
        incarnation,
        wal: Some(wal),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        match meta.submit(command.clone()).await {
            Ok(_) => return Ok(()),
            Err(SubmitError::Controller(ControllerError::InvalidRequest(why)))
                if std::time::Instant::now() < deadline =>
            {
                tracing::info!(why, "waiting to register");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Where a broker's object WAL lives on the object store.
fn wal_prefix(node_id: i32) -> String {
    format!("wal/node-{node_id}")
}

/// The metadata quorum: a one-voter quorum of its own for a single node; in a cluster, a voter
/// or a follower of the voters `--controller-quorum` names.
async fn open_quorum(config: &Config) -> anyhow::Result<Quorum> {
    let dir = config.data_dir.join("meta");
    let node_id = u64::try_from(config.node_id)?;
    let Some(cluster) = &config.cluster else {
        return Quorum::open_single(&dir, node_id).await;
    };
    let listener = TcpListener::bind(&cluster.controller_listen)
        .await
        .with_context(|| format!("binding --controller-listen {}", cluster.controller_listen))?;
    if cluster.voter {
        Quorum::open_voter(&dir, node_id, cluster.quorum.clone(), listener).await
    } else {
        Quorum::open_follower(
            &dir,
            node_id,
            &cluster.controller_listen,
            cluster.quorum.clone(),
            listener,
        )
        .await
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The cluster id this node proposes, made once and kept in the data dir (where a single node
/// made before the id was a metadata record keeps its own).
fn proposed_cluster_id(config: &Config) -> anyhow::Result<String> {
    let path = config.data_dir.join("cluster.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_string());
    }
    // Kafka cluster ids are 22-character base64 UUIDs; any stable string works for clients.
    let id = format!(
        "strata-{:016x}",
        now_ms() ^ u64::from(std::process::id()) << 40
    );
    std::fs::write(&path, &id)?;
    Ok(id)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}
