//! Test harness for wire-level tests: starts the real `strata` binary on free loopback ports with
//! a temporary data dir, and talks to it over TCP with `kafka-protocol` codecs, the way a client
//! does: request header at `ApiKey::request_header_version`, response header at
//! `ApiKey::response_header_version`, body at the request's version.

#![allow(dead_code)]

pub mod txn;

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::RangeInclusive;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, FetchRequest, ListOffsetsRequest,
    MetadataRequest, MetadataResponse, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{Record, RecordBatchDecoder, TimestampType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single response may take before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Versions the helpers below use for requests that are not the subject of a test.
pub const HELPER_CREATE_TOPICS: i16 = 5;
pub const HELPER_METADATA: i16 = 12;
pub const HELPER_PRODUCE: i16 = 9;
pub const HELPER_FETCH: i16 = 12;
pub const HELPER_LIST_OFFSETS: i16 = 7;

pub fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str(s))
}

/// The wire code of a Kafka error.
pub fn err(e: ResponseError) -> i16 {
    e.code()
}

// ---------------------------------------------------------------------------------------------
// The broker process
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct BrokerOptions {
    pub node_id: i32,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    /// More `strata serve` flags, e.g. `["--group-initial-rebalance-delay-ms", "0"]`.
    pub extra_args: Vec<String>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            node_id: 7,
            auto_create_topics: false,
            num_partitions: 1,
            extra_args: Vec::new(),
        }
    }
}

/// A running `strata serve`; killed (and its temp dir removed) on drop. When the test panics,
/// the tail of the broker's log is printed.
pub struct Broker {
    child: Child,
    pub options: BrokerOptions,
    pub host: String,
    pub port: u16,
    pub admin_port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `strata serve` with its log in `dir/strata.log` (truncated) and data in `dir/data`.
fn spawn(options: &BrokerOptions, dir: &std::path::Path, port: u16, admin_port: u16) -> Child {
    let log = std::fs::File::create(dir.join("strata.log")).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin_port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--node-id")
        .arg(options.node_id.to_string())
        .arg("--auto-create-topics")
        .arg(options.auto_create_topics.to_string())
        .arg("--num-partitions")
        .arg(options.num_partitions.to_string())
        .args(&options.extra_args)
        .env("STRATA_LOG", "info,openraft=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn the strata binary")
}

impl Broker {
    pub async fn start(options: BrokerOptions) -> Broker {
        let mut last_log = String::new();
        // A free port can be taken by someone else between our probe and the broker's bind:
        // retry with new ports when the broker exits early.
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let (port, admin_port) = (free_port(), free_port());
            let log_path = dir.path().join("strata.log");
            let mut child = spawn(&options, dir.path(), port, admin_port);
            let deadline = Instant::now() + STARTUP_TIMEOUT;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    last_log = read_log(&log_path);
                    eprintln!("strata exited during startup ({status}); retrying:\n{last_log}");
                    break;
                }
                let serving = read_log(&log_path).contains("strata is serving");
                if serving && TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    return Broker {
                        child,
                        options,
                        host: "127.0.0.1".into(),
                        port,
                        admin_port,
                        dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "strata did not start within {STARTUP_TIMEOUT:?}:\n{}",
                        read_log(&log_path)
                    );
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        panic!("strata failed to start three times; last log:\n{last_log}");
    }

    pub fn node_id(&self) -> i32 {
        self.options.node_id
    }

    /// SIGKILLs the broker and starts it again on the same ports and data.
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log_path = self.dir.path().join("strata.log");
        self.child = spawn(&self.options, self.dir.path(), self.port, self.admin_port);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let serving = read_log(&log_path).contains("strata is serving");
            if serving && TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "strata did not restart within {STARTUP_TIMEOUT:?}:\n{}",
                read_log(&log_path)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.port).await
    }

    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("strata.log"))
    }
}

fn read_log(path: &std::path::Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            // Nothing a client sends may panic the broker (a panicking task can leave a
            // connection answered by nobody without failing the request that caused it).
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains("panicked")) {
                panic!("the broker panicked during the test: {line}\n{log}");
            }
        } else {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "---- strata log (last {} lines) ----\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The wire client
// ---------------------------------------------------------------------------------------------

pub struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
    advertised: Option<BTreeMap<i16, (i16, i16)>>,
}

