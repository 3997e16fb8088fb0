//! Every advertised (API, version), over the wire against the real `strata` binary.
//!
//! Each test starts its own broker (free loopback ports, temp data dir), asks ApiVersions what
//! is advertised for its API, and for every advertised version sends realistic requests encoded
//! by `kafka-protocol` at that version, decodes the response at that version, and checks what a
//! client would check: the correlation id, the error codes, and the semantic result.
//!
//! Run: `cargo test --release -p strata --test api_versions`

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::incremental_alter_configs_request as iac;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterPartitionReassignmentsRequest, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    FetchRequest, FetchResponse, FindCoordinatorRequest, IncrementalAlterConfigsRequest,
    ListOffsetsRequest, ListPartitionReassignmentsRequest, MetadataRequest,
    OffsetForLeaderEpochRequest, ProduceRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use common::*;

/// The APIs this file tests, one `#[tokio::test]` each. A newly advertised API fails
/// `api_versions` until it gets a test here.
const TESTED: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::DescribeCluster,
    ApiKey::DeleteTopics,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
];

/// The group APIs, tested in `api_versions_groups.rs` (its own `TESTED`).
const TESTED_IN_GROUPS_FILE: &[ApiKey] = &[
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::OffsetDelete,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::DeleteGroups,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
];

/// The producer APIs, tested in `api_versions_producers.rs`.
const TESTED_IN_PRODUCERS_FILE: &[ApiKey] = &[ApiKey::InitProducerId];
/// APIs whose every advertised version is exercised in `api_versions_transactions.rs`.
const TESTED_IN_TRANSACTIONS_FILE: &[ApiKey] = &[
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::EndTxn,
    ApiKey::WriteTxnMarkers,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
];

/// Kafka's `ConfigSource` values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's `ConfigResource.Type` values.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

// ---------------------------------------------------------------------------------------------
// Small helpers used by several tests
// ---------------------------------------------------------------------------------------------

/// A topic's leader epoch for a partition (Metadata v12).
async fn leader_epoch(c: &mut Client, topic: &str, partition: i32) -> i32 {
    let t = topic_metadata(c, topic).await.expect("topic exists");
    t.partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .expect("partition exists")
        .leader_epoch
}

/// Deletes a topic by name (DeleteTopics v5) and asserts success.
async fn delete_topic(c: &mut Client, name: &str) {
    let r = c
        .send(
            5,
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![topic_name(name)])
                .with_timeout_ms(10_000),
        )
        .await;
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].error_code, 0, "helper: delete {name}");
}

/// A topic's configs as DescribeConfigs v4 reports them: name -> (value, source).
async fn topic_configs(c: &mut Client, topic: &str) -> BTreeMap<String, (Option<String>, i8)> {
    let r = c
        .send(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(str(topic))
                    .with_configuration_keys(None),
            ]),
        )
        .await;
    assert_eq!(r.results.len(), 1);
    assert_eq!(
        r.results[0].error_code, 0,
        "helper: describe configs of {topic}: {:?}",
        r.results[0].error_message
    );
    r.results[0]
        .configs
        .iter()
        .map(|e| {
            (
                e.name.to_string(),
                (e.value.as_ref().map(|v| v.to_string()), e.config_source),
            )
        })
        .collect()
}

fn config_value(configs: &BTreeMap<String, (Option<String>, i8)>, name: &str) -> (String, i8) {
    let (value, source) = configs
        .get(name)
        .unwrap_or_else(|| panic!("config {name} is not described"));
    (value.clone().unwrap_or_default(), *source)
}

fn sorted_partition_indexes(t: &MetadataResponseTopic) -> Vec<i32> {
    let mut v: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// ApiVersions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn api_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    let expected: BTreeMap<i16, (i16, i16)> = strata_broker::versions::SUPPORTED
        .iter()
        .map(|(k, min, max)| (*k as i16, (*min, *max)))
        .collect();
    assert_eq!(
        expected.len(),
        strata_broker::versions::SUPPORTED.len(),
        "an API is listed twice in SUPPORTED"
    );
    for (key, (min, max)) in &expected {
        let api = ApiKey::try_from(*key).unwrap();
        assert!(
            TESTED.contains(&api)
                || TESTED_IN_GROUPS_FILE.contains(&api)
                || TESTED_IN_PRODUCERS_FILE.contains(&api)
                || TESTED_IN_TRANSACTIONS_FILE.contains(&api),
            "{api:?} is advertised but has no wire test in this file or api_versions_{{groups,producers,transactions}}.rs"
        );
        let codec = api.valid_versions();
        assert!(
            codec.min <= *min && *max <= codec.max,
            "{api:?} {min}..={max} is outside the codec's {codec:?}"
        );
    }

    let versions = c.versions(ApiKey::ApiVersions).await;
    for v in versions.clone() {
        let mut request = ApiVersionsRequest::default();
        if v >= 3 {
            request = request
                .with_client_software_name(StrBytes::from_static_str("strata-wire-test"))
                .with_client_software_version(StrBytes::from_static_str("1.2.3"));
        }
        let r = c.send(v, &request).await;
        assert_eq!(r.error_code, 0, "ApiVersions v{v}");
        let got: BTreeMap<i16, (i16, i16)> = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        assert_eq!(
            got.len(),
            r.api_keys.len(),
            "ApiVersions v{v}: duplicate API"
        );
        assert_eq!(got, expected, "ApiVersions v{v}: advertised table");
        if v >= 1 {
            assert_eq!(r.throttle_time_ms, 0, "ApiVersions v{v}: throttle");
        }
    }

    // A version newer than ours: Kafka answers UNSUPPORTED_VERSION in a v0 response that still
    // lists what is supported, so the client can retry with a version it shares.
    let newer = *versions.end() + 1;
    let mut body = BytesMut::new();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strata-wire-test"))
        .with_client_software_version(StrBytes::from_static_str("1.2.3"))
        .encode(&mut body, *versions.end())
        .unwrap();
    let id = c.write_raw(ApiKey::ApiVersions, newer, &body).await;
    let r: ApiVersionsResponse = c.read(ApiKey::ApiVersions, 0, id).await;
    assert_eq!(
        r.error_code,
        err(ResponseError::UnsupportedVersion),
        "ApiVersions v{newer}"
    );
    let own = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap_or_else(|| panic!("ApiVersions v{newer}: the answer does not list ApiVersions"));
    assert_eq!(
        (own.min_version, own.max_version),
        (*versions.start(), *versions.end())
    );
    // The connection stays usable after that.
    let r = c.send(0, &ApiVersionsRequest::default()).await;
    assert_eq!(r.error_code, 0);

    // An unsupported version of any other API closes the connection, as Kafka does.
    let mut c2 = b.client().await;
    let md = c2.versions(ApiKey::Metadata).await;
    let mut body = BytesMut::new();
    MetadataRequest::default()
        .with_topics(None)
        .encode(&mut body, *md.end())
        .unwrap();
    c2.write_raw(ApiKey::Metadata, *md.end() + 1, &body).await;
    c2.expect_closed("Metadata at an unadvertised version")
        .await;

    // So does an API the broker does not serve.
    if !expected.contains_key(&(ApiKey::FindCoordinator as i16)) {
        let mut c3 = b.client().await;
        c3.write(0, &FindCoordinatorRequest::default().with_key(str("g")))
            .await;
        c3.expect_closed("FindCoordinator (not advertised)").await;
    }
    // The broker is still fine.
    let r = b
        .client()
        .await
        .send(
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("strata-wire-test"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
        )
        .await;
    assert_eq!(r.error_code, 0);
}

// ---------------------------------------------------------------------------------------------
// CreateTopics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_topics() {
    let b = Broker::start(BrokerOptions {
        num_partitions: 2,
        ..Default::default()
    })
    .await;
    let mut c = b.client().await;
    for v in c.versions(ApiKey::CreateTopics).await {
        let retention = (3_600_000 + v as i64).to_string();
        // Replication factor -1 ("the broker's default") exists from v4 (KIP-464).
        let rf = if v >= 4 { -1 } else { 1 };
        let topic = |name: &str, partitions: i32, configs: &[(&str, &str)]| {
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, val)| {
                            CreatableTopicConfig::default()
                                .with_name(str(k))
                                .with_value(Some(str(val)))
                        })
                        .collect(),
                )
        };
        let request = |topics: Vec<CreatableTopic>, validate_only: bool| {
            CreateTopicsRequest::default()
                .with_topics(topics)
                .with_timeout_ms(10_000)
                .with_validate_only(validate_only)
        };

        // Create with 3 partitions and a config.
        let name = format!("create-v{v}");
        let r = c
            .send(
                v,
                &request(
                    vec![topic(&name, 3, &[("retention.ms", &retention)])],
                    false,
                ),
            )
            .await;
        assert_eq!(r.topics.len(), 1, "CreateTopics v{v}");
        let t = &r.topics[0];
        assert_eq!(t.name.0.as_str(), name, "CreateTopics v{v}: name");
        assert_eq!(t.error_code, 0, "CreateTopics v{v}: {:?}", t.error_message);
        if v >= 5 {
            assert_eq!(t.num_partitions, 3, "CreateTopics v{v}: num_partitions");
            assert_eq!(
                t.replication_factor, 1,
                "CreateTopics v{v}: replication_factor"
            );
            assert_eq!(t.topic_config_error_code, 0);
            let configs = t.configs.as_ref().expect("CreateTopics v5+: configs");
            let ret = configs
                .iter()
                .find(|e| e.name.as_str() == "retention.ms")
                .expect("CreateTopics v5+: retention.ms in configs");
            assert_eq!(
                ret.value.as_deref(),
                Some(retention.as_str()),
                "CreateTopics v{v}: retention.ms"
            );
            assert_eq!(ret.config_source, SOURCE_TOPIC, "CreateTopics v{v}: source");
        }
        let md = topic_metadata(&mut c, &name)
            .await
            .unwrap_or_else(|| panic!("CreateTopics v{v}: {name} not in Metadata"));
        assert_eq!(
            sorted_partition_indexes(&md),
            vec![0, 1, 2],
            "CreateTopics v{v}"
        );
        assert!(!md.topic_id.is_nil(), "CreateTopics v{v}: topic id");
        if v >= 7 {
            assert_eq!(t.topic_id, md.topic_id, "CreateTopics v{v}: topic id");
        }
        let configs = topic_configs(&mut c, &name).await;
        assert_eq!(
            config_value(&configs, "retention.ms"),
            (retention.clone(), SOURCE_TOPIC),
            "CreateTopics v{v}: the config took effect"
        );

        // validate_only creates nothing.
        let vname = format!("create-validate-v{v}");
        let r = c
            .send(
                v,
                &request(
                    vec![topic(&vname, 3, &[("retention.ms", &retention)])],
                    true,
                ),
            )
            .await;
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v} validate_only");
        if v >= 5 {
            assert_eq!(r.topics[0].num_partitions, 3);
        }
        assert!(
            topic_metadata(&mut c, &vname).await.is_none(),
            "CreateTopics v{v}: validate_only created {vname}"
        );
        assert!(!topic_listed(&mut c, &vname).await);

        // Errors, each for its own topic in one request, next to one that succeeds.
        let ok_name = format!("create-ok-v{v}");
        let long_name = "x".repeat(250);
        let r = c
            .send(
                v,
                &request(
                    vec![
                        topic(&name, 3, &[]),
                        topic("bad name!", 1, &[]),
                        topic(&long_name, 1, &[]),
                        topic(
                            &format!("create-badconfig-v{v}"),
                            1,
                            &[("no.such.config", "1")],
                        ),
                        topic(
                            &format!("create-badvalue-v{v}"),
                            1,
                            &[("retention.ms", "soon")],
                        ),
                        topic(&format!("create-zero-v{v}"), 0, &[]),
                        topic(&ok_name, 1, &[]),
                    ],
                    false,
                ),
            )
            .await;
        let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
        assert_eq!(
            codes,
            vec![
                err(ResponseError::TopicAlreadyExists),
                err(ResponseError::InvalidTopicException),
                err(ResponseError::InvalidTopicException),
                err(ResponseError::InvalidConfig),
                err(ResponseError::InvalidConfig),
                err(ResponseError::InvalidPartitions),
                0,
            ],
            "CreateTopics v{v}: per-topic errors ({:?})",
            r.topics
                .iter()
                .map(|t| t.error_message.clone())
                .collect::<Vec<_>>()
        );
        assert!(topic_metadata(&mut c, &ok_name).await.is_some());
        assert!(topic_metadata(&mut c, &format!("create-badconfig-v{v}"))
            .await
            .is_none());
        // The duplicate did not change the existing topic.
        let md = topic_metadata(&mut c, &name).await.unwrap();
        assert_eq!(md.partitions.len(), 3);

        // Also a duplicate under validate_only.
        let r = c.send(v, &request(vec![topic(&name, 1, &[])], true)).await;
        assert_eq!(
            r.topics[0].error_code,
            err(ResponseError::TopicAlreadyExists),
            "CreateTopics v{v} validate_only duplicate"
        );

        // Explicit replica assignments (partitions and replication factor -1).
        let aname = format!("create-assigned-v{v}");
        let node = b.node_id();
        let r = c
            .send(v, &request(vec![assigned(&aname, &[node, node])], false))
            .await;
        assert_eq!(
            r.topics[0].error_code, 0,
            "CreateTopics v{v} with assignments: {:?}",
            r.topics[0].error_message
        );
        let md = topic_metadata(&mut c, &aname).await.unwrap();
        assert_eq!(
            sorted_partition_indexes(&md),
            vec![0, 1],
            "CreateTopics v{v}: assigned"
        );

        // From v4, -1 partitions means the broker's num.partitions (2 here).
        if v >= 4 {
            let dname = format!("create-default-v{v}");
            let r = c
                .send(v, &request(vec![topic(&dname, -1, &[])], false))
                .await;
            assert_eq!(
                r.topics[0].error_code, 0,
                "CreateTopics v{v} default partitions"
            );
            if v >= 5 {
                assert_eq!(r.topics[0].num_partitions, 2);
            }
            let md = topic_metadata(&mut c, &dname).await.unwrap();
            assert_eq!(sorted_partition_indexes(&md), vec![0, 1]);
        }
    }
}

