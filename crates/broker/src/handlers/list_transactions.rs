//! ListTransactions: every transactional id this broker coordinates, filtered by state,
//! producer id and (v1+) how long the transaction has been open.

use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use strata_coordinator::txn::records::TxnState;

use crate::Broker;

const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub async fn handle(broker: &Broker, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let unknown: Vec<StrBytes> = req
        .state_filters
        .iter()
        .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    let shards = match broker.txns.shards(broker).await {
        Ok(s) => s,
        Err(code) => return ListTransactionsResponse::default().with_error_code(code),
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut out = Vec::new();
    for shard in shards {
        let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
        let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
        let duration_ms = req.duration_filter;
        let listed = shard
            .read(move |s| {
                s.iter()
                    .filter(|(_, v)| {
                        states.is_empty() || states.iter().any(|f| f == v.state.name())
                    })
                    .filter(|(_, v)| pids.is_empty() || pids.contains(&v.producer_id))
                    .filter(|(_, v)| {
                        // Kafka compares with the last transaction's start (-1 if none).
                        let start_ms = if v.start_ms == 0 {
                            -1
                        } else {
                            v.start_ms as i64
                        };
                        duration_ms < 0 || now_ms - start_ms >= duration_ms
                    })
                    .map(|(id, v)| (id.clone(), v.producer_id, v.state.name()))
                    .collect::<Vec<_>>()
            })
            .await;
        match listed {
            Ok(listed) => out.extend(listed.into_iter().map(|(id, pid, state)| {
                TransactionState::default()
                    .with_transactional_id(TransactionalId(id.into()))
                    .with_producer_id(pid.into())
                    .with_transaction_state(state.into())
            })),
            Err(code) => return ListTransactionsResponse::default().with_error_code(code),
        }
    }
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(out)
}
