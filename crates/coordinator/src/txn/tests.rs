//! The transaction shard driven without I/O: requests and time in, records and marker jobs
//! out, and the same state rebuilt from the records.

use kafka_protocol::error::ResponseError as E;

use super::records::{TxnRecord, TxnState};
use super::*;
use crate::shard::CoordinatorShard;

struct NoTopics;
impl TopicLookup for NoTopics {
    fn by_name(&self, _: &str) -> Option<(uuid::Uuid, i32)> {
        None
    }
    fn by_id(&self, _: uuid::Uuid) -> Option<(String, i32)> {
        None
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A shard that keeps every record it wrote, to replay them into a second shard.
struct Harness {
    shard: TxnShard,
    log: Vec<TxnRecord>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            shard: TxnShard::new(TxnConfig::default()),
            log: Vec::new(),
        }
    }

    fn keep<T>(&mut self, (r, fx): (T, TxnEffects)) -> (T, Vec<MarkerJob>) {
        self.log.extend(fx.records);
        (r, fx.outputs)
    }

    fn init(
        &mut self,
        now: u64,
        id: &str,
        expected: Option<(i64, i16)>,
        fresh: i64,
    ) -> Result<(i64, i16), E> {
        let r = self
            .shard
            .init_producer_id(now, id, 60_000, expected, fresh);
        self.keep(r).0
    }

    fn add(
        &mut self,
        now: u64,
        id: &str,
        pid: i64,
        epoch: i16,
        parts: &[(&str, i32)],
    ) -> Result<(), E> {
        let parts: Vec<(String, i32)> = parts.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let r = self.shard.add_partitions(now, id, pid, epoch, &parts);
        self.keep(r).0
    }

    fn end(
        &mut self,
        now: u64,
        id: &str,
        pid: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<Option<MarkerJob>, E> {
        let r = self
            .shard
            .end_txn(now, id, pid, epoch, commit, TxnVersion::V1, None);
        self.keep(r).0.map(|ended| ended.markers)
    }

    /// EndTxn v5: the answer and the markers to write.
    fn end_v2(
        &mut self,
        now: u64,
        id: &str,
        (pid, epoch): (i64, i16),
        commit: bool,
        fresh: Option<i64>,
    ) -> Result<((i64, i16), Option<MarkerJob>), E> {
        let r = self
            .shard
            .end_txn(now, id, pid, epoch, commit, TxnVersion::V2, fresh);
        self.keep(r)
            .0
            .map(|e| ((e.producer_id, e.producer_epoch), e.markers))
    }

    fn complete(&mut self, now: u64, job: &MarkerJob) {
        let fx = self.shard.complete(now, job);
        self.log.extend(fx.records);
    }

    fn state(&self, id: &str) -> TxnState {
        self.shard.get(id).unwrap().state
    }

    fn replayed(&self) -> TxnShard {
        let mut s = TxnShard::new(TxnConfig::default());
        for r in &self.log {
            s.replay(r);
        }
        s
    }
}

#[test]
fn commit_flow_with_retries_and_kafka_errors() {
    let mut h = Harness::new();
    assert_eq!(h.init(0, "t", None, 100), Ok((100, 0)));
    assert_eq!(h.state("t"), TxnState::Empty);
    assert_eq!(
        h.end(1, "t", 100, 0, true),
        Err(E::InvalidTxnState),
        "nothing to commit"
    );
    assert_eq!(h.add(1, "t", 100, 0, &[("a", 0), ("b", 1)]), Ok(()));
    assert_eq!(h.add(2, "t", 100, 0, &[("a", 0)]), Ok(()));
    assert_eq!(h.state("t"), TxnState::Ongoing);
    assert_eq!(
        h.add(2, "t", 101, 0, &[("a", 0)]),
        Err(E::InvalidProducerIdMapping)
    );
    assert_eq!(
        h.add(2, "u", 100, 0, &[("a", 0)]),
        Err(E::InvalidProducerIdMapping)
    );
    assert_eq!(h.add(2, "t", 100, 1, &[("a", 0)]), Err(E::ProducerFenced));

    let job = h
        .end(3, "t", 100, 0, true)
        .unwrap()
        .expect("markers to write");
    assert!(job.commit);
    assert_eq!(
        job.partitions,
        vec![("a".to_string(), 0), ("b".to_string(), 1)]
    );
    assert_eq!(h.state("t"), TxnState::PrepareCommit);
    // Invariant 2: nothing moves while the markers are written.
    assert_eq!(h.end(4, "t", 100, 0, true), Err(E::ConcurrentTransactions));
    assert_eq!(h.end(4, "t", 100, 0, false), Err(E::InvalidTxnState));
    assert_eq!(
        h.add(4, "t", 100, 0, &[("c", 0)]),
        Err(E::ConcurrentTransactions)
    );
    assert_eq!(h.init(4, "t", None, 200), Err(E::ConcurrentTransactions));

    h.complete(5, &job);
    assert_eq!(h.state("t"), TxnState::CompleteCommit);
    assert!(h.shard.get("t").unwrap().partitions.is_empty());
    h.complete(5, &job);
    assert_eq!(
        h.end(6, "t", 100, 0, true),
        Ok(None),
        "a retried commit succeeds"
    );
    assert_eq!(h.end(6, "t", 100, 0, false), Err(E::InvalidTxnState));

    // The next transaction starts afresh.
    assert_eq!(h.add(7, "t", 100, 0, &[("c", 0)]), Ok(()));
    let v = h.shard.get("t").unwrap();
    assert_eq!(v.start_ms, 7);
    assert_eq!(v.partitions.len(), 1);
    assert_eq!(h.replayed().get("t"), h.shard.get("t"));
}

#[test]
fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    let mut h = Harness::new();
    let (pid, e0) = h.init(0, "t", None, 100).unwrap();
    h.add(1, "t", pid, e0, &[("a", 0)]).unwrap();

