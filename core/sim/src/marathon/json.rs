//! The JSON shapes of the simulated Marathon, per release line: app definitions and app
//! infos, tasks, health-check results, ports and IP addresses, and Marathon's timestamps
//! ([`iso8601`]). The field order is Marathon's own (`Formats.scala`, the RAML types of 1.10).
//!
//! Not here: which route returns them, or the error bodies (`super::routes`).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use alloc::collections::BTreeMap;

use super::model::{
    MarathonVersion, SimApp, SimHealth, SimHealthCheck, SimNetwork, SimPort, SimTask,
};
use super::{aggregate_health, SimMarathon, LISTED_STATES};
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
        let service_ports = service_ports(app);
        let ports = ports_json(&service_ports);
        let upgrade = J::obj([
            ("minimumHealthCapacity", J::Float(1.0)),
            ("maximumOverCapacity", J::Float(1.0)),
        ]);
        let cmd = J::s(app.cmd.as_str());
        let instances = J::Int(i64::from(app.instances));
        if v == MarathonVersion::V1_10 {
            let mut o = J::obj([
                ("id", J::s(app.id.as_str())),
                ("backoffFactor", J::Float(1.15)),
                ("backoffSeconds", J::Int(1)),
                ("cmd", cmd),
            ]);
            if app.network != SimNetwork::Host {
                o.put("container", self.container_json(app));
            }
            o.put("cpus", J::Float(0.1));
            o.put("disk", J::Int(0));
            o.put("executor", J::s(""));
            if !app.health_checks.is_empty() {
                o.put("healthChecks", self.health_checks_json(app));
            }
            o.put("instances", instances);
            o.put("labels", labels);
            o.put("maxLaunchDelaySeconds", J::Int(300));
            o.put("mem", J::Int(32));
            o.put("gpus", J::Int(0));
            let network = match &app.network {
                SimNetwork::Host => J::obj([("mode", J::s("host"))]),
                SimNetwork::Bridge => J::obj([("mode", J::s("container/bridge"))]),
                SimNetwork::Container(name) => {
                    J::obj([("mode", J::s("container")), ("name", J::s(name.as_str()))])
                }
                SimNetwork::IpPerTask => J::obj([("mode", J::s("container"))]),
            };
            o.put("networks", J::Arr(vec![network]));
            if app.network == SimNetwork::Host {
                o.put("portDefinitions", self.port_definitions_json(app));
            }
            o.put("requirePorts", J::Bool(false));
            o.put("upgradeStrategy", upgrade);
            o.put("version", version);
            o.put("versionInfo", version_info);
            o.put("killSelection", J::s("YOUNGEST_FIRST"));
            o.put(
                "unreachableStrategy",
                J::obj([
                    ("inactiveAfterSeconds", J::Int(0)),
                    ("expungeAfterSeconds", J::Int(0)),
                ]),
            );
            o.put("role", J::s("*"));
            return o;
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
        let container = match app.network {
            SimNetwork::Bridge | SimNetwork::Container(_) => self.container_json(app),
            SimNetwork::Host | SimNetwork::IpPerTask => J::Null,
        };
        o.put("container", container);
        o.put("healthChecks", self.health_checks_json(app));
        if v >= MarathonVersion::V1_1 {
            o.put("readinessChecks", J::Arr(Vec::new()));
        }
        o.put("dependencies", J::Arr(Vec::new()));
        o.put("upgradeStrategy", upgrade);
        o.put("labels", labels);
        o.put("acceptedResourceRoles", J::Null);
        let ip_address = self.ip_address_json(app);
        let has_ip_address = ip_address != J::Null;
        o.put("ipAddress", ip_address);
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
        // "top-level ports fields are incompatible with IP/CT" (1.1–1.4's writer).
        if v >= MarathonVersion::V1_1 && !has_ip_address {
            o.put("ports", ports);
            o.put("portDefinitions", self.port_definitions_json(app));
            o.put("requirePorts", J::Bool(false));
        }
        o.put("versionInfo", version_info);
        o
    }

    /// `portDefinitions`: the app's ports in host networking (none otherwise: their ports are
    /// port mappings). Empty labels are left out on 1.10, `{}` before.
    fn port_definitions_json(&self, app: &SimApp) -> J {
        if app.network != SimNetwork::Host {
            return J::Arr(Vec::new());
        }
        let raml = self.version == MarathonVersion::V1_10;
        J::Arr(
            app_ports(app)
                .map(|(spec, service_port)| {
                    let mut d = J::obj([
                        ("port", J::Int(i64::from(service_port))),
                        ("protocol", J::s("tcp")),
                    ]);
                    if let Some(name) = &spec.name {
                        d.put("name", J::s(name.as_str()));
                    }
                    if !(raml && spec.labels.is_empty()) {
                        d.put("labels", labels_json(&spec.labels));
                    }
                    d
                })
                .collect(),
        )
    }

    /// Port mappings: `hostPort` 0 (any) on the bridge, none on a container network.
    fn port_mappings_json(&self, app: &SimApp) -> J {
        let raml = self.version == MarathonVersion::V1_10;
        J::Arr(
            app_ports(app)
                .map(|(spec, service_port)| {
                    let mut m = J::obj([(
                        "containerPort",
                        J::Int(i64::from(spec.container_port.unwrap_or(0))),
                    )]);
                    if app.network == SimNetwork::Bridge {
                        m.put("hostPort", J::Int(0));
                    }
                    m.put("servicePort", J::Int(i64::from(service_port)));
                    m.put("protocol", J::s("tcp"));
                    if let Some(name) = &spec.name {
                        m.put("name", J::s(name.as_str()));
                    }
                    if !(raml && spec.labels.is_empty()) {
                        m.put("labels", labels_json(&spec.labels));
                    }
                    m
                })
                .collect(),
        )
    }

    /// The app's `container`: Docker (bridge and named container networks) or, for IP-per-task
    /// from 1.5, the Mesos containerizer. Port mappings live in `docker` before 1.5.
    fn container_json(&self, app: &SimApp) -> J {
        if self.version == MarathonVersion::V1_10 {
            let mut c = if app.network == SimNetwork::IpPerTask {
                J::obj([("type", J::s("MESOS"))])
            } else {
                J::obj([
                    ("type", J::s("DOCKER")),
                    (
                        "docker",
                        J::obj([
                            ("forcePullImage", J::Bool(false)),
                            ("image", J::s("busybox")),
                            ("parameters", J::Arr(Vec::new())),
                            ("privileged", J::Bool(false)),
                        ]),
                    ),
                ])
            };
            c.put("volumes", J::Arr(Vec::new()));
            c.put("portMappings", self.port_mappings_json(app));
            return c;
        }
        let network = if app.network == SimNetwork::Bridge {
            "BRIDGE"
        } else {
            "USER"
        };
        J::obj([
            ("type", J::s("DOCKER")),
            ("volumes", J::Arr(Vec::new())),
            (
                "docker",
                J::obj([
                    ("image", J::s("busybox")),
                    ("network", J::s(network)),
                    ("portMappings", self.port_mappings_json(app)),
                    ("privileged", J::Bool(false)),
                    ("parameters", J::Arr(Vec::new())),
                    ("forcePullImage", J::Bool(false)),
                ]),
            ),
        ])
    }

    /// `ipAddress` before 1.5: IP-per-task (its ports as discovery ports, which have no labels)
    /// and Docker `USER` networking (naming the network); `null` otherwise and from 1.5.
    fn ip_address_json(&self, app: &SimApp) -> J {
        if self.version == MarathonVersion::V1_10 {
            return J::Null;
        }
        let (network_name, discovery) = match &app.network {
            SimNetwork::IpPerTask => (
                J::Null,
                app_ports(app)
                    .enumerate()
                    .map(|(i, (spec, _))| {
                        let name = spec.name.clone().unwrap_or_else(|| format!("port{i}"));
                        J::obj([
                            (
                                "number",
                                J::Int(i64::from(spec.container_port.unwrap_or(0))),
                            ),
                            ("name", J::s(name)),
                            ("protocol", J::s("tcp")),
                        ])
                    })
                    .collect(),
            ),
            SimNetwork::Container(name) => (J::s(name.as_str()), Vec::new()),
            SimNetwork::Host | SimNetwork::Bridge => return J::Null,
        };
        J::obj([
            ("groups", J::Arr(Vec::new())),
            ("labels", J::Obj(Vec::new())),
            ("discovery", J::obj([("ports", J::Arr(discovery))])),
            ("networkName", network_name),
        ])
    }

    /// `healthChecks`, with the field order of each line's writer: 0.15/1.1's one `HealthCheck`
    /// format, 1.4+'s per-kind formats (Marathon HTTP/TCP, Mesos command/HTTP/TCP).
    fn health_checks_json(&self, app: &SimApp) -> J {
        J::Arr(
            app.health_checks
                .iter()
                .map(|c| self.health_check_json(c))
                .collect(),
        )
    }

    fn health_check_json(&self, c: &SimHealthCheck) -> J {
        let protocol = c.protocol.as_str();
        let command = protocol == "COMMAND";
        // Marathon adds `portIndex: 0` to a check that names no port (but a command).
        let port_index = c
            .port_index
            .or((c.port.is_none() && !command).then_some(0))
            .map(|i| J::u(i as u64));
        let port = c.port.map(|p| J::Int(i64::from(p)));
        let path = c.path.as_deref().map(J::s);
        let command_json = c
            .command
            .as_deref()
            .filter(|_| command)
            .map(|value| J::obj([("value", J::s(value))]));
        let mut o = J::Obj(Vec::new());
        let put = |o: &mut J, key: &str, value: Option<J>| {
            if let Some(value) = value {
                o.put(key, value);
            }
        };
        // Every writer puts these four together, in this order.
        let timings = |o: &mut J| {
            for (key, seconds) in [
                ("gracePeriodSeconds", c.grace_period_seconds),
                ("intervalSeconds", c.interval_seconds),
                ("timeoutSeconds", c.timeout_seconds),
                ("maxConsecutiveFailures", c.max_consecutive_failures),
            ] {
                o.put(key, J::u(seconds.into()));
            }
        };
        if self.version <= MarathonVersion::V1_1 {
            put(&mut o, "path", path);
            put(&mut o, "protocol", Some(J::s(protocol)));
            put(&mut o, "portIndex", port_index);
            put(&mut o, "command", command_json);
            timings(&mut o);
            put(&mut o, "ignoreHttp1xx", Some(J::Bool(false)));
            put(&mut o, "port", port);
            return o;
        }
        timings(&mut o);
        let delay = Some(J::Int(15));
        match protocol {
            "COMMAND" => {
                put(&mut o, "delaySeconds", delay);
                put(&mut o, "command", command_json);
                put(&mut o, "protocol", Some(J::s(protocol)));
            }
            "TCP" | "MESOS_TCP" => {
                put(&mut o, "portIndex", port_index);
                put(&mut o, "port", port);
                if protocol == "MESOS_TCP" {
                    put(&mut o, "delaySeconds", delay);
                }
                put(&mut o, "protocol", Some(J::s(protocol)));
            }
            _ => {
                put(&mut o, "portIndex", port_index);
                put(&mut o, "port", port);
                put(&mut o, "path", path);
                put(&mut o, "protocol", Some(J::s(protocol)));
                if protocol.starts_with("MESOS_") {
                    put(&mut o, "delaySeconds", delay);
                } else {
                    put(&mut o, "ignoreHttp1xx", Some(J::Bool(false)));
                }
            }
        }
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
                count(&|t| aggregate_health(t, app.health_checks.len()) == Some(true)),
            ),
            (
                "tasksUnhealthy",
                count(&|t| aggregate_health(t, app.health_checks.len()) == Some(false)),
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
        let health = || J::Arr(t.health.values().map(|h| self.health_json(t, h)).collect());
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
                    ("servicePorts", ports_json(&service_ports(app))),
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
        let service_ports = service_ports(app);
        if !service_ports.is_empty() {
            o.put("servicePorts", ports_json(&service_ports));
        }
        if !t.health.is_empty() {
            o.put("healthCheckResults", health());
        }
        o
    }
}

/// The app's ports: each one's spec (a default one where none was set) and service port (`0`
/// where none was set), as many as the longer of the two lists.
fn app_ports(app: &SimApp) -> impl Iterator<Item = (SimPort, u16)> + '_ {
    let count = app.port_specs.len().max(app.service_ports.len());
    (0..count).map(|i| {
        (
            app.port_specs.get(i).cloned().unwrap_or_default(),
            app.service_ports.get(i).copied().unwrap_or(0),
        )
    })
}

/// The app's service ports (`ports`, tasks' `servicePorts`): none for IP-per-task.
fn service_ports(app: &SimApp) -> Vec<u16> {
    if app.network == SimNetwork::IpPerTask {
        return Vec::new();
    }
    app_ports(app).map(|(_, port)| port).collect()
}

/// Labels as a JSON object; a repeated key keeps its last value, keys in order.
fn labels_json(labels: &[(String, String)]) -> J {
    let map: BTreeMap<&str, &str> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    J::Obj(map.into_iter().map(|(k, v)| (k.into(), J::s(v))).collect())
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
