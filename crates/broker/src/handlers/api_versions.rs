//! ApiVersions: what this broker serves, exactly as `versions::SUPPORTED` lists it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::versions::SUPPORTED;

pub fn handle(version: i16, request: ApiVersionsRequest) -> ApiVersionsResponse {
    let named = |s: &str| {
        let b = s.as_bytes();
        let inner = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(inner)
    };
    // From v3 clients name themselves, and Kafka refuses names outside its pattern.
    if version >= 3
        && !(named(&request.client_software_name) && named(&request.client_software_version))
    {
        return ApiVersionsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The answer to an ApiVersions request of a version we do not serve: Kafka answers at v0 with
/// `UNSUPPORTED_VERSION` and the full list, so the client can pick a version and retry.
pub fn unsupported() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys())
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}