    // The new instance: the open transaction is aborted at a bumped epoch first.
    let r = h.shard.init_producer_id(2, "t", 60_000, None, 200);
    let (result, jobs) = h.keep(r);
    assert_eq!(result, Err(E::ConcurrentTransactions));
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert!(!job.commit);
    assert_eq!((job.producer_id, job.producer_epoch), (pid, e0 + 1));
    assert_eq!(h.state("t"), TxnState::PrepareAbort);
    // The zombie can neither commit nor add.
    assert_eq!(h.end(3, "t", pid, e0, true), Err(E::ProducerFenced));
    assert_eq!(h.add(3, "t", pid, e0, &[("b", 0)]), Err(E::ProducerFenced));

    h.complete(4, job);
    assert_eq!(h.state("t"), TxnState::CompleteAbort);
    assert_eq!(h.init(5, "t", None, 300), Ok((pid, e0 + 2)));
    assert_eq!(h.end(6, "t", pid, e0 + 1, false), Err(E::ProducerFenced));
}

#[test]
fn timed_out_transactions_are_aborted_and_their_producer_fenced() {
    let mut h = Harness::new();
    let (pid, e) = h.init(0, "t", None, 100).unwrap();
    h.add(1_000, "t", pid, e, &[("a", 3)]).unwrap();
    let _ = h.shard.loaded(0);
    let fx = h.shard.tick(30_000, &NoTopics);
    assert!(fx.outputs.is_empty(), "60 s timeout not reached");
    assert_eq!(h.shard.next_deadline_ms(), Some(40_000));
    let fx = h.shard.tick(61_000, &NoTopics);
    h.log.extend(fx.records);
    assert_eq!(fx.outputs.len(), 1);
    assert!(!fx.outputs[0].commit);
    assert_eq!(fx.outputs[0].producer_epoch, e + 1);
    assert_eq!(fx.outputs[0].partitions, vec![("a".to_string(), 3)]);
    assert_eq!(h.end(61_001, "t", pid, e, true), Err(E::ProducerFenced));

    // A restart before the markers were written: the loaded shard owes them (invariant 3).
    let mut again = h.replayed();
    let owed = again.loaded(62_000);
    assert_eq!(owed, fx.outputs);

    // Markers that never complete are handed out again, once per resend interval.
    let mut checks = |at: u64| h.shard.tick(at, &NoTopics).outputs;
    assert!(checks(71_000).is_empty(), "sent 10 s ago");
    assert_eq!(checks(61_000 + MARKERS_RESEND_MS), fx.outputs);
    assert!(checks(61_000 + MARKERS_RESEND_MS + 10_000).is_empty());
}

