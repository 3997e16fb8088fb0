//! Every advertised version of the transaction APIs over the wire against the real `strata`
//! binary — InitProducerId with transactional ids, FindCoordinator for them,
//! AddPartitionsToTxn (client and batched broker forms), AddOffsetsToTxn, TxnOffsetCommit,
//! EndTxn, WriteTxnMarkers, DescribeTransactions, ListTransactions — and what a read_committed
//! reader sees: the last stable offset, aborted transactions, markers, across a restart.
//!
//! Run: `cargo test --release -p strata --test api_versions_transactions`

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::RecordBatchDecoder;

use common::txn::*;
use common::*;

#[tokio::test]
async fn init_producer_id_and_find_coordinator_for_transactional_ids() {
    let b = Broker::start(BrokerOptions {
        extra_args: vec!["--transaction-max-timeout-ms".into(), "60000".into()],
        ..BrokerOptions::default()
    })
    .await;
    let mut c = b.client().await;
    for v in c.versions(ApiKey::InitProducerId).await {
        let id = format!("init-{v}");
        let first = init_txn(&mut c, v, &id, 10_000).await;
        assert_eq!((first.error_code, first.producer_epoch), (0, 0), "v{v}");
        let again = init_txn(&mut c, v, &id, 10_000).await;
        assert_eq!(again.error_code, 0, "v{v}");
        assert_eq!(
            (again.producer_id, again.producer_epoch),
            (first.producer_id, 1),
            "v{v}: the same id at the next epoch"
        );
        let too_long = init_txn(&mut c, v, &id, 60_001).await;
        assert_eq!(
            too_long.error_code,
            err(ResponseError::InvalidTransactionTimeout),
            "v{v}"
        );
        if v >= 3 {
            // KIP-360: a producer naming an id that is not its own is fenced.
            let r = c
                .send(
                    v,
                    &InitProducerIdRequest::default()
                        .with_transactional_id(Some(str(&id).into()))
                        .with_transaction_timeout_ms(10_000)
                        .with_producer_id((first.producer_id.0 + 1_000).into())
                        .with_producer_epoch(0),
                )
                .await;
            let fenced = if v >= 4 {
                ResponseError::ProducerFenced
            } else {
                ResponseError::InvalidProducerEpoch
            };
            assert_eq!(r.error_code, err(fenced), "v{v}");
        }
    }
    for v in c.versions(ApiKey::FindCoordinator).await {
        if v == 0 {
            continue; // no key type before v1
        }
        let mut request = FindCoordinatorRequest::default().with_key_type(1);
        if v >= 4 {
            request = request.with_coordinator_keys(vec![str("init-1")]);
        } else {
            request = request.with_key(str("init-1"));
        }
        let r = c.send(v, &request).await;
        let (code, node) = if v >= 4 {
            (r.coordinators[0].error_code, r.coordinators[0].node_id)
        } else {
            (r.error_code, r.node_id)
        };
        assert_eq!(
            (code, node),
            (0, broker(b.node_id())),
            "FindCoordinator v{v}"
        );
    }
}