pub fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("known API key")
}

impl Client {
    pub async fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to strata");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            // Not 0, so that a broker echoing a default correlation id is caught.
            next_correlation_id: 1000,
            advertised: None,
        }
    }

    /// Sends `body` as API `R` at `version` and returns the decoded response.
    pub async fn send<R: Request>(&mut self, version: i16, body: &R) -> R::Response {
        let correlation_id = self.write(version, body).await;
        self.read::<R::Response>(api_key::<R>(), version, correlation_id)
            .await
    }

    /// Writes one request; returns its correlation id.
    pub async fn write<R: Request>(&mut self, version: i16, body: &R) -> i32 {
        let key = api_key::<R>();
        let mut buf = BytesMut::new();
        body.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: request does not encode: {e:#}"));
        self.write_raw(key, version, &buf).await
    }

    /// Writes a request header for `key` at `version` followed by `body` as given.
    pub async fn write_raw(&mut self, key: ApiKey, version: i16, body: &[u8]) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strata-wire-test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        buf.extend_from_slice(body);
        let mut frame = Vec::with_capacity(buf.len() + 4);
        frame.extend_from_slice(&(buf.len() as i32).to_be_bytes());
        frame.extend_from_slice(&buf);
        tokio::time::timeout(IO_TIMEOUT, self.stream.write_all(&frame))
            .await
            .expect("write timed out")
            .expect("write a request");
        correlation_id
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let mut len = [0u8; 4];
            if self.stream.read_exact(&mut len).await.is_err() {
                return None;
            }
            let len = i32::from_be_bytes(len);
            assert!(len >= 0, "negative frame length {len}");
            let mut body = vec![0u8; len as usize];
            self.stream
                .read_exact(&mut body)
                .await
                .expect("a whole frame");
            Some(Bytes::from(body))
        };
        tokio::time::timeout(IO_TIMEOUT, read)
            .await
            .expect("no response within the timeout")
    }

    /// Reads the response to request `correlation_id` (API `key` at `version`) and checks that
    /// it is exactly one well-formed response for it.
    pub async fn read<T: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> T {
        let mut frame = self.read_frame().await.unwrap_or_else(|| {
            panic!("{key:?} v{version}: connection closed instead of a response")
        });
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .unwrap_or_else(|e| panic!("{key:?} v{version}: response header: {e:#}"));
        assert_eq!(
            header.correlation_id, correlation_id,
            "{key:?} v{version}: correlation id"
        );
        let body = T::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: response does not decode: {e:#}"));
        assert!(
            !frame.has_remaining(),
            "{key:?} v{version}: {} trailing bytes after the response",
            frame.remaining()
        );
        body
    }

    /// Asserts that the broker closes the connection (without sending anything).
    pub async fn expect_closed(&mut self, what: &str) {
        if let Some(frame) = self.read_frame().await {
            panic!(
                "{what}: expected the connection to close, got a {}-byte response",
                frame.len()
            );
        }
    }

    /// The versions of `key` the broker advertises in ApiVersions (v3, as clients ask). Also
    /// asserts they are exactly `strata_broker::versions::SUPPORTED`'s.
    pub async fn versions(&mut self, key: ApiKey) -> RangeInclusive<i16> {
        if self.advertised.is_none() {
            let response = self
                .send(
                    3,
                    &ApiVersionsRequest::default()
                        .with_client_software_name(StrBytes::from_static_str("strata-wire-test"))
                        .with_client_software_version(StrBytes::from_static_str("1.0")),
                )
                .await;
            assert_eq!(response.error_code, 0, "ApiVersions v3 error");
            self.advertised = Some(
                response
                    .api_keys
                    .iter()
                    .map(|k| (k.api_key, (k.min_version, k.max_version)))
                    .collect(),
            );
        }
        let (min, max) = *self
            .advertised
            .as_ref()
            .unwrap()
            .get(&(key as i16))
            .unwrap_or_else(|| panic!("{key:?} is not advertised in ApiVersions"));
        assert_eq!(
            Some((min, max)),
            strata_broker::versions::supported(key),
            "{key:?}: advertised versions differ from versions::SUPPORTED"
        );
        assert!(min <= max, "{key:?}: empty version range {min}..={max}");
        min..=max
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// A record as the tests produce and expect it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRecord {
    pub key: Bytes,
    pub value: Bytes,
    pub timestamp: i64,
}

impl TestRecord {
    pub fn new(key: impl Into<String>, value: impl Into<String>, timestamp: i64) -> TestRecord {
        TestRecord {
            key: Bytes::from(key.into()),
            value: Bytes::from(value.into()),
            timestamp,
        }
    }
}

/// `n` records `{prefix}-k{i}` / `{prefix}-v{i}` with timestamps `ts0 + i`.
pub fn records(prefix: &str, n: usize, ts0: i64) -> Vec<TestRecord> {
    (0..n)
        .map(|i| {
            TestRecord::new(
                format!("{prefix}-k{i}"),
                format!("{prefix}-v{i}"),
                ts0 + i as i64,
            )
        })
        .collect()
}

/// One magic-2, uncompressed, non-idempotent record batch holding `records`.
pub fn batch(records: &[TestRecord]) -> Bytes {
    let bytes = producer_batch(records, -1, -1, -1);
    let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
    assert_eq!(info[0].base_sequence, -1);
    bytes
}

/// One magic-2, uncompressed record batch of producer `pid` at `epoch`, its first record at
/// sequence `seq` (all -1: no producer).
pub fn producer_batch(records: &[TestRecord], pid: i64, epoch: i16, seq: i32) -> Bytes {
    assert!(!records.is_empty());
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever `offset - sequence` changes; this keeps
            // all records in one batch (with base sequence -1 when there is no producer).
            sequence: if pid < 0 {
                i as i32 - 1
            } else {
                seq + i as i32
            },
            timestamp: r.timestamp,
            key: Some(r.key.clone()),
            value: Some(r.value.clone()),
            headers: IndexMap::new(),
        })
        .collect();
    let bytes = strata_protocol::batch::encode_uncompressed(&records);
    let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
    assert_eq!(info.len(), 1, "test harness: expected one batch");
    assert_eq!(info[0].record_count as usize, records.len());
    bytes
}