/// A topic with explicit replica assignments (partition count and replication factor -1).
fn assigned(name: &str, brokers: &[i32]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(
            brokers
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    CreatableReplicaAssignment::default()
                        .with_partition_index(i as i32)
                        .with_broker_ids(vec![BrokerId(*id)])
                })
                .collect(),
        )
}

/// Kafka refuses a manual assignment naming a broker that is not registered
/// (`ReplicationControlManager.validateManualPartitionAssignment`): INVALID_REPLICA_ASSIGNMENT,
/// and no topic.
#[tokio::test]
async fn create_topics_assignment_to_unknown_broker() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    for v in c.versions(ApiKey::CreateTopics).await {
        let name = format!("create-nobroker-v{v}");
        let r = c
            .send(
                v,
                &CreateTopicsRequest::default()
                    .with_topics(vec![assigned(&name, &[b.node_id() + 100])])
                    .with_timeout_ms(10_000),
            )
            .await;
        assert_eq!(
            r.topics[0].error_code,
            err(ResponseError::InvalidReplicaAssignment),
            "CreateTopics v{v}: assignment to an unknown broker"
        );
        assert!(
            topic_metadata(&mut c, &name).await.is_none(),
            "CreateTopics v{v}: topic created with an assignment to an unknown broker"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metadata_versions() {
    let b = Broker::start(BrokerOptions {
        auto_create_topics: true,
        num_partitions: 2,
        ..Default::default()
    })
    .await;
    let node = b.node_id();
    let mut c = b.client().await;
    create_topic(&mut c, "meta", 3, &[]).await;
    let reference = metadata(&mut c, Some(&["meta"])).await;
    let cluster_id = reference.cluster_id.clone().expect("cluster id");
    assert!(!cluster_id.is_empty(), "cluster id is empty");
    let meta = reference.topics[0].clone();
    assert!(!meta.topic_id.is_nil());
    // An id that no topic has any more.
    create_topic(&mut c, "meta-gone", 1, &[]).await;
    let gone_id = topic_metadata(&mut c, "meta-gone").await.unwrap().topic_id;
    delete_topic(&mut c, "meta-gone").await;

    for v in c.versions(ApiKey::Metadata).await {
        let by_name = |names: &[&str]| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect::<Vec<_>>()
        };
        let mut request = MetadataRequest::default().with_topics(Some(by_name(&["meta"])));
        if v >= 4 {
            request = request.with_allow_auto_topic_creation(false);
        }
        let r = c.send(v, &request).await;
        let what = format!("Metadata v{v}");
        assert_eq!(r.brokers.len(), 1, "{what}: brokers");
        assert_eq!(r.brokers[0].node_id, BrokerId(node), "{what}: broker id");
        assert_eq!(r.brokers[0].host.as_str(), b.host, "{what}: broker host");
        assert_eq!(r.brokers[0].port, b.port as i32, "{what}: broker port");
        if v >= 1 {
            assert_eq!(r.brokers[0].rack, None, "{what}: rack");
            assert_eq!(r.controller_id, BrokerId(node), "{what}: controller");
        }
        if v >= 2 {
            assert_eq!(
                r.cluster_id.as_ref(),
                Some(&cluster_id),
                "{what}: cluster id"
            );
        }
        assert_eq!(r.topics.len(), 1, "{what}: topics");
        let t = &r.topics[0];
        assert_eq!(t.error_code, 0, "{what}: topic error");
        assert_eq!(
            t.name.as_ref().map(|n| n.0.as_str()),
            Some("meta"),
            "{what}"
        );
        if v >= 1 {
            assert!(!t.is_internal, "{what}: is_internal");
        }
        if v >= 10 {
            assert_eq!(t.topic_id, meta.topic_id, "{what}: topic id");
        }
        assert_eq!(
            sorted_partition_indexes(t),
            vec![0, 1, 2],
            "{what}: partitions"
        );
        for p in &t.partitions {
            assert_eq!(p.error_code, 0, "{what}: partition {}", p.partition_index);
            assert_eq!(p.leader_id, BrokerId(node), "{what}: leader");
            assert_eq!(p.replica_nodes, vec![BrokerId(node)], "{what}: replicas");
            assert_eq!(p.isr_nodes, vec![BrokerId(node)], "{what}: isr");
            if v >= 5 {
                assert!(p.offline_replicas.is_empty(), "{what}: offline replicas");
            }
            if v >= 7 {
                assert!(p.leader_epoch >= 0, "{what}: leader epoch");
                let reference_epoch = meta
                    .partitions
                    .iter()
                    .find(|q| q.partition_index == p.partition_index)
                    .unwrap()
                    .leader_epoch;
                assert_eq!(p.leader_epoch, reference_epoch, "{what}: leader epoch");
            }
        }

        // All topics: a null list (from v1; v0 has no null, see the test below).
        if v >= 1 {
            let mut all = MetadataRequest::default().with_topics(None);
            if v >= 4 {
                all = all.with_allow_auto_topic_creation(false);
            }
            let r = c.send(v, &all).await;
            let names: BTreeSet<String> = r
                .topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect();
            assert!(names.contains("meta"), "{what}: all topics: {names:?}");
            assert!(!names.contains("meta-gone"), "{what}: deleted topic listed");
        }

        // Unknown topics: not created when the client says so (v4+); created otherwise, since
        // this broker allows auto-creation (before v4 every request may create).
        if v >= 4 {
            let absent = format!("meta-absent-v{v}");
            let r = c
                .send(
                    v,
                    &MetadataRequest::default()
                        .with_topics(Some(by_name(&[&absent])))
                        .with_allow_auto_topic_creation(false),
                )
                .await;
            assert_eq!(
                r.topics[0].error_code,
                err(ResponseError::UnknownTopicOrPartition),
                "{what}: unknown topic without auto-creation"
            );
            assert!(
                !topic_listed(&mut c, &absent).await,
                "{what}: {absent} was created"
            );

            let r = c
                .send(
                    v,
                    &MetadataRequest::default()
                        .with_topics(Some(by_name(&["bad name!"])))
                        .with_allow_auto_topic_creation(true),
                )
                .await;
            assert_eq!(
                r.topics[0].error_code,
                err(ResponseError::InvalidTopicException),
                "{what}: invalid topic name"
            );
        }
        let auto = format!("meta-auto-v{v}");
        let mut request = MetadataRequest::default().with_topics(Some(by_name(&[&auto])));
        if v >= 4 {
            request = request.with_allow_auto_topic_creation(true);
        }
        let r = c.send(v, &request).await;
        // Kafka answers LEADER_NOT_AVAILABLE while a new topic's leaders are elected.
        assert!(
            [0, err(ResponseError::LeaderNotAvailable)].contains(&r.topics[0].error_code),
            "{what}: auto-creation: error {}",
            r.topics[0].error_code
        );
        let created = topic_metadata(&mut c, &auto)
            .await
            .unwrap_or_else(|| panic!("{what}: {auto} was not auto-created"));
        assert_eq!(
            sorted_partition_indexes(&created),
            vec![0, 1],
            "{what}: auto-created with num.partitions"
        );

        // By topic id (served from v12; v10-11 carry the field but Kafka does not serve it).
        if v >= 12 {
            let r = c
                .send(
                    v,
                    &MetadataRequest::default()
                        .with_topics(Some(vec![MetadataRequestTopic::default()
                            .with_name(None)
                            .with_topic_id(meta.topic_id)]))
                        .with_allow_auto_topic_creation(false),
                )
                .await;
            let t = &r.topics[0];
            assert_eq!(t.error_code, 0, "{what}: by id");
            assert_eq!(
                t.name.as_ref().map(|n| n.0.as_str()),
                Some("meta"),
                "{what}: by id"
            );
            assert_eq!(t.topic_id, meta.topic_id);
            assert_eq!(t.partitions.len(), 3);

            let r = c
                .send(
                    v,
                    &MetadataRequest::default()
                        .with_topics(Some(vec![MetadataRequestTopic::default()
                            .with_name(None)
                            .with_topic_id(gone_id)]))
                        .with_allow_auto_topic_creation(false),
                )
                .await;
            assert_eq!(
                r.topics[0].error_code,
                err(ResponseError::UnknownTopicId),
                "{what}: unknown topic id"
            );
        }
    }
}

/// An empty topic list means "all topics" in v0 and "no topics" from v1 (where null means all):
/// Kafka's `MetadataRequest.isAllTopics`.
#[tokio::test]
async fn metadata_empty_topic_list() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "listed", 1, &[]).await;
    for v in c.versions(ApiKey::Metadata).await {
        let mut request = MetadataRequest::default().with_topics(Some(Vec::new()));
        if v >= 4 {
            request = request.with_allow_auto_topic_creation(false);
        }
        let r = c.send(v, &request).await;
        let names: Vec<String> = r
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        if v == 0 {
            assert_eq!(
                names,
                vec!["listed".to_string()],
                "Metadata v0: [] means all topics"
            );
        } else {
            assert!(
                names.is_empty(),
                "Metadata v{v}: [] means no topics, got {names:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Produce
// ---------------------------------------------------------------------------------------------

fn produce_request(
    version: i16,
    acks: i16,
    topic: &MetadataResponseTopic,
    partition: i32,
    records: Bytes,
) -> ProduceRequest {
    let mut data =
        TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(records))]);
    // From v13 topics are addressed by id.
    if version >= 13 {
        data = data.with_topic_id(topic.topic_id);
    } else {
        data = data.with_name(topic.name.clone().expect("topic name"));
    }
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![data])
}

