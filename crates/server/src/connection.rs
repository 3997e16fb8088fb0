//! One client connection: frames in, responses out, in request order. Produce requests are
//! pipelined: each is sequenced (offsets assigned) before the next request is read, and their
//! durability waits overlap, so a client's pipelined batches share group commits. Every other
//! request first lets earlier ones finish, so it sees their effects. An unparsable frame, an
//! unknown API or an unsupported version closes the connection; nothing a client sends can
//! panic the broker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesOrdered, StreamExt};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use strata_broker::handlers::{self, api_versions, produce};
use strata_broker::{versions, Broker};
use strata_protocol::request::{decode_request, encode_response};
use strata_protocol::{DecodeError, FrameReader};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A limit on pipelined requests per connection. The object WAL holds each produce for its
/// window (250 ms), so a client's requests queue here: librdkafka with `linger.ms` 0 at 2,000
/// requests a second keeps 500 of them waiting, and a lower limit stops reading the socket and
/// adds its own wait. Their bytes are bounded by the log cache; this bounds their count.
const INFLIGHT_MAX: usize = 4096;

/// `(api, version, correlation id, body)` of a response to write; `None` for none (acks=0).
type Reply = Option<(ApiKey, i16, i32, ResponseKind)>;
/// A reply with the moment its request was read, for the request-time histogram.
type Timed = (Instant, Reply);
type Pending = Pin<Box<dyn Future<Output = Timed> + Send>>;

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
    let mut inflight: FuturesOrdered<Pending> = FuturesOrdered::new();
    loop {
        let frame = tokio::select! {
            biased;
            Some((read_at, reply)) = inflight.next(), if !inflight.is_empty() => {
                if write(&mut writer, &peer, read_at, reply).await.is_err() {
                    return;
                }
                continue;
            }
            // Cancel-safe: a partly read frame stays in the reader's buffer.
            frame = frames.read_frame(&mut reader), if inflight.len() < INFLIGHT_MAX => frame,
            _ = shutdown.changed() => break,
        };
        let read_at = Instant::now();
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "closing connection");
                break;
            }
        };
        let request = match decode_request(frame, versions::supported) {
            Ok(request) => request,
            Err(DecodeError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                let body = ResponseKind::ApiVersions(api_versions::unsupported());
                inflight.push_back(Box::pin(std::future::ready((
                    read_at,
                    Some((ApiKey::ApiVersions, 0, correlation_id, body)),
                ))));
                continue;
            }
            Err(e) => {
                tracing::info!(%peer, error = %e, "closing connection on a bad request");
                metrics::counter!("strata_bad_requests_total").increment(1);
                break;
            }
        };
        let (api_key, version, correlation_id) = (
            request.api_key,
            request.version,
            request.header.correlation_id,
        );
        if let RequestKind::Produce(body) = request.body {
            let done = produce::sequence(&broker, version, body).await;
            inflight.push_back(Box::pin(async move {
                let reply = done
                    .await
                    .map(|r| (api_key, version, correlation_id, ResponseKind::Produce(r)));
                (read_at, reply)
            }));
            continue;
        }
        // Anything else runs after what came before it on this connection has finished.
        while let Some((read_at, reply)) = inflight.next().await {
            if write(&mut writer, &peer, read_at, reply).await.is_err() {
                return;
            }
        }
        let reply = handlers::handle(&broker, request, &peer)
            .await
            .map(|body| (api_key, version, correlation_id, body));
        if write(&mut writer, &peer, read_at, reply).await.is_err() {
            return;
        }
    }
    // In-flight produces were acknowledged by the WAL or will be: answer them before closing.
    while let Some((read_at, reply)) = inflight.next().await {
        if write(&mut writer, &peer, read_at, reply).await.is_err() {
            return;
        }
    }
}

/// Writes a reply, and records how long its request took from being read to being answered
/// (Kafka's `TotalTimeMs`), per API.
async fn write(
    writer: &mut OwnedWriteHalf,
    peer: &str,
    read_at: Instant,
    reply: Reply,
) -> std::io::Result<()> {
    let Some((api_key, version, correlation_id, body)) = reply else {
        return Ok(());
    };
    match encode_response(api_key, version, correlation_id, &body) {
        Ok(bytes) => {
            writer.write_all(&bytes).await?;
            metrics::histogram!("strata_request_seconds", "api" => api_name(api_key))
                .record(read_at.elapsed().as_secs_f64());
            Ok(())
        }
        Err(e) => {
            tracing::error!(%peer, ?api_key, version, error = %e, "response failed to encode");
            Err(std::io::Error::other(e.to_string()))
        }
    }
}

/// The API's name as Kafka spells it (`Produce`, `Fetch`), for metric labels.
fn api_name(api_key: ApiKey) -> String {
    format!("{api_key:?}")
}
