//! DescribeTransactions: the state of named transactional ids, as their coordinator holds it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, TopicName, TransactionalId,
};

use crate::transactions::requests;
use crate::Broker;

pub async fn handle(
    broker: &Broker,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        states.push(describe(broker, id).await);
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

async fn describe(broker: &Broker, id: TransactionalId) -> TransactionState {
    let failed = |code: i16| {
        TransactionState::default()
            .with_transactional_id(id.clone())
            .with_error_code(code)
    };
    let shard = match requests::shard(broker, &id).await {
        Ok(s) => s,
        Err(code) => return failed(code),
    };
    let key = id.to_string();
    let value = match shard.read(move |s| s.get(&key).cloned()).await {
        Ok(Some(v)) => v,
        Ok(None) => return failed(ResponseError::TransactionalIdNotFound.code()),
        Err(code) => return failed(code),
    };
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in &value.partitions {
        match topics.iter_mut().find(|t| t.topic.as_str() == topic) {
            Some(t) => t.partitions.push(*partition),
            None => topics.push(
                TopicData::default()
                    .with_topic(TopicName(topic.clone().into()))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    let start_ms = if value.start_ms == 0 {
        -1
    } else {
        value.start_ms as i64
    };
    TransactionState::default()
        .with_transactional_id(id)
        .with_transaction_state(value.state.name().into())
        .with_transaction_timeout_ms(value.timeout_ms)
        .with_transaction_start_time_ms(start_ms)
        .with_producer_id(value.producer_id.into())
        .with_producer_epoch(value.producer_epoch)
        .with_topics(topics)
}