#[tokio::test]
async fn produce_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "produce", 2, &[]).await;
    let meta = topic_metadata(&mut c, "produce").await.unwrap();
    create_topic(&mut c, "produce-gone", 1, &[]).await;
    let gone = topic_metadata(&mut c, "produce-gone").await.unwrap();
    delete_topic(&mut c, "produce-gone").await;
    create_topic(
        &mut c,
        "produce-lat",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let lat_meta = topic_metadata(&mut c, "produce-lat").await.unwrap();
    create_topic(&mut c, "produce-small", 1, &[("max.message.bytes", "512")]).await;
    let small_meta = topic_metadata(&mut c, "produce-small").await.unwrap();
    let mut lat_appends: Vec<(i64, i64)> = Vec::new();

    let mut produced: Vec<TestRecord> = Vec::new();
    let versions = c.versions(ApiKey::Produce).await;
    for v in versions.clone() {
        let what = format!("Produce v{v}");
        let recs = records(
            &format!("p{v}"),
            1 + v as usize % 3,
            1_700_000_000_000 + v as i64 * 100,
        );
        let r = c
            .send(v, &produce_request(v, -1, &meta, 0, batch(&recs)))
            .await;
        assert_eq!(r.responses.len(), 1, "{what}");
        let t = &r.responses[0];
        if v >= 13 {
            assert_eq!(t.topic_id, meta.topic_id, "{what}: topic id");
        } else {
            assert_eq!(t.name.0.as_str(), "produce", "{what}: topic name");
        }
        assert_eq!(t.partition_responses.len(), 1, "{what}");
        let p = &t.partition_responses[0];
        assert_eq!(p.index, 0, "{what}: partition");
        assert_eq!(p.error_code, 0, "{what}: {:?}", p.error_message);
        assert_eq!(p.base_offset, produced.len() as i64, "{what}: base offset");
        assert_eq!(p.log_append_time_ms, -1, "{what}: CreateTime topic");
        if v >= 5 {
            assert_eq!(p.log_start_offset, 0, "{what}: log start offset");
        }
        produced.extend(recs);

        // acks=0: no response; the next response on the connection answers the next request.
        let recs = records(
            &format!("p{v}-acks0"),
            2,
            1_700_000_000_000 + v as i64 * 100 + 50,
        );
        c.write(v, &produce_request(v, 0, &meta, 0, batch(&recs)))
            .await;
        let r = c.send(0, &ApiVersionsRequest::default()).await;
        assert_eq!(r.error_code, 0, "{what}: ApiVersions after acks=0");
        produced.extend(recs);

        // Another partition of the same topic has its own offsets.
        let recs = records(&format!("p{v}-p1"), 1, 1_700_000_000_000);
        let r = c
            .send(v, &produce_request(v, 1, &meta, 1, batch(&recs)))
            .await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.index, p.error_code), (1, 0), "{what}: partition 1");
        assert_eq!(
            p.base_offset,
            (v - versions.start()) as i64,
            "{what}: partition 1 offset"
        );

        // A LogAppendTime topic: the broker stamps the time and says so.
        let before = now_ms();
        let recs = records(&format!("p{v}-lat"), 2, 1_000);
        let r = c
            .send(v, &produce_request(v, -1, &lat_meta, 0, batch(&recs)))
            .await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code, 0,
            "{what}: LogAppendTime topic: {:?}",
            p.error_message
        );
        assert_eq!(
            p.base_offset,
            2 * lat_appends.len() as i64,
            "{what}: LogAppendTime topic"
        );
        assert!(
            p.log_append_time_ms >= before && p.log_append_time_ms <= now_ms(),
            "{what}: log_append_time_ms {} is not the broker's append time",
            p.log_append_time_ms
        );
        lat_appends.push((p.base_offset, p.log_append_time_ms));

        // A batch over the topic's max.message.bytes: MESSAGE_TOO_LARGE, nothing appended.
        let big = vec![TestRecord::new("big", "x".repeat(2_000), 1)];
        let r = c
            .send(v, &produce_request(v, -1, &small_meta, 0, batch(&big)))
            .await;
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            err(ResponseError::MessageTooLarge),
            "{what}: batch over max.message.bytes"
        );

        // Unknown partition, unknown topic (by name, or by id from v13).
        let r = c
            .send(v, &produce_request(v, -1, &meta, 7, batch(&recs)))
            .await;
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            err(ResponseError::UnknownTopicOrPartition),
            "{what}: unknown partition"
        );
        let r = c
            .send(v, &produce_request(v, -1, &gone, 0, batch(&recs)))
            .await;
        let expected = if v >= 13 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            err(expected),
            "{what}: unknown topic"
        );
    }

    // A corrupted batch (bad CRC) is refused and nothing is appended.
    let v = *versions.end();
    let mut bad = BytesMut::from(&batch(&records("corrupt", 2, 1))[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let r = c
        .send(v, &produce_request(v, -1, &meta, 0, bad.freeze()))
        .await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        err(ResponseError::CorruptMessage),
        "Produce v{v}: corrupt batch"
    );

    // Two batches for one partition in one request: the base offset is the first one's.
    let (first, second) = (records("multi-a", 2, 5), records("multi-b", 3, 6));
    let mut both = BytesMut::from(&batch(&first)[..]);
    both.extend_from_slice(&batch(&second));
    let r = c
        .send(v, &produce_request(v, -1, &meta, 0, both.freeze()))
        .await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(
        p.error_code, 0,
        "Produce v{v}: two batches: {:?}",
        p.error_message
    );
    assert_eq!(
        p.base_offset,
        produced.len() as i64,
        "Produce v{v}: two batches"
    );
    produced.extend(first);
    produced.extend(second);

    // Everything produced (acks=-1 and acks=0) is in the log, densely, in order.
    let p = fetch(&mut c, "produce", 0, 0).await;
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, produced.len() as i64, "high watermark");
    let got = decode_records("fetch after produce", &p.records);
    let expected: Vec<(i64, TestRecord)> = produced
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, r)| (i as i64, r))
        .collect();
    assert_eq!(got, expected, "records read back");
    let latest = list_offset(&mut c, "produce", 0, -1).await;
    assert_eq!(latest.offset, produced.len() as i64);
    assert_eq!(list_offset(&mut c, "produce-small", 0, -1).await.offset, 0);

    // The LogAppendTime batches come back marked so, with the append time as their timestamp.
    let p = fetch(&mut c, "produce-lat", 0, 0).await;
    let batches: Vec<(i64, i64, bool)> = raw_batches(&p.records)
        .iter()
        .map(|b| (b.base_offset, b.max_timestamp, b.log_append_time()))
        .collect();
    let expected: Vec<(i64, i64, bool)> = lat_appends.iter().map(|(o, t)| (*o, *t, true)).collect();
    assert_eq!(
        batches, expected,
        "LogAppendTime batches: (base offset, max timestamp, type)"
    );
}

// ---------------------------------------------------------------------------------------------
// Fetch
// ---------------------------------------------------------------------------------------------

struct FetchArgs {
    offset: i64,
    session_id: i32,
    session_epoch: i32,
    max_wait_ms: i32,
    min_bytes: i32,
    current_leader_epoch: i32,
    partition_max_bytes: i32,
    with_partition: bool,
    forget: bool,
}

impl Default for FetchArgs {
    fn default() -> Self {
        FetchArgs {
            offset: 0,
            session_id: 0,
            session_epoch: -1,
            max_wait_ms: 500,
            min_bytes: 1,
            current_leader_epoch: -1,
            partition_max_bytes: 1 << 20,
            with_partition: true,
            forget: false,
        }
    }
}

