//! Admin HTTP: `/metrics` in Prometheus text format and `/healthz` (503 once storage failed).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use strata_storage::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Clone)]
struct Admin {
    metrics: PrometheusHandle,
    engine: Arc<Engine>,
}

pub async fn run(
    listener: TcpListener,
    metrics: PrometheusHandle,
    engine: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .with_state(Admin { metrics, engine });
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "admin listener failed");
    }
}

async fn render_metrics(State(admin): State<Admin>) -> String {
    admin.metrics.render()
}

async fn healthz(State(admin): State<Admin>) -> (StatusCode, &'static str) {
    if admin.engine.is_failed() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage failed; restart to recover\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}
