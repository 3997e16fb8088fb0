//! EndTxn: the producer commits or aborts. The outcome is made durable first, then a marker
//! is written to every partition of the transaction, then the transaction is complete; the
//! producer is answered after all of it, so its next transaction never waits on markers (or,
//! if the markers fail, once the outcome is durable, as in Kafka). From v5 (KIP-890
//! transactions version 2) every EndTxn bumps the producer's epoch and answers with it.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use strata_coordinator::txn::ops::is_epoch_exhausted;
use strata_coordinator::txn::TxnVersion;

use crate::transactions::requests;
use crate::Broker;

pub async fn handle(broker: &Arc<Broker>, version: i16, req: EndTxnRequest) -> EndTxnResponse {
    let response = EndTxnResponse::default()
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    match end(broker, version, &req).await {
        Ok((pid, epoch)) if version >= 5 => response
            .with_producer_id(pid.into())
            .with_producer_epoch(epoch),
        Ok(_) => response,
        Err(code) => response.with_error_code(code),
    }
}

async fn end(broker: &Arc<Broker>, version: i16, req: &EndTxnRequest) -> Result<(i64, i16), i16> {
    let id = req.transactional_id.to_string();
    let shard = requests::shard(broker, &id).await?;
    let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
    let txn_version = if version >= 5 {
        TxnVersion::V2
    } else {
        TxnVersion::V1
    };
    // A bump past the last epoch rotates the producer id to one never handed out.
    let fresh = match txn_version {
        TxnVersion::V2 if is_epoch_exhausted(epoch) => Some(
            broker
                .producers
                .next_id(broker)
                .await
                .map_err(|(code, _)| code)?,
        ),
        _ => None,
    };
    let ended = shard
        .call(move |s, now_ms, _| s.end_txn(now_ms, &id, pid, epoch, commit, txn_version, fresh))
        .await?
        .map_err(|e| requests::code_for(version, 2, e))?;
    let going_on = (ended.producer_id, ended.producer_epoch);
    let Some(job) = ended.markers else {
        return Ok(going_on);
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
    Ok(going_on)
}