fn fetch_request(v: i16, meta: &MetadataResponseTopic, a: &FetchArgs) -> FetchRequest {
    let mut topics = Vec::new();
    if a.with_partition {
        let mut partition = FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(a.offset)
            .with_partition_max_bytes(a.partition_max_bytes);
        if v >= 9 {
            partition = partition.with_current_leader_epoch(a.current_leader_epoch);
        }
        let mut topic = FetchTopic::default().with_partitions(vec![partition]);
        if v >= 13 {
            topic = topic.with_topic_id(meta.topic_id);
        } else {
            topic = topic.with_topic(meta.name.clone().unwrap());
        }
        topics.push(topic);
    }
    let mut r = FetchRequest::default()
        .with_max_wait_ms(a.max_wait_ms)
        .with_min_bytes(a.min_bytes)
        .with_max_bytes(4 << 20)
        .with_isolation_level(0)
        .with_topics(topics);
    if v >= 7 {
        r = r
            .with_session_id(a.session_id)
            .with_session_epoch(a.session_epoch);
    }
    if a.forget {
        let mut forgotten = ForgottenTopic::default().with_partitions(vec![0]);
        if v >= 13 {
            forgotten = forgotten.with_topic_id(meta.topic_id);
        } else {
            forgotten = forgotten.with_topic(meta.name.clone().unwrap());
        }
        r = r.with_forgotten_topics_data(vec![forgotten]);
    }
    r
}

/// The single partition of a fetch response, checking the topic is identified as the version
/// requires.
fn only_partition(
    what: &str,
    v: i16,
    meta: &MetadataResponseTopic,
    r: &FetchResponse,
) -> PartitionData {
    assert_eq!(r.error_code, 0, "{what}: top-level error");
    assert_eq!(r.responses.len(), 1, "{what}: topics in the response");
    let t = &r.responses[0];
    if v >= 13 {
        assert_eq!(t.topic_id, meta.topic_id, "{what}: topic id");
    } else {
        assert_eq!(Some(&t.topic), meta.name.as_ref(), "{what}: topic name");
    }
    assert_eq!(t.partitions.len(), 1, "{what}: partitions");
    assert_eq!(
        t.partitions[0].partition_index, 0,
        "{what}: partition index"
    );
    t.partitions[0].clone()
}

fn with_offsets(from: i64, recs: &[TestRecord]) -> Vec<(i64, TestRecord)> {
    recs.iter()
        .cloned()
        .enumerate()
        .map(|(i, r)| (from + i as i64, r))
        .collect()
}

#[tokio::test]
async fn fetch_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    let mut producer = b.client().await;
    create_topic(&mut c, "fetch", 1, &[]).await;
    let meta = topic_metadata(&mut c, "fetch").await.unwrap();
    let epoch = meta.partitions[0].leader_epoch;
    create_topic(&mut c, "fetch-gone", 1, &[]).await;
    let gone = topic_metadata(&mut c, "fetch-gone").await.unwrap();
    delete_topic(&mut c, "fetch-gone").await;
    let mut produced = Vec::new();
    let mut batch_starts = Vec::new();
    for (i, n) in [3usize, 1, 4].into_iter().enumerate() {
        let recs = records(&format!("f{i}"), n, 1_650_000_000_000 + i as i64 * 10);
        batch_starts.push(produce(&mut producer, "fetch", 0, &recs).await);
        produced.extend(recs);
    }

    for v in c.versions(ApiKey::Fetch).await {
        let what = format!("Fetch v{v}");
        let end = produced.len() as i64;
        // Everything from offset 0.
        let r = c
            .send(
                v,
                &fetch_request(
                    v,
                    &meta,
                    &FetchArgs {
                        current_leader_epoch: epoch,
                        ..Default::default()
                    },
                ),
            )
            .await;
        if v >= 7 {
            assert_eq!(r.session_id, 0, "{what}: sessionless fetch");
        }
        let p = only_partition(&what, v, &meta, &r);
        assert_eq!(p.error_code, 0, "{what}: partition error");
        assert_eq!(p.high_watermark, end, "{what}: high watermark");
        assert_eq!(p.last_stable_offset, end, "{what}: last stable offset");
        if v >= 5 {
            assert_eq!(p.log_start_offset, 0, "{what}: log start offset");
        }
        assert!(
            p.aborted_transactions.as_ref().is_none_or(|a| a.is_empty()),
            "{what}: aborted transactions"
        );
        if v >= 11 {
            assert_eq!(
                p.preferred_read_replica,
                BrokerId(-1),
                "{what}: preferred read replica"
            );
        }
        assert_eq!(
            decode_records(&what, &p.records),
            with_offsets(0, &produced),
            "{what}: records"
        );
        // Batches come back as produced, stamped with their offsets and the leader epoch.
        let batches = raw_batches(&p.records);
        assert_eq!(
            batches.iter().map(|b| b.base_offset).collect::<Vec<_>>(),
            batch_starts,
            "{what}: batch base offsets"
        );
        assert!(
            batches.iter().all(|b| b.leader_epoch == epoch),
            "{what}: batch leader epochs {:?}, leader epoch {epoch}",
            batches.iter().map(|b| b.leader_epoch).collect::<Vec<_>>()
        );

        // A partition limit smaller than the first batch still returns that batch whole
        // (KIP-74), and only it.
        let r = c
            .send(
                v,
                &fetch_request(
                    v,
                    &meta,
                    &FetchArgs {
                        partition_max_bytes: 1,
                        ..Default::default()
                    },
                ),
            )
            .await;
        let p = only_partition(&what, v, &meta, &r);
        assert_eq!(p.error_code, 0, "{what}: partition_max_bytes 1");
        assert_eq!(
            decode_records(&what, &p.records),
            with_offsets(0, &produced[..3]),
            "{what}: partition_max_bytes 1 returns exactly the first batch"
        );

        // At the end: nothing, no error; past the end: OFFSET_OUT_OF_RANGE.
        let r = c
            .send(
                v,
                &fetch_request(
                    v,
                    &meta,
                    &FetchArgs {
                        offset: end,
                        max_wait_ms: 10,
                        ..Default::default()
                    },
                ),
            )
            .await;
        let p = only_partition(&what, v, &meta, &r);
        assert_eq!(p.error_code, 0, "{what}: fetch at the end");
        assert_eq!(p.high_watermark, end);
        assert!(
            decode_records(&what, &p.records).is_empty(),
            "{what}: records at the end"
        );
        let r = c
            .send(
                v,
                &fetch_request(
                    v,
                    &meta,
                    &FetchArgs {
                        offset: end + 5,
                        ..Default::default()
                    },
                ),
            )
            .await;
        let p = only_partition(&what, v, &meta, &r);
        assert_eq!(
            p.error_code,
            err(ResponseError::OffsetOutOfRange),
            "{what}: fetch past the end"
        );

        // A topic that does not exist (any more): by name 3, by id (v13+) UNKNOWN_TOPIC_ID.
        let r = c
            .send(
                v,
                &fetch_request(
                    v,
                    &gone,
                    &FetchArgs {
                        max_wait_ms: 10,
                        ..Default::default()
                    },
                ),
            )
            .await;
        let p = only_partition(&format!("{what} unknown topic"), v, &gone, &r);
        let expected = if v >= 13 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        assert_eq!(p.error_code, err(expected), "{what}: unknown topic");

        // A newer leader epoch than the broker's is UNKNOWN_LEADER_EPOCH (v9+).
        if v >= 9 {
            let r = c
                .send(
                    v,
                    &fetch_request(
                        v,
                        &meta,
                        &FetchArgs {
                            current_leader_epoch: epoch + 1,
                            ..Default::default()
                        },
                    ),
                )
                .await;
            let p = only_partition(&what, v, &meta, &r);
            assert_eq!(
                p.error_code,
                err(ResponseError::UnknownLeaderEpoch),
                "{what}: newer leader epoch"
            );
        }

        // Incremental fetch sessions (v7+).
        if v >= 7 {
            let r = c
                .send(
                    v,
                    &fetch_request(
                        v,
                        &meta,
                        &FetchArgs {
                            offset: end,
                            session_epoch: 0,
                            max_wait_ms: 10,
                            ..Default::default()
                        },
                    ),
                )
                .await;
            let session = r.session_id;
            assert_ne!(
                session, 0,
                "{what}: a full fetch with epoch 0 opens a session"
            );
            let p = only_partition(&what, v, &meta, &r);
            assert_eq!(
                (p.error_code, p.high_watermark),
                (0, end),
                "{what}: session"
            );

            let r = c
                .send(
                    v,
                    &fetch_request(
                        v,
                        &meta,
                        &FetchArgs {
                            session_id: session,
                            session_epoch: 1,
                            max_wait_ms: 100,
                            with_partition: false,
                            ..Default::default()
                        },
                    ),
                )
                .await;
            assert_eq!(r.error_code, 0, "{what}: incremental fetch");
            assert_eq!(
                r.session_id, session,
                "{what}: incremental fetch session id"
            );
            assert!(
                r.responses.iter().all(|t| t.partitions.is_empty()),
                "{what}: unchanged partitions must be left out: {:?}",
                r.responses
            );

            let recs = records(&format!("session-v{v}"), 2, 1_660_000_000_000);
            batch_starts.push(produce(&mut producer, "fetch", 0, &recs).await);
            produced.extend(recs.iter().cloned());
            let r = c
                .send(
                    v,
                    &fetch_request(
                        v,
                        &meta,
                        &FetchArgs {
                            session_id: session,
                            session_epoch: 2,
                            max_wait_ms: 1000,
                            with_partition: false,
                            ..Default::default()
                        },
                    ),
                )
                .await;
            assert_eq!(
                r.session_id, session,
                "{what}: incremental fetch session id"
            );
            let p = only_partition(&format!("{what} incremental"), v, &meta, &r);
            assert_eq!(p.error_code, 0);
            assert_eq!(p.high_watermark, produced.len() as i64);
            assert_eq!(
                decode_records(&what, &p.records),
                with_offsets(end, &recs),
                "{what}: incremental fetch records"
            );

            // A stale epoch is refused.
            let r = c
                .send(
                    v,
                    &fetch_request(
                        v,
                        &meta,
                        &FetchArgs {
                            session_id: session,
                            session_epoch: 2,
                            max_wait_ms: 10,
                            with_partition: false,
                            ..Default::default()
                        },
                    ),
                )
                .await;
            assert_eq!(
                r.error_code,
                err(ResponseError::InvalidFetchSessionEpoch),
                "{what}: stale session epoch"
            );

            // Forgetting the partition (epoch 3) leaves the session empty: new data does not
            // show up (epoch 4). Adding it back (epoch 5) returns it again.
            let incremental = |epoch: i32, forget: bool, with_partition: bool, offset: i64| {
                fetch_request(
                    v,
                    &meta,
                    &FetchArgs {
                        offset,
                        session_id: session,
                        session_epoch: epoch,
                        max_wait_ms: 100,
                        with_partition,
                        forget,
                        ..Default::default()
                    },
                )
            };
            let r = c.send(v, &incremental(3, true, false, 0)).await;
            assert_eq!(r.error_code, 0, "{what}: forget");
            assert!(
                r.responses.iter().all(|t| t.partitions.is_empty()),
                "{what}: forgotten partition in the response: {:?}",
                r.responses
            );
            let recs = records(&format!("forgotten-v{v}"), 1, 1_660_000_000_000);
            let at = produce(&mut producer, "fetch", 0, &recs).await;
            batch_starts.push(at);
            produced.extend(recs.iter().cloned());
            let r = c.send(v, &incremental(4, false, false, 0)).await;
            assert_eq!(r.error_code, 0, "{what}: after forget");
            assert!(
                r.responses.iter().all(|t| t.partitions.is_empty()),
                "{what}: a forgotten partition came back: {:?}",
                r.responses
            );
            let r = c.send(v, &incremental(5, false, true, at)).await;
            let p = only_partition(&format!("{what} re-added"), v, &meta, &r);
            assert_eq!(
                decode_records(&what, &p.records),
                with_offsets(at, &recs),
                "{what}: re-added partition"
            );

            // Epoch -1 closes the session: the answer is sessionless, the id is gone.
            let r = c
                .send(
                    v,
                    &fetch_request(
                        v,
                        &meta,
                        &FetchArgs {
                            offset: produced.len() as i64,
                            session_id: session,
                            session_epoch: -1,
                            max_wait_ms: 10,
                            ..Default::default()
                        },
                    ),
                )
                .await;
            assert_eq!(r.session_id, 0, "{what}: closing fetch");
            let r = c
                .send(
                    v,
                    &fetch_request(
                        v,
                        &meta,
                        &FetchArgs {
                            session_id: session,
                            session_epoch: 6,
                            max_wait_ms: 10,
                            with_partition: false,
                            ..Default::default()
                        },
                    ),
                )
                .await;
            assert_eq!(
                r.error_code,
                err(ResponseError::FetchSessionIdNotFound),
                "{what}: closed session"
            );
        }
    }

    // Long poll: a fetch at the end waits for a produce (from another connection).
    let v = *c.versions(ApiKey::Fetch).await.end();
    let end = produced.len() as i64;
    let recs = records("long-poll", 1, 1_670_000_000_000);
    let request = fetch_request(
        v,
        &meta,
        &FetchArgs {
            offset: end,
            max_wait_ms: 5_000,
            ..Default::default()
        },
    );
    let started = Instant::now();
    let id = c.write(v, &request).await;
    let recs2 = recs.clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        produce(&mut producer, "fetch", 0, &recs2).await
    });
    let r: FetchResponse = c.read(ApiKey::Fetch, v, id).await;
    let elapsed = started.elapsed();
    assert_eq!(late.await.unwrap(), end);
    let p = only_partition("long poll", v, &meta, &r);
    assert_eq!(
        decode_records("long poll", &p.records),
        with_offsets(end, &recs),
        "long poll: the fetch returns the record produced while it waited"
    );
    assert!(
        elapsed < Duration::from_millis(4_000),
        "long poll took {elapsed:?}: it should return once data arrives"
    );
}