#[tokio::test]
async fn transactions_commit_and_abort_with_every_version() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "tx", 2, &[]).await;
    let add_versions: Vec<i16> = c
        .versions(ApiKey::AddPartitionsToTxn)
        .await
        .filter(|v| *v <= 3)
        .collect();
    let end_versions: Vec<i16> = c.versions(ApiKey::EndTxn).await.collect();
    let mut committed = Vec::new();
    let mut written = Vec::new();
    let rounds = add_versions.len().max(end_versions.len()) * 2;
    for round in 0..rounds {
        let add_v = add_versions[round % add_versions.len()];
        let end_v = end_versions[(round / 2) % end_versions.len()];
        let commit = round % 2 == 0;
        let t = txn(&mut c, &format!("rw-{round}"), 30_000).await;
        let batch = vals(&format!("r{round}"), 3);
        // KIP-890: a partition must be added before transactional records go to it.
        let early = produce_txn(&mut c, &t, "tx", 0, 0, &batch).await;
        assert_eq!(
            early.error_code,
            err(ResponseError::InvalidTxnState),
            "round {round}"
        );
        assert_eq!(
            add_partitions(&mut c, add_v, &t, "tx", &[0, 1]).await,
            vec![0, 0],
            "AddPartitionsToTxn v{add_v}"
        );
        let p = produce_txn(&mut c, &t, "tx", 0, 0, &batch).await;
        assert_eq!(p.error_code, 0, "round {round}");
        // A transactional produce that skips a sequence is refused.
        let gap = produce_txn(&mut c, &t, "tx", 0, 7, &batch).await;
        assert_eq!(gap.error_code, err(ResponseError::OutOfOrderSequenceNumber));
        assert_eq!(
            end_txn(&mut c, end_v, &t, commit).await,
            0,
            "EndTxn v{end_v} commit={commit}"
        );
        // A retry of the same outcome succeeds; the other outcome is refused.
        assert_eq!(
            end_txn(&mut c, end_v, &t, commit).await,
            0,
            "EndTxn v{end_v} retry"
        );
        assert_eq!(
            end_txn(&mut c, end_v, &t, !commit).await,
            err(ResponseError::InvalidTxnState)
        );
        written.extend(batch.clone());
        if commit {
            committed.extend(batch);
        }
    }
    let hw = latest(&mut c, "tx", 0, 0).await;
    assert_eq!(
        latest(&mut c, "tx", 0, 1).await,
        hw,
        "no transaction left open"
    );
    let rc = fetch_isolated(&mut c, "tx", 0, 0, 1).await;
    assert_eq!(rc.last_stable_offset, hw);
    assert_eq!(
        values(&visible(&rc)),
        committed,
        "read_committed: committed records only, in order"
    );
    let ru = fetch_isolated(&mut c, "tx", 0, 0, 0).await;
    assert!(
        ru.aborted_transactions.is_none(),
        "read_uncommitted gets no aborted list"
    );
    let all = decode_all_values(&ru);
    assert_eq!(all, written, "read_uncommitted: every record");
    assert_eq!(
        hw as usize,
        written.len() + rounds,
        "one marker per transaction on the partition"
    );
    // Partition 1 was added but never written: it holds only markers.
    let p1 = fetch_isolated(&mut c, "tx", 1, 0, 1).await;
    assert!(visible(&p1).is_empty());
    assert_eq!(latest(&mut c, "tx", 1, 0).await, rounds as i64);
}

fn decode_all_values(data: &PartitionData) -> Vec<String> {
    let sets = RecordBatchDecoder::decode_all(&mut data.records.clone().unwrap()).unwrap();
    sets.into_iter()
        .flat_map(|s| s.records)
        .filter(|r| !r.control)
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn batched_add_partitions_verifies_and_adds() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "vb", 1, &[]).await;
    for v in c
        .versions(ApiKey::AddPartitionsToTxn)
        .await
        .filter(|v| *v >= 4)
    {
        let t = txn(&mut c, &format!("batched-{v}"), 30_000).await;
        let request = |verify_only: bool| {
            AddPartitionsToTxnRequest::default().with_transactions(vec![
                AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(str(&t.id).into())
                    .with_producer_id(t.pid.into())
                    .with_producer_epoch(t.epoch)
                    .with_verify_only(verify_only)
                    .with_topics(vec![AddPartitionsToTxnTopic::default()
                        .with_name(topic_name("vb"))
                        .with_partitions(vec![0])]),
            ])
        };
        let code = |r: &AddPartitionsToTxnResponse| {
            r.results_by_transaction[0].topic_results[0].results_by_partition[0]
                .partition_error_code
        };
        let r = c.send(v, &request(true)).await;
        assert_eq!(
            code(&r),
            err(ResponseError::TransactionAbortable),
            "v{v}: not in the transaction yet"
        );
        assert_eq!(code(&c.send(v, &request(false)).await), 0, "v{v}: added");
        assert_eq!(code(&c.send(v, &request(true)).await), 0, "v{v}: verified");
        assert_eq!(end_txn(&mut c, 4, &t, false).await, 0);
    }
}

