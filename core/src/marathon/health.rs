//! Marathon's health checks as an app defines them (`healthChecks`), the results it reports per
//! task (`healthCheckResults`), and the verdict those give: healthy, unhealthy (saying which check
//! fails and why) or pending. Also which task a health event's instance id names, across
//! Marathon's id schemes. What a verdict does to Consul is decided in [`crate::plan::services`].

use alloc::string::String;
use serde::Deserialize;

/// One of an app's health checks, with Marathon's defaults for what it leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckSpec {
    /// `HTTP`, `HTTPS`, `TCP`, `COMMAND`, `MESOS_HTTP`, `MESOS_HTTPS` or `MESOS_TCP`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// The HTTP path.
    #[serde(default)]
    pub path: Option<String>,
    /// Which of the task's ports is checked.
    #[serde(default)]
    pub port_index: Option<u32>,
    /// A fixed port, instead of `portIndex`.
    #[serde(default)]
    pub port: Option<u32>,
    /// Seconds between checks (Marathon's default: 60).
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    /// Seconds a check may take (Marathon's default: 20).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
}

fn default_protocol() -> String {
    String::from("HTTP")
}

fn default_interval() -> u32 {
    60
}

fn default_timeout() -> u32 {
    20
}

/// One entry of a task's `healthCheckResults`: the latest result of one of its app's checks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResult {
    /// Whether the check passes.
    #[serde(default)]
    pub alive: bool,
    /// Why it last failed, when Marathon says.
    #[serde(default)]
    pub last_failure_cause: Option<String>,
    /// The instance it belongs to (Marathon 1.4+).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// The task it belongs to (up to Marathon 1.3).
    #[serde(default)]
    pub task_id: Option<String>,
}

/// What Marathon's health checks say of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskHealth {
    /// Not reported: a status update carries no health.
    Unreported,
    /// Reported without a verdict yet: not every check of the app has a result.
    Pending,
    /// Every one of the app's checks passes.
    Healthy,
    /// A check fails; the text says which, and why when Marathon says.
    Unhealthy(String),
}

impl TaskHealth {
    /// The verdict of `results` for an app with `checks` health checks.
    pub fn of(checks: usize, results: &[HealthResult]) -> Self {
        if let Some((index, failing)) = results.iter().enumerate().find(|(_, r)| !r.alive) {
            let cause = failing
                .last_failure_cause
                .as_deref()
                .unwrap_or("no cause given");
            let cause = super::ids::Shown(cause);
            return TaskHealth::Unhealthy(alloc::format!(
                "Marathon health check {} of {checks} fails: {cause}",
                index + 1
            ));
        }
        if checks > 0 && results.len() >= checks {
            TaskHealth::Healthy
        } else {
            TaskHealth::Pending
        }
    }
}

/// True if `task_id`, with health `results`, is the task of instance `instance`: the same id
/// (up to Marathon 1.3, and events that name the task), a result that names the instance, the
/// instance id followed by `.` (1.8+: `<instance>._app.1`), or the task id an instance id of
/// 1.4 to 1.7 was made from (`app.marathon-<uuid>` and `app.instance-<uuid>` for `app.<uuid>`).
pub fn is_task_of_instance(task_id: &str, results: &[HealthResult], instance: &str) -> bool {
    if task_id == instance
        || results.iter().any(|r| {
            r.instance_id.as_deref() == Some(instance) || r.task_id.as_deref() == Some(instance)
        })
    {
        return true;
    }
    if task_id
        .strip_prefix(instance)
        .is_some_and(|rest| rest.starts_with('.'))
    {
        return true;
    }
    ["marathon-", "instance-"].iter().any(|scheme| {
        instance.rsplit_once('.').is_some_and(|(app, id)| {
            id.strip_prefix(scheme).is_some_and(|uuid| {
                task_id.len() == app.len() + 1 + uuid.len()
                    && task_id.starts_with(app)
                    && task_id[app.len()..].starts_with('.')
                    && task_id.ends_with(uuid)
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(alive: bool, cause: Option<&str>) -> HealthResult {
        HealthResult {
            alive,
            last_failure_cause: cause.map(String::from),
            instance_id: None,
            task_id: None,
        }
    }

    #[test]
    fn every_check_must_pass_and_one_failing_says_which() {
        assert_eq!(
            TaskHealth::of(2, &[result(true, None)]),
            TaskHealth::Pending
        );
        assert_eq!(
            TaskHealth::of(2, &[result(true, None), result(true, None)]),
            TaskHealth::Healthy
        );
        let failing = TaskHealth::of(2, &[result(true, None), result(false, Some("503"))]);
        assert_eq!(
            failing,
            TaskHealth::Unhealthy("Marathon health check 2 of 2 fails: 503".into())
        );
        assert_eq!(TaskHealth::of(0, &[]), TaskHealth::Pending);
    }

    #[test]
    fn instance_ids_find_their_task_in_every_scheme() {
        let none: [HealthResult; 0] = [];
        assert!(is_task_of_instance("app.1", &none, "app.1"));
        assert!(is_task_of_instance(
            "a_b.instance-c7c3._app.1",
            &none,
            "a_b.instance-c7c3"
        ));
        assert!(is_task_of_instance("app.4f2e", &none, "app.marathon-4f2e"));
        assert!(is_task_of_instance("app.4f2e", &none, "app.instance-4f2e"));
        assert!(!is_task_of_instance("app.4f2e", &none, "app.marathon-4f2"));
        assert!(!is_task_of_instance(
            "app.4f2ex",
            &none,
            "app.instance-4f2e"
        ));
        assert!(!is_task_of_instance(
            "other.4f2e",
            &none,
            "app.instance-4f2e"
        ));
        let named = [HealthResult {
            instance_id: Some("x.instance-9".into()),
            ..result(true, None)
        }];
        assert!(is_task_of_instance("x.9.strange", &named, "x.instance-9"));
    }
}