// ---------------------------------------------------------------------------------------------
// ListOffsets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_offsets_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "offsets", 1, &[]).await;
    let t0 = 1_600_000_000_000i64;
    // Offsets 0..6; the largest timestamp is at offset 4, out of order on purpose.
    let stamps = [[0, 1_000], [2_000, 3_000], [9_000, 4_000]];
    let mut ts_of = Vec::new();
    for (i, pair) in stamps.iter().enumerate() {
        let recs: Vec<TestRecord> = pair
            .iter()
            .enumerate()
            .map(|(j, d)| TestRecord::new(format!("lo{i}{j}"), "x", t0 + d))
            .collect();
        ts_of.extend(recs.iter().map(|r| r.timestamp));
        produce(&mut c, "offsets", 0, &recs).await;
    }
    let end = ts_of.len() as i64;
    let epoch = leader_epoch(&mut c, "offsets", 0).await;

    for v in c.versions(ApiKey::ListOffsets).await {
        let what = format!("ListOffsets v{v}");
        let lookup = |partition: i32, timestamp: i64, current_epoch: i32| {
            let mut p = ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp);
            if v >= 4 {
                p = p.with_current_leader_epoch(current_epoch);
            }
            let mut r = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name("offsets"))
                    .with_partitions(vec![p])]);
            if v >= 2 {
                // Alternate read_uncommitted and read_committed: no transactions, same answers.
                r = r.with_isolation_level((v % 2) as i8);
            }
            if v >= 10 {
                r = r.with_timeout_ms(5_000);
            }
            r
        };
        let mut ask = async |partition: i32,
                             timestamp: i64,
                             current_epoch: i32|
               -> ListOffsetsPartitionResponse {
            let r = c
                .send(v, &lookup(partition, timestamp, current_epoch))
                .await;
            assert_eq!(r.topics.len(), 1, "{what}");
            assert_eq!(r.topics[0].name.0.as_str(), "offsets", "{what}: topic name");
            assert_eq!(r.topics[0].partitions.len(), 1, "{what}");
            let p = r.topics[0].partitions[0].clone();
            assert_eq!(p.partition_index, partition, "{what}: partition index");
            p
        };
        let check = |p: &ListOffsetsPartitionResponse, label: &str, offset: i64, timestamp: i64| {
            assert_eq!(p.error_code, 0, "{what} {label}: error");
            assert_eq!(
                (p.offset, p.timestamp),
                (offset, timestamp),
                "{what} {label}: (offset, timestamp)"
            );
            if v >= 4 && offset >= 0 {
                assert_eq!(p.leader_epoch, epoch, "{what} {label}: leader epoch");
            }
        };

        let p = ask(0, -2, -1).await;
        check(&p, "earliest", 0, -1);
        let p = ask(0, -1, -1).await;
        check(&p, "latest", end, -1);
        let p = ask(0, t0 - 5, -1).await;
        check(&p, "before the first timestamp", 0, t0);
        let p = ask(0, t0 + 1_500, -1).await;
        check(&p, "between timestamps", 2, t0 + 2_000);
        let p = ask(0, t0 + 3_000, -1).await;
        check(&p, "exact timestamp", 3, t0 + 3_000);
        let p = ask(0, t0 + 3_500, -1).await;
        check(&p, "timestamp after an out-of-order one", 4, t0 + 9_000);
        let p = ask(0, t0 + 20_000, -1).await;
        check(&p, "after every timestamp", -1, -1);
        if v >= 7 {
            let p = ask(0, -3, -1).await;
            check(&p, "max timestamp", 4, t0 + 9_000);
        }
        if v >= 4 {
            let p = ask(0, -1, epoch).await;
            check(&p, "latest with the current leader epoch", end, -1);
            let p = ask(0, -1, epoch + 1).await;
            assert_eq!(
                p.error_code,
                err(ResponseError::UnknownLeaderEpoch),
                "{what}: newer leader epoch"
            );
        }
        if v >= 8 {
            let p = ask(0, -4, -1).await;
            check(&p, "earliest local", 0, -1);
        }
        let p = ask(3, -1, -1).await;
        assert_eq!(
            p.error_code,
            err(ResponseError::UnknownTopicOrPartition),
            "{what}: unknown partition"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OffsetForLeaderEpoch
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn offset_for_leader_epoch_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "epochs", 2, &[]).await;
    produce(&mut c, "epochs", 0, &records("e0", 3, 1)).await;
    produce(&mut c, "epochs", 0, &records("e1", 2, 2)).await;
    let end0 = list_offset(&mut c, "epochs", 0, -1).await.offset;
    assert_eq!(end0, 5);
    let epoch0 = leader_epoch(&mut c, "epochs", 0).await;
    let epoch1 = leader_epoch(&mut c, "epochs", 1).await;

    for v in c.versions(ApiKey::OffsetForLeaderEpoch).await {
        let what = format!("OffsetForLeaderEpoch v{v}");
        let mut request = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic_name("epochs"))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(epoch0)
                        .with_leader_epoch(epoch0),
                    OffsetForLeaderPartition::default()
                        .with_partition(1)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(epoch1),
                    OffsetForLeaderPartition::default()
                        .with_partition(9)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(0),
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(epoch0 + 1)
                        .with_leader_epoch(epoch0),
                ]),
        ]);
        if v >= 3 {
            // A consumer, not a follower.
            request = request.with_replica_id(BrokerId(-1));
        }
        let r = c.send(v, &request).await;
        assert_eq!(r.topics.len(), 1, "{what}");
        assert_eq!(r.topics[0].topic.0.as_str(), "epochs", "{what}: topic");
        let ps = &r.topics[0].partitions;
        assert_eq!(ps.len(), 4, "{what}: partitions");
        assert_eq!(
            (
                ps[0].error_code,
                ps[0].partition,
                ps[0].leader_epoch,
                ps[0].end_offset
            ),
            (0, 0, epoch0, end0),
            "{what}: current epoch of partition 0 ends at the log end"
        );
        assert_eq!(
            (
                ps[1].error_code,
                ps[1].partition,
                ps[1].leader_epoch,
                ps[1].end_offset
            ),
            (0, 1, epoch1, 0),
            "{what}: empty partition 1"
        );
        assert_eq!(
            (ps[2].partition, ps[2].error_code),
            (9, err(ResponseError::UnknownTopicOrPartition)),
            "{what}: unknown partition"
        );
        assert_eq!(
            (ps[3].partition, ps[3].error_code),
            (0, err(ResponseError::UnknownLeaderEpoch)),
            "{what}: newer current leader epoch"
        );
    }
}

