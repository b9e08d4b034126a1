//! An instance's own presence in Consul under `--ha`, leader or standby:
//!
//! - its status key, `service/consular/<registration-id>/instances/<instance-id>`: JSON with the
//!   version, role, start time, last sync (time, outcome, duration, writes), events handled and
//!   the stream's state. It is held by a session of its own whose end deletes it, so a dead
//!   instance's key disappears; it is written at most every [`STATUS_PERIOD`], and only when it
//!   changed;
//! - the `consular` service it registers on the main Consul agent, with an HTTP check on its own
//!   `/`, as consul-esm does; deregistered on shutdown.
//!
//! The key lives beside the leader key, outside `consular/`, so no purge touches it.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::sessions::{KeptSession, SessionChange, SessionPurpose};
use super::{Answer, Awaiting, Bridge, Role};
use crate::consul::{deregister_path, kv_lock_path, parse_lock_answer, LockVerb, REGISTER_PATH};
use crate::io::{Level, Method};

/// Status writes are at least this far apart.
pub const STATUS_PERIOD: Duration = Duration::from_secs(5);
/// Wait before registering the `consular` service again after a failure.
const SERVICE_RETRY: Duration = Duration::from_secs(10);

/// Which request of this module an answer is for.
#[derive(Debug)]
pub(super) enum InstanceWait {
    Status { body: Vec<u8> },
    Service,
    ServiceGone,
}

#[derive(Debug)]
enum ServiceState {
    Unregistered {
        retry_at: Duration,
    },
    Registering,
    Registered,
    /// Not (or no longer) registered, and not to be: no address to advertise, or shut down.
    Ended,
}

#[derive(Debug)]
pub(super) struct Instance {
    session: KeptSession,
    /// The status as last written.
    written: Option<Vec<u8>>,
    writing: bool,
    next_write_at: Duration,
    service: ServiceState,
}

impl Instance {
    pub(super) fn new(now: Duration, advertised: bool) -> Self {
        Instance {
            session: KeptSession::new(now),
            written: None,
            writing: false,
            next_write_at: now,
            service: if advertised {
                ServiceState::Unregistered { retry_at: now }
            } else {
                ServiceState::Ended
            },
        }
    }

    pub(super) fn session_mut(&mut self) -> &mut KeptSession {
        &mut self.session
    }

