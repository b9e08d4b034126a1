//! Marathon's event bus: publishing, the stream's attach/detach events, `?event_type=`
//! filters, and the events each change emits (`api_post_event`, `group_change_success`,
//! `status_update_event`, `instance_changed_event`), with Marathon's field order.
//!
//! Not here: when a change happens (`super`, the mutations) or how events leave the process
//! (an HTTP wrapper streams [`SimMarathon::take_events`] or POSTs them to subscribers).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::json::{ip_addresses_json, iso8601, ports_json};
use super::model::{SimApp, SimEvent, SimTask};
use super::{condition, SimMarathon};
use crate::wire::{parse_query, split_path_query, J};

impl SimMarathon {
    /// Adds an event to the bus as if Marathon had published it.
    pub fn publish(&mut self, event: SimEvent) {
        self.events.push(event);
    }

    /// The `event_stream_attached` event a new `/v2/events` client from `remote_address` causes.
    /// A streaming wrapper sends it to the new client (and may [`SimMarathon::publish`] it).
    pub fn event_stream_attached(&self, remote_address: &str) -> SimEvent {
        self.stream_event("event_stream_attached", remote_address)
    }

    /// The `event_stream_detached` event for a client that went away.
    pub fn event_stream_detached(&self, remote_address: &str) -> SimEvent {
        self.stream_event("event_stream_detached", remote_address)
    }

    fn stream_event(&self, event_type: &str, remote_address: &str) -> SimEvent {
        self.make_event(
            event_type,
            J::obj([("remoteAddress", J::s(remote_address))]),
            false,
        )
    }

    /// The event types a `/v2/events` request asks for (`?event_type=a&event_type=b`). Empty means
    /// all; always empty before 1.3.7
    /// ([`MarathonVersion::V0_15`](super::MarathonVersion::V0_15),
    /// [`MarathonVersion::V1_1`](super::MarathonVersion::V1_1)), which ignored the parameter.
    pub fn event_type_filter(&self, path_and_query: &str) -> Vec<String> {
        if !self.version.filters_event_types() {
            return Vec::new();
        }
        let (_, query) = split_path_query(path_and_query);
        parse_query(query, false)
            .into_iter()
            .filter(|(k, _)| k == "event_type")
            .map(|(_, v)| v)
            .collect()
    }

    /// `fields` + `eventType` + `timestamp` (Json.writes order), queued.
    pub(super) fn emit(&mut self, event_type: &str, fields: J) {
        let event = self.make_event(event_type, fields, false);
        self.events.push(event);
    }

    /// `fields` + `timestamp` + `eventType` (the 1.4+ instance events' `Json.obj` order), queued.
    pub(super) fn emit_last(&mut self, event_type: &str, fields: J) {
        let event = self.make_event(event_type, fields, true);
        self.events.push(event);
    }

    pub(super) fn make_event(
        &self,
        event_type: &str,
        mut fields: J,
        timestamp_first: bool,
    ) -> SimEvent {
        if timestamp_first {
            fields.put("timestamp", J::s(iso8601(self.now)));
            fields.put("eventType", J::s(event_type));
        } else {
            fields.put("eventType", J::s(event_type));
            fields.put("timestamp", J::s(iso8601(self.now)));
        }
        SimEvent {
            event_type: event_type.to_string(),
            json: fields.compact(false).into_bytes(),
        }
    }

    pub(super) fn emit_api_post(&mut self, app: &SimApp) {
        let definition = self.app_definition(app);
        self.emit(
            "api_post_event",
            J::obj([
                ("clientIp", J::s(self.client_ip.as_str())),
                ("uri", J::s(format!("/v2/apps{}", app.id))),
                ("appDefinition", definition),
            ]),
        );
    }

    pub(super) fn emit_group_change(&mut self, version: u64) {
        self.emit(
            "group_change_success",
            J::obj([("groupId", J::s("/")), ("version", J::s(iso8601(version)))]),
        );
    }

    pub(super) fn emit_task_change(&mut self, task: &SimTask, previous_condition: Option<&str>) {
        let instances = self.version.instances();
        let slave_id = if instances && !task.mesos_status_seen {
            ""
        } else {
            task.slave_id.as_str()
        };
        let mut fields = J::obj([
            ("slaveId", J::s(slave_id)),
            ("taskId", J::s(task.id.as_str())),
            ("taskStatus", J::s(task.state.as_str())),
            ("message", J::s("")),
            ("appId", J::s(task.app_id.as_str())),
            ("host", J::s(task.host.as_str())),
        ]);
        if instances || !task.ip_addresses.is_empty() {
            fields.put("ipAddresses", ip_addresses_json(&task.ip_addresses));
        }
        fields.put("ports", ports_json(&task.ports));
        fields.put("version", J::s(iso8601(task.version)));
        self.emit("status_update_event", fields);
        let condition_now = condition(&task.state);
        if instances && previous_condition != Some(condition_now) {
            self.emit_last(
                "instance_changed_event",
                J::obj([
                    ("instanceId", J::s(task.instance_id.as_str())),
                    ("condition", J::s(condition_now)),
                    ("runSpecId", J::s(task.app_id.as_str())),
                    ("agentId", J::s(task.slave_id.as_str())),
                    ("host", J::s(task.host.as_str())),
                    ("runSpecVersion", J::s(iso8601(task.version))),
                ]),
            );
        }
    }
}
