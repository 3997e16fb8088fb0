//! InitProducerId: an idempotent producer gets a producer id no one else ever had, at epoch 0.
//! Transactional ids need the transaction coordinator, which this broker does not run yet.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::Broker;

pub async fn handle(broker: &Broker, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
    };
    match request.transactional_id.as_deref().map(|t| t.as_str()) {
        // Kafka: without a transactional id any request gets a fresh id, even one that names
        // its old producer id and epoch (KIP-360).
        None => match broker.producers.next_id(broker).await {
            Ok(id) => InitProducerIdResponse::default()
                .with_producer_id(id.into())
                .with_producer_epoch(0),
            Err((code, message)) => {
                tracing::warn!(message, "could not allocate a producer id");
                failed(code)
            }
        },
        Some("") => failed(ResponseError::InvalidRequest.code()),
        Some(_) => failed(ResponseError::CoordinatorNotAvailable.code()),
    }
}
