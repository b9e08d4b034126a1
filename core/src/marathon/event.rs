//! Parsing of Marathon event bodies (HTTP callback POSTs and event-stream `data:` lines) into the
//! events the bridge acts on. Every malformed body becomes an [`EventError`] with a message fit for
//! a 400 reply; nothing here panics.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::Deserialize;
use serde_json::Value;

use super::ids::{check_app_id, check_host, check_task_id, IdError, Shown};
use super::task_state::TaskState;

/// A Marathon event the bridge understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarathonEvent {
    /// `status_update_event`: a task changed state.
    StatusUpdate(StatusUpdate),
    /// `health_status_changed_event` or `instance_health_changed_event`: a health check result of
    /// an instance changed. The event names no host and, from Marathon 1.4, no task: the app's
    /// tasks are read for the verdict.
    HealthChanged {
        /// `appId` (`runSpecId`).
        app_id: String,
        /// `instanceId`, or `taskId` up to Marathon 1.3.
        instance_id: String,
    },
    /// `app_terminated_event`: the app was deleted and all its tasks killed.
    AppTerminated {
        /// `appId`.
        app_id: String,
    },
    /// Any other well-formed event; carries its `eventType`.
    Other(String),
}

/// The fields of a `status_update_event` the bridge uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// `taskId`: the Consul service id.
    pub task_id: String,
    /// `appId`, such as `/group/app`. Required for RUNNING only.
    pub app_id: Option<String>,
    /// `host`: the task's host, whose Consul agent holds the service.
    pub host: String,
    /// `taskStatus`.
    pub state: TaskState,
    /// `ports`: host ports in port order (`null` or absent means none).
    pub ports: Vec<u16>,
    /// `version`: the app version the task runs, when present and a string. Marathon gives every
    /// change of an app's definition (labels included) a new version.
    pub app_version: Option<String>,
    /// `ipAddresses[].ipAddress`: the task's own addresses (IP-per-task, container networks).
    pub ip_addresses: Vec<String>,
    /// What Marathon's health checks say of the task: unreported for a status event; what the
    /// read said for the updates the bridge makes from a health event's read of the app's tasks.
    pub health: super::TaskHealth,
}

/// Why an event body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is not JSON at all.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("body is not a JSON object")]
    NotObject,
    /// `eventType` is missing or null.
    #[error("Event type None not supported.")]
    MissingEventType,
    /// A field the event needs is missing or has the wrong type.
    #[error("{event_type}: field '{field}' {problem}")]
    BadField {
        /// The event's `eventType`.
        event_type: String,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// `taskStatus` is not a Mesos task state.
    #[error("status_update_event: unknown taskStatus '{0}'")]
    UnknownTaskStatus(String),
    /// An id or host that breaks Marathon's grammar ([`super::ids`]): nothing is sent anywhere.
    #[error("{event_type}: field '{field}' {problem}")]
    BadId {
        /// The event's `eventType`.
        event_type: &'static str,
        /// The offending field.
        field: &'static str,
        /// Which rule it breaks.
        problem: IdError,
    },
    /// `eventType` is not a string.
    #[error("field 'eventType' must be a string")]
    EventTypeNotString,
}

/// Only the fields we read; serde skips the rest without allocating for them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    event_type: Option<Value>,
    task_status: Option<Value>,
    task_id: Option<Value>,
    app_id: Option<Value>,
    host: Option<Value>,
    ports: Option<Value>,
    version: Option<Value>,
    ip_addresses: Option<Value>,
    instance_id: Option<Value>,
    run_spec_id: Option<Value>,
}

