//! InitProducerId: an idempotent producer gets a producer id no one else ever had, at epoch 0;
//! a transactional one gets its transactional id's producer id at a new epoch, which fences
//! every older instance (and aborts the transaction it left open).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::transactions::requests;
use crate::Broker;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
    };
    let Some(id) = request.transactional_id.as_ref().map(|t| t.to_string()) else {
        // Kafka: without a transactional id any request gets a fresh id, even one that names
        // its old producer id and epoch (KIP-360).
        return match broker.producers.next_id(broker).await {
            Ok(id) => InitProducerIdResponse::default()
                .with_producer_id(id.into())
                .with_producer_epoch(0),
            Err((code, message)) => {
                tracing::warn!(message, "could not allocate a producer id");
                failed(code)
            }
        };
    };
    let shard = match requests::shard(broker, &id).await {
        Ok(s) => s,
        Err(code) => return failed(code),
    };
    // Used only if the id is new or its epochs ran out; an unused one is simply skipped.
    let fresh = match broker.producers.next_id(broker).await {
        Ok(pid) => pid,
        Err((code, _)) => return failed(code),
    };
    let expected =
        (request.producer_id.0 >= 0).then_some((request.producer_id.0, request.producer_epoch));
    let timeout_ms = request.transaction_timeout_ms;
    let result = shard
        .call(move |s, now_ms, _| s.init_producer_id(now_ms, &id, timeout_ms, expected, fresh))
        .await;
    match result {
        Ok(Ok((pid, epoch))) => InitProducerIdResponse::default()
            .with_producer_id(pid.into())
            .with_producer_epoch(epoch),
        Ok(Err(e)) => failed(requests::code_for(version, 4, e)),
        Err(code) => failed(code),
    }
}
