//! AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction, so that
//! the offsets the producer commits for the group (TxnOffsetCommit) commit or abort with it.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::groups::OFFSETS_TOPIC;
use crate::transactions::requests;
use crate::Broker;

pub async fn handle(
    broker: &Broker,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let code = add(broker, version, &req).await.err().unwrap_or(0);
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

async fn add(broker: &Broker, version: i16, req: &AddOffsetsToTxnRequest) -> Result<(), i16> {
    let id = req.transactional_id.to_string();
    let shard = requests::shard(broker, &id).await?;
    let partition = broker.groups.partition_of(broker, &req.group_id).await?;
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let asked = [(OFFSETS_TOPIC.to_string(), partition)];
    shard
        .call(move |s, now_ms, _| s.add_partitions(now_ms, &id, pid, epoch, &asked))
        .await?
        .map_err(|e| requests::code_for(version, 2, e))
}
