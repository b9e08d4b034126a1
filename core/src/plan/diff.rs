//! The difference between the desired state and what Consul holds: registrations to (re)send,
//! services to deregister, check statuses to set and checks to remove, and KV operations. A write is planned only where something differs,
//! and nothing without our registration-id tag, and no key outside `consular/`, is ever removed.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use super::desired::{DesiredService, DesiredState};
use crate::consul::{
    kv_mark, label_key, label_value, service_name, task_of_service, CheckState, KvEntry, KvKey,
    ListedCheck, Registration, TxnOp, CHECK_ID_PREFIX,
};
use crate::marathon::ids::check_task_id;

/// A service as one agent lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedService {
    /// The address of the agent that listed it.
    pub agent: String,
    /// The service.
    pub registration: Registration,
}

/// A check as one agent lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedCheck {
    /// The address of the agent that listed it.
    pub agent: String,
    /// The check.
    pub check: ListedCheck,
}

/// What the sync read from Consul.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsulState {
    /// Services listed by the agents that answered.
    pub services: Vec<ObservedService>,
    /// The checks of those agents, when services carry checks (`--health-checks`); an agent
    /// whose checks could not be listed has none of its services here either.
    pub checks: Vec<ObservedCheck>,
    /// True only if the node list and every agent's service list were read. Purging does not
    /// depend on it: services are observed per agent, and only listed agents are purged.
    pub services_complete: bool,
    /// Every key under `consular/`, or `None` if the read failed.
    pub kv: Option<Vec<KvEntry>>,
}

/// Tasks and app names changed by events after the snapshot was requested: the snapshot is older
/// than what the events did, so the sync leaves them alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Task ids.
    pub tasks: BTreeSet<String>,
    /// Service names whose labels were synced.
    pub app_names: BTreeSet<String>,
}

/// What a sync may remove: everything of ours that no longer runs (`--purge`), and in any case
/// what belonged to apps Marathon reported terminated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purge {
    /// Purge every dead service and dead app's KV.
    pub everything: bool,
    /// Service names of terminated apps: their dead services and KV go even without `everything`.
    pub apps: BTreeSet<String>,
}

impl Purge {
    fn covers(&self, app_name: &str) -> bool {
        self.everything || self.apps.contains(app_name)
    }
}

/// The writes of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Services to register (missing, or different from what the agent holds).
    pub register: Vec<DesiredService>,
    /// Our services whose task no longer runs: `(agent address, service id)`.
    pub deregister: Vec<(String, String)>,
    /// Statuses of mirrored checks to set, and checks of ours that services no longer have.
    pub checks: Vec<CheckWrite>,
    /// KV writes and deletes, not yet batched.
    pub kv: Vec<TxnOp>,
}

/// A write to a check of one of our services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckWrite {
    /// Set a mirrored check's status and output.
    Update {
        /// The agent holding the check.
        agent: String,
        /// The check id.
        check_id: String,
        /// What it should show.
        state: CheckState,
    },
    /// Remove a check the service no longer has.
    Remove {
        /// The agent holding the check.
        agent: String,
        /// The check id.
        check_id: String,
    },
}