/// An epoch later than any the log has: Kafka answers UNDEFINED_EPOCH (-1) and
/// UNDEFINED_EPOCH_OFFSET (-1), without error (`LeaderEpochFileCache.endOffsetFor`).
#[tokio::test]
async fn offset_for_leader_epoch_after_the_current_epoch() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "epochs", 1, &[]).await;
    produce(&mut c, "epochs", 0, &records("e", 3, 1)).await;
    let epoch = leader_epoch(&mut c, "epochs", 0).await;
    for v in c.versions(ApiKey::OffsetForLeaderEpoch).await {
        let mut request = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic_name("epochs"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_leader_epoch(epoch + 1)]),
        ]);
        if v >= 3 {
            request = request.with_replica_id(BrokerId(-1));
        }
        let r = c.send(v, &request).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_epoch, p.end_offset),
            (0, -1, -1),
            "OffsetForLeaderEpoch v{v}: epoch {} (current {epoch})",
            epoch + 1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// DescribeConfigs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn describe_configs_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "described", 1, &[("retention.ms", "123456")]).await;

    for v in c.versions(ApiKey::DescribeConfigs).await {
        let what = format!("DescribeConfigs v{v}");
        let resource = |name: &str, keys: Option<&[&str]>| {
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str(name))
                .with_configuration_keys(keys.map(|k| k.iter().map(|s| str(s)).collect()))
        };
        let r = c
            .send(
                v,
                &DescribeConfigsRequest::default()
                    .with_resources(vec![
                        resource("described", None),
                        resource("described", Some(&["retention.ms"])),
                        resource("no-such-topic", None),
                    ])
                    .with_include_synonyms(true),
            )
            .await;
        assert_eq!(r.results.len(), 3, "{what}");
        let all = &r.results[0];
        assert_eq!(all.error_code, 0, "{what}: {:?}", all.error_message);
        assert_eq!(all.resource_type, RESOURCE_TOPIC);
        assert_eq!(all.resource_name.as_str(), "described");
        let find = |name: &str| {
            all.configs
                .iter()
                .find(|e| e.name.as_str() == name)
                .unwrap_or_else(|| panic!("{what}: {name} not described"))
        };
        let ret = find("retention.ms");
        assert_eq!(ret.value.as_deref(), Some("123456"), "{what}: retention.ms");
        assert_eq!(
            ret.config_source, SOURCE_TOPIC,
            "{what}: retention.ms source"
        );
        assert!(
            !ret.is_sensitive && !ret.read_only,
            "{what}: retention.ms flags"
        );
        assert_eq!(
            ret.synonyms.first().map(|s| s.source),
            Some(SOURCE_TOPIC),
            "{what}: synonyms"
        );
        assert_eq!(
            ret.synonyms[0].value.as_deref(),
            Some("123456"),
            "{what}: synonym value"
        );
        let cleanup = find("cleanup.policy");
        assert_eq!(
            cleanup.value.as_deref(),
            Some("delete"),
            "{what}: cleanup.policy default"
        );
        assert_eq!(
            cleanup.config_source, SOURCE_DEFAULT,
            "{what}: cleanup.policy source"
        );
        if v >= 3 {
            // Kafka's ConfigType: LONG 5, LIST 7.
            assert_eq!(ret.config_type, 5, "{what}: retention.ms type");
            assert_eq!(cleanup.config_type, 7, "{what}: cleanup.policy type");
        }
        let names: BTreeSet<&str> = all.configs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names.len(), all.configs.len(), "{what}: duplicate config");

        let one = &r.results[1];
        assert_eq!(one.error_code, 0, "{what}: one key");
        assert_eq!(
            one.configs
                .iter()
                .map(|e| (e.name.as_str(), e.value.as_deref()))
                .collect::<Vec<_>>(),
            vec![("retention.ms", Some("123456"))],
            "{what}: only the requested key"
        );
        assert_eq!(
            r.results[2].error_code,
            err(ResponseError::UnknownTopicOrPartition),
            "{what}: unknown topic"
        );

        // The broker's own (static) configs.
        let r = c
            .send(
                v,
                &DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_BROKER)
                        .with_resource_name(str(&b.node_id().to_string()))
                        .with_configuration_keys(None),
                ]),
            )
            .await;
        assert_eq!(r.results[0].error_code, 0, "{what}: broker resource");
        assert!(!r.results[0].configs.is_empty(), "{what}: broker configs");
    }
}

// ---------------------------------------------------------------------------------------------
// AlterConfigs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn alter_configs_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;

    for v in c.versions(ApiKey::AlterConfigs).await {
        let what = format!("AlterConfigs v{v}");
        let topic = format!("altered-v{v}");
        create_topic(&mut c, &topic, 1, &[]).await;
        let alter = |configs: &[(&str, &str)], validate_only: bool, name: &str| {
            AlterConfigsRequest::default()
                .with_resources(vec![AlterConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(str(name))
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, val)| {
                                AlterableConfig::default()
                                    .with_name(str(k))
                                    .with_value(Some(str(val)))
                            })
                            .collect(),
                    )])
                .with_validate_only(validate_only)
        };
        let retention = (60_000 + v as i64).to_string();
        let r = c
            .send(
                v,
                &alter(
                    &[("retention.ms", &retention), ("cleanup.policy", "compact")],
                    false,
                    &topic,
                ),
            )
            .await;
        assert_eq!(r.responses.len(), 1, "{what}");
        assert_eq!(
            r.responses[0].error_code, 0,
            "{what}: {:?}",
            r.responses[0].error_message
        );
        assert_eq!(r.responses[0].resource_name.as_str(), topic);
        assert_eq!(r.responses[0].resource_type, RESOURCE_TOPIC);
        let configs = topic_configs(&mut c, &topic).await;
        assert_eq!(
            config_value(&configs, "retention.ms"),
            (retention.clone(), SOURCE_TOPIC),
            "{what}"
        );
        assert_eq!(
            config_value(&configs, "cleanup.policy"),
            ("compact".into(), SOURCE_TOPIC),
            "{what}"
        );

        // AlterConfigs replaces the whole set: what is not named goes back to its default.
        let r = c
            .send(v, &alter(&[("retention.ms", "5000")], false, &topic))
            .await;
        assert_eq!(r.responses[0].error_code, 0, "{what}: replace");
        let configs = topic_configs(&mut c, &topic).await;
        assert_eq!(
            config_value(&configs, "retention.ms"),
            ("5000".into(), SOURCE_TOPIC),
            "{what}"
        );
        assert_eq!(
            config_value(&configs, "cleanup.policy"),
            ("delete".into(), SOURCE_DEFAULT),
            "{what}: unnamed config back to default"
        );

        // validate_only changes nothing.
        let r = c
            .send(v, &alter(&[("retention.ms", "7000")], true, &topic))
            .await;
        assert_eq!(r.responses[0].error_code, 0, "{what}: validate_only");
        let configs = topic_configs(&mut c, &topic).await;
        assert_eq!(
            config_value(&configs, "retention.ms"),
            ("5000".into(), SOURCE_TOPIC),
            "{what}: validate_only changed it"
        );

        // Invalid name or value: INVALID_CONFIG, nothing changes. Unknown topic: 3.
        for bad in [
            ("no.such.config", "1"),
            ("retention.ms", "soon"),
            ("cleanup.policy", "shred"),
        ] {
            let r = c.send(v, &alter(&[bad], false, &topic)).await;
            assert_eq!(
                r.responses[0].error_code,
                err(ResponseError::InvalidConfig),
                "{what}: {bad:?}"
            );
        }
        let configs = topic_configs(&mut c, &topic).await;
        assert_eq!(
            config_value(&configs, "retention.ms"),
            ("5000".into(), SOURCE_TOPIC),
            "{what}: a refused change applied"
        );
        let r = c
            .send(v, &alter(&[("retention.ms", "1")], false, "no-such-topic"))
            .await;
        assert_eq!(
            r.responses[0].error_code,
            err(ResponseError::UnknownTopicOrPartition),
            "{what}: unknown topic"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// IncrementalAlterConfigs
// ---------------------------------------------------------------------------------------------

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

#[tokio::test]
async fn incremental_alter_configs_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;

    for v in c.versions(ApiKey::IncrementalAlterConfigs).await {
        let what = format!("IncrementalAlterConfigs v{v}");
        let topic = format!("incremental-v{v}");
        create_topic(&mut c, &topic, 1, &[("segment.ms", "3600000")]).await;
        let alter = |ops: &[(&str, i8, Option<&str>)], validate_only: bool, name: &str| {
            IncrementalAlterConfigsRequest::default()
                .with_resources(vec![iac::AlterConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(str(name))
                    .with_configs(
                        ops.iter()
                            .map(|(k, op, val)| {
                                iac::AlterableConfig::default()
                                    .with_name(str(k))
                                    .with_config_operation(*op)
                                    .with_value(val.map(str))
                            })
                            .collect(),
                    )])
                .with_validate_only(validate_only)
        };
        let retention = (90_000 + v as i64).to_string();
        let r = c
            .send(
                v,
                &alter(
                    &[
                        ("retention.ms", SET, Some(&retention)),
                        ("cleanup.policy", APPEND, Some("compact")),
                    ],
                    false,
                    &topic,
                ),
            )
            .await;
        assert_eq!(r.responses.len(), 1, "{what}");
        assert_eq!(
            r.responses[0].error_code, 0,
            "{what}: {:?}",
            r.responses[0].error_message
        );
        assert_eq!(r.responses[0].resource_name.as_str(), topic);
        let configs = topic_configs(&mut c, &topic).await;
        assert_eq!(
            config_value(&configs, "retention.ms"),
            (retention.clone(), SOURCE_TOPIC),
            "{what}: SET"
        );
        assert_eq!(
            config_value(&configs, "cleanup.policy"),
            ("delete,compact".into(), SOURCE_TOPIC),
            "{what}: APPEND to the default"
        );
        assert_eq!(
            config_value(&configs, "segment.ms"),
            ("3600000".into(), SOURCE_TOPIC),
            "{what}: untouched config kept"
        );

        let r = c
            .send(
                v,
                &alter(
                    &[
                        ("retention.ms", DELETE, None),
                        ("cleanup.policy", SUBTRACT, Some("delete")),
                    ],
                    false,
                    &topic,
                ),
            )
            .await;
        assert_eq!(
            r.responses[0].error_code, 0,
            "{what}: {:?}",
            r.responses[0].error_message
        );
        let configs = topic_configs(&mut c, &topic).await;
        assert_eq!(
            config_value(&configs, "retention.ms").1,
            SOURCE_DEFAULT,
            "{what}: DELETE returns to the default"
        );
        assert_eq!(
            config_value(&configs, "cleanup.policy"),
            ("compact".into(), SOURCE_TOPIC),
            "{what}: SUBTRACT"
        );

        // validate_only changes nothing.
        let r = c
            .send(
                v,
                &alter(&[("retention.ms", SET, Some("1000"))], true, &topic),
            )
            .await;
        assert_eq!(r.responses[0].error_code, 0, "{what}: validate_only");
        let configs = topic_configs(&mut c, &topic).await;
        assert_eq!(
            config_value(&configs, "retention.ms").1,
            SOURCE_DEFAULT,
            "{what}: validate_only changed it"
        );

        // Invalid name or value: INVALID_CONFIG. Unknown topic: 3.
        for bad in [
            ("no.such.config", SET, Some("1")),
            ("retention.ms", SET, Some("soon")),
            ("retention.ms", APPEND, Some("1")),
        ] {
            let r = c.send(v, &alter(&[bad], false, &topic)).await;
            assert_eq!(
                r.responses[0].error_code,
                err(ResponseError::InvalidConfig),
                "{what}: {bad:?}"
            );
        }
        let configs = topic_configs(&mut c, &topic).await;
        assert_eq!(
            config_value(&configs, "retention.ms").1,
            SOURCE_DEFAULT,
            "{what}: a refused change applied"
        );
        let r = c
            .send(
                v,
                &alter(&[("retention.ms", SET, Some("1"))], false, "no-such-topic"),
            )
            .await;
        assert_eq!(
            r.responses[0].error_code,
            err(ResponseError::UnknownTopicOrPartition),
            "{what}: unknown topic"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// CreatePartitions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_partitions_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let node = b.node_id();
    let mut c = b.client().await;

    for v in c.versions(ApiKey::CreatePartitions).await {
        let what = format!("CreatePartitions v{v}");
        let topic = format!("grow-v{v}");
        create_topic(&mut c, &topic, 1, &[]).await;
        produce(&mut c, &topic, 0, &records("before", 2, 1)).await;
        let grow = |name: &str, count: i32, validate_only: bool| {
            CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(topic_name(name))
                    .with_count(count)
                    .with_assignments(None)])
                .with_timeout_ms(10_000)
                .with_validate_only(validate_only)
        };
        let r = c.send(v, &grow(&topic, 3, false)).await;
        assert_eq!(r.results.len(), 1, "{what}");
        assert_eq!(r.results[0].name.0.as_str(), topic);
        assert_eq!(
            r.results[0].error_code, 0,
            "{what}: {:?}",
            r.results[0].error_message
        );
        let md = topic_metadata(&mut c, &topic).await.unwrap();
        assert_eq!(
            sorted_partition_indexes(&md),
            vec![0, 1, 2],
            "{what}: grown"
        );
        assert!(md.partitions.iter().all(|p| p.leader_id == BrokerId(node)));
        // The new partitions are usable and start empty; the old one kept its data.
        assert_eq!(produce(&mut c, &topic, 2, &records("new", 1, 1)).await, 0);
        assert_eq!(list_offset(&mut c, &topic, 0, -1).await.offset, 2);

        for (count, label) in [(2, "shrink"), (3, "same count")] {
            let r = c.send(v, &grow(&topic, count, false)).await;
            assert_eq!(
                r.results[0].error_code,
                err(ResponseError::InvalidPartitions),
                "{what}: {label}"
            );
        }
        let r = c.send(v, &grow(&topic, 5, true)).await;
        assert_eq!(r.results[0].error_code, 0, "{what}: validate_only");
        let md = topic_metadata(&mut c, &topic).await.unwrap();
        assert_eq!(
            md.partitions.len(),
            3,
            "{what}: validate_only grew the topic"
        );
        // Explicit assignments for the new partitions: to this broker, or to no broker.
        let assign = |count: i32, brokers: &[i32]| {
            CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(topic_name(&topic))
                    .with_count(count)
                    .with_assignments(Some(
                        brokers
                            .iter()
                            .map(|id| {
                                CreatePartitionsAssignment::default()
                                    .with_broker_ids(vec![BrokerId(*id)])
                            })
                            .collect(),
                    ))])
                .with_timeout_ms(10_000)
        };
        let r = c.send(v, &assign(5, &[node, node])).await;
        assert_eq!(
            r.results[0].error_code, 0,
            "{what}: with assignments: {:?}",
            r.results[0].error_message
        );
        let md = topic_metadata(&mut c, &topic).await.unwrap();
        assert_eq!(md.partitions.len(), 5, "{what}: grown with assignments");
        let r = c.send(v, &assign(6, &[node, node])).await;
        assert_eq!(
            r.results[0].error_code,
            err(ResponseError::InvalidReplicaAssignment),
            "{what}: more assignments than new partitions"
        );
        let md = topic_metadata(&mut c, &topic).await.unwrap();
        assert_eq!(
            md.partitions.len(),
            5,
            "{what}: a refused assignment grew the topic"
        );

        let r = c.send(v, &grow("no-such-topic", 2, false)).await;
        assert_eq!(
            r.results[0].error_code,
            err(ResponseError::UnknownTopicOrPartition),
            "{what}: unknown topic"
        );
    }
}

