//! What Consul services one Marathon task becomes. With no labels and no flags: consular 1.3.0's
//! one service per task, named after the app, on its lowest host port, with the task id as its
//! id. On top, marathon-consul's label scheme, so its users keep their app definitions:
//!
//! - an app label `consul` names the service (empty or `true`: the default name);
//! - app labels whose value is `tag` become tags of all the app's services;
//! - when any port carries a `consul` label, each labelled port becomes a service of its own
//!   (named by the label, tagged by the port's `tag` labels too), with id `<task id>:<index>`;
//! - the registrations of an app that uses these labels (or of any app, with `--require-label`)
//!   carry the task's Marathon identity in their meta, plus the app's `consul-meta-<key>` labels,
//!   within Consul's limits; an app that uses none keeps consular 1.3.0's exact body, so a
//!   drop-in user sees no change;
//! - an app on IP-per-task or a container network registers the task's own address with the
//!   container port (`AddressMode`);
//! - an app with Marathon health checks gets Consul checks (`HealthChecks`): one TTL check per
//!   service mirroring Marathon's verdict, or the agent running Marathon's HTTP and TCP checks
//!   itself; and with `RegisterWhen::Healthy` its tasks register only while Marathon finds them
//!   healthy.
//!
//! Pure functions: which tasks run, and what Consul holds, is decided elsewhere ([`super::desired`],
//! [`super::diff`]).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::{AddressMode, HealthChecks, RegisterWhen};
use crate::consul::{
    port_service_id, service_name, CheckProbe, CheckState, CheckStatus, Registration, ServiceCheck,
    APP_ID_TAG_PREFIX, CHECK_ID_PREFIX, REG_ID_TAG_PREFIX,
};
use crate::marathon::{AppOf, HealthCheckSpec, TaskHealth};

/// The label that names a service (app or port) and, with `--require-label consul`, selects it.
pub const NAME_LABEL: &str = "consul";
/// A label with this value makes its key a tag.
pub const TAG_VALUE: &str = "tag";
/// App labels with this prefix become service meta (the rest of the key).
pub const META_LABEL_PREFIX: &str = "consul-meta-";
/// Consul's limits on service meta (1.8: `structs.ValidateMetadata`).
const MAX_META_PAIRS: usize = 64;
const MAX_META_KEY_LEN: usize = 128;
const MAX_META_VALUE_LEN: usize = 512;
/// Consul reserves meta keys with this prefix.
const RESERVED_META_PREFIX: &str = "consul-";
/// Longest service name or tag taken from a label.
const MAX_LABEL_NAME_LEN: usize = 255;

/// How an app's services are chosen, set by flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRules {
    /// Written into the `consular-reg-id=<id>` tag.
    pub registration_id: String,
    /// Only apps carrying this label are registered (`--require-label`).
    pub require_label: Option<String>,
    /// Which address a service registers (`--address`).
    pub address: AddressMode,
    /// Which checks services carry (`--health-checks`).
    pub health_checks: HealthChecks,
    /// When tasks of apps with health checks register (`--register-when-healthy`).
    pub register_when: RegisterWhen,
}

impl ServiceRules {
    /// consular 1.3.0's rules for `registration_id`: every app, the task's host.
    pub fn for_registration_id(registration_id: &str) -> Self {
        ServiceRules {
            registration_id: String::from(registration_id),
            require_label: None,
            address: AddressMode::Auto,
            health_checks: HealthChecks::None,
            register_when: RegisterWhen::Running,
        }
    }
}

/// What a task's health means for its registration now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registering {
    /// Register it (running, and healthy if that is asked for).
    Now,
    /// Leave it as it is until Marathon has a verdict.
    AwaitHealth,
    /// Deregister it: a health check fails and only healthy tasks are registered.
    Withdraw,
}

/// One of Marathon's health checks that a Consul agent can run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProbeShape {
    /// The check's place among the app's health checks, from 1.
    number: usize,
    protocol: &'static str,
    kind: ProbeKind,
    port: PortRef,
    interval_seconds: u32,
    timeout_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ProbeKind {
    Http { path: String, tls: bool },
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRef {
    Index(usize),
    Fixed(u16),
}

/// Whether an app's tasks are registered at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Registered.
    Selected,
    /// Lacks the label `--require-label` asks for: its services are removed.
    NotSelected,
}