/// Plans one sync. `purge` says which dead services and dead apps' KV to remove; services are
/// only purged when the Consul listing is complete. The services to register are moved out of
/// `desired`, not copied: at 10,000 tasks a second copy is megabytes.
pub fn plan_sync(
    desired: DesiredState,
    consul: &ConsulState,
    registration_id: &str,
    purge: &Purge,
    excluded: &Exclusions,
) -> SyncPlan {
    // An id we could never have registered is not ours, whatever its tags say: a hostile listing
    // must not make the purge build a URL from `..`.
    let ours: Vec<&ObservedService> = consul
        .services
        .iter()
        .filter(|s| s.registration.is_owned_by(registration_id))
        .filter(|s| check_task_id(task_of_service(&s.registration.id)).is_ok())
        .collect();
    let mut listed: BTreeMap<&str, Vec<&ObservedService>> = BTreeMap::new();
    for s in &ours {
        listed.entry(&s.registration.id).or_default().push(s);
    }
    let mut checks_of: BTreeMap<(&str, &str), Vec<&ListedCheck>> = BTreeMap::new();
    for c in &consul.checks {
        checks_of
            .entry((c.agent.as_str(), c.check.service_id.as_str()))
            .or_default()
            .push(&c.check);
    }
    // Services are only observed on agents that listed them, so a node that could not be listed
    // loses nothing; the others are purged as usual. A service goes when its task no longer runs
    // (with `--purge`, or for a terminated app), when its app is described completely and no
    // longer has it (a port lost its `consul` label), or when `--require-label` leaves its app out.
    let deregister = ours
        .iter()
        .filter(|s| {
            let registration = &s.registration;
            let task = task_of_service(&registration.id);
            if excluded.tasks.contains(task) {
                return false;
            }
            let app_id = registration.app_id().unwrap_or_default();
            if desired.deselected_apps.contains(app_id) {
                return true;
            }
            if desired.awaiting_health.contains(task) {
                return false;
            }
            if desired.running_tasks.contains(task) {
                return desired.synced_apps.contains(app_id)
                    && !desired.services.contains_key(&registration.id);
            }
            purge.covers(&service_name(app_id))
        })
        .map(|s| (s.agent.clone(), s.registration.id.clone()))
        .collect();
    let mark = kv_mark(registration_id);
    let kv = match &consul.kv {
        Some(current) => kv_ops(&desired.kv, current, mark, |key| {
            let Some(KvKey { app_name, label }) = KvKey::parse(key) else {
                return false;
            };
            if excluded.app_names.contains(app_name) {
                false
            } else if desired.synced_names.contains(app_name) {
                // A stale label; a leaf `consular/<name>` beside the directory is not ours to judge.
                label.is_some()
            } else {
                purge.covers(app_name) && !desired.live_names.contains(app_name)
            }
        }),
        None => Vec::new(),
    };
    let mut checks = Vec::new();
    // Checks of ours a kept service no longer has: registering again would not remove them.
    for s in &ours {
        let Some(wanted) = desired.services.get(&s.registration.id) else {
            continue;
        };
        let listed_checks = checks_of.get(&(s.agent.as_str(), s.registration.id.as_str()));
        for check in listed_checks.into_iter().flatten() {
            let stale = check.id.starts_with(CHECK_ID_PREFIX)
                && !wanted.registration.checks.iter().any(|c| c.id == check.id);
            if stale {
                checks.push(CheckWrite::Remove {
                    agent: s.agent.clone(),
                    check_id: check.id.clone(),
                });
            }
        }
    }
    let mut register = Vec::new();
    for (id, mut d) in desired.services {
        if excluded.tasks.contains(task_of_service(&id)) {
            continue;
        }
        let listings = listed.get(id.as_str()).map_or(&[][..], Vec::as_slice);
        let listed_here = listings
            .iter()
            .find(|s| d.registration.is_listed_as(&s.registration));
        // A changed service keeps its checks' statuses: read them where it is registered.
        let holder = listed_here.or_else(|| listings.iter().find(|s| s.agent == d.agent));
        let listed_checks: &[&ListedCheck] = holder
            .and_then(|s| checks_of.get(&(s.agent.as_str(), id.as_str())))
            .map_or(&[], Vec::as_slice);
        let status_of = |check_id: &str| {
            listed_checks
                .iter()
                .find(|l| l.id == check_id)
                .and_then(|l| l.status)
        };
        let defined = d
            .registration
            .checks
            .iter()
            .all(|c| listed_checks.iter().any(|l| l.is_defined_by(c)));
        match listed_here {
            Some(s) if defined => {
                for check in &d.registration.checks {
                    let Some(state) = &check.state else { continue };
                    if status_of(&check.id) != Some(state.status) {
                        checks.push(CheckWrite::Update {
                            agent: s.agent.clone(),
                            check_id: check.id.clone(),
                            state: state.clone(),
                        });
                    }
                }
            }
            _ => {
                // Registering again keeps a check's status; only a different one is written.
                for check in &mut d.registration.checks {
                    let in_place = check
                        .state
                        .as_ref()
                        .is_some_and(|state| status_of(&check.id) == Some(state.status));
                    if in_place {
                        check.state = None;
                    }
                }
                register.push(d);
            }
        }
    }
    SyncPlan {
        register,
        deregister,
        checks,
        kv,
    }
}

