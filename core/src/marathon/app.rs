//! Marathon apps and tasks as `/v2/apps`, `/v2/apps/<id>` (its labels) and `/v2/apps/<id>/tasks` return them,
//! across versions: tasks with or without `state` (before 1.1.2 there is none), `ports` present or
//! absent, embedded tasks present or not.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use super::task_state::TaskState;
use crate::error::ParseError;

/// A Marathon app, with only what the bridge uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct App {
    /// The app id, such as `/group/app`.
    pub id: String,
    /// Labels, written to Consul KV.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// The app's tasks when Marathon embedded them; `None` when it did not, so they must be
    /// fetched from `/v2/apps/<id>/tasks`.
    #[serde(default)]
    pub tasks: Option<Vec<Task>>,
}

/// What a label sync needs of `GET /v2/apps/<id>`. The tasks Marathon embeds there are skipped
/// unparsed: they can be most of the body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AppLabels {
    /// The app id, such as `/group/app`.
    pub id: String,
    /// Labels, written to Consul KV.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// The app version (the time of its last change); new with every change of the labels.
    #[serde(default)]
    pub version: Option<String>,
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
}

impl Task {
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
    app: AppLabels,
}

#[derive(Deserialize)]
struct TasksBody {
    tasks: Vec<Task>,
}

/// Parses `GET /v2/apps` (`{"apps": [...]}`).
pub fn parse_apps(body: &[u8]) -> Result<Vec<App>, ParseError> {
    Ok(serde_json::from_slice::<AppsBody>(body)?.apps)
}

/// Parses `GET /v2/apps/<id>` (`{"app": {...}}`) for its labels.
pub fn parse_app_labels(body: &[u8]) -> Result<AppLabels, ParseError> {
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
