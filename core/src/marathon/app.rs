//! Marathon apps and tasks as `/v2/apps`, `/v2/apps/<id>` (its definition) and
//! `/v2/apps/<id>/tasks` return them, across versions: tasks with or without `state` (before 1.1.2
//! there is none), `ports` present or absent, embedded tasks present or not, port labels on port
//! definitions or on the container's port mappings, task addresses from IP-per-task or networks,
//! health checks and their results ([`super::health`]).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use super::health::{HealthCheckSpec, HealthResult};
use super::task_state::TaskState;
use crate::error::ParseError;

/// A Marathon app with only what the bridge uses, and its tasks as `T` holds them: embedded
/// ([`App`]) or skipped unparsed ([`AppDefinition`]). One definition serves both, so the sync and
/// an event's app read see an app the same way.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppOf<T> {
    /// The app id, such as `/group/app`.
    pub id: String,
    /// Labels: written to Consul KV, and naming, tagging and selecting services
    /// ([`crate::plan::services`]).
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// The app version (the time of its last change); new with every change of the definition.
    #[serde(default)]
    pub version: Option<String>,
    /// Host-mode ports (Marathon 1.4+), with their names and labels.
    #[serde(default, deserialize_with = "null_as_default")]
    pub port_definitions: Vec<PortSpec>,
    /// The container, whose port mappings carry the ports of container networks.
    #[serde(default)]
    pub container: Option<Container>,
    /// Networks (Marathon 1.5+): `container` or `container/bridge` modes give tasks their own
    /// address.
    #[serde(default, deserialize_with = "null_as_default")]
    pub networks: Vec<Network>,
    /// IP-per-task (Marathon 0.14 to 1.4): present when each task gets an IP of its own.
    #[serde(default)]
    pub ip_address: Option<IpPerTask>,
    /// Marathon's health checks of the app's tasks.
    #[serde(default, deserialize_with = "null_as_default")]
    pub health_checks: Vec<HealthCheckSpec>,
    /// The app's tasks.
    #[serde(default)]
    pub tasks: T,
}

/// An app from `GET /v2/apps?embed=apps.tasks`: tasks are `None` when Marathon did not embed
/// them, so they must be fetched from `/v2/apps/<id>/tasks`.
pub type App = AppOf<Option<Vec<Task>>>;

/// An app from `GET /v2/apps/<id>`, read for its labels and service definition; the tasks
/// Marathon embeds there are skipped unparsed: they can be most of the body.
pub type AppDefinition = AppOf<Skipped>;

/// A part of a body skipped unparsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped;

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Skipped)
    }
}

/// `ipAddress` (IP-per-task, Marathon 0.14 to 1.4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IpPerTask {
    /// The ports the task serves on its own address.
    #[serde(default)]
    pub discovery: Option<Discovery>,
}

/// `ipAddress.discovery`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Discovery {
    /// The ports, as `{number, name, protocol}`: `number` is the port on the task's address.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ports: Vec<PortSpec>,
}

/// One port of a port definition or mapping: its index is its place in the list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    /// The port's name, if it has one.
    #[serde(default)]
    pub name: Option<String>,
    /// The port's labels (`consul`, and `tag`-valued ones, select and tag services).
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// The port inside the container (port mappings), or on the task's own address
    /// (`ipAddress.discovery.ports[].number`).
    #[serde(default, alias = "number")]
    pub container_port: Option<u32>,
}

/// What of `container` the bridge uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Port mappings (Marathon 1.5+).
    #[serde(default, deserialize_with = "null_as_default")]
    pub port_mappings: Vec<PortSpec>,
    /// Docker's own settings (Marathon before 1.5 kept port mappings there).
    #[serde(default)]
    pub docker: Option<DockerContainer>,
}

/// What of `container.docker` the bridge uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerContainer {
    /// Port mappings (Marathon before 1.5).
    #[serde(default, deserialize_with = "null_as_default")]
    pub port_mappings: Vec<PortSpec>,
    /// `BRIDGE`, `USER` or `HOST` (Marathon before 1.5).
    #[serde(default)]
    pub network: Option<String>,
}

/// One of an app's networks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Network {
    /// `host`, `container` or `container/bridge`.
    #[serde(default)]
    pub mode: Option<String>,
}

impl<T> AppOf<T> {
    /// The ports that carry labels, in port order: port definitions, else IP-per-task's
    /// discovery ports, else the container's port mappings (every place Marathon versions put
    /// them).
    pub fn port_specs(&self) -> &[PortSpec] {
        if !self.port_definitions.is_empty() {
            return &self.port_definitions;
        }
        let discovery = self
            .ip_address
            .as_ref()
            .and_then(|ip| ip.discovery.as_ref());
        if let Some(discovery) = discovery.filter(|d| !d.ports.is_empty()) {
            return &discovery.ports;
        }
        let Some(container) = &self.container else {
            return &[];
        };
        if !container.port_mappings.is_empty() {
            return &container.port_mappings;
        }
        container
            .docker
            .as_ref()
            .map_or(&[][..], |d| d.port_mappings.as_slice())
    }

