//! DescribeCluster: the brokers the metadata image knows, and who the controller is.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use kafka_protocol::error::ResponseError;

use crate::{acl, Broker};

pub fn handle(broker: &Broker, request: DescribeClusterRequest) -> DescribeClusterResponse {
    // This listener serves brokers' endpoints (type 1); controllers have their own.
    match request.endpoint_type {
        1 => {}
        2 => {
            return DescribeClusterResponse::default()
                .with_error_code(ResponseError::MismatchedEndpointType.code())
                .with_endpoint_type(request.endpoint_type)
        }
        _ => {
            return DescribeClusterResponse::default()
                .with_error_code(ResponseError::UnsupportedEndpointType.code())
                .with_endpoint_type(request.endpoint_type)
        }
    }
    let image = broker.meta.image().read();
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.config.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(brokers)
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_authorized_operations(acl::reported(
            request.include_cluster_authorized_operations,
            acl::CLUSTER_OPERATIONS,
        ))
}