/// Kafka refuses new partitions assigned to a broker that is not registered:
/// INVALID_REPLICA_ASSIGNMENT, and the topic keeps its partitions.
#[tokio::test]
async fn create_partitions_assignment_to_unknown_broker() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    for v in c.versions(ApiKey::CreatePartitions).await {
        let topic = format!("grow-nobroker-v{v}");
        create_topic(&mut c, &topic, 1, &[]).await;
        let r = c
            .send(
                v,
                &CreatePartitionsRequest::default()
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(topic_name(&topic))
                        .with_count(2)
                        .with_assignments(Some(vec![CreatePartitionsAssignment::default()
                            .with_broker_ids(vec![BrokerId(b.node_id() + 100)])]))])
                    .with_timeout_ms(10_000),
            )
            .await;
        assert_eq!(
            r.results[0].error_code,
            err(ResponseError::InvalidReplicaAssignment),
            "CreatePartitions v{v}: assignment to an unknown broker"
        );
        let md = topic_metadata(&mut c, &topic).await.unwrap();
        assert_eq!(
            md.partitions.len(),
            1,
            "CreatePartitions v{v}: grown with an assignment to an unknown broker"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// DeleteRecords
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_records_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;

    for v in c.versions(ApiKey::DeleteRecords).await {
        let what = format!("DeleteRecords v{v}");
        let topic = format!("trim-v{v}");
        create_topic(&mut c, &topic, 1, &[]).await;
        let mut produced = Vec::new();
        for i in 0..2 {
            let recs = records(&format!("t{i}"), 5, 1_000 * i as i64);
            produce(&mut c, &topic, 0, &recs).await;
            produced.extend(recs);
        }
        let end = produced.len() as i64;
        let delete = |name: &str, partition: i32, offset: i64| {
            DeleteRecordsRequest::default()
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(topic_name(name))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset)])])
                .with_timeout_ms(10_000)
        };
        // Delete before k, in the middle of the first batch.
        let k = 3 + v as i64;
        let r = c.send(v, &delete(&topic, 0, k)).await;
        assert_eq!(r.topics.len(), 1, "{what}");
        assert_eq!(r.topics[0].name.0.as_str(), topic);
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.partition_index, p.error_code), (0, 0), "{what}");
        assert_eq!(p.low_watermark, k, "{what}: low watermark");
        assert_eq!(
            list_offset(&mut c, &topic, 0, -2).await.offset,
            k,
            "{what}: earliest"
        );
        assert_eq!(
            list_offset(&mut c, &topic, 0, -1).await.offset,
            end,
            "{what}: latest"
        );

        let below = fetch(&mut c, &topic, 0, k - 1).await;
        assert_eq!(
            below.error_code,
            err(ResponseError::OffsetOutOfRange),
            "{what}: fetch below the log start"
        );
        let at = fetch(&mut c, &topic, 0, k).await;
        assert_eq!(at.error_code, 0, "{what}: fetch at the log start");
        assert_eq!(at.log_start_offset, k, "{what}: fetch log start offset");
        // Whole batches come back; a client skips records below its position.
        let got: Vec<(i64, TestRecord)> = decode_records(&what, &at.records)
            .into_iter()
            .filter(|(o, _)| *o >= k)
            .collect();
        assert_eq!(
            got,
            with_offsets(0, &produced)[k as usize..].to_vec(),
            "{what}: records from the new log start"
        );

        // Beyond the high watermark: OFFSET_OUT_OF_RANGE; unknown partition: 3; -1: to the end.
        let r = c.send(v, &delete(&topic, 0, end + 1)).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            err(ResponseError::OffsetOutOfRange),
            "{what}: beyond the end"
        );
        let r = c.send(v, &delete("no-such-topic", 0, 1)).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            err(ResponseError::UnknownTopicOrPartition),
            "{what}: unknown topic"
        );
        let r = c.send(v, &delete(&topic, 4, 1)).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            err(ResponseError::UnknownTopicOrPartition),
            "{what}: unknown partition"
        );
        let r = c.send(v, &delete(&topic, 0, -1)).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.low_watermark),
            (0, end),
            "{what}: delete to the high watermark"
        );
        assert_eq!(
            list_offset(&mut c, &topic, 0, -2).await.offset,
            end,
            "{what}: earliest"
        );
        // Producing continues at the end.
        assert_eq!(
            produce(&mut c, &topic, 0, &records("after", 1, 1)).await,
            end
        );
    }
}

// ---------------------------------------------------------------------------------------------
// DescribeCluster
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn describe_cluster_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let node = b.node_id();
    let mut c = b.client().await;
    let cluster_id = metadata(&mut c, Some(&[])).await.cluster_id.unwrap();

    for v in c.versions(ApiKey::DescribeCluster).await {
        let what = format!("DescribeCluster v{v}");
        let mut request = DescribeClusterRequest::default();
        if v >= 1 {
            request = request.with_endpoint_type(1);
        }
        let r = c.send(v, &request).await;
        assert_eq!(r.error_code, 0, "{what}: {:?}", r.error_message);
        assert!(!r.cluster_id.is_empty(), "{what}: cluster id");
        assert_eq!(
            r.cluster_id, cluster_id,
            "{what}: same cluster id as Metadata"
        );
        assert_eq!(r.controller_id, BrokerId(node), "{what}: controller");
        if v >= 1 {
            assert_eq!(r.endpoint_type, 1, "{what}: endpoint type");
        }
        assert_eq!(r.brokers.len(), 1, "{what}: brokers");
        let broker = &r.brokers[0];
        assert_eq!(broker.broker_id, BrokerId(node), "{what}: broker id");
        assert_eq!(broker.host.as_str(), b.host, "{what}: host");
        assert_eq!(broker.port, b.port as i32, "{what}: port");
        assert!(!broker.is_fenced, "{what}: fenced");
    }
}