/// Parses one event body.
pub fn parse_event(body: &[u8]) -> Result<MarathonEvent, EventError> {
    let mut raw: RawEvent = match serde_json::from_slice(body) {
        Ok(raw) => raw,
        Err(e) if e.is_data() => return Err(EventError::NotObject),
        Err(e) => return Err(EventError::NotJson(e.to_string())),
    };
    let event_type = match raw.event_type {
        None | Some(Value::Null) => return Err(EventError::MissingEventType),
        Some(Value::String(s)) => s,
        Some(_) => return Err(EventError::EventTypeNotString),
    };
    if event_type == "app_terminated_event" {
        let bad_id = |problem| EventError::BadId {
            event_type: "app_terminated_event",
            field: "appId",
            problem,
        };
        return match raw.app_id {
            Some(Value::String(app_id)) if !app_id.is_empty() => {
                check_app_id(&app_id).map_err(bad_id)?;
                Ok(MarathonEvent::AppTerminated { app_id })
            }
            _ => Err(EventError::BadField {
                event_type,
                field: "appId",
                problem: "is missing",
            }),
        };
    }
    if let Some((event_type, app_key, app_id, instance_key, instance_id)) =
        match event_type.as_str() {
            "health_status_changed_event" => {
                let (key, id) = match raw.instance_id.take() {
                    Some(id) => ("instanceId", Some(id)),
                    None => ("taskId", raw.task_id.take()),
                };
                Some((
                    "health_status_changed_event",
                    "appId",
                    raw.app_id.take(),
                    key,
                    id,
                ))
            }
            "instance_health_changed_event" => Some((
                "instance_health_changed_event",
                "runSpecId",
                raw.run_spec_id.take(),
                "instanceId",
                raw.instance_id.take(),
            )),
            _ => None,
        }
    {
        let field = |value: Option<Value>, field: &'static str| match value {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(EventError::BadField {
                event_type: String::from(event_type),
                field,
                problem: "must be a non-empty string",
            }),
        };
        let app_id = field(app_id, app_key)?;
        check_app_id(&app_id).map_err(|problem| EventError::BadId {
            event_type,
            field: app_key,
            problem,
        })?;
        let instance_id = field(instance_id, instance_key)?;
        check_task_id(&instance_id).map_err(|problem| EventError::BadId {
            event_type,
            field: instance_key,
            problem,
        })?;
        return Ok(MarathonEvent::HealthChanged {
            app_id,
            instance_id,
        });
    }
    if event_type != "status_update_event" {
        return Ok(MarathonEvent::Other(event_type));
    }
    let bad = |field, problem| EventError::BadField {
        event_type: String::from("status_update_event"),
        field,
        problem,
    };
    let bad_id = |field| {
        move |problem| EventError::BadId {
            event_type: "status_update_event",
            field,
            problem,
        }
    };
    let status = string_field(raw.task_status, "taskStatus", &bad)?;
    let state = TaskState::parse(&status)
        .ok_or_else(|| EventError::UnknownTaskStatus(Shown(&status).to_string()))?;
    let task_id = string_field(raw.task_id, "taskId", &bad)?;
    check_task_id(&task_id).map_err(bad_id("taskId"))?;
    let host = string_field(raw.host, "host", &bad)?;
    check_host(&host).map_err(bad_id("host"))?;
    let app_id = match raw.app_id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            check_app_id(&s).map_err(bad_id("appId"))?;
            Some(s)
        }
        Some(_) => return Err(bad("appId", "must be a string")),
    };
    if state == TaskState::Running && app_id.is_none() {
        return Err(bad("appId", "is required for TASK_RUNNING"));
    }
    let ports = match raw.ports {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()))
            .collect::<Option<Vec<u16>>>()
            .ok_or_else(|| bad("ports", "must hold port numbers from 0 to 65535"))?,
        Some(_) => return Err(bad("ports", "must be an array")),
    };
    let ip_addresses = match raw.ip_addresses {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let ip = item.get("ipAddress").and_then(Value::as_str)?;
                let literal = ip.parse::<core::net::IpAddr>().is_ok();
                literal.then(|| String::from(ip))
            })
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| bad("ipAddresses", "must hold IP addresses"))?,
        Some(_) => return Err(bad("ipAddresses", "must be an array")),
    };
    // Only an optimisation hint (see `StatusUpdate::app_version`), so an odd value is ignored.
    let app_version = match raw.version {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    Ok(MarathonEvent::StatusUpdate(StatusUpdate {
        task_id,
        app_id,
        host,
        state,
        ports,
        app_version,
        ip_addresses,
        health: super::TaskHealth::Unreported,
    }))
}