/// One service each task of the app becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceShape {
    name: String,
    tags: Vec<String>,
    /// `None`: the task's lowest port and the task id as service id (consular 1.3.0).
    port: Option<PortShape>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PortShape {
    index: usize,
    name: Option<String>,
    container_port: Option<u16>,
}

/// Whether registrations carry the task's Marathon identity in their meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdentityMeta {
    /// consular 1.3.0's body: no meta at all.
    Without,
    /// `marathon-app-id`, `marathon-task-id`, `marathon-app-version`, port index and name.
    With,
}

/// The services the tasks of one app become, worked out once per app version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppServices {
    app_id: String,
    version: Option<String>,
    selection: Selection,
    identity: IdentityMeta,
    shapes: Vec<ServiceShape>,
    /// Meta from `consul-meta-` labels that fits Consul's limits.
    label_meta: BTreeMap<String, String>,
    task_addresses: bool,
    /// The container port of each port, for services on a task's own address.
    lowest_container_port: Option<u16>,
    container_ports: Vec<Option<u16>>,
    /// How many health checks Marathon runs on each task.
    marathon_checks: usize,
    /// Those an agent can run (`HealthChecks::Agent`).
    probes: Vec<ProbeShape>,
    /// What was left out and why, for one log line per app version.
    notes: Vec<String>,
}

/// What of a task its registrations need.
#[derive(Debug, Clone, Copy)]
pub struct TaskFacts<'a> {
    /// The task id.
    pub id: &'a str,
    /// The task's host (its agent).
    pub host: &'a str,
    /// Host ports, in port order.
    pub ports: &'a [u16],
    /// The task's own addresses, when it has any.
    pub addresses: &'a [String],
    /// What Marathon's health checks say of it.
    pub health: &'a TaskHealth,
}

impl AppServices {
    /// The services of `app` under `rules`.
    pub fn of<T>(app: &AppOf<T>, rules: &ServiceRules) -> Self {
        let mut notes = Vec::new();
        let selection = match &rules.require_label {
            Some(label) if !app.labels.contains_key(label) => Selection::NotSelected,
            _ => Selection::Selected,
        };
        let default_name = service_name(&app.id);
        let app_name = match app.labels.get(NAME_LABEL).map(String::as_str) {
            None | Some("") | Some("true") => default_name.clone(),
            Some(name) if is_label_name(name) => String::from(name),
            Some(_) => {
                notes.push(alloc::format!(
                    "its {NAME_LABEL} label is not a service name (letters, digits, '-', '_', '.'); using {default_name}"
                ));
                default_name.clone()
            }
        };
        let app_tags = tags_of(&app.labels, &mut notes);
        let ports = app.port_specs();
        let labelled = ports.iter().any(|p| p.labels.contains_key(NAME_LABEL));
        let shapes = if labelled {
            ports
                .iter()
                .enumerate()
                .filter_map(|(index, spec)| {
                    let label = spec.labels.get(NAME_LABEL)?;
                    let name = match label.as_str() {
                        "" | "true" => app_name.clone(),
                        name if is_label_name(name) => String::from(name),
                        _ => {
                            notes.push(alloc::format!(
                                "the {NAME_LABEL} label of port {index} is not a service name; using {app_name}"
                            ));
                            app_name.clone()
                        }
                    };
                    let mut tags = app_tags.clone();
                    tags.extend(tags_of(&spec.labels, &mut notes));
                    Some(ServiceShape {
                        name,
                        tags,
                        port: Some(PortShape {
                            index,
                            name: spec.name.clone(),
                            container_port: spec
                                .container_port
                                .and_then(|p| u16::try_from(p).ok()),
                        }),
                    })
                })
                .collect()
        } else {
            alloc::vec![ServiceShape {
                name: app_name,
                tags: app_tags,
                port: None,
            }]
        };
        let container_ports: Vec<Option<u16>> = ports
            .iter()
            .map(|p| p.container_port.and_then(|p| u16::try_from(p).ok()))
            .collect();
        let lowest_container_port = container_ports.iter().flatten().copied().min();
        let probes = match rules.health_checks {
            HealthChecks::Agent => probes_of(&app.health_checks, &mut notes),
            HealthChecks::None | HealthChecks::Mirror => Vec::new(),
        };
        let uses_labels = labelled
            || app.labels.iter().any(|(key, value)| {
                key == NAME_LABEL || value == TAG_VALUE || key.starts_with(META_LABEL_PREFIX)
            });
        let identity = if uses_labels || rules.require_label.is_some() {
            IdentityMeta::With
        } else {
            IdentityMeta::Without
        };
        AppServices {
            app_id: app.id.clone(),
            version: app.version.clone(),
            selection,
            identity,
            shapes,
            label_meta: label_meta(&app.labels, &mut notes),
            task_addresses: app.has_task_addresses(),
            lowest_container_port,
            container_ports,
            marathon_checks: app.health_checks.len(),
            probes,
            notes,
        }
    }

