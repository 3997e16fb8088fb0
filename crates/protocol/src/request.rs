//! A frame becomes a typed request: header, then body, each decoded by `kafka-protocol`. Every
//! decode failure is a typed [`DecodeError`] that tells the connection what to do.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Kafka closes the connection on an API key it does not know.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// ApiVersions answers this with `UNSUPPORTED_VERSION`; other APIs close the connection.
    #[error("{api_key:?} version {version} is not supported")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        source: anyhow::Error,
    },
}

/// Decodes `frame`; `supported` names the versions this broker serves for an API key.
pub fn decode_request(
    mut frame: Bytes,
    supported: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Result<Request, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::Malformed {
            what: "request header",
            source: anyhow::anyhow!("{} bytes", frame.len()),
        });
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApiKey(raw_key))?;
    let Some((min, max)) = supported(api_key) else {
        return Err(DecodeError::UnknownApiKey(raw_key));
    };
    if version < min || version > max {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|source| DecodeError::Malformed {
            what: "request header",
            source,
        })?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(|source| {
        DecodeError::Malformed {
            what: "request body",
            source,
        }
    })?;
    // Kafka reads the fields it knows and ignores what follows; clients rely on that.
    Ok(Request {
        api_key,
        version,
        header,
        body,
    })
}

/// Encodes a response frame (length prefix included) for `api_key` at `version`.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))?;
    body.encode(&mut buf, version)?;
    let length = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&length.to_be_bytes());
    Ok(buf.freeze())
}
