//! From a Marathon snapshot to the services and KV keys Consul should hold.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use super::services::{AppServices, Registering, Selection, ServiceRules, TaskFacts};
use crate::consul::{agent_host, label_key, label_value, service_name, Registration};
use crate::marathon::ids::{check_app_id, check_host, check_task_id, Shown};
use crate::marathon::App;

/// A service to register, and the agent that should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    /// The agent host (the task's host, lower-cased).
    pub agent: String,
    /// The registration.
    pub registration: Registration,
}

/// What Consul should hold for one Marathon snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// The services of running tasks of syncable apps, by service id.
    pub services: BTreeMap<String, DesiredService>,
    /// Label keys of syncable apps and their values.
    pub kv: BTreeMap<String, Vec<u8>>,
    /// Service names of syncable apps: their `consular/<name>/` directory is ours to keep tidy.
    pub synced_names: BTreeSet<String>,
    /// Service names of every app Marathon has, clashing ones included: never purged.
    pub live_names: BTreeSet<String>,
    /// Ids of every running task, clashing apps' included: never purged.
    pub running_tasks: BTreeSet<String>,
    /// Ids of the apps whose services `services` describes completely: a service of theirs that
    /// is not there (a port that lost its `consul` label) goes, `--purge` or not.
    pub synced_apps: BTreeSet<String>,
    /// Ids of the apps `--require-label` leaves out: their services go, `--purge` or not.
    pub deselected_apps: BTreeSet<String>,
    /// Running tasks whose registration waits for Marathon's health verdict
    /// (`--register-when-healthy`): their services stay as they are.
    pub awaiting_health: BTreeSet<String>,
    /// The services each app's tasks become, by the app's service name (for later events).
    pub app_services: BTreeMap<String, AppServices>,
    /// Service names that several app ids map to, with those ids in input order. These apps are
    /// skipped (neither written nor purged) until the clash is resolved.
    pub clashes: Vec<(String, Vec<String>)>,
    /// Apps and tasks left out because an id, a host or a port breaks Marathon's grammar, one
    /// line each. (What an app's labels could not give its services is in its
    /// [`AppServices::notes`].) A skipped task whose id is sound still counts as running, so it is not purged.
    pub skipped: Vec<String>,
}

impl DesiredState {
    /// Adds `service` as a running one: its agent should hold it, and a purge never removes it.
    /// For sources other than Marathon ([`crate::ConsulEngine`]); build the registration with
    /// [`Registration::for_task`] so it carries the ownership tags.
    pub fn insert_service(&mut self, service: DesiredService) {
        let registration = &service.registration;
        self.running_tasks.insert(registration.id.clone());
        self.live_names.insert(registration.name.clone());
        self.synced_names.insert(registration.name.clone());
        self.services.insert(registration.id.clone(), service);
    }

    /// Adds the KV entry `consular/<name>/<label>` = `value` (stored JSON-encoded, as labels are);
    /// the other keys under `consular/<name>/` become stale and are deleted.
    pub fn insert_label(&mut self, name: &str, label: &str, value: &str) {
        self.live_names.insert(String::from(name));
        self.synced_names.insert(String::from(name));
        self.kv.insert(label_key(name, label), label_value(value));
    }
}

