//! FindCoordinator: which broker coordinates a group or a transactional id — the leader of
//! its partition of `__consumer_offsets` or `__transaction_state`.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::groups::OFFSETS_TOPIC;
use crate::transactions::TRANSACTION_STATE_TOPIC;
use crate::Broker;

const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        coordinators.push(find(broker, req.key_type, key).await);
    }
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.pop().unwrap_or_default();
    let mut response = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if version >= 1 {
        response.error_message = c.error_message;
    }
    response
}

async fn find(broker: &Broker, key_type: i8, key: StrBytes) -> Coordinator {
    let fail = |e: ResponseError, message: &str| {
        Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(e.code())
            .with_error_message(Some(message.to_string().into()))
    };
    if key.is_empty() {
        return fail(ResponseError::InvalidRequest, "the key is empty");
    }
    let located = match key_type {
        GROUP_KEY => (
            OFFSETS_TOPIC,
            broker.groups.partition_of(broker, &key).await,
        ),
        TRANSACTION_KEY => (
            TRANSACTION_STATE_TOPIC,
            broker.txns.partition_of(broker, &key).await,
        ),
        _ => return fail(ResponseError::InvalidRequest, "unknown key type"),
    };
    let (topic, Ok(partition)) = located else {
        return fail(
            ResponseError::CoordinatorNotAvailable,
            "the coordinator is starting",
        );
    };
    let image = broker.meta.image().read();
    let leader = image
        .partition(topic, partition)
        .and_then(|p| image.brokers.get(&p.leader));
    match leader {
        Some(b) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(b.node_id))
            .with_host(b.host.clone().into())
            .with_port(b.port),
        None => fail(
            ResponseError::CoordinatorNotAvailable,
            "the coordinator's partition has no leader",
        ),
    }
}