    pub(super) fn next_at(&self) -> Option<Duration> {
        let write = (self.session.id().is_some() && !self.writing).then_some(self.next_write_at);
        let service = match self.service {
            ServiceState::Unregistered { retry_at } => Some(retry_at),
            _ => None,
        };
        [self.session.next_at(), write, service]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The key of instance `instance_id`'s status.
pub fn status_key(registration_id: &str, instance_id: &str) -> String {
    alloc::format!("service/consular/{registration_id}/instances/{instance_id}")
}

/// The id of the `consular` service of instance `instance_id`.
pub fn instance_service_id(instance_id: &str) -> String {
    alloc::format!("consular:{instance_id}")
}

impl Bridge {
    /// Runs what is due: the status session, the status write, the service registration.
    pub(super) fn on_instance_timer(&mut self) {
        let Some(ha) = self.config.ha.clone() else {
            return;
        };
        self.keep_session(SessionPurpose::Status);
        let now = self.now;
        if let (Some(advertised), ServiceState::Unregistered { retry_at }) =
            (&ha.advertise, &self.instance.service)
        {
            if *retry_at <= now {
                self.instance.service = ServiceState::Registering;
                let body = serde_json::json!({
                    "Name": "consular",
                    "ID": instance_service_id(&ha.instance_id),
                    "Address": advertised.address,
                    "Port": advertised.port,
                    "Tags": [alloc::format!("registration-id={}", self.config.registration_id)],
                    "Meta": {"instance": ha.instance_id},
                    "Check": {
                        "HTTP": advertised.check_url,
                        "Interval": "10s",
                        "Timeout": "2s",
                        "DeregisterCriticalServiceAfter": "10m",
                    },
                });
                let body = serde_json::to_vec(&body).unwrap_or_default();
                let timeout = self.config.request_timeout;
                let awaiting = Awaiting::Instance(InstanceWait::Service);
                let path = String::from(REGISTER_PATH);
                self.send_urgent(awaiting, Method::Put, path, Some(body), timeout);
            }
        }
        let Some(session) = self.instance.session.id().map(String::from) else {
            return;
        };
        if self.instance.writing || now < self.instance.next_write_at {
            return;
        }
        let body = self.status_json(&ha.instance_id);
        if self.instance.written.as_ref() == Some(&body) {
            self.instance.next_write_at = now + STATUS_PERIOD;
            return;
        }
        self.instance.writing = true;
        let key = status_key(&self.config.registration_id, &ha.instance_id);
        let path = kv_lock_path(&key, LockVerb::Acquire, &session);
        let timeout = self.config.request_timeout;
        let awaiting = Awaiting::Instance(InstanceWait::Status { body: body.clone() });
        self.send_urgent(awaiting, Method::Put, path, Some(body), timeout);
    }

    fn status_json(&self, instance_id: &str) -> Vec<u8> {
        let started = self.config.ha.as_ref().and_then(|ha| ha.started_at_unix_ms);
        let wall = |at: Duration| started.map(|s| s.saturating_add(at.as_millis() as u64));
        let last_sync = self.sync.last().map(|report| {
            serde_json::json!({
                "at": wall(report.finished_at),
                "result": report.outcome.name(),
                "duration_ms": report.duration.as_millis() as u64,
                "writes": report.writes,
            })
        });
        let role = match self.role() {
            Role::Leader => "leader",
            Role::Standby => "standby",
        };
        let status = serde_json::json!({
            "instance": instance_id,
            "version": env!("CARGO_PKG_VERSION"),
            "role": role,
            "started_at": started,
            "last_sync": last_sync,
            "events": self.metrics.events(),
            "stream": self.stream.status().name(),
        });
        serde_json::to_vec(&status).unwrap_or_default()
    }

    /// The status session's answer: a session Consul ended took the key with it.
    pub(super) fn on_status_session_change(&mut self, change: SessionChange) {
        if change == SessionChange::Ended {
            self.instance.written = None;
            self.instance.next_write_at = self.now;
        }
        self.on_instance_timer();
    }

    pub(super) fn on_instance_answer(&mut self, wait: InstanceWait, answer: Answer) {
        let now = self.now;
        match wait {
            InstanceWait::Status { body } => {
                self.instance.writing = false;
                self.instance.next_write_at = now + STATUS_PERIOD;
                match answer.required(parse_lock_answer) {
                    Ok(true) => self.instance.written = Some(body),
                    Ok(false) => self.log(
                        Level::Warn,
                        String::from("the instance status key is held by another session"),
                    ),
                    Err(e) => self.log(
                        Level::Warn,
                        alloc::format!("cannot write the instance status: {e}"),
                    ),
                }
            }
            InstanceWait::Service => {
                if !matches!(self.instance.service, ServiceState::Registering) {
                    return;
                }
                if answer.body().is_some() {
                    self.instance.service = ServiceState::Registered;
                } else {
                    let message = alloc::format!(
                        "cannot register the consular service: {}",
                        answer.failure()
                    );
                    self.log(Level::Warn, message);
                    self.instance.service = ServiceState::Unregistered {
                        retry_at: now + SERVICE_RETRY,
                    };
                }
            }
            InstanceWait::ServiceGone => {}
        }
    }

    /// Shutting down: the service goes, and the session with the status key.
    pub(super) fn retire_instance(&mut self) {
        let Some(ha) = self.config.ha.clone() else {
            return;
        };
        let registered = matches!(
            core::mem::replace(&mut self.instance.service, ServiceState::Ended),
            ServiceState::Registered | ServiceState::Registering
        );
        if registered {
            let path = deregister_path(&instance_service_id(&ha.instance_id));
            let timeout = self.config.request_timeout;
            let awaiting = Awaiting::Instance(InstanceWait::ServiceGone);
            self.send_urgent(awaiting, Method::Put, path, None, timeout);
        }
        if let Some(session) = self.instance.session.end() {
            self.destroy_session(SessionPurpose::Status, &session);
        }
    }
}
