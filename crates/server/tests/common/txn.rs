//! Transactions over the wire, shared by the transaction test files: a transactional
//! producer's requests as a client sends them, and what a read_committed client keeps of a
//! fetch.

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::{Record, RecordBatchDecoder, TimestampType};

use super::*;

pub const INIT_VERSION: i16 = 4;

#[derive(Clone, Debug)]
pub struct Txn {
    pub id: String,
    pub pid: i64,
    pub epoch: i16,
}

pub async fn init_txn(
    c: &mut Client,
    version: i16,
    id: &str,
    timeout_ms: i32,
) -> InitProducerIdResponse {
    let mut request = InitProducerIdRequest::default()
        .with_transactional_id(Some(str(id).into()))
        .with_transaction_timeout_ms(timeout_ms);
    if version >= 3 {
        request = request
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
    }
    c.send(version, &request).await
}

pub async fn txn(c: &mut Client, id: &str, timeout_ms: i32) -> Txn {
    let r = init_txn(c, INIT_VERSION, id, timeout_ms).await;
    assert_eq!(r.error_code, 0, "InitProducerId {id}");
    Txn {
        id: id.to_string(),
        pid: r.producer_id.0,
        epoch: r.producer_epoch,
    }
}

/// One transactional batch of `values` from the producer, first record at `seq`.
pub fn txn_batch(t: &Txn, seq: i32, values: &[String]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: t.pid,
            producer_epoch: t.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: now_ms(),
            key: None,
            value: Some(Bytes::from(v.clone())),
            headers: IndexMap::new(),
        })
        .collect();
    strata_protocol::batch::encode_uncompressed(&records)
}

pub async fn produce_to(
    c: &mut Client,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> PartitionProduceResponse {
    produce_raw(c, HELPER_PRODUCE, transactional_id, topic, partition, batch).await
}

pub async fn produce_txn(
    c: &mut Client,
    t: &Txn,
    topic: &str,
    partition: i32,
    seq: i32,
    values: &[String],
) -> PartitionProduceResponse {
    produce_to(c, Some(&t.id), topic, partition, txn_batch(t, seq, values)).await
}

pub async fn add_partitions(
    c: &mut Client,
    version: i16,
    t: &Txn,
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    assert!(version <= 3);
    let r = c
        .send(
            version,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(str(&t.id).into())
                .with_v3_and_below_producer_id(t.pid.into())
                .with_v3_and_below_producer_epoch(t.epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(partitions.to_vec())]),
        )
        .await;
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

pub async fn end_txn(c: &mut Client, version: i16, t: &Txn, commit: bool) -> i16 {
    c.send(
        version,
        &EndTxnRequest::default()
            .with_transactional_id(str(&t.id).into())
            .with_producer_id(t.pid.into())
            .with_producer_epoch(t.epoch)
            .with_committed(commit),
    )
    .await
    .error_code
}

/// What a read_committed client keeps of fetched data, as Kafka's clients do: data records
/// minus the batches of aborted transactions (from each one's first offset to its marker).
pub fn visible(data: &PartitionData) -> Vec<(i64, String)> {
    let Some(bytes) = &data.records else {
        return Vec::new();
    };
    let sets = RecordBatchDecoder::decode_all(&mut bytes.clone()).expect("records decode");
    let aborted: Vec<(i64, i64)> = data
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    let mut open_aborts: Vec<i64> = Vec::new();
    let mut out = Vec::new();
    for set in sets {
        for r in set.records {
            if r.control {
                open_aborts.retain(|p| *p != r.producer_id);
                continue;
            }
            if aborted.contains(&(r.producer_id, r.offset)) && !open_aborts.contains(&r.producer_id)
            {
                open_aborts.push(r.producer_id);
            }
            if r.transactional && open_aborts.contains(&r.producer_id) {
                continue;
            }
            out.push((
                r.offset,
                String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap(),
            ));
        }
    }
    out
}

pub fn values(data: &[(i64, String)]) -> Vec<String> {
    data.iter().map(|(_, v)| v.clone()).collect()
}

pub async fn latest(c: &mut Client, topic: &str, partition: i32, isolation: i8) -> i64 {
    let r = c
        .send(
            HELPER_LIST_OFFSETS,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation)
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-1)])]),
        )
        .await;
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

pub fn vals(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A group's committed offset for partition 0 of `topic`, and the partition's error.
pub async fn offset_fetch(
    c: &mut Client,
    group: &str,
    topic: &str,
    require_stable: bool,
) -> (i64, i16) {
    let r = c
        .send(
            7,
            &OffsetFetchRequest::default()
                .with_group_id(str(group).into())
                .with_require_stable(require_stable)
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![0])])),
        )
        .await;
    let p = &r.topics[0].partitions[0];
    (p.committed_offset, p.error_code)
}

/// TxnOffsetCommit of `offset` for partition 0 of `topic`, in the producer's transaction.
pub fn txn_offset_commit_request(
    t: &Txn,
    group: &str,
    topic: &str,
    offset: i64,
) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(str(&t.id).into())
        .with_group_id(str(group).into())
        .with_producer_id(t.pid.into())
        .with_producer_epoch(t.epoch)
        .with_generation_id(-1)
        .with_member_id(str(""))
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])])
}
