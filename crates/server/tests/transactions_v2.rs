//! KIP-890 transactions version 2 over the wire against the real `strata` binary, in the
//! sequence Kafka's Java client (4.0 on) sends once ApiVersions v4 finalizes
//! `transaction.version` 2: no AddPartitionsToTxn (Produce v12 adds its partition), no
//! AddOffsetsToTxn (TxnOffsetCommit v5 adds the group's), and an epoch bump at every EndTxn
//! v5, which the markers carry so that a late write of an ended transaction is fenced. None of
//! the clients the Python suite installs negotiates version 2, so these requests are built
//! here.
//!
//! Run: `cargo test --release -p strata --test transactions_v2`

mod common;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use common::txn::*;
use common::*;

const PRODUCE_V2: i16 = 12;
const PRODUCE_V1: i16 = 11;
const END_V2: i16 = 5;
const TXN_OFFSET_COMMIT_V2: i16 = 5;

/// EndTxn v5: the error and the producer id and epoch to go on with.
async fn end_v2(c: &mut Client, t: &Txn, commit: bool) -> (i16, i64, i16) {
    let r = c
        .send(
            END_V2,
            &EndTxnRequest::default()
                .with_transactional_id(str(&t.id).into())
                .with_producer_id(t.pid.into())
                .with_producer_epoch(t.epoch)
                .with_committed(commit),
        )
        .await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

async fn produce_v(
    c: &mut Client,
    version: i16,
    t: &Txn,
    topic: &str,
    partition: i32,
    seq: i32,
    values: &[String],
) -> i16 {
    produce_raw(
        c,
        version,
        Some(&t.id),
        topic,
        partition,
        txn_batch(t, seq, values),
    )
    .await
    .error_code
}

async fn txn_offset_commit(c: &mut Client, version: i16, t: &Txn, group: &str, offset: i64) -> i16 {
    let r = c
        .send(version, &txn_offset_commit_request(t, group, "in", offset))
        .await;
    r.topics[0].partitions[0].error_code
}

async fn describe(c: &mut Client, id: &str) -> (String, i16, Vec<String>) {
    let r = c
        .send(
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![str(id).into()]),
        )
        .await;
    let s = &r.transaction_states[0];
    assert_eq!(s.error_code, 0);
    let partitions = s
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| format!("{}-{p}", &*t.topic))
        })
        .collect();
    (
        s.transaction_state.to_string(),
        s.producer_epoch,
        partitions,
    )
}

#[tokio::test]
async fn api_versions_v4_finalizes_transaction_version_2_and_v3_stays_untagged() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    let request = ApiVersionsRequest::default()
        .with_client_software_name(str("strata-test"))
        .with_client_software_version(str("1"));
    let v4 = c.send(4, &request).await;
    assert_eq!(v4.error_code, 0);
    assert!(v4.finalized_features_epoch >= 0, "a known features epoch");
    let finalized: Vec<(String, i16, i16)> = v4
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
        .collect();
    assert_eq!(finalized, vec![("transaction.version".to_string(), 2, 2)]);
    let supported: Vec<(String, i16, i16)> = v4
        .supported_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version, f.max_version))
        .collect();
    assert_eq!(supported, vec![("transaction.version".to_string(), 0, 2)]);
    let max = |key: ApiKey| {
        v4.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| k.max_version)
    };
    assert_eq!(max(ApiKey::EndTxn), Some(END_V2));
    assert_eq!(max(ApiKey::TxnOffsetCommit), Some(TXN_OFFSET_COMMIT_V2));
    assert!(max(ApiKey::Produce) >= Some(PRODUCE_V2));

    // librdkafka 2.0 asks at v3 and cannot skip tagged fields it does not know.
    let v3 = c.send(3, &request).await;
    assert_eq!(v3.error_code, 0);
    assert!(v3.supported_features.is_empty() && v3.finalized_features.is_empty());
    assert_eq!(v3.finalized_features_epoch, -1);
    assert_eq!(v3.api_keys, v4.api_keys);
}