    /// The services of an app known only by its id (an event before its app was read): consular
    /// 1.3.0's one service per task.
    pub fn default_for(app_id: &str, version: Option<&str>) -> Self {
        AppServices {
            app_id: String::from(app_id),
            version: version.map(String::from),
            selection: Selection::Selected,
            identity: IdentityMeta::Without,
            shapes: alloc::vec![ServiceShape {
                name: service_name(app_id),
                tags: Vec::new(),
                port: None,
            }],
            label_meta: BTreeMap::new(),
            task_addresses: false,
            lowest_container_port: None,
            container_ports: Vec::new(),
            marathon_checks: 0,
            probes: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// What `health` means for a task of this app under `rules`.
    pub fn registering(&self, rules: &ServiceRules, health: &TaskHealth) -> Registering {
        if rules.register_when == RegisterWhen::Running || self.marathon_checks == 0 {
            return Registering::Now;
        }
        match health {
            TaskHealth::Healthy => Registering::Now,
            TaskHealth::Unreported | TaskHealth::Pending => Registering::AwaitHealth,
            TaskHealth::Unhealthy(_) => Registering::Withdraw,
        }
    }

    /// True if Marathon health-checks this app's tasks.
    pub fn has_health_checks(&self) -> bool {
        self.marathon_checks > 0
    }

    /// The verdict of a task's health `results` under this app's checks.
    pub fn health_of(&self, results: &[crate::marathon::HealthResult]) -> TaskHealth {
        TaskHealth::of(self.marathon_checks, results)
    }

    /// Whether the app's tasks are registered.
    pub fn selection(&self) -> Selection {
        self.selection
    }

    /// The app these services are of.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The app version these services were worked out for.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// What was left out of these services and why (labels that break Consul's rules).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The registrations of one task, and the agent each goes to (the task's host).
    pub fn registrations(&self, rules: &ServiceRules, task: TaskFacts<'_>) -> Vec<Registration> {
        if self.selection == Selection::NotSelected
            || self.registering(rules, task.health) != Registering::Now
        {
            return Vec::new();
        }
        let own_address = task.addresses.first().filter(|_| match rules.address {
            AddressMode::Host => false,
            AddressMode::TaskIp => true,
            AddressMode::Auto => self.task_addresses && task.ports.is_empty(),
        });
        self.shapes
            .iter()
            .map(|shape| {
                let (id, port) = match (&shape.port, own_address) {
                    (None, None) => (String::from(task.id), task.ports.iter().copied().min()),
                    (None, Some(_)) => (
                        String::from(task.id),
                        self.lowest_container_port
                            .or_else(|| task.ports.iter().copied().min()),
                    ),
                    (Some(p), None) => (
                        port_service_id(task.id, p.index),
                        task.ports.get(p.index).copied(),
                    ),
                    (Some(p), Some(_)) => (
                        port_service_id(task.id, p.index),
                        p.container_port
                            .or_else(|| task.ports.get(p.index).copied()),
                    ),
                };
                let mut tags = alloc::vec![
                    alloc::format!("{REG_ID_TAG_PREFIX}{}", rules.registration_id),
                    alloc::format!("{APP_ID_TAG_PREFIX}{}", self.app_id),
                ];
                tags.extend(shape.tags.iter().cloned());
                let mut meta = self.label_meta.clone();
                if self.identity == IdentityMeta::With {
                    meta.insert("marathon-app-id".into(), self.app_id.clone());
                    meta.insert("marathon-task-id".into(), String::from(task.id));
                    if let Some(version) = &self.version {
                        meta.insert("marathon-app-version".into(), version.clone());
                    }
                    if let Some(p) = &shape.port {
                        meta.insert("marathon-port-index".into(), alloc::format!("{}", p.index));
                        if let Some(name) = &p.name {
                            meta.insert("marathon-port-name".into(), name.clone());
                        }
                    }
                }
                let address = String::from(own_address.map_or(task.host, String::as_str));
                let checks = self.checks(rules, &id, &address, own_address.is_some(), task);
                Registration {
                    name: shape.name.clone(),
                    id,
                    address,
                    tags,
                    port,
                    meta,
                    checks,
                }
            })
            .collect()
    }

    /// The checks of service `service_id` of `task`, registered at `address` (the task's own
    /// when `own_address`).
    fn checks(
        &self,
        rules: &ServiceRules,
        service_id: &str,
        address: &str,
        own_address: bool,
        task: TaskFacts<'_>,
    ) -> Vec<ServiceCheck> {
        if self.marathon_checks == 0 {
            return Vec::new();
        }
        let n = self.marathon_checks;
        match rules.health_checks {
            HealthChecks::None => Vec::new(),
            HealthChecks::Mirror => {
                let state = match task.health {
                    TaskHealth::Unreported | TaskHealth::Pending => None,
                    TaskHealth::Healthy => Some(CheckState {
                        status: CheckStatus::Passing,
                        output: alloc::format!("all {n} Marathon health checks pass"),
                    }),
                    TaskHealth::Unhealthy(why) => Some(CheckState {
                        status: CheckStatus::Critical,
                        output: why.clone(),
                    }),
                };
                alloc::vec![ServiceCheck {
                    id: alloc::format!("{CHECK_ID_PREFIX}{service_id}"),
                    name: String::from("Marathon health"),
                    notes: alloc::format!(
                        "Mirrors the {n} Marathon health checks of task {}",
                        task.id
                    ),
                    probe: CheckProbe::Mirror,
                    interval_seconds: 0,
                    timeout_seconds: 0,
                    state,
                }]
            }
            HealthChecks::Agent => {
                // A literal IPv6 address goes in brackets in a URL and a `host:port`.
                let host = if address.contains(':') {
                    alloc::format!("[{address}]")
                } else {
                    String::from(address)
                };
                self.probes
                    .iter()
                    .filter_map(|probe| {
                        let port = match probe.port {
                            PortRef::Fixed(port) => port,
                            PortRef::Index(i) if own_address => self
                                .container_ports
                                .get(i)
                                .copied()
                                .flatten()
                                .or_else(|| task.ports.get(i).copied())?,
                            PortRef::Index(i) => task.ports.get(i).copied()?,
                        };
                        let (probe_kind, what) = match &probe.kind {
                            ProbeKind::Http { path, tls } => {
                                let scheme = if *tls { "https" } else { "http" };
                                let url = alloc::format!("{scheme}://{host}:{port}{path}");
                                let what = alloc::format!("GET {url}");
                                let kind = CheckProbe::Http {
                                    url,
                                    skip_verify: *tls,
                                };
                                (kind, what)
                            }
                            ProbeKind::Tcp => {
                                let address = alloc::format!("{host}:{port}");
                                let what = alloc::format!("connect to {address}");
                                (CheckProbe::Tcp { address }, what)
                            }
                        };
                        Some(ServiceCheck {
                            id: alloc::format!("{CHECK_ID_PREFIX}{service_id}:{}", probe.number),
                            name: alloc::format!(
                                "Marathon health check {} ({})",
                                probe.number,
                                probe.protocol
                            ),
                            notes: alloc::format!(
                                "{what} every {} s, timeout {} s",
                                probe.interval_seconds,
                                probe.timeout_seconds
                            ),
                            probe: probe_kind,
                            interval_seconds: probe.interval_seconds,
                            timeout_seconds: probe.timeout_seconds,
                            state: None,
                        })
                    })
                    .collect()
            }
        }
    }
}

/// Longest HTTP path of a health check taken into a Consul check.
const MAX_CHECK_PATH_LEN: usize = 1024;

/// The health checks an agent can run, in their order; the rest are noted.
fn probes_of(checks: &[HealthCheckSpec], notes: &mut Vec<String>) -> Vec<ProbeShape> {
    checks
        .iter()
        .enumerate()
        .filter_map(|(i, check)| {
            let number = i + 1;
            let (protocol, kind) = match check.protocol.as_str() {
                "HTTP" => ("HTTP", ProbeKind::Http { path: String::new(), tls: false }),
                "MESOS_HTTP" => ("MESOS_HTTP", ProbeKind::Http { path: String::new(), tls: false }),
                "HTTPS" => ("HTTPS", ProbeKind::Http { path: String::new(), tls: true }),
                "MESOS_HTTPS" => ("MESOS_HTTPS", ProbeKind::Http { path: String::new(), tls: true }),
                "TCP" => ("TCP", ProbeKind::Tcp),
                "MESOS_TCP" => ("MESOS_TCP", ProbeKind::Tcp),
                other => {
                    notes.push(alloc::format!(
                        "its health check {number} ({}) cannot be run by a Consul agent; only HTTP and TCP checks are",
                        crate::marathon::ids::Shown(other)
                    ));
                    return None;
                }
            };
            let kind = match kind {
                ProbeKind::Http { tls, .. } => {
                    let path = check.path.as_deref().unwrap_or("/");
                    let sound = path.starts_with('/')
                        && path.len() <= MAX_CHECK_PATH_LEN
                        && path.bytes().all(|b| b.is_ascii_graphic());
                    if !sound {
                        notes.push(alloc::format!(
                            "its health check {number} has a path that is not a URL path; it is left out"
                        ));
                        return None;
                    }
                    ProbeKind::Http { path: String::from(path), tls }
                }
                ProbeKind::Tcp => ProbeKind::Tcp,
            };
            let port = match (check.port, check.port_index) {
                (Some(port), _) => match u16::try_from(port) {
                    Ok(port) if port != 0 => PortRef::Fixed(port),
                    _ => {
                        notes.push(alloc::format!(
                            "its health check {number} has port {port}; it is left out"
                        ));
                        return None;
                    }
                },
                (None, index) => PortRef::Index(index.map_or(0, |i| i as usize)),
            };
            Some(ProbeShape {
                number,
                protocol,
                kind,
                port,
                interval_seconds: check.interval_seconds.max(1),
                timeout_seconds: check.timeout_seconds.max(1),
            })
        })
        .collect()
}

/// A name or tag from a label: printable, no spaces, short enough for DNS tooling.
fn is_label_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_LABEL_NAME_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The keys of `labels` whose value is `tag`.
fn tags_of(labels: &BTreeMap<String, String>, notes: &mut Vec<String>) -> Vec<String> {
    labels
        .iter()
        .filter(|(_, value)| value.as_str() == TAG_VALUE)
        .filter_map(|(key, _)| {
            let printable = !key.is_empty()
                && key.len() <= MAX_LABEL_NAME_LEN
                && key.bytes().all(|b| b.is_ascii_graphic());
            if !printable {
                notes.push(String::from(
                    "a tag label that is not printable ASCII was left out",
                ));
            }
            printable.then(|| key.clone())
        })
        .collect()
}

/// `consul-meta-<key>` labels as meta, within Consul's limits; the rest is noted.
fn label_meta(
    labels: &BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> BTreeMap<String, String> {
    // Our own keys (app and task id, version, port index and name) count against the limit.
    const OWN_KEYS: usize = 5;
    let mut meta = BTreeMap::new();
    for (label, value) in labels {
        let Some(key) = label.strip_prefix(META_LABEL_PREFIX) else {
            continue;
        };
        let key_ok = !key.is_empty()
            && key.len() <= MAX_META_KEY_LEN
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            && !key.starts_with(RESERVED_META_PREFIX)
            && !key.starts_with("marathon-");
        let problem = if !key_ok {
            "its key is not 1-128 letters, digits, '-' or '_' (or is reserved)"
        } else if value.len() > MAX_META_VALUE_LEN {
            "its value is longer than 512 bytes"
        } else if meta.len() + OWN_KEYS >= MAX_META_PAIRS {
            "Consul takes at most 64 meta keys"
        } else {
            meta.insert(String::from(key), value.clone());
            continue;
        };
        notes.push(alloc::format!(
            "label {} left out of the service meta: {problem}",
            crate::marathon::ids::Shown(label)
        ));
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marathon::parse_apps;

    fn rules() -> ServiceRules {
        ServiceRules::for_registration_id("r")
    }

    fn task<'a>(ports: &'a [u16], addresses: &'a [String]) -> TaskFacts<'a> {
        TaskFacts {
            id: "web.1",
            host: "h1",
            ports,
            addresses,
            health: &TaskHealth::Unreported,
        }
    }

    fn app(json: &str) -> crate::marathon::App {
        parse_apps(alloc::format!(r#"{{"apps":[{json}]}}"#).as_bytes())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn no_labels_is_consular_1_3_exactly_and_labels_add_the_marathon_identity() {
        let a = app(r#"{"id":"/g/web","version":"v1","labels":{"x":"y"}}"#);
        let regs =
            AppServices::of(&a, &rules()).registrations(&rules(), task(&[31001, 31000], &[]));
        assert_eq!(regs.len(), 1);
        let reg = &regs[0];
        assert_eq!((reg.name.as_str(), reg.id.as_str()), ("g-web", "web.1"));
        assert_eq!((reg.address.as_str(), reg.port), ("h1", Some(31000)));
        assert_eq!(reg.tags, ["consular-reg-id=r", "consular-app-id=/g/web"]);
        assert!(reg.meta.is_empty(), "1.3.0's body: {:?}", reg.meta);
        assert_eq!(
            AppServices::default_for("/g/web", Some("v1"))
                .registrations(&rules(), task(&[31001, 31000], &[])),
            regs
        );
        let labelled = app(r#"{"id":"/g/web","version":"v1","labels":{"public":"tag"}}"#);
        let services = AppServices::of(&labelled, &rules());
        let reg = &services.registrations(&rules(), task(&[1], &[]))[0];
        assert_eq!(reg.meta["marathon-app-id"], "/g/web");
        assert_eq!(reg.meta["marathon-task-id"], "web.1");
        assert_eq!(reg.meta["marathon-app-version"], "v1");
    }

    #[test]
    fn a_consul_label_names_and_tag_labels_tag() {
        let a = app(
            r#"{"id":"/web","labels":{"consul":"frontend","public":"tag","canary":"tag","other":"x"}}"#,
        );
        let reg = &AppServices::of(&a, &rules()).registrations(&rules(), task(&[1], &[]))[0];
        assert_eq!(reg.name, "frontend");
        assert_eq!(
            reg.tags,
            [
                "consular-reg-id=r",
                "consular-app-id=/web",
                "canary",
                "public"
            ]
        );
        for default in ["", "true"] {
            let json = alloc::format!(r#"{{"id":"/web","labels":{{"consul":"{default}"}}}}"#);
            let reg =
                &AppServices::of(&app(&json), &rules()).registrations(&rules(), task(&[1], &[]))[0];
            assert_eq!(reg.name, "web");
        }
    }

    #[test]
    fn labelled_ports_become_services_of_their_own() {
        let a = app(r#"{"id":"/web","labels":{"team":"tag"},"portDefinitions":[
                 {"port":0,"name":"http","labels":{"consul":"","public":"tag"}},
                 {"port":0,"name":"debug"},
                 {"port":0,"name":"admin","labels":{"consul":"web-admin"}}]}"#);
        let regs = AppServices::of(&a, &rules())
            .registrations(&rules(), task(&[31000, 31001, 31002], &[]));
        let got: Vec<(&str, &str, Option<u16>)> = regs
            .iter()
            .map(|r| (r.id.as_str(), r.name.as_str(), r.port))
            .collect();
        assert_eq!(
            got,
            [
                ("web.1:0", "web", Some(31000)),
                ("web.1:2", "web-admin", Some(31002))
            ]
        );
        assert_eq!(regs[0].tags[2..], ["team".to_string(), "public".into()]);
        assert_eq!(regs[1].tags[2..], ["team".to_string()]);
        assert_eq!(regs[0].meta["marathon-port-name"], "http");
        assert_eq!(regs[1].meta["marathon-port-index"], "2");
    }

    #[test]
    fn container_networks_register_the_task_ip_and_container_port() {
        let a = app(
            r#"{"id":"/db","networks":[{"mode":"container","name":"dcos"}],
                "container":{"portMappings":[{"containerPort":5432,"labels":{"consul":"pg"}}]}}"#,
        );
        let ip = [String::from("9.0.0.7")];
        let services = AppServices::of(&a, &rules());
        let reg = &services.registrations(&rules(), task(&[], &ip))[0];
        assert_eq!(
            (reg.address.as_str(), reg.port, reg.name.as_str()),
            ("9.0.0.7", Some(5432), "pg")
        );
        let host = ServiceRules {
            address: AddressMode::Host,
            ..rules()
        };
        assert_eq!(
            services.registrations(&host, task(&[], &ip))[0].address,
            "h1"
        );
        // Host ports mapped: the host and host port, as everything else.
        let reg = &services.registrations(&rules(), task(&[31000], &ip))[0];
        assert_eq!((reg.address.as_str(), reg.port), ("h1", Some(31000)));
    }

    #[test]
    fn ip_per_task_registers_the_task_ip_and_its_discovery_port() {
        // Marathon 1.4's IP-per-task: no host ports, the port in `ipAddress.discovery`.
        let a = app(
            r#"{"id":"/web","ipAddress":{"groups":[],"labels":{},"networkName":null,
                "discovery":{"ports":[{"number":8080,"name":"http","protocol":"tcp"}]}}}"#,
        );
        let ip = [String::from("9.0.0.1")];
        let reg = &AppServices::of(&a, &rules()).registrations(&rules(), task(&[], &ip))[0];
        assert_eq!((reg.address.as_str(), reg.port), ("9.0.0.1", Some(8080)));
    }

    #[test]
    fn meta_labels_within_consuls_limits_and_the_rest_noted() {
        let long = "x".repeat(600);
        let json = alloc::format!(
            r#"{{"id":"/web","labels":{{"consul-meta-team":"payments","consul-meta-bad key":"v","consul-meta-consul-x":"v","consul-meta-big":"{long}"}}}}"#
        );
        let services = AppServices::of(&app(&json), &rules());
        let reg = &services.registrations(&rules(), task(&[1], &[]))[0];
        assert_eq!(reg.meta["team"], "payments");
        assert_eq!(
            reg.meta.len(),
            2 + 1,
            "app and task id (no version), one label"
        );
        assert_eq!(services.notes().len(), 3, "{:?}", services.notes());
        let many: String = (0..100)
            .map(|i| alloc::format!(r#""consul-meta-k{i}":"v","#))
            .collect();
        let json = alloc::format!(r#"{{"id":"/web","labels":{{{many}"x":"y"}}}}"#);
        let reg =
            &AppServices::of(&app(&json), &rules()).registrations(&rules(), task(&[1], &[]))[0];
        assert!(reg.meta.len() <= 64, "{}", reg.meta.len());
    }

    #[test]
    fn require_label_selects() {
        let require = ServiceRules {
            require_label: Some("consul".into()),
            ..rules()
        };
        let unlabelled = AppServices::of(&app(r#"{"id":"/a"}"#), &require);
        assert_eq!(unlabelled.selection(), Selection::NotSelected);
        assert!(unlabelled
            .registrations(&require, task(&[1], &[]))
            .is_empty());
        let labelled = AppServices::of(&app(r#"{"id":"/a","labels":{"consul":""}}"#), &require);
        assert_eq!(labelled.registrations(&require, task(&[1], &[])).len(), 1);
    }
}