/// The desired state for `apps`, each with its tasks (apps without tasks count as having none),
/// their services shaped by `rules`.
pub fn desired_state(apps: &[App], rules: &ServiceRules) -> DesiredState {
    let mut state = DesiredState::default();
    let apps: Vec<&App> = apps
        .iter()
        .filter(|app| match check_app_id(&app.id) {
            Ok(()) => true,
            Err(e) => {
                let line = alloc::format!("skipping app {}: its id {e}", Shown(&app.id));
                state.skipped.push(line);
                false
            }
        })
        .collect();
    let mut ids_by_name: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for app in &apps {
        ids_by_name
            .entry(service_name(&app.id))
            .or_default()
            .push(&app.id);
    }
    for (name, ids) in &ids_by_name {
        if ids.len() > 1 {
            state.clashes.push((
                name.clone(),
                ids.iter().map(|&id| String::from(id)).collect(),
            ));
        }
    }
    for app in apps {
        let name = service_name(&app.id);
        let running = app.tasks.iter().flatten().filter(|t| t.is_running());
        let clashing = ids_by_name.get(&name).is_some_and(|ids| ids.len() > 1);
        state.live_names.insert(name.clone());
        let services = AppServices::of(app, rules);
        match (clashing, services.selection()) {
            (true, _) => {}
            (false, Selection::Selected) => {
                state.synced_apps.insert(app.id.clone());
            }
            (false, Selection::NotSelected) => {
                state.deselected_apps.insert(app.id.clone());
            }
        }
        for task in running {
            if let Err(e) = check_task_id(&task.id) {
                let line = alloc::format!("skipping a task of {}: its id {e}", app.id);
                state.skipped.push(line);
                continue;
            }
            state.running_tasks.insert(task.id.clone());
            if clashing || task.host.is_empty() {
                continue;
            }
            let ports = match (check_host(&task.host), &task.ports) {
                (Ok(()), Ok(ports)) => ports,
                (Err(e), _) => {
                    let line = alloc::format!("skipping task {}: its host {e}", task.id);
                    state.skipped.push(line);
                    continue;
                }
                (_, Err(e)) => {
                    state
                        .skipped
                        .push(alloc::format!("skipping task {}: {e}", task.id));
                    continue;
                }
            };
            let addresses = task.own_addresses();
            let health = services.health_of(&task.health_check_results);
            if services.registering(rules, &health) == Registering::AwaitHealth {
                state.awaiting_health.insert(task.id.clone());
            }
            let facts = TaskFacts {
                id: &task.id,
                host: &task.host,
                ports,
                addresses: &addresses,
                health: &health,
            };
            for registration in services.registrations(rules, facts) {
                let agent = agent_host(&task.host);
                let service = DesiredService {
                    agent,
                    registration,
                };
                state
                    .services
                    .insert(service.registration.id.clone(), service);
            }
        }
        if !clashing {
            state.app_services.insert(name.clone(), services);
        }
        if clashing {
            continue;
        }
        for (label, value) in &app.labels {
            state.kv.insert(label_key(&name, label), label_value(value));
        }
        state.synced_names.insert(name);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marathon::parse_apps;

    #[test]
    fn clashing_apps_are_skipped_but_protected() {
        let apps = parse_apps(
            br#"{"apps":[
              {"id":"/a/b","labels":{"k":"v"},"tasks":[{"id":"t1","host":"H1","ports":[2,1],"state":"TASK_RUNNING"}]},
              {"id":"/a-b","tasks":[{"id":"t2","host":"h2","ports":[],"state":"TASK_RUNNING"}]},
              {"id":"/c","labels":{"x":"y"},"tasks":[{"id":"t3","host":"H3","ports":[5],"state":"TASK_RUNNING"},
                                                     {"id":"t4","host":"h3","ports":[6],"state":"TASK_STAGING"}]}]}"#,
        )
        .unwrap();
        let state = desired_state(&apps, &ServiceRules::for_registration_id("reg"));
        assert_eq!(
            state.clashes,
            [("a-b".into(), alloc::vec!["/a/b".into(), "/a-b".into()])]
        );
        assert_eq!(state.services.keys().collect::<Vec<_>>(), ["t3"]);
        assert_eq!(state.services["t3"].agent, "h3");
        assert_eq!(state.services["t3"].registration.address, "H3");
        assert_eq!(state.kv.keys().collect::<Vec<_>>(), ["consular/c/x"]);
        assert!(state.running_tasks.contains("t1") && state.running_tasks.contains("t2"));
        assert!(!state.running_tasks.contains("t4"));
        assert!(state.live_names.contains("a-b"));
    }

    #[test]
    fn apps_and_tasks_that_break_the_grammar_are_skipped_alone() {
        let apps = parse_apps(
            br#"{"apps":[
              {"id":"/../x","labels":{"k":"v"},"tasks":[{"id":"x1","host":"h","ports":[1],"state":"TASK_RUNNING"}]},
              {"id":"/ok","labels":{"k":"v"},"tasks":[
                {"id":"../../leave","host":"h","ports":[1],"state":"TASK_RUNNING"},
                {"id":"t-host","host":"evil@h","ports":[1],"state":"TASK_RUNNING"},
                {"id":"t-port","host":"h","ports":[99999],"state":"TASK_RUNNING"},
                {"id":"t-good","host":"h","ports":[2],"state":"TASK_RUNNING"}]}]}"#,
        )
        .unwrap();
        let state = desired_state(&apps, &ServiceRules::for_registration_id("reg"));
        assert_eq!(state.services.keys().collect::<Vec<_>>(), ["t-good"]);
        assert_eq!(state.skipped.len(), 4, "{:?}", state.skipped);
        assert!(state.running_tasks.contains("t-host") && state.running_tasks.contains("t-port"));
        assert!(!state.running_tasks.contains("../../leave"));
        assert_eq!(state.kv.keys().collect::<Vec<_>>(), ["consular/ok/k"]);
    }
}