#[tokio::test]
async fn offsets_commit_and_abort_with_their_transaction() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "in", 1, &[]).await;
    let add_offsets: Vec<i16> = c.versions(ApiKey::AddOffsetsToTxn).await.collect();
    let commits: Vec<i16> = c.versions(ApiKey::TxnOffsetCommit).await.collect();
    for round in 0..add_offsets.len().max(commits.len()) {
        let (ao_v, tc_v) = (
            add_offsets[round % add_offsets.len()],
            commits[round % commits.len()],
        );
        let commit = round % 3 != 2;
        let group = format!("eos-{round}");
        let t = txn(&mut c, &format!("offsets-{round}"), 30_000).await;
        let txn_commit = |offset: i64| txn_offset_commit_request(&t, &group, "in", offset);
        if tc_v <= 4 {
            // Not added yet: refused (v5 adds the partition itself: `transactions_v2.rs`).
            let r = c.send(tc_v, &txn_commit(1)).await;
            assert_eq!(
                r.topics[0].partitions[0].error_code,
                err(ResponseError::InvalidTxnState),
                "TxnOffsetCommit v{tc_v} before AddOffsetsToTxn"
            );
        }
        let r = c
            .send(
                ao_v,
                &AddOffsetsToTxnRequest::default()
                    .with_transactional_id(str(&t.id).into())
                    .with_producer_id(t.pid.into())
                    .with_producer_epoch(t.epoch)
                    .with_group_id(str(&group).into()),
            )
            .await;
        assert_eq!(r.error_code, 0, "AddOffsetsToTxn v{ao_v}");
        let offset = 100 + round as i64;
        let r = c.send(tc_v, &txn_commit(offset)).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "TxnOffsetCommit v{tc_v}"
        );
        assert_eq!(
            offset_fetch(&mut c, &group, "in", true).await,
            (-1, err(ResponseError::UnstableOffsetCommit))
        );
        assert_eq!(offset_fetch(&mut c, &group, "in", false).await, (-1, 0));
        assert_eq!(end_txn(&mut c, 3, &t, commit).await, 0);
        let expected = if commit { offset } else { -1 };
        assert_eq!(
            offset_fetch(&mut c, &group, "in", true).await,
            (expected, 0),
            "round {round} commit={commit}"
        );
    }
}