#[test]
fn init_retries_and_expected_epochs_as_kafka() {
    let mut h = Harness::new();
    let (pid, _) = h.init(0, "t", None, 100).unwrap();
    assert_eq!(h.init(1, "t", None, 101), Ok((pid, 1)));
    // KIP-360: the producer names itself; a retry of the same bump is answered again.
    assert_eq!(h.init(2, "t", Some((pid, 1)), 102), Ok((pid, 2)));
    assert_eq!(h.init(3, "t", Some((pid, 1)), 103), Ok((pid, 2)));
    assert_eq!(h.init(4, "t", Some((pid, 0)), 104), Err(E::ProducerFenced));
    assert_eq!(h.init(4, "t", Some((999, 2)), 104), Err(E::ProducerFenced));
    assert_eq!(
        h.shard.init_producer_id(5, "t", 0, None, 105).0,
        Err(E::InvalidTransactionTimeout)
    );
    assert_eq!(
        h.shard.init_producer_id(5, "t", 900_001, None, 105).0,
        Err(E::InvalidTransactionTimeout)
    );
}

#[test]
fn exhausted_epochs_rotate_the_producer_id() {
    let mut h = Harness::new();
    h.init(0, "t", None, 100).unwrap();
    let mut v = h.shard.get("t").unwrap().clone();
    v.producer_epoch = i16::MAX - 1;
    h.shard.txns.insert("t".into(), v);
    assert_eq!(h.init(1, "t", None, 555), Ok((555, 0)));
    assert_eq!(h.shard.get("t").unwrap().prev_producer_id, 100);
}

#[test]
fn verify_only_reports_partitions_outside_the_transaction() {
    let mut h = Harness::new();
    let (pid, e) = h.init(0, "t", None, 100).unwrap();
    let a = ("a".to_string(), 0);
    let b = ("b".to_string(), 0);
    assert_eq!(
        h.shard.verify("t", pid, e, std::slice::from_ref(&a)),
        Ok(vec![(a.clone(), E::TransactionAbortable)])
    );
    h.add(1, "t", pid, e, &[("a", 0)]).unwrap();
    assert_eq!(
        h.shard.verify("t", pid, e, &[a.clone(), b.clone()]),
        Ok(vec![(b, E::TransactionAbortable)])
    );
    assert_eq!(
        h.shard.verify("t", pid, e + 1, std::slice::from_ref(&a)),
        Err(E::ProducerFenced)
    );
    assert_eq!(
        h.shard.verify("x", pid, e, &[a]),
        Err(E::InvalidProducerIdMapping)
    );
}

#[test]
fn idle_ids_expire() {
    let mut h = Harness::new();
    h.init(0, "t", None, 100).unwrap();
    let _ = h.shard.loaded(0);
    let day = 24 * 3_600_000;
    let fx = h.shard.tick(7 * day, &NoTopics);
    assert_eq!(fx.records.len(), 1);
    assert!(fx.records[0].value.is_none());
    assert!(h.shard.get("t").is_none());
}

#[test]
fn version_2_bumps_the_epoch_at_every_end_and_answers_retries() {
    let mut h = Harness::new();
    let (pid, e) = h.init(0, "t", None, 100).unwrap();
    h.add(1, "t", pid, e, &[("a", 0)]).unwrap();

    let (next, job) = h.end_v2(2, "t", (pid, e), true, None).unwrap();
    assert_eq!(next, (pid, e + 1), "the producer goes on one epoch up");
    let job = job.expect("markers to write");
    assert_eq!(
        job.producer_epoch,
        e + 1,
        "markers fence the epoch that wrote"
    );
    assert_eq!(
        h.end_v2(3, "t", (pid, e), true, None),
        Err(E::ConcurrentTransactions),
        "a retry while the markers are written"
    );
    assert_eq!(
        h.end_v2(3, "t", (pid, e + 1), true, None),
        Err(E::ProducerFenced),
        "the new epoch is not valid before the transaction completes"
    );
    h.complete(4, &job);
    assert_eq!(h.state("t"), TxnState::CompleteCommit);
    // Invariant 1: a retry with the epoch before gets the same answer.
    assert_eq!(h.end_v2(5, "t", (pid, e), true, None), Ok((next, None)));
    assert_eq!(
        h.end_v2(5, "t", (pid, e), false, None),
        Err(E::InvalidTxnState)
    );
    assert_eq!(
        h.add(5, "t", pid, e, &[("a", 0)]),
        Err(E::ProducerFenced),
        "the old epoch cannot start the next transaction"
    );

    // The next transaction, at the new epoch, aborted.
    h.add(6, "t", pid, e + 1, &[("b", 1)]).unwrap();
    let (next, job) = h.end_v2(7, "t", (pid, e + 1), false, None).unwrap();
    assert_eq!(next, (pid, e + 2));
    h.complete(8, &job.unwrap());
    assert_eq!(h.state("t"), TxnState::CompleteAbort);

    // Aborting a transaction that never reached the coordinator: nothing to mark, one bump.
    assert_eq!(
        h.end_v2(9, "t", (pid, e + 2), false, None),
        Ok(((pid, e + 3), None))
    );
    assert_eq!(h.state("t"), TxnState::CompleteAbort);
    assert_eq!(
        h.end_v2(9, "t", (pid, e + 3), true, None),
        Err(E::InvalidTxnState),
        "nothing to commit"
    );
    assert_eq!(
        h.end(9, "t", pid, e + 3, false),
        Ok(None),
        "version 1 answers a repeated abort as a retry"
    );
    assert_eq!(h.replayed().get("t"), h.shard.get("t"));
}