// ---------------------------------------------------------------------------------------------
// DeleteTopics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_topics_versions() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;

    for v in c.versions(ApiKey::DeleteTopics).await {
        let what = format!("DeleteTopics v{v}");
        let topic = format!("doomed-v{v}");
        create_topic(&mut c, &topic, 2, &[]).await;
        produce(&mut c, &topic, 0, &records("doomed", 3, 1)).await;
        let id = topic_metadata(&mut c, &topic).await.unwrap().topic_id;

        let by_name = |names: &[&str]| {
            let mut r = DeleteTopicsRequest::default().with_timeout_ms(10_000);
            if v >= 6 {
                r = r.with_topics(
                    names
                        .iter()
                        .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                        .collect(),
                );
            } else {
                r = r.with_topic_names(names.iter().map(|n| topic_name(n)).collect());
            }
            r
        };
        let r = c.send(v, &by_name(&[&topic, "no-such-topic"])).await;
        assert_eq!(r.responses.len(), 2, "{what}");
        let ok = r
            .responses
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic.as_str()))
            .unwrap_or_else(|| panic!("{what}: no result for {topic}"));
        assert_eq!(ok.error_code, 0, "{what}: {:?}", ok.error_message);
        if v >= 6 {
            assert_eq!(ok.topic_id, id, "{what}: topic id in the result");
        }
        let missing = r
            .responses
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("no-such-topic"))
            .unwrap_or_else(|| panic!("{what}: no result for the unknown topic"));
        assert_eq!(
            missing.error_code,
            err(ResponseError::UnknownTopicOrPartition),
            "{what}: unknown topic"
        );
        assert!(
            topic_metadata(&mut c, &topic).await.is_none(),
            "{what}: topic still in Metadata"
        );
        assert!(
            !topic_listed(&mut c, &topic).await,
            "{what}: topic still listed"
        );

        // The name can be used again, for a new topic with a new id and an empty log.
        create_topic(&mut c, &topic, 1, &[]).await;
        let again = topic_metadata(&mut c, &topic).await.unwrap();
        assert_ne!(again.topic_id, id, "{what}: re-created topic reuses the id");
        assert_eq!(
            list_offset(&mut c, &topic, 0, -1).await.offset,
            0,
            "{what}: re-created topic has old data"
        );
        let p = fetch(&mut c, &topic, 0, 0).await;
        assert!(
            decode_records(&what, &p.records).is_empty(),
            "{what}: old records visible"
        );

        // v6: by topic id.
        if v >= 6 {
            let r = c
                .send(
                    v,
                    &DeleteTopicsRequest::default()
                        .with_topics(vec![DeleteTopicState::default()
                            .with_name(None)
                            .with_topic_id(again.topic_id)])
                        .with_timeout_ms(10_000),
                )
                .await;
            assert_eq!(r.responses.len(), 1);
            let t = &r.responses[0];
            assert_eq!(t.error_code, 0, "{what} by id: {:?}", t.error_message);
            assert_eq!(t.topic_id, again.topic_id, "{what} by id: topic id");
            assert_eq!(
                t.name.as_ref().map(|n| n.0.as_str()),
                Some(topic.as_str()),
                "{what} by id: the result names the topic"
            );
            assert!(
                topic_metadata(&mut c, &topic).await.is_none(),
                "{what} by id: still there"
            );

            // The same id again is unknown now.
            let r = c
                .send(
                    v,
                    &DeleteTopicsRequest::default()
                        .with_topics(vec![DeleteTopicState::default()
                            .with_name(None)
                            .with_topic_id(again.topic_id)])
                        .with_timeout_ms(10_000),
                )
                .await;
            assert_eq!(
                r.responses[0].error_code,
                err(ResponseError::UnknownTopicId),
                "{what}: unknown topic id"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kafka behaviours checked on their own, so that a failure names the behaviour
// ---------------------------------------------------------------------------------------------

/// acks must be -1, 0 or 1: anything else is INVALID_REQUIRED_ACKS for every partition, and
/// nothing is appended (`ReplicaManager.appendRecords`).
#[tokio::test]
async fn produce_invalid_acks() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "acks", 1, &[]).await;
    let meta = topic_metadata(&mut c, "acks").await.unwrap();
    for v in c.versions(ApiKey::Produce).await {
        let r = c
            .send(
                v,
                &produce_request(v, 2, &meta, 0, batch(&records("a", 1, 1))),
            )
            .await;
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            err(ResponseError::InvalidRequiredAcks),
            "Produce v{v}: acks=2"
        );
    }
    assert_eq!(
        list_offset(&mut c, "acks", 0, -1).await.offset,
        0,
        "records with invalid acks were appended"
    );
}

/// Topic names that differ only in '.' versus '_' collide (their metric names would be the
/// same): Kafka refuses the second with INVALID_TOPIC_EXCEPTION.
#[tokio::test]
async fn create_topics_name_collision() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    for v in c.versions(ApiKey::CreateTopics).await {
        create_topic(&mut c, &format!("collide_v{v}"), 1, &[]).await;
        let name = format!("collide.v{v}");
        let r = c
            .send(
                v,
                &CreateTopicsRequest::default()
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(topic_name(&name))
                        .with_num_partitions(1)
                        .with_replication_factor(1)])
                    .with_timeout_ms(10_000),
            )
            .await;
        assert_eq!(
            r.topics[0].error_code,
            err(ResponseError::InvalidTopicException),
            "CreateTopics v{v}: {name} collides with collide_v{v}"
        );
        assert!(topic_metadata(&mut c, &name).await.is_none());
    }
}

/// DescribeCluster's endpoint type (v1+): a broker answers BROKER (1); asking a broker for
/// CONTROLLER (2) is MISMATCHED_ENDPOINT_TYPE, an unknown type UNSUPPORTED_ENDPOINT_TYPE
/// (`AuthHelper.computeDescribeClusterResponse`).
#[tokio::test]
async fn describe_cluster_endpoint_type() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    for v in c.versions(ApiKey::DescribeCluster).await {
        if v < 1 {
            continue;
        }
        for (endpoint_type, expected) in [
            (2, ResponseError::MismatchedEndpointType),
            (9, ResponseError::UnsupportedEndpointType),
        ] {
            let r = c
                .send(
                    v,
                    &DescribeClusterRequest::default().with_endpoint_type(endpoint_type),
                )
                .await;
            assert_eq!(
                r.error_code,
                err(expected),
                "DescribeCluster v{v}: endpoint type {endpoint_type}"
            );
        }
    }
}

/// ApiVersions v3+ carries the client's software name and version; Kafka checks them against
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?` and answers INVALID_REQUEST otherwise.
#[tokio::test]
async fn api_versions_invalid_client_software_name() {
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    for v in c.versions(ApiKey::ApiVersions).await {
        if v < 3 {
            continue;
        }
        let r = c
            .send(
                v,
                &ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("bad name!"))
                    .with_client_software_version(StrBytes::from_static_str("1.0")),
            )
            .await;
        assert_eq!(
            r.error_code,
            err(ResponseError::InvalidRequest),
            "ApiVersions v{v}: invalid client software name"
        );
    }
}

/// Authorized operations, when asked for (Metadata v8+ topics, v8-10 cluster; DescribeCluster):
/// with no authorizer Kafka answers every operation the resource supports
/// (`AuthHelper.authorizedOperations`), never the "not provided" value i32::MIN.
#[tokio::test]
async fn authorized_operations_when_requested() {
    const DESCRIBE: i32 = 1 << 8;
    let b = Broker::start(BrokerOptions::default()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "ops", 1, &[]).await;
    for v in c.versions(ApiKey::Metadata).await {
        if v < 8 {
            continue;
        }
        let mut request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("ops")))
            ]))
            .with_allow_auto_topic_creation(false)
            .with_include_topic_authorized_operations(true);
        if v <= 10 {
            request = request.with_include_cluster_authorized_operations(true);
        }
        let r = c.send(v, &request).await;
        let ops = r.topics[0].topic_authorized_operations;
        assert!(
            ops != i32::MIN && ops & DESCRIBE != 0,
            "Metadata v{v}: topic authorized operations {ops:#x}"
        );
        if v <= 10 {
            let ops = r.cluster_authorized_operations;
            assert!(
                ops != i32::MIN && ops & DESCRIBE != 0,
                "Metadata v{v}: cluster authorized operations {ops:#x}"
            );
        }
    }
    for v in c.versions(ApiKey::DescribeCluster).await {
        let r = c
            .send(
                v,
                &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
            )
            .await;
        let ops = r.cluster_authorized_operations;
        assert!(
            ops != i32::MIN && ops & DESCRIBE != 0,
            "DescribeCluster v{v}: cluster authorized operations {ops:#x}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// AlterPartitionReassignments, ListPartitionReassignments (moves between brokers are tested on
// a real cluster in tests/test_cluster.py; one broker has nowhere to move to)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn partition_reassignment_versions() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    let b = Broker::start(BrokerOptions::default()).await;
    let node = b.node_id();
    let mut c = b.client().await;
    create_topic(&mut c, "moving", 2, &[]).await;
    let epoch = leader_epoch(&mut c, "moving", 0).await;
    let request = |topic: &str, replicas: Option<Vec<i32>>| {
        AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![ReassignableTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(
                        replicas.map(|r| r.into_iter().map(broker).collect()),
                    )])])
    };
    for v in c.versions(ApiKey::AlterPartitionReassignments).await {
        let what = format!("AlterPartitionReassignments v{v}");
        for (topic, replicas, expected) in [
            // Already there: nothing to do.
            ("moving", Some(vec![node]), 0),
            (
                "moving",
                Some(vec![node + 98]),
                err(ResponseError::InvalidReplicaAssignment),
            ),
            (
                "moving",
                Some(vec![node, node + 98]),
                err(ResponseError::InvalidReplicationFactor),
            ),
            (
                "moving",
                Some(vec![]),
                err(ResponseError::InvalidReplicaAssignment),
            ),
            ("moving", None, err(ResponseError::NoReassignmentInProgress)),
            (
                "absent",
                Some(vec![node]),
                err(ResponseError::UnknownTopicOrPartition),
            ),
        ] {
            let mut req = request(topic, replicas.clone());
            if v >= 1 {
                // Not the default (true), so the echo shows.
                req.allow_replication_factor_change = false;
            }
            let r = c.send(v, &req).await;
            assert_eq!(r.error_code, 0, "{what}");
            if v >= 1 {
                assert!(!r.allow_replication_factor_change, "{what}: echoed");
            }
            let p = &r.responses[0].partitions[0];
            assert_eq!(r.responses[0].name.0.as_str(), topic, "{what}");
            assert_eq!(p.partition_index, 0, "{what}");
            assert_eq!(
                p.error_code, expected,
                "{what}: {topic} {replicas:?}: {:?}",
                p.error_message
            );
            if expected != 0 {
                assert!(
                    p.error_message.is_some(),
                    "{what}: a message with the error"
                );
            }
        }
        // Nothing moved, so nothing was reopened.
        assert_eq!(
            leader_epoch(&mut c, "moving", 0).await,
            epoch,
            "{what}: leader epoch"
        );
    }
    for v in c.versions(ApiKey::ListPartitionReassignments).await {
        let what = format!("ListPartitionReassignments v{v}");
        for topics in [None, Some(vec![])] {
            let req = ListPartitionReassignmentsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(topics);
            let r = c.send(v, &req).await;
            assert_eq!(r.error_code, 0, "{what}");
            assert!(
                r.topics.is_empty(),
                "{what}: nothing is moving on one broker"
            );
        }
    }
    // The partition stayed where it was.
    let t = topic_metadata(&mut c, "moving").await.unwrap();
    assert!(t.partitions.iter().all(|p| p.leader_id == broker(node)));
}
