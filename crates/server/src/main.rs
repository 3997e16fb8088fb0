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
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Commands, Config};

#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

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
    let metrics = PrometheusBuilder::new().install_recorder()?;
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