fn string_field(
    value: Option<Value>,
    field: &'static str,
    bad: &impl Fn(&'static str, &'static str) -> EventError,
) -> Result<String, EventError> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(bad(field, "is empty")),
        None | Some(Value::Null) => Err(bad(field, "is missing")),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_running_status_update() {
        let body = br#"{"eventType":"status_update_event","taskStatus":"TASK_RUNNING","taskId":"t1","appId":"/a","host":"h","ports":[31000,80],"slaveId":"s","version":"2014-04-04T06:26:23.051Z"}"#;
        assert_eq!(
            parse_event(body),
            Ok(MarathonEvent::StatusUpdate(StatusUpdate {
                task_id: "t1".into(),
                app_id: Some("/a".into()),
                host: "h".into(),
                state: TaskState::Running,
                ports: alloc::vec![31000, 80],
                app_version: Some("2014-04-04T06:26:23.051Z".into()),
                ip_addresses: alloc::vec::Vec::new(),
                health: crate::marathon::TaskHealth::Unreported,
            }))
        );
    }

    #[test]
    fn rejects_bad_bodies_with_clear_errors() {
        assert!(matches!(parse_event(b"nope"), Err(EventError::NotJson(_))));
        assert!(matches!(parse_event(b""), Err(EventError::NotJson(_))));
        assert_eq!(parse_event(b"[1,2]"), Err(EventError::NotObject));
        assert_eq!(parse_event(b"\"str\""), Err(EventError::NotObject));
        assert_eq!(parse_event(b"{}"), Err(EventError::MissingEventType));
        assert_eq!(
            parse_event(br#"{"eventType":"status_update_event","taskStatus":"TASK_BOGUS"}"#),
            Err(EventError::UnknownTaskStatus("TASK_BOGUS".into()))
        );
        let missing_app = br#"{"eventType":"status_update_event","taskStatus":"TASK_RUNNING","taskId":"t","host":"h"}"#;
        assert_eq!(
            parse_event(missing_app).unwrap_err().to_string(),
            "status_update_event: field 'appId' is required for TASK_RUNNING"
        );
        let bad_port = br#"{"eventType":"status_update_event","taskStatus":"TASK_KILLED","taskId":"t","host":"h","ports":[70000]}"#;
        assert!(matches!(
            parse_event(bad_port),
            Err(EventError::BadField { field: "ports", .. })
        ));
    }

    #[test]
    fn app_terminated_needs_its_app_id() {
        assert_eq!(
            parse_event(
                br#"{"appId":"/my-app","eventType":"app_terminated_event","timestamp":"x"}"#
            ),
            Ok(MarathonEvent::AppTerminated {
                app_id: "/my-app".into()
            })
        );
        assert!(parse_event(br#"{"eventType":"app_terminated_event"}"#).is_err());
    }

    #[test]
    fn ids_that_could_change_a_url_or_a_log_are_refused() {
        let event = |task: &str, app: &str, host: &str| {
            alloc::format!(
                r#"{{"eventType":"status_update_event","taskStatus":"TASK_KILLED","taskId":{},"appId":{},"host":{}}}"#,
                serde_json::Value::from(task),
                serde_json::Value::from(app),
                serde_json::Value::from(host)
            )
        };
        for (task, app, host, field) in [
            ("../../leave", "/a", "h", "taskId"),
            ("../../../kv/x/y", "/a", "h", "taskId"),
            ("web\r\n.1", "/a", "h", "taskId"),
            ("\u{0}", "/a", "h", "taskId"),
            ("t", "/../../../../admin/secret", "h", "appId"),
            ("t", "/a", "evil@host", "host"),
            ("t", "/a", "10.0.0.1:8500", "host"),
            ("t", "/a", "h/path", "host"),
            ("t", "/a", "h#x", "host"),
        ] {
            let body = event(task, app, host);
            match parse_event(body.as_bytes()) {
                Err(EventError::BadId { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        let terminated = br#"{"eventType":"app_terminated_event","appId":"/a/../../x"}"#;
        assert!(matches!(
            parse_event(terminated),
            Err(EventError::BadId { field: "appId", .. })
        ));
        assert_eq!(
            parse_event(br#"{"eventType":7}"#),
            Err(EventError::EventTypeNotString)
        );
        let huge = alloc::format!(
            r#"{{"eventType":"status_update_event","taskStatus":"{}","taskId":"t","host":"h"}}"#,
            "X".repeat(100_000)
        );
        let message = parse_event(huge.as_bytes()).unwrap_err().to_string();
        assert!(message.len() < 300, "the reply names the value briefly");
    }

    #[test]
    fn other_event_types_are_recognised_not_rejected() {
        assert_eq!(
            parse_event(br#"{"eventType":"deployment_info"}"#),
            Ok(MarathonEvent::Other("deployment_info".into()))
        );
    }
}
