//! The JSON shapes of the simulated Marathon, per release line: app definitions and app
//! infos, tasks, health-check results, ports and IP addresses, and Marathon's timestamps
//! ([`iso8601`]). The field order is Marathon's own (`Formats.scala`, the RAML types of 1.10).
//!
//! Not here: which route returns them, or the error bodies (`super::routes`).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::model::{MarathonVersion, SimApp, SimHealth, SimTask};
use super::{SimMarathon, LISTED_STATES};
use crate::wire::J;

impl SimMarathon {
    pub(super) fn app_definition(&self, app: &SimApp) -> J {
        let v = self.version;
        let version = J::s(iso8601(app.version));
        let version_info = J::obj([
            ("lastScalingAt", version.clone()),
            ("lastConfigChangeAt", version.clone()),
        ]);
        let labels = J::Obj(
            app.labels
                .iter()
                .map(|(k, v)| (k.clone(), J::s(v.as_str())))
                .collect(),
        );
        let ports = ports_json(&app.service_ports);
        let port_definitions = |with_labels: bool| {
            J::Arr(
                app.service_ports
                    .iter()
                    .map(|p| {
                        let mut d =
                            J::obj([("port", J::Int(i64::from(*p))), ("protocol", J::s("tcp"))]);
                        if with_labels {
                            d.put("labels", J::Obj(Vec::new()));
                        }
                        d
                    })
                    .collect(),
            )
        };
        let upgrade = J::obj([
            ("minimumHealthCapacity", J::Float(1.0)),
            ("maximumOverCapacity", J::Float(1.0)),
        ]);
        let cmd = J::s(app.cmd.as_str());
        let instances = J::Int(i64::from(app.instances));
        if v == MarathonVersion::V1_10 {
            return J::obj([
                ("id", J::s(app.id.as_str())),
                ("backoffFactor", J::Float(1.15)),
                ("backoffSeconds", J::Int(1)),
                ("cmd", cmd),
                ("cpus", J::Float(0.1)),
                ("disk", J::Int(0)),
                ("executor", J::s("")),
                ("instances", instances),
                ("labels", labels),
                ("maxLaunchDelaySeconds", J::Int(300)),
                ("mem", J::Int(32)),
                ("gpus", J::Int(0)),
                ("networks", J::Arr(vec![J::obj([("mode", J::s("host"))])])),
                ("portDefinitions", port_definitions(false)),
                ("requirePorts", J::Bool(false)),
                ("upgradeStrategy", upgrade),
                ("version", version),
                ("versionInfo", version_info),
                ("killSelection", J::s("YOUNGEST_FIRST")),
                (
                    "unreachableStrategy",
                    J::obj([
                        ("inactiveAfterSeconds", J::Int(0)),
                        ("expungeAfterSeconds", J::Int(0)),
                    ]),
                ),
                ("role", J::s("*")),
            ]);
        }
        let mut o = J::obj([
            ("id", J::s(app.id.as_str())),
            ("cmd", cmd),
            ("args", J::Null),
            ("user", J::Null),
            ("env", J::Obj(Vec::new())),
            ("instances", instances),
            ("cpus", J::Float(0.1)),
            ("mem", J::Float(32.0)),
            ("disk", J::Float(0.0)),
        ]);
        if v >= MarathonVersion::V1_4 {
            o.put("gpus", J::Int(0));
        }
        o.put("executor", J::s(""));
        o.put("constraints", J::Arr(Vec::new()));
        o.put("uris", J::Arr(Vec::new()));
        if v >= MarathonVersion::V1_1 {
            o.put("fetch", J::Arr(Vec::new()));
        }
        o.put("storeUrls", J::Arr(Vec::new()));
        if v == MarathonVersion::V0_15 {
            o.put("ports", ports.clone());
            o.put("requirePorts", J::Bool(false));
        }
        o.put("backoffSeconds", J::Int(1));
        o.put("backoffFactor", J::Float(1.15));
        o.put("maxLaunchDelaySeconds", J::Int(3600));
        o.put("container", J::Null);
        o.put("healthChecks", J::Arr(Vec::new()));
        if v >= MarathonVersion::V1_1 {
            o.put("readinessChecks", J::Arr(Vec::new()));
        }
        o.put("dependencies", J::Arr(Vec::new()));
        o.put("upgradeStrategy", upgrade);
        o.put("labels", labels);
        o.put("acceptedResourceRoles", J::Null);
        o.put("ipAddress", J::Null);
        o.put("version", version);
        if v >= MarathonVersion::V1_1 {
            o.put("residency", J::Null);
        }
        if v >= MarathonVersion::V1_4 {
            o.put("secrets", J::Obj(Vec::new()));
            o.put("taskKillGracePeriodSeconds", J::Null);
            o.put(
                "unreachableStrategy",
                J::obj([
                    ("inactiveAfterSeconds", J::Int(300)),
                    ("expungeAfterSeconds", J::Int(600)),
                ]),
            );
            o.put("killSelection", J::s("YOUNGEST_FIRST"));
        }
        if v >= MarathonVersion::V1_1 {
            o.put("ports", ports);
            o.put("portDefinitions", port_definitions(true));
            o.put("requirePorts", J::Bool(false));
        }
        o.put("versionInfo", version_info);
        o
    }

