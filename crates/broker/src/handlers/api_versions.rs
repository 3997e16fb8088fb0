//! ApiVersions: what this broker serves, exactly as `versions::SUPPORTED` lists it, and the
//! features clients negotiate (KIP-584).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

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
    let response = ApiVersionsResponse::default().with_api_keys(api_keys());
    // Features are tagged fields from v3, but librdkafka 2.0 (Debian's kcat) cannot skip
    // tagged fields it does not expect, and only clients that negotiate v4 (Kafka's Java
    // client 4.0 on) act on transaction.version: they alone are told.
    if version >= 4 {
        with_features(response)
    } else {
        response
    }
}

/// KIP-890 transactions version 2: every EndTxn bumps the epoch, and Produce v12 and
/// TxnOffsetCommit v5 add their partitions to the transaction themselves.
const TRANSACTION_VERSION: i16 = 2;

/// The finalized features never change: one epoch for all of them.
const FEATURES_EPOCH: i64 = 1;

fn with_features(response: ApiVersionsResponse) -> ApiVersionsResponse {
    let name = StrBytes::from_static_str("transaction.version");
    response
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(name.clone())
            .with_min_version(0)
            .with_max_version(TRANSACTION_VERSION)])
        .with_finalized_features_epoch(FEATURES_EPOCH)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(name)
            .with_min_version_level(TRANSACTION_VERSION)
            .with_max_version_level(TRANSACTION_VERSION)])
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
