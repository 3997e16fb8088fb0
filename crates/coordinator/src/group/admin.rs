//! DescribeGroups, ListGroups and DeleteGroups over the groups of one shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;

use kafka_protocol::protocol::StrBytes;

use super::classic::ClassicState;
use super::{Effects, Group, GroupShard};

impl GroupShard {
    /// A classic group as DescribeGroups shows it; KIP-848 groups are not classic groups.
    pub fn describe_group(
        &self,
        group_id: &str,
        version: i16,
        authorized_operations: i32,
    ) -> DescribedGroup {
        let dead = || {
            let mut d = DescribedGroup::default()
                .with_group_id(StrBytes::from(group_id.to_string()).into())
                .with_group_state("Dead".into())
                .with_authorized_operations(authorized_operations);
            if version >= 6 {
                d.error_code = ResponseError::GroupIdNotFound.code();
            }
            d
        };
        let Some(Group::Classic(g)) = self.groups.get(group_id) else {
            return dead();
        };
        let stable = g.state == ClassicState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| {
                let mut d = DescribedGroupMember::default()
                    .with_member_id(m.member_id.clone().into())
                    .with_client_id(m.client_id.clone().into())
                    .with_client_host(m.client_host.clone().into());
                if version >= 4 {
                    d.group_instance_id = m.instance_id.clone().map(Into::into);
                }
                if stable {
                    d.member_metadata = m.metadata(&protocol);
                    d.member_assignment = m.assignment.clone();
                }
                d
            })
            .collect();
        DescribedGroup::default()
            .with_group_id(StrBytes::from(group_id.to_string()).into())
            .with_group_state(g.state.name().into())
            .with_protocol_type(g.protocol_type.clone().unwrap_or_default().into())
            .with_protocol_data(if stable { protocol } else { String::new() }.into())
            .with_members(members)
            .with_authorized_operations(authorized_operations)
    }

    /// Groups whose state and type pass the filters (empty filters pass everything; states
    /// compare case-insensitively, as Kafka does).
    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<ListedGroup> {
        self.groups
            .iter()
            .filter_map(|(id, group)| {
                let (state, kind, protocol_type) = match group {
                    Group::Classic(g) => (
                        g.state.name(),
                        "classic",
                        g.protocol_type.clone().unwrap_or_default(),
                    ),
                    Group::Consumer(g) => (g.state_name(), "consumer", "consumer".to_string()),
                };
                let state_ok =
                    states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(state));
                let type_ok =
                    types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case(kind));
                (state_ok && type_ok).then(|| {
                    ListedGroup::default()
                        .with_group_id(StrBytes::from(id.clone()).into())
                        .with_protocol_type(protocol_type.into())
                        .with_group_state(state.into())
                        .with_group_type(kind.into())
                })
            })
            .collect()
    }

    /// Deletes an empty group and its offsets; returns the error code.
    pub fn delete_group(&mut self, group_id: &str, fx: &mut Effects) -> i16 {
        let Some(group) = self.groups.get(group_id) else {
            return ResponseError::GroupIdNotFound.code();
        };
        if !group.is_empty() {
            return ResponseError::NonEmptyGroup.code();
        }
        let mut records = self.offset_tombstones(group_id);
        records.extend(self.group_tombstones(group_id));
        self.emit(fx, records);
        self.groups.remove(group_id);
        self.timers.cancel_group(group_id);
        0
    }
}
