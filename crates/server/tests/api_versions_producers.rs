//! Every advertised version of the producer APIs over the wire against the real `strata` binary
//! (InitProducerId), and Kafka's idempotence rules on Produce as a client meets them: retries
//! answered with their first offsets, sequence gaps and fenced epochs refused, producer ids
//! that never repeat, state that survives a restart.
//!
//! Run: `cargo test --release -p strata --test api_versions_producers`

mod common;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest};

use common::*;

/// One idempotent batch of `count` records from `(pid, epoch)` starting at `seq`.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Bytes {
    let values: Vec<TestRecord> = (seq..seq + count)
        .map(|s| TestRecord::new(format!("{pid}"), format!("{pid}-{epoch}-{s}"), now_ms()))
        .collect();
    producer_batch(&values, pid, epoch, seq)
}

async fn produce_batch(c: &mut Client, topic: &str, batch: Bytes) -> PartitionProduceResponse {
    produce_raw(c, 9, None, topic, 0, batch).await
}

async fn init_producer_id(c: &mut Client, version: i16) -> (i64, i16) {
    let mut request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    if version >= 3 {
        request = request
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
    }
    let r = c.send(version, &request).await;
    assert_eq!(r.error_code, 0, "InitProducerId v{version}");
    (r.producer_id.0, r.producer_epoch)
}

#[tokio::test]
async fn init_producer_id_versions() {
    let mut b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    let mut seen = std::collections::BTreeSet::new();
    for v in c.versions(ApiKey::InitProducerId).await {
        for _ in 0..2 {
            let (pid, epoch) = init_producer_id(&mut c, v).await;
            assert!(pid >= 0, "v{v}: producer id {pid}");
            assert_eq!(epoch, 0, "v{v}: epoch");
            assert!(seen.insert(pid), "v{v}: producer id {pid} handed out twice");
        }
        // An empty transactional id is refused, as in Kafka.
        let r = c
            .send(
                v,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(str("").into()))
                    .with_transaction_timeout_ms(60_000),
            )
            .await;
        assert_eq!(r.error_code, err(ResponseError::InvalidRequest), "v{v}");
    }
    // Ids come from blocks allocated in the metadata log: never again after a restart.
    b.restart().await;
    let mut c = b.client().await;
    for _ in 0..3 {
        let (pid, _) = init_producer_id(&mut c, 4).await;
        assert!(
            seen.insert(pid),
            "producer id {pid} repeated after a restart"
        );
    }
}

#[tokio::test]
async fn idempotent_produce_follows_kafkas_rules_across_a_restart() {
    let mut b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "idem", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut c, 4).await;

    let first = produce_batch(&mut c, "idem", idempotent_batch(pid, epoch, 0, 5)).await;
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    let second = produce_batch(&mut c, "idem", idempotent_batch(pid, epoch, 5, 5)).await;
    assert_eq!((second.error_code, second.base_offset), (0, 5));
    // A retry of either is answered with its first offset and appends nothing.
    let retry = produce_batch(&mut c, "idem", idempotent_batch(pid, epoch, 0, 5)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 0));
    // A gap, and an older epoch, are refused.
    let gap = produce_batch(&mut c, "idem", idempotent_batch(pid, epoch, 20, 1)).await;
    assert_eq!(gap.error_code, err(ResponseError::OutOfOrderSequenceNumber));
    let bumped = produce_batch(&mut c, "idem", idempotent_batch(pid, epoch + 1, 0, 1)).await;
    assert_eq!((bumped.error_code, bumped.base_offset), (0, 10));
    let fenced = produce_batch(&mut c, "idem", idempotent_batch(pid, epoch, 10, 1)).await;
    assert_eq!(fenced.error_code, err(ResponseError::InvalidProducerEpoch));

    // After a restart the state is rebuilt from the log: the retry is still recognised.
    b.restart().await;
    let mut c = b.client().await;
    let retry = produce_batch(&mut c, "idem", idempotent_batch(pid, epoch + 1, 0, 1)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 10));
    let next = produce_batch(&mut c, "idem", idempotent_batch(pid, epoch + 1, 1, 2)).await;
    assert_eq!((next.error_code, next.base_offset), (0, 11));
    let data = fetch(&mut c, "idem", 0, 0).await;
    let records = decode_records("idem", &data.records);
    assert_eq!(records.len(), 13, "every batch once: {records:?}");
    let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..13).collect::<Vec<i64>>());
}