#[tokio::test]
async fn open_transactions_hold_read_committed_back_until_they_time_out_across_a_restart() {
    let mut b = Broker::start(BrokerOptions {
        extra_args: vec![
            "--transaction-abort-timed-out-transaction-cleanup-interval-ms".into(),
            "200".into(),
        ],
        ..BrokerOptions::default()
    })
    .await;
    let mut c = b.client().await;
    create_topic(&mut c, "lso", 1, &[]).await;
    let t = txn(&mut c, "stuck", 4_000).await;
    assert_eq!(add_partitions(&mut c, 3, &t, "lso", &[0]).await, vec![0]);
    assert_eq!(
        produce_txn(&mut c, &t, "lso", 0, 0, &vals("open", 3))
            .await
            .error_code,
        0
    );
    let after = produce(&mut c, "lso", 0, &records("plain", 2, now_ms())).await;
    assert_eq!(after, 3);
    assert_eq!(
        latest(&mut c, "lso", 0, 1).await,
        0,
        "the open transaction holds the LSO"
    );
    assert_eq!(latest(&mut c, "lso", 0, 0).await, 5);
    let rc = fetch_isolated(&mut c, "lso", 0, 0, 1).await;
    assert_eq!((rc.high_watermark, rc.last_stable_offset), (5, 0));
    assert!(visible(&rc).is_empty(), "nothing past the LSO");

    for v in c.versions(ApiKey::DescribeTransactions).await {
        let r = c
            .send(
                v,
                &DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![str("stuck").into(), str("nobody").into()]),
            )
            .await;
        let s = &r.transaction_states[0];
        assert_eq!(
            (s.error_code, s.transaction_state.as_str(), s.producer_id.0),
            (0, "Ongoing", t.pid)
        );
        assert_eq!(s.topics.len(), 1);
        assert_eq!(s.topics[0].partitions, vec![0]);
        assert_eq!(
            r.transaction_states[1].error_code,
            err(ResponseError::TransactionalIdNotFound)
        );
    }
    for v in c.versions(ApiKey::ListTransactions).await {
        let mut request = ListTransactionsRequest::default()
            .with_state_filters(vec![str("Ongoing"), str("Nonsense")]);
        if v >= 1 {
            request = request.with_duration_filter(0);
        }
        let r = c.send(v, &request).await;
        let ids: Vec<&str> = r
            .transaction_states
            .iter()
            .map(|s| s.transactional_id.as_str())
            .collect();
        assert_eq!(ids, vec!["stuck"], "ListTransactions v{v}");
        assert_eq!(r.unknown_state_filters, vec![str("Nonsense")]);
    }

    // Killed with the transaction open: the state comes back from the logs, and the timeout
    // still aborts it.
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(
        latest(&mut c, "lso", 0, 1).await,
        0,
        "still open after the restart"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while latest(&mut c, "lso", 0, 1).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the timed-out transaction was never aborted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rc = fetch_isolated(&mut c, "lso", 0, 0, 1).await;
    assert_eq!(
        (rc.high_watermark, rc.last_stable_offset),
        (6, 6),
        "the abort marker at 5"
    );
    let aborted: Vec<(i64, i64)> = rc
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    assert_eq!(aborted, vec![(t.pid, 0)]);
    assert_eq!(
        values(&visible(&rc)),
        vec!["plain-v0".to_string(), "plain-v1".to_string()]
    );
    // The zombie was fenced by the abort's epoch bump.
    assert_eq!(
        end_txn(&mut c, 3, &t, true).await,
        err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        end_txn(&mut c, 1, &t, true).await,
        err(ResponseError::InvalidProducerEpoch)
    );
    let late = produce_txn(&mut c, &t, "lso", 0, 3, &vals("late", 1)).await;
    assert_eq!(late.error_code, err(ResponseError::InvalidProducerEpoch));
    let r = c
        .send(
            0,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![str("stuck").into()]),
        )
        .await;
    assert_eq!(
        r.transaction_states[0].transaction_state.as_str(),
        "CompleteAbort"
    );
    assert_eq!(r.transaction_states[0].producer_epoch, t.epoch + 1);
}

