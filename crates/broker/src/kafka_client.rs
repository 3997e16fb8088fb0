//! A minimal Kafka client for the `strata` CLI and for requests between brokers (transaction
//! markers): one connection, one request at a time, every message encoded and decoded by
//! `kafka-protocol`.

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A limit on a response this client accepts.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

pub struct KafkaClient {
    stream: TcpStream,
    correlation_id: i32,
    client_id: &'static str,
}

impl KafkaClient {
    /// Connects to `addr`; requests name themselves `client_id`.
    pub async fn connect(addr: &str, client_id: &'static str) -> anyhow::Result<KafkaClient> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(KafkaClient {
            stream,
            correlation_id: 0,
            client_id,
        })
    }

    /// Sends `body` at `version` and reads its response.
    pub async fn send<R: Request>(
        &mut self,
        version: i16,
        body: &R,
    ) -> anyhow::Result<R::Response> {
        let key =
            ApiKey::try_from(R::KEY).map_err(|_| anyhow::anyhow!("unknown API {}", R::KEY))?;
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, key.request_header_version(version))?;
        body.encode(&mut buf, version)?;
        let mut frame = Vec::with_capacity(buf.len() + 4);
        frame.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame).await?;

        let length = self.stream.read_u32().await? as usize;
        if length > RESPONSE_BYTES_MAX {
            bail!("a {length}-byte response is more than this client accepts");
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        let mut body = bytes::Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))?;
        if header.correlation_id != self.correlation_id {
            bail!("a response to another request");
        }
        let response = R::Response::decode(&mut body, version)?;
        if body.has_remaining() {
            bail!("{} bytes left after the response", body.remaining());
        }
        Ok(response)
    }
}
