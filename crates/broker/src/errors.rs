//! Kafka error codes for what goes wrong below the wire.

use kafka_protocol::error::ResponseError;
use strata_meta::controller::SubmitError;
use strata_meta::ControllerError;
use strata_protocol::BatchError;
use strata_storage::StorageError;

pub fn code(error: ResponseError) -> i16 {
    error.code()
}

pub fn storage(error: &StorageError) -> i16 {
    code(match error {
        StorageError::UnknownStream(_) | StorageError::Fenced { .. } => {
            ResponseError::NotLeaderOrFollower
        }
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::Busy(_) => ResponseError::RequestTimedOut,
        StorageError::Failed(_) | StorageError::ObjectStore(_) => ResponseError::KafkaStorageError,
    })
}

pub fn controller(error: &ControllerError) -> i16 {
    code(match error {
        ControllerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        ControllerError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ControllerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        ControllerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        ControllerError::InvalidConfig(_) => ResponseError::InvalidConfig,
        ControllerError::FencedEpoch { .. } => ResponseError::NotLeaderOrFollower,
        ControllerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        // Kafka's answer when too few brokers are registered to place a partition.
        ControllerError::NoBrokers => ResponseError::InvalidReplicationFactor,
        ControllerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ControllerError::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
    })
}

pub fn submit(error: &SubmitError) -> i16 {
    match error {
        SubmitError::Controller(e) => controller(e),
        SubmitError::Quorum(_) => code(ResponseError::RequestTimedOut),
    }
}

pub fn batch(error: &BatchError) -> i16 {
    code(match error {
        BatchError::Corrupt(_) => ResponseError::CorruptMessage,
        BatchError::Invalid(_) => ResponseError::InvalidRecord,
        BatchError::TooLarge(..) => ResponseError::MessageTooLarge,
    })
}