#[test]
fn version_2_rotates_the_producer_id_when_epochs_run_out() {
    let mut h = Harness::new();
    h.init(0, "t", None, 100).unwrap();
    let mut v = h.shard.get("t").unwrap().clone();
    v.producer_epoch = i16::MAX - 1;
    h.shard.txns.insert("t".into(), v);
    let last = (100, i16::MAX - 1);
    h.add(1, "t", last.0, last.1, &[("a", 0)]).unwrap();

    let (next, job) = h.end_v2(2, "t", last, true, Some(500)).unwrap();
    assert_eq!(next, (500, 0), "invariant 2");
    let job = job.unwrap();
    assert_eq!(
        (job.producer_id, job.producer_epoch),
        (100, i16::MAX),
        "the markers carry the old id at the last epoch"
    );
    assert_eq!(
        h.end_v2(3, "t", last, true, None),
        Err(E::ConcurrentTransactions)
    );
    h.complete(4, &job);
    let v = h.shard.get("t").unwrap();
    assert_eq!(
        (v.producer_id, v.producer_epoch, v.prev_producer_id),
        (500, 0, 100)
    );
    assert_eq!(h.end_v2(5, "t", last, true, None), Ok((next, None)));
    assert_eq!(h.add(6, "t", 500, 0, &[("a", 0)]), Ok(()));
    assert_eq!(
        h.add(6, "t", 100, i16::MAX, &[("a", 0)]),
        Err(E::InvalidProducerIdMapping)
    );
    assert_eq!(h.replayed().get("t"), h.shard.get("t"));
}

#[test]
fn a_timeout_abort_after_version_2_fences_the_old_epoch() {
    let mut h = Harness::new();
    let (pid, e) = h.init(0, "t", None, 100).unwrap();
    h.add(1, "t", pid, e, &[("a", 0)]).unwrap();
    let (_, job) = h.end_v2(2, "t", (pid, e), true, None).unwrap();
    h.complete(3, &job.unwrap());
    h.add(1_000, "t", pid, e + 1, &[("a", 0)]).unwrap();
    let _ = h.shard.loaded(0);
    let fx = h.shard.tick(70_000, &NoTopics);
    h.log.extend(fx.records);
    assert_eq!(fx.outputs[0].producer_epoch, e + 2);
    // The producer's abort comes with the epoch before the fence, which is not a retry of
    // any EndTxn of its own.
    assert_eq!(
        h.end_v2(70_001, "t", (pid, e + 1), false, None),
        Err(E::ProducerFenced)
    );
    h.complete(70_002, &fx.outputs[0]);
    assert_eq!(
        h.end_v2(70_003, "t", (pid, e + 1), false, None),
        Err(E::ProducerFenced)
    );
}

#[test]
fn version_2_at_the_last_epoch_rotates_without_overflowing() {
    // A fence can leave the epoch at i16::MAX; a client that names it must not break the shard.
    let mut h = Harness::new();
    h.init(0, "t", None, 100).unwrap();
    let mut v = h.shard.get("t").unwrap().clone();
    v.producer_epoch = i16::MAX;
    v.state = TxnState::CompleteAbort;
    h.shard.txns.insert("t".into(), v);
    let at_max = (100, i16::MAX);
    h.add(1, "t", at_max.0, at_max.1, &[("a", 0)]).unwrap();
    assert_eq!(
        h.end_v2(2, "t", at_max, true, None),
        Err(E::UnknownServerError),
        "no fresh producer id to rotate to"
    );
    let (next, job) = h.end_v2(2, "t", at_max, true, Some(700)).unwrap();
    assert_eq!(next, (700, 0));
    let job = job.unwrap();
    assert_eq!((job.producer_id, job.producer_epoch), at_max);
    h.complete(3, &job);
    assert_eq!(
        h.end_v2(4, "t", (700, 0), false, None),
        Ok(((700, 1), None)),
        "an empty abort on the new id"
    );
}
