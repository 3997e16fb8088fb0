//! One client connection: frames in, one request at a time (as Kafka does, so a client's
//! requests are applied in the order sent), responses out. An unparsable frame, an unknown API
//! or an unsupported version closes the connection; nothing a client sends can panic the broker.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, ResponseKind};
use strata_broker::handlers::{self, api_versions};
use strata_broker::{versions, Broker};
use strata_protocol::request::{decode_request, encode_response};
use strata_protocol::{DecodeError, FrameReader};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

pub async fn serve(
    broker: Arc<Broker>,
    socket: TcpStream,
    frame_bytes_max: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = socket
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = socket.set_nodelay(true);
    let (mut reader, mut writer) = socket.into_split();
    let mut frames = FrameReader::new(frame_bytes_max);
    loop {
        let frame = tokio::select! {
            frame = frames.read_frame(&mut reader) => frame,
            _ = shutdown.changed() => return,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "closing connection");
                return;
            }
        };
        let response = match decode_request(frame, versions::supported) {
            Ok(request) => {
                let (api_key, version, correlation_id) = (
                    request.api_key,
                    request.version,
                    request.header.correlation_id,
                );
                handlers::handle(&broker, request)
                    .await
                    .map(|body| (api_key, version, correlation_id, body))
            }
            Err(DecodeError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => Some((
                ApiKey::ApiVersions,
                0,
                correlation_id,
                ResponseKind::ApiVersions(api_versions::unsupported()),
            )),
            Err(e) => {
                tracing::info!(%peer, error = %e, "closing connection on a bad request");
                metrics::counter!("strata_bad_requests_total").increment(1);
                return;
            }
        };
        let Some((api_key, version, correlation_id, body)) = response else {
            continue;
        };
        let bytes = match encode_response(api_key, version, correlation_id, &body) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(%peer, ?api_key, version, error = %e, "response failed to encode");
                return;
            }
        };
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
}
