//! Transaction markers: the control batch that ends a producer's transaction on a partition,
//! and the job that writes one to every partition of a transaction and then completes it.
//! Offsets committed in the transaction (`__consumer_offsets` partitions) are completed by
//! their group shard instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use strata_coordinator::txn::MarkerJob;
use strata_meta::StreamId;
use strata_protocol::batch::{marker_batch, stamp};

use crate::groups::OFFSETS_TOPIC;
use crate::{errors, topics, Broker};

/// Markers that fail (storage busy or failing) are tried again after this long.
const RETRY_BACKOFF_MS: u64 = 100;
/// Attempts per marker before the job gives up; a restart or the next timeout check retries.
const ATTEMPTS_MAX: u32 = 300;
/// The coordinator epoch markers carry; one coordinator per partition on a single node.
pub const COORDINATOR_EPOCH: i32 = 0;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Appends a marker for `producer_id` at `epoch` to a partition's stream and records it in the
/// partition's producer state; resolves once it is durable. Returns its offset.
pub async fn write_marker(
    broker: &Broker,
    stream_id: StreamId,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<i64, i16> {
    broker
        .engine
        .wait_for_room()
        .await
        .map_err(|e| errors::storage(&e))?;
    let appended = {
        let mut guard = broker
            .producers
            .lock(&broker.engine, stream_id)
            .await
            .map_err(|e| errors::storage(&e))?;
        let states = guard.as_mut().expect("loaded by lock");
        states
            .check_marker(producer_id, epoch)
            .map_err(|e| e.code())?;
        let now = now_ms();
        let batch = marker_batch(producer_id, epoch, commit, COORDINATOR_EPOCH, now);
        let appended = broker
            .engine
            .sequence(stream_id, 1, now, |base, leader_epoch| {
                let mut copy = BytesMut::from(&batch[..]);
                stamp(&mut copy, base, leader_epoch as i32, None);
                copy.freeze()
            })
            .map_err(|e| errors::storage(&e))?;
        states.record_marker(producer_id, epoch, commit, appended.base_offset(), now);
        appended
    };
    appended.durable().await.map_err(|e| errors::storage(&e))
}

/// Writes the job's marker to every partition of the transaction, then records the
/// transaction complete. Resolves once the Complete record is durable.
pub async fn complete(broker: &Broker, job: MarkerJob) -> Result<(), i16> {
    let writes = job
        .partitions
        .iter()
        .map(|(topic, partition)| write_with_retries(broker, &job, topic, *partition));
    for result in join_all(writes).await {
        result?;
    }
    let shard = broker.txns.shard_for(broker, &job.transactional_id).await?;
    shard
        .call(move |s, now_ms, _| ((), s.complete(now_ms, &job)))
        .await
}

async fn write_with_retries(
    broker: &Broker,
    job: &MarkerJob,
    topic: &str,
    partition: i32,
) -> Result<(), i16> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match write_one(broker, job, topic, partition).await {
            Ok(()) => return Ok(()),
            Err(code) if attempt >= ATTEMPTS_MAX => return Err(code),
            Err(code) => {
                if attempt == 1 {
                    tracing::warn!(
                        topic,
                        partition,
                        code,
                        producer_id = job.producer_id,
                        "transaction marker failed; retrying"
                    );
                }
                tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)).await;
            }
        }
    }
}

async fn write_one(
    broker: &Broker,
    job: &MarkerJob,
    topic: &str,
    partition: i32,
) -> Result<(), i16> {
    if topic == OFFSETS_TOPIC {
        let shard = match broker.groups.shard(broker, partition) {
            Ok(shard) => shard,
            // Not a partition of the topic: nothing to complete.
            Err(code) if code == ResponseError::UnknownTopicOrPartition.code() => return Ok(()),
            Err(code) => return Err(code),
        };
        let (pid, epoch, commit) = (job.producer_id, job.producer_epoch, job.commit);
        return shard
            .call(move |s, now_ms, _| ((), s.complete_txn(now_ms, pid, epoch, commit)))
            .await;
    }
    let stream_id = {
        let image = broker.meta.image().read();
        match topics::partition(&image, topic, partition) {
            Ok(p) => p.stream_id,
            // Deleted since it joined the transaction: nothing left to mark, as in Kafka.
            Err(_) => return Ok(()),
        }
    };
    match write_marker(
        broker,
        stream_id,
        job.producer_id,
        job.producer_epoch,
        job.commit,
    )
    .await
    {
        Ok(_) => Ok(()),
        // A newer epoch already ended this producer's transactions here.
        Err(code) if code == ResponseError::InvalidProducerEpoch.code() => Ok(()),
        Err(code) => Err(code),
    }
}
