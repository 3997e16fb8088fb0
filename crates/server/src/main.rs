//! The `strata` binary: parses configuration and runs a node.

mod admin;
mod alloc;
mod cli;
mod config;
mod connection;
mod controlled_shutdown;
mod listener;
mod local_store;
mod node;
mod store;

use clap::Parser;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Commands, Config};

#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

/// Bucket bounds of every `*_seconds` histogram: 50 µs to 10 s, fine where a WAL sync and a
/// produce answer live (under a few milliseconds).
const SECONDS_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A small runtime for the CLI commands that talk to a running cluster.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STRATA_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn")),
        )
        .init();
    let settings = match cli.command {
        Commands::Serve(settings) => settings,
        Commands::Reassign(args) => return client_runtime()?.block_on(cli::reassign(args)),
        Commands::Drain(args) => return client_runtime()?.block_on(cli::drain(args)),
    };
    let config = Config::resolve(*settings)?;
    // Timings are histograms, not summaries: buckets add up across brokers and between two
    // scrapes, where a summary's quantiles cover only its own rolling window.
    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .install_recorder()?;
    // Cold reads get their own threads so a catching-up consumer never slows producers.
    let cold = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("strata-cold")
        .enable_all()
        .build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("strata")
        .enable_all()
        .build()?;
    let result = runtime.block_on(node::run(config, metrics, cold.handle().clone()));
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    cold.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Err(e) = &result {
        tracing::error!(error = %e, "strata stopped on an error");
    }
    result
}
