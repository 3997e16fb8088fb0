//! EndTxn: the producer commits or aborts. The outcome is made durable first, then a marker
//! is written to every partition of the transaction, then the transaction is complete; the
//! producer is answered after all of it, so its next transaction never waits on markers (or,
//! if the markers fail, once the outcome is durable, as in Kafka).

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use crate::transactions::requests;
use crate::Broker;

pub async fn handle(broker: &Arc<Broker>, version: i16, req: EndTxnRequest) -> EndTxnResponse {
    let code = end(broker, version, &req).await.err().unwrap_or(0);
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1)
}

async fn end(broker: &Arc<Broker>, version: i16, req: &EndTxnRequest) -> Result<(), i16> {
    let id = req.transactional_id.to_string();
    let shard = requests::shard(broker, &id).await?;
    let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
    let job = shard
        .call(move |s, now_ms, _| s.end_txn(now_ms, &id, pid, epoch, commit))
        .await?
        .map_err(|e| requests::code_for(version, 2, e))?;
    let Some(job) = job else {
        return Ok(());
    };
    // Its own task: a client that goes away does not stop its markers halfway.
    let broker = broker.clone();
    let id = job.transactional_id.clone();
    let done = tokio::spawn(async move { broker.txns.write_markers(&broker, job).await }).await;
    if !matches!(done, Ok(Some(Ok(())))) {
        // The outcome is durable and the coordinator writes the markers again later (invariant
        // 3 of the transaction shard): the client is told it succeeded, as Kafka tells it right
        // after the prepare record, and its next request waits on CONCURRENT_TRANSACTIONS.
        tracing::warn!(transactional_id = id, result = ?done, "transaction decided; markers still owed");
    }
    Ok(())
}
