//! A produce sent to a broker that does not lead the partition, in a two-node cluster (both
//! voters, object WAL on a shared local-directory store): NOT_LEADER_OR_FOLLOWER at every
//! version, and from v10 the leader's id, epoch and endpoint (KIP-951), so that clients go
//! straight to it.

mod common;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::LeaderIdAndEpoch;
use kafka_protocol::messages::{ApiKey, ProduceRequest};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn produce_to_a_non_leader_names_the_leader() {
    let store = tempfile::tempdir().unwrap();
    let quorum = format!("1@127.0.0.1:{},2@127.0.0.1:{}", free_port(), free_port());
    let node = |id: i32| BrokerOptions {
        node_id: id,
        extra_args: [
            "--controller-quorum",
            &quorum,
            "--object-store",
            &format!("file://{}", store.path().display()),
            "--wal",
            "object",
        ]
        .map(String::from)
        .to_vec(),
        ..BrokerOptions::default()
    };
    // Neither voter serves before the quorum has a leader: start them together.
    let (one, two) = tokio::join!(Broker::start(node(1)), Broker::start(node(2)));
    let mut c = one.client().await;
    create_topic(&mut c, "hints", 2, &[]).await;
    let topic = topic_metadata(&mut c, "hints").await.expect("the topic");
    let led_by_two = topic
        .partitions
        .iter()
        .find(|p| p.leader_id.0 == 2)
        .expect("a partition led by node 2");

    for v in c.versions(ApiKey::Produce).await {
        let mut data =
            TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
                .with_index(led_by_two.partition_index)
                .with_records(Some(batch(&records("h", 1, 0))))]);
        data = if v >= 13 {
            data.with_topic_id(topic.topic_id)
        } else {
            data.with_name(topic.name.clone().unwrap())
        };
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![data]);
        let response = c.send(v, &request).await;
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code,
            err(ResponseError::NotLeaderOrFollower),
            "v{v}"
        );
        if v >= 10 {
            assert_eq!(
                p.current_leader,
                LeaderIdAndEpoch::default()
                    .with_leader_id(2.into())
                    .with_leader_epoch(led_by_two.leader_epoch),
                "v{v}"
            );
            let endpoints: Vec<(i32, i32)> = response
                .node_endpoints
                .iter()
                .map(|e| (e.node_id.0, e.port))
                .collect();
            assert_eq!(endpoints, vec![(2, two.port as i32)], "v{v}");
        } else {
            assert_eq!(p.current_leader, LeaderIdAndEpoch::default(), "v{v}");
            assert!(response.node_endpoints.is_empty(), "v{v}");
        }
    }
}