    /// True if each task gets an address of its own: IP-per-task, or a container network
    /// (`USER` on Docker before 1.5, mode `container` from 1.5).
    pub fn has_task_addresses(&self) -> bool {
        let container_network = self
            .networks
            .iter()
            .any(|n| n.mode.as_deref() == Some("container"));
        let docker_user = self
            .container
            .as_ref()
            .and_then(|c| c.docker.as_ref())
            .and_then(|d| d.network.as_deref())
            == Some("USER");
        self.ip_address.is_some() || container_network || docker_user
    }
}

/// A Marathon task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// The task id: the Consul service id.
    pub id: String,
    /// The task's host.
    #[serde(default)]
    pub host: String,
    /// Host ports, in port order; an error if one of them is not a port number, so that only
    /// this task, not the whole snapshot, is skipped.
    #[serde(default = "no_ports", deserialize_with = "port_list")]
    pub ports: Result<Vec<u16>, BadPorts>,
    /// The Mesos state name; absent before Marathon 1.1.2.
    #[serde(default)]
    pub state: Option<String>,
    /// When the task started; null while staging.
    #[serde(default)]
    pub started_at: Option<String>,
    /// The task's own addresses (IP-per-task and container networks), when Marathon knows them.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ip_addresses: Vec<TaskAddress>,
    /// The latest result of each of the app's health checks that has run.
    #[serde(default, deserialize_with = "null_as_default")]
    pub health_check_results: Vec<HealthResult>,
    /// The app version the task runs.
    #[serde(default)]
    pub version: Option<String>,
}

/// One of a task's own addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskAddress {
    /// The IP address.
    #[serde(default)]
    pub ip_address: String,
}

impl Task {
    /// The task's own addresses that an agent could reach (the host grammar,
    /// [`super::ids::check_host`]); the rest are left out.
    pub fn own_addresses(&self) -> Vec<String> {
        self.ip_addresses
            .iter()
            .map(|a| a.ip_address.clone())
            .filter(|ip| super::ids::check_host(ip).is_ok())
            .collect()
    }

    /// True if the task serves traffic. Without a `state` field (Marathon before 1.1.2), a task
    /// that has started counts as running.
    pub fn is_running(&self) -> bool {
        match &self.state {
            Some(state) => TaskState::parse(state) == Some(TaskState::Running),
            None => self.started_at.is_some(),
        }
    }
}

/// A task's `ports` held something other than port numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("its ports are not all numbers from 0 to 65535")]
pub struct BadPorts;

fn no_ports() -> Result<Vec<u16>, BadPorts> {
    Ok(Vec::new())
}

/// `ports` as Marathon sends it (`null` or absent: none); any element that is not a port makes
/// the list [`BadPorts`] instead of failing the whole body.
fn port_list<'de, D>(d: D) -> Result<Result<Vec<u16>, BadPorts>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let items = Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    Ok(items
        .iter()
        .map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()))
        .collect::<Option<Vec<u16>>>()
        .ok_or(BadPorts))
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct AppsBody {
    apps: Vec<App>,
}

#[derive(Deserialize)]
struct AppBody {
    app: AppDefinition,
}

#[derive(Deserialize)]
struct TasksBody {
    tasks: Vec<Task>,
}

/// Parses `GET /v2/apps` (`{"apps": [...]}`).
pub fn parse_apps(body: &[u8]) -> Result<Vec<App>, ParseError> {
    Ok(serde_json::from_slice::<AppsBody>(body)?.apps)
}

/// Parses `GET /v2/apps/<id>` (`{"app": {...}}`) for its labels and service definition.
pub fn parse_app_definition(body: &[u8]) -> Result<AppDefinition, ParseError> {
    Ok(serde_json::from_slice::<AppBody>(body)?.app)
}

/// Parses `GET /v2/apps/<id>/tasks` (`{"tasks": [...]}`).
pub fn parse_tasks(body: &[u8]) -> Result<Vec<Task>, ParseError> {
    Ok(serde_json::from_slice::<TasksBody>(body)?.tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_without_state_run_once_started() {
        let tasks = parse_tasks(
            br#"{"tasks":[{"id":"a","host":"h","ports":[1],"startedAt":"2014-09-13T00:24:46.959Z"},
                          {"id":"b","host":"h","ports":null,"startedAt":null},
                          {"id":"c","host":"h","state":"TASK_KILLING","startedAt":"x"}]}"#,
        )
        .unwrap();
        let running: Vec<bool> = tasks.iter().map(Task::is_running).collect();
        assert_eq!(running, [true, false, false]);
        assert_eq!(tasks[1].ports, Ok(Vec::new()));
    }

    #[test]
    fn a_bad_port_spoils_its_task_only() {
        let tasks = parse_tasks(
            br#"{"tasks":[{"id":"a","host":"h","ports":[70000]},{"id":"b","host":"h","ports":["x"]},
                          {"id":"c","host":"h","ports":[1,2]}]}"#,
        )
        .unwrap();
        assert_eq!(tasks[0].ports, Err(BadPorts));
        assert_eq!(tasks[1].ports, Err(BadPorts));
        assert_eq!(tasks[2].ports, Ok(alloc::vec![1, 2]));
    }

    #[test]
    fn apps_without_embedded_tasks_say_so() {
        let apps =
            parse_apps(br#"{"apps":[{"id":"/a","labels":null},{"id":"/b","tasks":[]}]}"#).unwrap();
        assert_eq!(apps[0].tasks, None);
        assert_eq!(apps[1].tasks, Some(Vec::new()));
        assert!(parse_apps(br#"{"nope":[]}"#).is_err());
    }
}