/// The KV operations that make `consular/<app_name>/` hold exactly `labels`, given its current
/// entries.
pub fn plan_app_labels<'a>(
    app_name: &str,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    current: &[KvEntry],
    registration_id: &str,
) -> Vec<TxnOp> {
    let desired: BTreeMap<String, Vec<u8>> = labels
        .into_iter()
        .map(|(label, value)| (label_key(app_name, label), label_value(value)))
        .collect();
    kv_ops(&desired, current, kv_mark(registration_id), |key| {
        KvKey::parse(key).is_some_and(|k| k.app_name == app_name && k.label.is_some())
    })
}

/// Sets for missing or different keys (checked against the index read), deletes for current keys
/// that are not desired and that `may_delete` allows. A key another bridge marked (its `Flags`
/// neither 0 nor `mark`) is neither overwritten nor deleted: two Marathon clusters sharing one
/// Consul keep each other's labels.
fn kv_ops(
    desired: &BTreeMap<String, Vec<u8>>,
    current: &[KvEntry],
    mark: u64,
    may_delete: impl Fn(&str) -> bool,
) -> Vec<TxnOp> {
    let by_key: BTreeMap<&str, &KvEntry> = current.iter().map(|e| (e.key.as_str(), e)).collect();
    let mut ops: Vec<TxnOp> = desired
        .iter()
        .filter_map(|(key, value)| match by_key.get(key.as_str()) {
            Some(entry) if entry.value == *value || !entry.is_ours(mark) => None,
            found => Some(TxnOp::Set {
                key: key.clone(),
                value: value.clone(),
                index: found.map_or(0, |e| e.modify_index),
                flags: mark,
            }),
        })
        .collect();
    ops.extend(
        current
            .iter()
            .filter(|e| e.is_ours(mark))
            .filter(|e| !desired.contains_key(&e.key) && may_delete(&e.key))
            .map(|e| TxnOp::Delete {
                key: e.key.clone(),
                index: e.modify_index,
            }),
    );
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marathon::parse_apps;
    use crate::plan::{desired_state, ServiceRules};

    const EVERYTHING: Purge = Purge {
        everything: true,
        apps: BTreeSet::new(),
    };

    #[test]
    fn a_terminated_app_is_purged_without_purge_everything() {
        let desired = desired_state(
            &parse_apps(br#"{"apps":[]}"#).unwrap(),
            &ServiceRules::for_registration_id("r"),
        );
        let consul = ConsulState {
            services: alloc::vec![
                observed("h", Registration::for_task("r", "/done", "d1", "h", &[])),
                observed("h", Registration::for_task("r", "/other", "o1", "h", &[])),
            ],
            services_complete: true,
            checks: Vec::new(),
            kv: Some(alloc::vec![
                entry("consular/done/k", "\"v\"", 2),
                entry("consular/other/k", "\"v\"", 3)
            ]),
        };
        let purge = Purge {
            everything: false,
            apps: ["done".into()].into_iter().collect(),
        };
        let plan = plan_sync(desired, &consul, "r", &purge, &Exclusions::default());
        assert_eq!(plan.deregister, [("h".into(), "d1".into())]);
        assert_eq!(
            plan.kv,
            [TxnOp::Delete {
                key: "consular/done/k".into(),
                index: 2
            }]
        );
    }

    fn entry(key: &str, value: &str, index: u64) -> KvEntry {
        KvEntry {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            modify_index: index,
            flags: 0,
        }
    }

    #[test]
    fn keys_another_bridge_marked_are_neither_overwritten_nor_purged() {
        let apps = parse_apps(br#"{"apps":[{"id":"/a","labels":{"k":"new"}}]}"#).unwrap();
        let desired = desired_state(&apps, &ServiceRules::for_registration_id("blue"));
        let marked = |key: &str, registration_id: &str, index| KvEntry {
            flags: kv_mark(registration_id),
            ..entry(key, "\"old\"", index)
        };
        let consul = ConsulState {
            services: Vec::new(),
            services_complete: true,
            checks: Vec::new(),
            kv: Some(alloc::vec![
                marked("consular/a/k", "green", 1),
                marked("consular/dead/x", "green", 2),
                marked("consular/dead/y", "blue", 3),
                entry("consular/dead/z", "\"v\"", 4),
            ]),
        };
        let plan = plan_sync(
            desired,
            &consul,
            "blue",
            &EVERYTHING,
            &Exclusions::default(),
        );
        assert_eq!(
            plan.kv,
            [
                TxnOp::Delete {
                    key: "consular/dead/y".into(),
                    index: 3
                },
                TxnOp::Delete {
                    key: "consular/dead/z".into(),
                    index: 4
                },
            ],
            "green's keys stay; ours and unmarked (1.3.0's) go"
        );
    }

    fn observed(agent: &str, reg: Registration) -> ObservedService {
        ObservedService {
            agent: agent.into(),
            registration: reg,
        }
    }

    #[test]
    fn warm_sync_plans_nothing() {
        let apps = parse_apps(
            br#"{"apps":[{"id":"/a","labels":{"k":"v"},"tasks":[{"id":"t1","host":"h","ports":[1],"state":"TASK_RUNNING"}]}]}"#,
        )
        .unwrap();
        let desired = desired_state(&apps, &ServiceRules::for_registration_id("r"));
        let consul = ConsulState {
            services: alloc::vec![observed("h", desired.services["t1"].registration.clone())],
            services_complete: true,
            checks: Vec::new(),
            kv: Some(alloc::vec![entry("consular/a/k", "\"v\"", 3)]),
        };
        assert_eq!(
            plan_sync(desired, &consul, "r", &EVERYTHING, &Exclusions::default()),
            SyncPlan::default()
        );
    }

    #[test]
    fn purge_touches_only_ours_and_only_what_was_listed() {
        let desired = desired_state(
            &parse_apps(br#"{"apps":[{"id":"/live","tasks":[]}]}"#).unwrap(),
            &ServiceRules::for_registration_id("r"),
        );
        let dead = Registration::for_task("r", "/gone", "t9", "h", &[]);
        let foreign = Registration::for_task("other", "/gone", "t8", "h", &[]);
        let consul = ConsulState {
            services: alloc::vec![observed("10.0.0.1", dead), observed("10.0.0.1", foreign)],
            services_complete: true,
            checks: Vec::new(),
            kv: Some(alloc::vec![
                entry("consular/gone/k", "\"v\"", 4),
                entry("consular/live/stale", "\"v\"", 5),
                entry("consular/gone2", "\"v\"", 6),
            ]),
        };
        let plan = plan_sync(
            desired.clone(),
            &consul,
            "r",
            &EVERYTHING,
            &Exclusions::default(),
        );
        assert_eq!(plan.deregister, [("10.0.0.1".into(), "t9".into())]);
        assert_eq!(
            plan.kv,
            [
                TxnOp::Delete {
                    key: "consular/gone/k".into(),
                    index: 4
                },
                TxnOp::Delete {
                    key: "consular/live/stale".into(),
                    index: 5
                },
                TxnOp::Delete {
                    key: "consular/gone2".into(),
                    index: 6
                },
            ]
        );
        let partial = ConsulState {
            services_complete: false,
            ..consul.clone()
        };
        // Another node's listing failing does not protect what this one listed.
        assert_eq!(
            plan_sync(
                desired.clone(),
                &partial,
                "r",
                &EVERYTHING,
                &Exclusions::default()
            )
            .deregister,
            [("10.0.0.1".into(), "t9".into())]
        );
        let no_purge = plan_sync(
            desired,
            &consul,
            "r",
            &Purge::default(),
            &Exclusions::default(),
        );
        assert!(no_purge.deregister.is_empty());
        assert_eq!(
            no_purge.kv,
            [TxnOp::Delete {
                key: "consular/live/stale".into(),
                index: 5
            }]
        );
    }

    #[test]
    fn label_sync_never_touches_a_prefix_sibling() {
        let labels: BTreeMap<String, String> = [("foo".into(), "new".into())].into_iter().collect();
        let current = [
            entry("consular/my-app/foo", "\"old\"", 2),
            entry("consular/my-app/gone", "\"x\"", 3),
            entry("consular/my-app2/foo", "\"x\"", 4),
        ];
        assert_eq!(
            plan_app_labels("my-app", &labels, &current, "r"),
            [
                TxnOp::Set {
                    key: "consular/my-app/foo".into(),
                    value: b"\"new\"".to_vec(),
                    index: 2,
                    flags: kv_mark("r"),
                },
                TxnOp::Delete {
                    key: "consular/my-app/gone".into(),
                    index: 3
                },
            ]
        );
    }

    #[test]
    fn changed_services_are_re_registered_and_excluded_tasks_left_alone() {
        let apps = parse_apps(
            br#"{"apps":[{"id":"/a","tasks":[{"id":"t1","host":"h","ports":[2],"state":"TASK_RUNNING"},
                                              {"id":"t2","host":"h","ports":[3],"state":"TASK_RUNNING"}]}]}"#,
        )
        .unwrap();
        let desired = desired_state(&apps, &ServiceRules::for_registration_id("r"));
        let old = Registration::for_task("r", "/a", "t1", "h", &[1]);
        let consul = ConsulState {
            services: alloc::vec![observed("h", old)],
            services_complete: true,
            checks: Vec::new(),
            kv: None,
        };
        let excluded = Exclusions {
            tasks: ["t2".into()].into_iter().collect(),
            ..Exclusions::default()
        };
        let plan = plan_sync(desired, &consul, "r", &EVERYTHING, &excluded);
        assert_eq!(plan.register.len(), 1);
        assert_eq!(plan.register[0].registration.port, Some(2));
        assert!(plan.kv.is_empty());
    }

    #[test]
    fn checks_are_diffed_by_definition_and_mirrored_status_only_when_it_changed() {
        use crate::config::HealthChecks;
        use crate::consul::{CheckStatus, ListedCheck};
        let apps = parse_apps(
            br#"{"apps":[{"id":"/a","healthChecks":[{"protocol":"TCP"}],"tasks":[
                {"id":"t1","host":"h","ports":[1],"state":"TASK_RUNNING","healthCheckResults":[{"alive":true}]},
                {"id":"t2","host":"h","ports":[2],"state":"TASK_RUNNING","healthCheckResults":[{"alive":false}]},
                {"id":"t3","host":"h","ports":[3],"state":"TASK_RUNNING","healthCheckResults":[]}]}]}"#,
        )
        .unwrap();
        let rules = ServiceRules {
            health_checks: HealthChecks::Mirror,
            ..ServiceRules::for_registration_id("r")
        };
        let desired = desired_state(&apps, &rules);
        let listed = |id: &str, status| ObservedCheck {
            agent: "h".into(),
            check: ListedCheck {
                id: alloc::format!("consular:{id}"),
                service_id: id.into(),
                name: "Marathon health".into(),
                notes: alloc::format!("Mirrors the 1 Marathon health checks of task {id}"),
                status: Some(status),
            },
        };
        let service = |id: &str| observed("h", desired.services[id].registration.clone());
        let mut stale = listed("t3", CheckStatus::Critical);
        stale.check.id = "consular:t3:7".into();
        let foreign = ObservedCheck {
            check: ListedCheck {
                id: "theirs".into(),
                ..stale.check.clone()
            },
            ..stale.clone()
        };
        let consul = ConsulState {
            services: alloc::vec![service("t1"), service("t2"), service("t3")],
            services_complete: true,
            checks: alloc::vec![
                listed("t1", CheckStatus::Passing),
                listed("t2", CheckStatus::Passing),
                listed("t3", CheckStatus::Passing),
                stale,
                foreign,
            ],
            kv: Some(Vec::new()),
        };
        let plan = plan_sync(
            desired.clone(),
            &consul,
            "r",
            &EVERYTHING,
            &Exclusions::default(),
        );
        // t1 is as it should be; t2's status changed; t3 has no verdict, so Consul's stands.
        assert!(plan.register.is_empty(), "{:?}", plan.register);
        assert_eq!(
            plan.checks,
            [
                CheckWrite::Remove {
                    agent: "h".into(),
                    check_id: "consular:t3:7".into()
                },
                CheckWrite::Update {
                    agent: "h".into(),
                    check_id: "consular:t2".into(),
                    state: CheckState {
                        status: CheckStatus::Critical,
                        output: "Marathon health check 1 of 1 fails: no cause given".into()
                    }
                },
            ]
        );
        // A check that is missing (or defined otherwise) registers the service again.
        let bare = ConsulState {
            checks: Vec::new(),
            ..consul
        };
        let plan = plan_sync(desired, &bare, "r", &EVERYTHING, &Exclusions::default());
        assert_eq!(plan.register.len(), 3);
        assert!(plan.checks.is_empty());
    }
}