#[tokio::test]
async fn write_txn_markers_and_bad_transactional_input() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "bad", 1, &[]).await;
    assert_eq!(
        produce(&mut c, "bad", 0, &records("keep", 2, now_ms())).await,
        0
    );
    let t = txn(&mut c, "bad-1", 30_000).await;
    let wrong_epoch = Txn {
        epoch: t.epoch + 1,
        ..t.clone()
    };
    let wrong_pid = Txn {
        pid: t.pid + 1,
        ..t.clone()
    };
    let unknown = Txn {
        id: "never-initialised".into(),
        ..t.clone()
    };
    for v in 0..=3 {
        let fenced = if v >= 2 {
            ResponseError::ProducerFenced
        } else {
            ResponseError::InvalidProducerEpoch
        };
        assert_eq!(
            add_partitions(&mut c, v, &wrong_epoch, "bad", &[0]).await,
            vec![err(fenced)],
            "v{v}"
        );
        assert_eq!(
            add_partitions(&mut c, v, &wrong_pid, "bad", &[0]).await,
            vec![err(ResponseError::InvalidProducerIdMapping)]
        );
        assert_eq!(
            add_partitions(&mut c, v, &unknown, "bad", &[0]).await,
            vec![err(ResponseError::InvalidProducerIdMapping)]
        );
        assert_eq!(
            add_partitions(&mut c, v, &t, "nope", &[0]).await,
            vec![err(ResponseError::UnknownTopicOrPartition)]
        );
    }
    assert_eq!(
        end_txn(&mut c, 3, &t, true).await,
        err(ResponseError::InvalidTxnState),
        "nothing to commit"
    );
    assert_eq!(
        end_txn(&mut c, 3, &unknown, true).await,
        err(ResponseError::InvalidProducerIdMapping)
    );
    // Clients may not write control batches.
    let control = {
        let mut b = BytesMut::from(&txn_batch(&t, 0, &vals("c", 1))[..]);
        b[21..23].copy_from_slice(&0x30i16.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b.freeze()
    };
    assert_eq!(
        produce_to(&mut c, Some(&t.id), "bad", 0, control)
            .await
            .error_code,
        err(ResponseError::InvalidRecord)
    );
    // Coordinator logs are not for clients to write.
    find_coordinator_for(&mut c).await;
    let internal = produce_to(
        &mut c,
        None,
        "__transaction_state",
        0,
        txn_batch(&t, 0, &vals("x", 1)),
    )
    .await;
    assert_eq!(
        internal.error_code,
        err(ResponseError::InvalidTopicException)
    );
    // A transactional batch without the request's transactional id cannot be verified.
    assert_eq!(
        produce_to(&mut c, None, "bad", 0, txn_batch(&t, 0, &vals("x", 1)))
            .await
            .error_code,
        err(ResponseError::InvalidTxnState)
    );

    for v in c.versions(ApiKey::WriteTxnMarkers).await {
        let marker_from = |coordinator_epoch: i32, topic: &str, pid: i64, epoch: i16| {
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(pid.into())
                .with_producer_epoch(epoch)
                .with_transaction_result(false)
                .with_coordinator_epoch(coordinator_epoch)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![0])])])
        };
        let marker = |topic: &str, pid: i64, epoch: i16| marker_from(0, topic, pid, epoch);
        let code = |r: &WriteTxnMarkersResponse| r.markers[0].topics[0].partitions[0].error_code;
        // Once a newer coordinator marked a producer here, an older one is fenced.
        let pid = 515_150 + i64::from(v);
        assert_eq!(code(&c.send(v, &marker_from(4, "bad", pid, 1)).await), 0);
        assert_eq!(
            code(&c.send(v, &marker_from(3, "bad", pid, 1)).await),
            err(ResponseError::TransactionCoordinatorFenced),
            "v{v}: an older coordinator"
        );
        assert_eq!(code(&c.send(v, &marker_from(4, "bad", pid, 1)).await), 0);
        // A producer the partition never saw: Kafka writes the marker.
        assert_eq!(
            code(&c.send(v, &marker("bad", 424_242, 3)).await),
            0,
            "v{v}"
        );
        assert_eq!(
            code(&c.send(v, &marker("bad", 424_242, 2)).await),
            err(ResponseError::InvalidProducerEpoch),
            "v{v}: older epoch"
        );
        assert_eq!(
            code(&c.send(v, &marker("nope", 1, 0)).await),
            err(ResponseError::UnknownTopicOrPartition),
            "v{v}"
        );
    }
    // The partition still serves its data, markers skipped.
    let data = fetch_isolated(&mut c, "bad", 0, 0, 1).await;
    assert_eq!(
        values(&visible(&data)),
        vec!["keep-v0".to_string(), "keep-v1".to_string()]
    );
    assert_eq!(data.last_stable_offset, data.high_watermark);
}

/// Makes sure `__transaction_state` exists (FindCoordinator starts the coordinator).
async fn find_coordinator_for(c: &mut Client) {
    let r = c
        .send(
            3,
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(str("bad-1")),
        )
        .await;
    assert_eq!(r.error_code, 0);
}