/// Decodes fetched records: `(offset, record)` in log order. Panics on anything a client could
/// not decode.
pub fn decode_records(what: &str, records: &Option<Bytes>) -> Vec<(i64, TestRecord)> {
    let Some(bytes) = records else {
        return Vec::new();
    };
    let mut buf = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .unwrap_or_else(|e| panic!("{what}: fetched records do not decode: {e:#}"));
    let mut out = Vec::new();
    for set in sets {
        assert_eq!(set.version, 2, "{what}: record batch magic");
        for r in set.records {
            assert!(!r.control, "{what}: unexpected control record");
            out.push((
                r.offset,
                TestRecord {
                    key: r.key.clone().unwrap_or_default(),
                    value: r.value.clone().unwrap_or_default(),
                    timestamp: r.timestamp,
                },
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Helper requests (at fixed versions; each API's own test covers all of its versions)
// ---------------------------------------------------------------------------------------------

/// Creates a topic and asserts success.
pub async fn create_topic(c: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let response = c
        .send(
            HELPER_CREATE_TOPICS,
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(str(k))
                                    .with_value(Some(str(v)))
                            })
                            .collect(),
                    )])
                .with_timeout_ms(10_000),
        )
        .await;
    assert_eq!(response.topics.len(), 1);
    assert_eq!(
        response.topics[0].error_code, 0,
        "helper: create topic {name}: {:?}",
        response.topics[0].error_message
    );
}

/// Metadata for the named topics (all topics for `None`), never auto-creating.
pub async fn metadata(c: &mut Client, topics: Option<&[&str]>) -> MetadataResponse {
    c.send(
        HELPER_METADATA,
        &MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false),
    )
    .await
}