    fn counts(app: &SimApp) -> [(&'static str, J); 4] {
        let count =
            |f: &dyn Fn(&SimTask) -> bool| J::u(app.tasks.iter().filter(|t| f(t)).count() as u64);
        [
            ("tasksStaged", count(&|t| t.started_at.is_none())),
            ("tasksRunning", count(&|t| t.state == "TASK_RUNNING")),
            (
                "tasksHealthy",
                count(&|t| t.health.as_ref().is_some_and(|h| h.alive)),
            ),
            (
                "tasksUnhealthy",
                count(&|t| t.health.as_ref().is_some_and(|h| !h.alive)),
            ),
        ]
    }

    /// App with counts and deployments, plus tasks / lastTaskFailure when asked.
    pub(super) fn app_info(&self, app: &SimApp, tasks: bool, failure: bool) -> J {
        let mut o = self.app_definition(app);
        for (k, v) in Self::counts(app) {
            o.put(k, v);
        }
        o.put("deployments", J::Arr(Vec::new()));
        if tasks {
            o.put(
                "tasks",
                J::Arr(app.tasks.iter().map(|t| self.task_json(app, t)).collect()),
            );
        }
        if failure {
            if let Some(f) = &app.last_task_failure {
                o.put(
                    "lastTaskFailure",
                    J::obj([
                        ("appId", J::s(app.id.as_str())),
                        ("host", J::s(f.host.as_str())),
                        ("message", J::s(f.message.as_str())),
                        ("state", J::s(f.state.as_str())),
                        ("taskId", J::s(f.task_id.as_str())),
                        ("timestamp", J::s(iso8601(f.timestamp))),
                        ("version", J::s(iso8601(f.version))),
                        ("slaveId", J::s(f.slave_id.as_str())),
                    ]),
                );
            }
        }
        o
    }

    pub(super) fn health_json(&self, task: &SimTask, h: &SimHealth) -> J {
        let ts = |t: Option<u64>| t.map_or(J::Null, |t| J::s(iso8601(t)));
        let mut o = J::obj([
            ("alive", J::Bool(h.alive)),
            (
                "consecutiveFailures",
                J::u(u64::from(h.consecutive_failures)),
            ),
        ]);
        match self.version {
            MarathonVersion::V0_15 | MarathonVersion::V1_1 => {
                o.put("firstSuccess", ts(h.first_success));
                o.put("lastFailure", ts(h.last_failure));
                o.put("lastSuccess", ts(h.last_success));
                o.put("taskId", J::s(task.id.as_str()));
            }
            MarathonVersion::V1_4 => {
                o.put("firstSuccess", ts(h.first_success));
                o.put("lastFailure", ts(h.last_failure));
                o.put("lastSuccess", ts(h.last_success));
                o.put(
                    "lastFailureCause",
                    J::opt_s(h.last_failure_cause.as_deref()),
                );
                o.put("instanceId", J::s(task.instance_id.as_str()));
            }
            MarathonVersion::V1_10 => {
                for (k, t) in [
                    ("firstSuccess", h.first_success),
                    ("lastFailure", h.last_failure),
                ] {
                    if t.is_some() {
                        o.put(k, ts(t));
                    }
                }
                if let Some(cause) = &h.last_failure_cause {
                    o.put("lastFailureCause", J::s(cause.as_str()));
                }
                if h.last_success.is_some() {
                    o.put("lastSuccess", ts(h.last_success));
                }
                o.put("instanceId", J::s(task.instance_id.as_str()));
            }
        }
        o
    }

    pub(super) fn task_json(&self, app: &SimApp, t: &SimTask) -> J {
        let health = || J::Arr(t.health.iter().map(|h| self.health_json(t, h)).collect());
        let started = t.started_at.map_or(J::Null, |s| J::s(iso8601(s)));
        let listed_state = if LISTED_STATES.contains(&t.state.as_str()) {
            t.state.as_str()
        } else {
            "TASK_STAGING"
        };
        let mut o;
        match self.version {
            MarathonVersion::V0_15 | MarathonVersion::V1_1 => {
                o = J::obj([
                    ("id", J::s(t.id.as_str())),
                    ("host", J::s(t.host.as_str())),
                    ("ipAddresses", ip_addresses_json(&t.ip_addresses)),
                    ("ports", ports_json(&t.ports)),
                    ("startedAt", started),
                    ("stagedAt", J::s(iso8601(t.staged_at))),
                    ("version", J::s(iso8601(t.version))),
                    ("slaveId", J::s(t.slave_id.as_str())),
                    ("appId", J::s(app.id.as_str())),
                ]);
            }
            MarathonVersion::V1_4 => {
                o = J::obj([
                    ("id", J::s(t.id.as_str())),
                    ("slaveId", J::s(t.slave_id.as_str())),
                    ("host", J::s(t.host.as_str())),
                    ("state", J::s(listed_state)),
                    ("startedAt", started),
                    ("stagedAt", J::s(iso8601(t.staged_at))),
                    ("ports", ports_json(&t.ports)),
                    ("version", J::s(iso8601(t.version))),
                ]);
                if !t.ip_addresses.is_empty() {
                    o.put("ipAddresses", ip_addresses_json(&t.ip_addresses));
                }
                o.put("appId", J::s(app.id.as_str()));
            }
            MarathonVersion::V1_10 => {
                o = J::obj([
                    ("appId", J::s(app.id.as_str())),
                    ("healthCheckResults", health()),
                    ("id", J::s(t.id.as_str())),
                    ("host", J::s(t.host.as_str())),
                    ("state", J::s(listed_state)),
                    ("ipAddresses", ip_addresses_json(&t.ip_addresses)),
                    ("ports", ports_json(&t.ports)),
                    ("servicePorts", ports_json(&app.service_ports)),
                    ("stagedAt", J::s(iso8601(t.staged_at))),
                ]);
                if t.started_at.is_some() {
                    o.put("startedAt", started);
                }
                o.put("version", J::s(iso8601(t.version)));
                o.put("slaveId", J::s(t.slave_id.as_str()));
                o.put("localVolumes", J::Arr(Vec::new()));
                o.put("role", J::s("*"));
                return o;
            }
        }
        if !app.service_ports.is_empty() {
            o.put("servicePorts", ports_json(&app.service_ports));
        }
        if t.health.is_some() {
            o.put("healthCheckResults", health());
        }
        o
    }
}

pub(super) fn ports_json(ports: &[u16]) -> J {
    J::Arr(ports.iter().map(|p| J::Int(i64::from(*p))).collect())
}

pub(super) fn ip_addresses_json(addresses: &[String]) -> J {
    J::Arr(
        addresses
            .iter()
            .map(|a| {
                let protocol = if a.contains(':') { "IPv6" } else { "IPv4" };
                J::obj([
                    ("ipAddress", J::s(a.as_str())),
                    ("protocol", J::s(protocol)),
                ])
            })
            .collect(),
    )
}

/// `millis` since the Unix epoch as ISO-8601 UTC with milliseconds (`2026-01-01T00:00:00.000Z`).
pub fn iso8601(millis: u64) -> String {
    let secs = millis / 1000;
    let ms = millis % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marathon::DEFAULT_TIME_MS;

    #[test]
    fn timestamps_are_iso_with_millis() {
        assert_eq!(iso8601(DEFAULT_TIME_MS), "2026-01-01T00:00:00.000Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_024), "1970-01-01T00:00:01.024Z");
        assert_eq!(
            iso8601(951_782_400_000 + 86_399_999),
            "2000-02-29T23:59:59.999Z"
        );
        assert!(iso8601(u64::MAX).ends_with('Z'));
    }
}