#[tokio::test]
async fn every_end_bumps_the_epoch_and_requests_add_their_own_partitions() {
    let mut b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "v2", 2, &[]).await;
    create_topic(&mut c, "in", 1, &[]).await;
    let mut t = txn(&mut c, "tv2", 30_000).await;
    let first_epoch = t.epoch;
    let group = "tv2-group";
    let mut committed = Vec::new();
    let mut written = Vec::new();
    let mut marker_epochs = Vec::new();
    let mut last_committed_offset = -1;
    for round in 0..6 {
        let commit = round % 3 != 1;
        let values = vals(&format!("r{round}"), 3);
        // Produce v12 adds each partition to the transaction: no AddPartitionsToTxn.
        for partition in 0..2 {
            assert_eq!(
                produce_v(&mut c, PRODUCE_V2, &t, "v2", partition, 0, &values).await,
                0,
                "round {round} partition {partition}"
            );
        }
        // TxnOffsetCommit v5 adds the group's partition: no AddOffsetsToTxn.
        let offset = 10 * (round + 1) as i64;
        assert_eq!(
            txn_offset_commit(&mut c, TXN_OFFSET_COMMIT_V2, &t, group, offset).await,
            0,
            "round {round}"
        );
        let (state, epoch, partitions) = describe(&mut c, &t.id).await;
        assert_eq!((state.as_str(), epoch), ("Ongoing", t.epoch));
        assert!(
            partitions.contains(&"v2-0".to_string()) && partitions.contains(&"v2-1".to_string())
        );
        assert_eq!(
            partitions.len(),
            3,
            "two data partitions and the group's: {partitions:?}"
        );
        assert_eq!(
            offset_fetch(&mut c, group, "in", true).await.1,
            err(ResponseError::UnstableOffsetCommit)
        );

        let (code, pid, epoch) = end_v2(&mut c, &t, commit).await;
        assert_eq!((code, pid, epoch), (0, t.pid, t.epoch + 1), "round {round}");
        // A retry with the epoch before gets the same answer; the other outcome is refused.
        assert_eq!(end_v2(&mut c, &t, commit).await, (0, pid, epoch));
        assert_eq!(
            end_v2(&mut c, &t, !commit).await.0,
            err(ResponseError::InvalidTxnState)
        );
        // The markers carry the new epoch: a late write of the ended transaction is fenced.
        assert_eq!(
            produce_v(&mut c, PRODUCE_V2, &t, "v2", 0, 3, &vals("late", 1)).await,
            err(ResponseError::InvalidProducerEpoch),
            "round {round}"
        );
        marker_epochs.push(epoch);
        written.extend(values.clone());
        if commit {
            committed.extend(values);
        }
        if commit {
            last_committed_offset = offset;
        }
        assert_eq!(
            offset_fetch(&mut c, group, "in", true).await,
            (last_committed_offset, 0),
            "round {round}: the offsets commit or abort with the transaction"
        );
        t.epoch = epoch;
    }
    assert_eq!(t.epoch, first_epoch + 6);

    for partition in 0..2 {
        let rc = fetch_isolated(&mut c, "v2", partition, 0, 1).await;
        assert_eq!(
            values(&visible(&rc)),
            committed,
            "read_committed on {partition}: committed records only, in order"
        );
        let ru = fetch_isolated(&mut c, "v2", partition, 0, 0).await;
        assert_eq!(values(&visible(&ru)), written);
        let markers: Vec<i16> = raw_batches(&ru.records)
            .iter()
            .filter(|b| b.attributes & 0x20 != 0)
            .map(|b| {
                assert_eq!(b.producer_id, t.pid);
                b.producer_epoch
            })
            .collect();
        assert_eq!(
            markers, marker_epochs,
            "one marker per transaction, at its new epoch"
        );
    }

    // The new epoch starts its sequence at 0.
    assert_eq!(
        produce_v(&mut c, PRODUCE_V2, &t, "v2", 0, 3, &vals("gap", 1)).await,
        err(ResponseError::OutOfOrderSequenceNumber)
    );
    // One partition's batches come from one producer epoch: a second producer's batch in the
    // same request would slip past the transaction join.
    let other = txn(&mut c, "tv2-other", 30_000).await;
    let mut two = bytes::BytesMut::from(&txn_batch(&t, 0, &vals("mine", 1))[..]);
    two.extend_from_slice(&txn_batch(&other, 0, &vals("other", 1)));
    let mixed = produce_raw(&mut c, PRODUCE_V2, Some(&t.id), "v2", 0, two.freeze()).await;
    assert_eq!(mixed.error_code, err(ResponseError::InvalidRecord));
    // Below v12 a produce still only verifies: the partition was not added.
    assert_eq!(
        produce_v(&mut c, PRODUCE_V1, &t, "v2", 0, 0, &vals("v11", 1)).await,
        err(ResponseError::InvalidTxnState)
    );
    // Aborting a transaction that never reached the coordinator bumps the epoch all the same.
    assert_eq!(end_v2(&mut c, &t, false).await, (0, t.pid, t.epoch + 1));
    assert_eq!(describe(&mut c, &t.id).await.0, "CompleteAbort");
    let before_restart = t.clone();
    t.epoch += 1;

    // After a SIGKILL the coordinator and the partitions remember it all.
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(
        end_v2(&mut c, &before_restart, false).await,
        (0, t.pid, t.epoch),
        "a retry after the restart"
    );
    assert_eq!(
        produce_v(
            &mut c,
            PRODUCE_V2,
            &before_restart,
            "v2",
            1,
            0,
            &vals("old", 1)
        )
        .await,
        err(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(
        produce_v(&mut c, PRODUCE_V2, &t, "v2", 1, 0, &vals("after", 2)).await,
        0
    );
    assert_eq!(end_v2(&mut c, &t, true).await, (0, t.pid, t.epoch + 1));
    let rc = fetch_isolated(&mut c, "v2", 1, 0, 1).await;
    let mut expected = committed.clone();
    expected.extend(vals("after", 2));
    assert_eq!(values(&visible(&rc)), expected);

    // A new instance fences this one: its produce and its EndTxn are refused.
    let fenced = Txn {
        epoch: t.epoch + 1,
        ..t.clone()
    };
    let newer = txn(&mut c, "tv2", 30_000).await;
    assert_eq!(newer.epoch, fenced.epoch + 1);
    assert_eq!(
        produce_v(&mut c, PRODUCE_V2, &fenced, "v2", 0, 0, &vals("zombie", 1)).await,
        err(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(
        end_v2(&mut c, &fenced, true).await.0,
        err(ResponseError::ProducerFenced)
    );
    let rc = fetch_isolated(&mut c, "v2", 0, 0, 1).await;
    assert_eq!(values(&visible(&rc)), committed, "nothing of the zombie");
}