#[tokio::test]
async fn idle_producers_expire_after_producer_id_expiration_ms() {
    let b = Broker::start(BrokerOptions {
        extra_args: vec!["--producer-id-expiration-ms".into(), "1000".into()],
        ..BrokerOptions::default()
    })
    .await;
    let mut c = b.client().await;
    create_topic(&mut c, "idle", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut c, 4).await;
    let first = produce_batch(&mut c, "idle", idempotent_batch(pid, epoch, 0, 5)).await;
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    let gap = produce_batch(&mut c, "idle", idempotent_batch(pid, epoch, 20, 1)).await;
    assert_eq!(gap.error_code, err(ResponseError::OutOfOrderSequenceNumber));
    // Idle past producer.id.expiration.ms: the partition forgot the producer, which may now
    // start anywhere, as in Kafka.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let after = produce_batch(&mut c, "idle", idempotent_batch(pid, epoch, 20, 1)).await;
    assert_eq!((after.error_code, after.base_offset), (0, 5));
}

#[tokio::test]
async fn state_is_loaded_from_its_last_snapshot_and_the_log_after_it() {
    let mut b = Broker::start(BrokerOptions {
        extra_args: vec![
            "--producer-state-snapshot-interval-bytes".into(),
            "2000".into(),
        ],
        ..BrokerOptions::default()
    })
    .await;
    let mut c = b.client().await;
    create_topic(&mut c, "snap", 1, &[]).await;
    // The first producer writes only at the start: after the restart only a snapshot knows it.
    let mut producers = Vec::new();
    for _ in 0..8 {
        producers.push(init_producer_id(&mut c, 4).await);
    }
    let mut last = Vec::new();
    let mut batches = 0;
    for (i, (pid, epoch)) in producers.iter().enumerate() {
        let rounds = if i == 0 { 2 } else { 6 };
        let mut base = 0;
        for round in 0..rounds {
            let p =
                produce_batch(&mut c, "snap", idempotent_batch(*pid, *epoch, round * 3, 3)).await;
            assert_eq!(p.error_code, 0);
            base = p.base_offset;
            batches += 1;
        }
        last.push((rounds * 3, base));
    }
    // An aborted transaction, then one left open: read_committed must still see both right.
    let aborted = common::txn::txn(&mut c, "snap-aborted", 60_000).await;
    assert_eq!(
        common::txn::add_partitions(&mut c, 3, &aborted, "snap", &[0]).await,
        vec![0]
    );
    let values = common::txn::vals("aborted", 2);
    assert_eq!(
        common::txn::produce_txn(&mut c, &aborted, "snap", 0, 0, &values)
            .await
            .error_code,
        0
    );
    assert_eq!(common::txn::end_txn(&mut c, 3, &aborted, false).await, 0);
    let open = common::txn::txn(&mut c, "snap-open", 60_000).await;
    assert_eq!(
        common::txn::add_partitions(&mut c, 3, &open, "snap", &[0]).await,
        vec![0]
    );
    let values = common::txn::vals("open", 2);
    let first_open = common::txn::produce_txn(&mut c, &open, "snap", 0, 0, &values).await;
    assert_eq!(first_open.error_code, 0);
    batches += 3;
    let hw = common::txn::latest(&mut c, "snap", 0, 0).await;
    let committed_before: Vec<String> = common::txn::values(&common::txn::visible(
        &fetch_isolated(&mut c, "snap", 0, 0, 1).await,
    ));

    b.restart().await;
    let mut c = b.client().await;
    for ((pid, epoch), (next_seq, base)) in producers.iter().zip(&last) {
        let retry = produce_batch(
            &mut c,
            "snap",
            idempotent_batch(*pid, *epoch, next_seq - 3, 3),
        )
        .await;
        assert_eq!(
            (retry.error_code, retry.base_offset),
            (0, *base),
            "producer {pid}: its last batch is still recognised"
        );
        let gap = produce_batch(
            &mut c,
            "snap",
            idempotent_batch(*pid, *epoch, next_seq + 1, 1),
        )
        .await;
        assert_eq!(gap.error_code, err(ResponseError::OutOfOrderSequenceNumber));
    }
    assert_eq!(
        common::txn::latest(&mut c, "snap", 0, 1).await,
        first_open.base_offset,
        "the open transaction holds the last stable offset"
    );
    assert_eq!(common::txn::latest(&mut c, "snap", 0, 0).await, hw);
    let rc = fetch_isolated(&mut c, "snap", 0, 0, 1).await;
    assert_eq!(
        common::txn::values(&common::txn::visible(&rc)),
        committed_before
    );
    assert!(!committed_before.iter().any(|v| v.starts_with("aborted")));

    let log = b.log();
    let loaded = log
        .lines()
        .rev()
        .find(|l| l.contains("loaded producer state"))
        .expect("the partition's state was loaded");
    assert!(loaded.contains("snapshot_offset"), "{loaded}");
    let replayed: usize = loaded
        .split("batches=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("batches replayed");
    assert!(
        replayed < batches / 2,
        "{replayed} of {batches} batches replayed after the snapshot: {loaded}"
    );
}