/// The topic's metadata, or `None` when the broker says it does not exist.
pub async fn topic_metadata(c: &mut Client, name: &str) -> Option<MetadataResponseTopic> {
    let response = metadata(c, Some(&[name])).await;
    assert_eq!(response.topics.len(), 1, "helper: metadata for {name}");
    let t = response.topics.into_iter().next().unwrap();
    if t.error_code == err(ResponseError::UnknownTopicOrPartition) {
        return None;
    }
    assert_eq!(t.error_code, 0, "helper: metadata for {name}");
    Some(t)
}

/// Whether a full topic listing contains `name`.
pub async fn topic_listed(c: &mut Client, name: &str) -> bool {
    metadata(c, None)
        .await
        .topics
        .iter()
        .any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name))
}

pub fn broker(id: i32) -> BrokerId {
    BrokerId(id)
}

/// Produces one batch (acks=-1) and returns its base offset.
pub async fn produce(c: &mut Client, topic: &str, partition: i32, recs: &[TestRecord]) -> i64 {
    let p = produce_partition(c, HELPER_PRODUCE, topic, partition, recs).await;
    assert_eq!(
        p.error_code, 0,
        "helper: produce to {topic}-{partition}: {:?}",
        p.error_message
    );
    p.base_offset
}

pub async fn produce_partition(
    c: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    recs: &[TestRecord],
) -> PartitionProduceResponse {
    produce_raw(c, version, None, topic, partition, batch(recs)).await
}

/// One acks=all Produce of `records` (already encoded) to a partition, with the request's
/// transactional id; returns the partition's answer.
pub async fn produce_raw(
    c: &mut Client,
    version: i16,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let response = c
        .send(
            version,
            &ProduceRequest::default()
                .with_transactional_id(transactional_id.map(|t| str(t).into()))
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records))])]),
        )
        .await;
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partition_responses.len(), 1);
    response.responses[0].partition_responses[0].clone()
}

/// One fetch (by name) of a partition from `offset`, returning the partition's data.
pub async fn fetch(c: &mut Client, topic: &str, partition: i32, offset: i64) -> PartitionData {
    fetch_isolated(c, topic, partition, offset, 0).await
}

/// [`fetch`] at an isolation level: 0 read_uncommitted, 1 read_committed.
pub async fn fetch_isolated(
    c: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
    isolation: i8,
) -> PartitionData {
    let response = c
        .send(
            HELPER_FETCH,
            &FetchRequest::default()
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(16 << 20)
                .with_isolation_level(isolation)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(8 << 20)])]),
        )
        .await;
    assert_eq!(response.error_code, 0, "helper: fetch");
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partitions.len(), 1);
    response.responses[0].partitions[0].clone()
}

/// ListOffsets for one partition at `timestamp` (-1 latest, -2 earliest, -3 max timestamp).
pub async fn list_offset(
    c: &mut Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let response = c
        .send(
            HELPER_LIST_OFFSETS,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp)])]),
        )
        .await;
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].partitions.len(), 1);
    response.topics[0].partitions[0].clone()
}

/// A stored batch's header fields, read from the raw bytes (the fields the broker sets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawBatch {
    pub base_offset: i64,
    pub leader_epoch: i32,
    pub attributes: i16,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub record_count: i32,
}

impl RawBatch {
    pub fn log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
}

/// Walks the record batches of fetched bytes.
pub fn raw_batches(records: &Option<Bytes>) -> Vec<RawBatch> {
    let Some(bytes) = records else {
        return Vec::new();
    };
    let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
    let i32_at = |at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let i16_at = |at: usize| i16::from_be_bytes(bytes[at..at + 2].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 0;
    while at + 61 <= bytes.len() {
        let length = i32_at(at + 8) as usize;
        out.push(RawBatch {
            base_offset: i64_at(at),
            leader_epoch: i32_at(at + 12),
            attributes: i16_at(at + 21),
            max_timestamp: i64_at(at + 35),
            producer_id: i64_at(at + 43),
            producer_epoch: i16_at(at + 51),
            record_count: i32_at(at + 57),
        });
        at += 12 + length;
    }
    out
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
