//! DeleteTopics: by name (all versions) or by id (v6+). The topic's streams stop holding the WAL
//! back at once; their objects are deleted by GC.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_meta::Command;
use uuid::Uuid;

use crate::{errors, Broker};

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (name, topic_id) in wanted {
        let found = {
            let image = broker.meta.image().read();
            let topic = match &name {
                Some(n) => image.topic_by_name(n),
                None => image.topics.get(&topic_id),
            };
            topic.map(|t| {
                (
                    t.name.clone(),
                    t.topic_id,
                    t.partitions
                        .values()
                        .flat_map(|p| std::iter::once(p.stream_id).chain(p.state_stream_id))
                        .collect::<Vec<_>>(),
                )
            })
        };
        let mut result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(topic_id);
        let Some((name, id, streams)) = found else {
            let code = if name.is_some() {
                ResponseError::UnknownTopicOrPartition
            } else {
                ResponseError::UnknownTopicId
            };
            results.push(result.with_error_code(code.code()));
            continue;
        };
        result = result
            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
            .with_topic_id(id);
        match broker.meta.submit(Command::DeleteTopic { name }).await {
            Ok(_) => {
                for stream in streams {
                    broker.engine.remove_stream(stream);
                    broker.producers.forget(stream);
                }
                results.push(result);
            }
            Err(e) => results.push(
                result
                    .with_error_code(errors::submit(&e))
                    .with_error_message(Some(StrBytes::from_string(e.to_string()))),
            ),
        }
    }
    DeleteTopicsResponse::default().with_responses(results)
}
