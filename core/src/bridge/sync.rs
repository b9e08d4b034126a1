//! The full sync, every `sync_interval`: read Marathon's apps with their tasks, the `consular/` KV
//! tree, the node list and each agent's services (and checks, when services carry them), all at
//! once; plan the difference; write only
//! that. If Marathon cannot be read nothing is written; if any Consul listing is missing nothing is
//! purged. Tasks and apps that events touched after the Marathon read are left to the events.
//! Syncs never overlap; ticks missed while one runs are skipped. A sync can also be requested (the
//! event stream reconnected, an app terminated); a request during a sync runs one more after it.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::freshness::SnapshotEpoch;
use super::members::Membership;
use super::metrics::{count_write, SyncResult, WriteKind, WritesByKind};
use super::task::status_writes;
use super::writes::{Destination, Registered, Written};
use super::{Answer, Awaiting, Bridge};
use crate::config::{HealthChecks, Placement, WriteMode};
use crate::consul::{agent_host, service_name, task_of_service};
use crate::consul::{
    kv_tree_path, parse_agent_services, parse_catalog_nodes, parse_failed_nodes, parse_kv_entries,
    CatalogNode, AGENT_SERVICES_PATH, CATALOG_NODES_PATH, CRITICAL_CHECKS_PATH, KV_ROOT,
};
use crate::consul::{
    node_checks_path, node_services_path, parse_node_checks, parse_node_services, CatalogEntry,
    CheckProbe, OWNER_NODE_META,
};
use crate::consul::{parse_agent_checks, AGENT_CHECKS_PATH};
use crate::io::{Level, Method, Target};
use crate::marathon::ids::check_host;
use crate::marathon::{app_tasks_path, parse_apps, parse_tasks, App, APPS_WITH_TASKS_PATH};
use crate::plan::{
    desired_state, plan_sync, CheckWrite, ConsulState, DesiredService, DesiredState, ObservedCheck,
    ObservedService, Purge,
};

/// What an `app_terminated_event` led to.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Termination {
    /// A sync purges the app's services and KV.
    Purging,
    /// The bridge never saw the app: nothing to do.
    UnknownApp,
}

/// Identifies one sync round, so answers to an abandoned round are not applied to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RoundId(u64);

/// Which request of a round a response answers.
#[derive(Debug)]
pub(super) enum SyncWait {
    Apps,
    AppTasks(usize),
    Kv,
    Nodes,
    FailedNodes,
    AgentServices(String),
    AgentChecks(String),
    ExternalServices(String),
    ExternalChecks(String),
    RemoveNode(String),
    Register(DesiredService, bool),
    CheckWrite(CheckWrite),
    Deregister(String, String),
    KvWrite(usize),
}

#[derive(Debug)]
struct SyncRound {
    id: RoundId,
    started_at: Duration,
    /// When Marathon was asked: later updates win over this snapshot.
    snapshot: SnapshotEpoch,
    apps: Option<Vec<App>>,
    /// The desired state an embedder gave ([`crate::ConsulEngine::sync`]), instead of Marathon's.
    given: Option<DesiredState>,
    /// The catalog's nodes and the names of the failed ones; agents are listed once both are in.
    nodes: Option<Vec<CatalogNode>>,
    failed_nodes: Option<BTreeSet<String>>,
    /// Lower-cased addresses and names of the failed nodes: not contacted this round.
    failed_hosts: BTreeSet<String>,
    /// Agents whose checks could not be listed: their services count as unlisted.
    unchecked_agents: BTreeSet<String>,
    /// External nodes (no agent) listed through the catalog, and whether this bridge made each.
    external_nodes: BTreeMap<String, NodeMaker>,
    reads_pending: usize,
    purge: Purge,
    consul: ConsulState,
    kv_read: bool,
    writes_pending: usize,
    writing: bool,
    running_tasks: usize,
    failures: usize,
    /// Write requests planned and sent (a registration's status writes and a fallback retry
    /// included); `writes - writes_pending` have been answered.
    writes: usize,
    /// Writes sent, by kind, for the metrics.
    sent: WritesByKind,
    /// When the next progress line is due, while the round runs.
    progress_at: Duration,
    notes: Vec<String>,
}

/// A sync running longer than this logs its progress, and again every time as long.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

impl SyncRound {
    /// One more write request sent after the plan's (a status write, a fallback retry).
    fn add_write(&mut self, kind: WriteKind) {
        self.writes_pending += 1;
        self.writes += 1;
        count_write(&mut self.sent, kind, 1);
    }
}

/// How many writes of each kind a plan holds.
struct PlannedWrites {
    register: usize,
    deregister: usize,
    checks: usize,
    nodes: usize,
    kv_ops: usize,
}

/// Who made an external node: only a node this bridge made is ever removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeMaker {
    Us,
    Other,
}

/// How the last sync ended, for the instance status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SyncReport {
    pub(super) finished_at: Duration,
    pub(super) outcome: SyncResult,
    pub(super) duration: Duration,
    pub(super) writes: usize,
}

#[derive(Debug)]
pub(super) struct Syncs {
    interval: Duration,
    next_at: Option<Duration>,
    round: Option<SyncRound>,
    rounds: u64,
    /// A sync was requested while one ran: run another when it ends.
    again: bool,
    /// Service names of apps Marathon reported terminated, purged by the next sync.
    terminated: BTreeSet<String>,
    /// The desired state the next sync plans from instead of reading Marathon, if an embedder
    /// gave one; the latest given wins.
    next_given: Option<DesiredState>,
    /// How the last sync ended.
    last: Option<SyncReport>,
    /// No sync starts on schedule until the event stream's first attempt ends: a sync that read
    /// Marathon before the stream connected would miss the events in between, so connecting
    /// starts one anyway, and starting one before would only do the work twice.
    held_for_stream: bool,
}

impl Syncs {
    pub(super) fn new(now: Duration, interval: Duration, held_for_stream: bool) -> Self {
        let next_at = (!interval.is_zero()).then_some(now);
        Syncs {
            interval,
            next_at,
            round: None,
            rounds: 0,
            again: false,
            terminated: BTreeSet::new(),
            next_given: None,
            last: None,
            held_for_stream,
        }
    }

    pub(super) fn is_due(&self, now: Duration) -> bool {
        self.round.is_none() && !self.held_for_stream && self.next_at.is_some_and(|at| at <= now)
    }

    /// The next scheduled start; none while held for the stream, and none while a round runs
    /// (its end schedules the next).
    /// While a round runs, its next progress line instead.
    pub(super) fn next_at(&self) -> Option<Duration> {
        match &self.round {
            Some(round) => Some(round.progress_at),
            None if self.held_for_stream => None,
            None => self.next_at,
        }
    }

    pub(super) fn is_running(&self) -> bool {
        self.round.is_some()
    }

    pub(super) fn last(&self) -> Option<SyncReport> {
        self.last
    }
}

impl Bridge {
    /// Runs a sync now, or right after the one running, whatever the interval. Requests while
    /// one is already waiting add nothing (and no log line): at most one sync is ever pending.
    pub(super) fn request_sync(&mut self, why: &str) {
        if self.sync.again {
            return;
        }
        self.log(Level::Info, alloc::format!("sync requested: {why}"));
        if self.sync.round.is_some() {
            self.sync.again = true;
        } else {
            self.start_sync();
        }
    }

    /// Plans the next sync from `desired` instead of Marathon: now, or right after the one running.
    pub(super) fn sync_to(&mut self, desired: DesiredState) {
        self.sync.next_given = Some(desired);
        if self.sync.round.is_some() {
            self.sync.again = true;
        } else {
            self.start_sync();
        }
    }

    /// Standing down as leader: the round running is dropped (its answers go nowhere) and the
    /// next starts when this instance leads again.
    pub(super) fn stop_sync(&mut self) {
        self.sync.round = None;
        self.sync.again = false;
        if !self.sync.interval.is_zero() {
            self.sync.next_at = Some(self.now);
        }
    }

    /// A new leader syncs once its stream's first attempt is over, as at start.
    pub(super) fn hold_sync_for_stream(&mut self) {
        self.sync.held_for_stream = true;
        if self.sync.interval.is_zero() {
            // Without scheduled syncs the stream's connection is what starts one.
            self.sync.next_at = None;
        }
    }

    /// The event stream's first attempt failed, or Marathon has none: syncs need not wait.
    pub(super) fn release_held_sync(&mut self) {
        if core::mem::take(&mut self.sync.held_for_stream) && self.sync.is_due(self.now) {
            self.start_sync();
        }
    }

    /// The app is gone: its services and KV go at the next sync, `--purge` or not. An app the
    /// bridge never saw (in a sync or an event) changes nothing, so forged events cost nothing;
    /// any number of them wait for one sync at most.
    pub(super) fn handle_app_terminated(&mut self, app_id: &str) -> Termination {
        if !self.names.knows(app_id) {
            self.debug(alloc::format!(
                "ignoring the end of {app_id}: not an app we know"
            ));
            return Termination::UnknownApp;
        }
        self.names.forget(app_id);
        let name = service_name(app_id);
        self.freshness.labels_unknown(&name);
        self.sync.terminated.insert(name);
        self.request_sync(&alloc::format!("app {app_id} terminated"));
        Termination::Purging
    }

    pub(super) fn start_sync(&mut self) {
        self.sync.held_for_stream = false;
        self.sync.rounds += 1;
        let id = RoundId(self.sync.rounds);
        let snapshot = self.freshness.snapshot_requested();
        let given = self.sync.next_given.take();
        let reads_pending = if given.is_some() { 3 } else { 4 };
        self.sync.round = Some(SyncRound {
            id,
            started_at: self.now,
            snapshot,
            apps: None,
            given,
            nodes: None,
            failed_nodes: None,
            failed_hosts: BTreeSet::new(),
            unchecked_agents: BTreeSet::new(),
            external_nodes: BTreeMap::new(),
            reads_pending,
            purge: Purge {
                everything: self.config.purge,
                apps: core::mem::take(&mut self.sync.terminated),
            },
            consul: ConsulState {
                services_complete: true,
                ..ConsulState::default()
            },
            kv_read: false,
            writes_pending: 0,
            writing: false,
            running_tasks: 0,
            failures: 0,
            writes: 0,
            sent: WritesByKind::default(),
            progress_at: self.now + PROGRESS_EVERY,
            notes: Vec::new(),
        });
        let timeout = self.config.request_timeout;
        if reads_pending == 4 {
            self.log(Level::Info, String::from("syncing apps"));
            let apps = String::from(APPS_WITH_TASKS_PATH);
            self.send(
                Awaiting::Sync(id, SyncWait::Apps),
                Target::Marathon,
                Method::Get,
                apps,
                None,
                timeout,
            );
        } else {
            self.log(Level::Info, String::from("syncing the given services"));
        }
        let kv = kv_tree_path(KV_ROOT);
        self.send(
            Awaiting::Sync(id, SyncWait::Kv),
            Target::Consul,
            Method::Get,
            kv,
            None,
            timeout,
        );
        for (wait, path) in [
            (SyncWait::Nodes, CATALOG_NODES_PATH),
            (SyncWait::FailedNodes, CRITICAL_CHECKS_PATH),
        ] {
            let awaiting = Awaiting::Sync(id, wait);
            let path = String::from(path);
            self.send(awaiting, Target::Consul, Method::Get, path, None, timeout);
        }
    }

    pub(super) fn on_sync_answer(&mut self, round_id: RoundId, wait: SyncWait, answer: Answer) {
        let Some(round) = self.sync.round.as_mut().filter(|r| r.id == round_id) else {
            return;
        };
        let awaiting = |wait| Awaiting::Sync(round_id, wait);
        let timeout = self.config.request_timeout;
        match wait {
            SyncWait::Apps => {
                round.reads_pending -= 1;
                let apps = match answer.required(parse_apps) {
                    Ok(apps) => apps,
                    Err(e) => {
                        return self.abort_sync(alloc::format!("cannot list Marathon apps: {e}"))
                    }
                };
                // A Marathon that ignores `embed=apps.tasks` needs one tasks request per app.
                let missing: Vec<(usize, String)> = apps
                    .iter()
                    .enumerate()
                    .filter(|(_, app)| app.tasks.is_none())
                    .map(|(i, app)| (i, app_tasks_path(&app.id)))
                    .collect();
                round.reads_pending += missing.len();
                round.apps = Some(apps);
                for (i, path) in missing {
                    self.send(
                        awaiting(SyncWait::AppTasks(i)),
                        Target::Marathon,
                        Method::Get,
                        path,
                        None,
                        timeout,
                    );
                }
            }
            SyncWait::AppTasks(i) => {
                round.reads_pending -= 1;
                let tasks = match answer.parsed(parse_tasks) {
                    // Marathon 0.15 answers 404 for an app without tasks (marathon#3881).
                    Ok(tasks) => tasks.unwrap_or_default(),
                    Err(e) => return self.abort_sync(alloc::format!("cannot list tasks: {e}")),
                };
                if let Some(app) = round.apps.as_mut().and_then(|apps| apps.get_mut(i)) {
                    app.tasks = Some(tasks);
                }
            }
            SyncWait::Kv => {
                round.reads_pending -= 1;
                round.consul.kv = match answer.parsed(parse_kv_entries) {
                    Ok(entries) => Some(entries.unwrap_or_default()),
                    Err(e) => {
                        round.notes.push(alloc::format!("labels not synced: {e}"));
                        None
                    }
                };
                round.kv_read = round.consul.kv.is_some();
            }
            SyncWait::Nodes => {
                round.reads_pending -= 1;
                match answer.required(parse_catalog_nodes) {
                    Ok(nodes) => {
                        self.members.learn(&nodes, self.now);
                        self.current_round().nodes = Some(nodes);
                        self.list_agents();
                    }
                    Err(e) => round_unlisted(round, e),
                }
            }
            SyncWait::FailedNodes => {
                round.reads_pending -= 1;
                let failed = match answer.required(parse_failed_nodes) {
                    Ok(names) => names.iter().map(|n| agent_host(n)).collect(),
                    Err(e) => {
                        // Without node health every node is tried; a dead one costs a timeout.
                        round
                            .notes
                            .push(alloc::format!("node health not read ({e})"));
                        BTreeSet::new()
                    }
                };
                round.failed_nodes = Some(failed);
                self.list_agents();
            }
            SyncWait::AgentServices(agent) => {
                round.reads_pending -= 1;
                match answer.required(parse_agent_services) {
                    Ok(services) => {
                        round
                            .consul
                            .services
                            .extend(services.into_iter().map(|registration| ObservedService {
                                agent: agent.clone(),
                                registration,
                            }))
                    }
                    Err(e) => round_unlisted(round, e),
                }
            }
            SyncWait::AgentChecks(agent) => {
                round.reads_pending -= 1;
                match answer.required(parse_agent_checks) {
                    Ok(checks) => {
                        round
                            .consul
                            .checks
                            .extend(checks.into_iter().map(|check| ObservedCheck {
                                agent: agent.clone(),
                                check,
                            }))
                    }
                    Err(e) => {
                        round.unchecked_agents.insert(agent);
                        round_unlisted(round, e);
                    }
                }
            }
            SyncWait::ExternalServices(node) => {
                round.reads_pending -= 1;
                match answer.required(parse_node_services) {
                    Ok(listing) => {
                        let maker = match listing.meta.get(OWNER_NODE_META) {
                            Some(id) if *id == self.config.registration_id => NodeMaker::Us,
                            _ => NodeMaker::Other,
                        };
                        let place = external_place(&node);
                        round.external_nodes.insert(place.clone(), maker);
                        round
                            .consul
                            .services
                            .extend(listing.services.into_iter().map(|registration| {
                                ObservedService {
                                    agent: place.clone(),
                                    registration,
                                }
                            }));
                    }
                    Err(e) => round_unlisted(round, e),
                }
            }
            SyncWait::ExternalChecks(node) => {
                round.reads_pending -= 1;
                match answer.required(parse_node_checks) {
                    Ok(checks) => {
                        round
                            .consul
                            .checks
                            .extend(checks.into_iter().map(|check| ObservedCheck {
                                agent: external_place(&node),
                                check,
                            }))
                    }
                    Err(e) => {
                        round.unchecked_agents.insert(external_place(&node));
                        round_unlisted(round, e);
                    }
                }
            }
            SyncWait::RemoveNode(node) => {
                round.writes_pending -= 1;
                if answer.body().is_some() {
                    self.log(
                        Level::Info,
                        alloc::format!(
                            "removed external node {node}: none of its services is left"
                        ),
                    );
                } else {
                    let message =
                        alloc::format!("cannot remove external node {node}: {}", answer.failure());
                    self.log(Level::Error, message);
                    self.current_round().failures += 1;
                }
            }
            SyncWait::CheckWrite(write) => {
                round.writes_pending -= 1;
                if self.check_write_done(&write, &answer) == Written::Failed {
                    self.current_round().failures += 1;
                }
            }
            SyncWait::Register(service, on_fallback) => {
                round.writes_pending -= 1;
                match self.registration_done(&service, on_fallback, &answer) {
                    Registered::Done if !self.keeps_mirrored_checks(on_fallback) => {}
                    Registered::Done => {
                        let target = if on_fallback {
                            Target::Consul
                        } else {
                            Target::Agent(service.agent.clone())
                        };
                        for write in status_writes(&service) {
                            self.current_round().add_write(WriteKind::Check);
                            let awaiting = awaiting(SyncWait::CheckWrite(write.clone()));
                            self.send_check_write(awaiting, target.clone(), &write);
                        }
                    }
                    Registered::RetryOnMainConsul => {
                        self.current_round().add_write(WriteKind::Register);
                        self.send_registration(
                            awaiting(SyncWait::Register(service.clone(), true)),
                            &service,
                            true,
                        );
                    }
                    Registered::Failed => self.current_round().failures += 1,
                }
            }
            SyncWait::Deregister(agent, id) => {
                round.writes_pending -= 1;
                if self.deregistration_done(&agent, &id, &answer) == Written::Failed {
                    self.current_round().failures += 1;
                }
            }
            SyncWait::KvWrite(ops) => {
                round.writes_pending -= 1;
                if self.kv_ops_done(ops, &answer) == Written::Failed {
                    self.current_round().failures += 1;
                }
            }
        }
        // Marathon's answer can be megabytes; it is parsed, so it goes before planning.
        drop(answer);
        self.advance_sync();
    }

    /// Lists the services of every node that is not failed, once the node list and the failed
    /// nodes are both in. A failed node is not contacted: its agent would only time out.
    fn list_agents(&mut self) {
        let timeout = self.config.request_timeout;
        // Checks are listed only where services carry them, so 1.3.0's sync reads no more.
        let with_checks = self.config.health_checks != HealthChecks::None;
        let round = self.current_round();
        let (Some(nodes), Some(failed)) = (&round.nodes, &round.failed_nodes) else {
            return;
        };
        let mut listed = Vec::new();
        let mut skipped = Vec::new();
        // A node without an agent is read through the catalog; nothing goes to its address.
        let externals: Vec<String> = nodes
            .iter()
            .filter(|n| n.is_external() && check_host(&n.name).is_ok())
            .map(|n| agent_host(&n.name))
            .collect();
        // An address no agent can have (a hostile or broken catalog) is not contacted.
        for node in nodes
            .iter()
            .filter(|n| !n.is_external() && check_host(&n.address).is_ok())
        {
            // One spelling for listing and purging, as `Target::Agent` wants it.
            let address = agent_host(&node.address);
            if failed.contains(&agent_host(&node.name)) {
                skipped.push((agent_host(&node.name), address));
            } else {
                listed.push(address);
            }
        }
        round.nodes = None;
        round.reads_pending += listed.len();
        if !skipped.is_empty() {
            let names: Vec<&str> = skipped.iter().map(|(name, _)| name.as_str()).collect();
            round.notes.push(alloc::format!(
                "{} failed nodes not contacted and not purged: {}",
                skipped.len(),
                names.join(", ")
            ));
            round.consul.services_complete = false;
            for (name, address) in skipped {
                round.failed_hosts.insert(name);
                round.failed_hosts.insert(address);
            }
        }
        let id = round.id;
        round.reads_pending += externals.len();
        if with_checks {
            round.reads_pending += listed.len() + externals.len();
        }
        for node in externals {
            if with_checks {
                let path = node_checks_path(&node);
                let awaiting = Awaiting::Sync(id, SyncWait::ExternalChecks(node.clone()));
                self.send(awaiting, Target::Consul, Method::Get, path, None, timeout);
            }
            let path = node_services_path(&node);
            let awaiting = Awaiting::Sync(id, SyncWait::ExternalServices(node));
            self.send(awaiting, Target::Consul, Method::Get, path, None, timeout);
        }
        for address in listed {
            if with_checks {
                let target = Target::Agent(address.clone());
                let path = String::from(AGENT_CHECKS_PATH);
                let awaiting = Awaiting::Sync(id, SyncWait::AgentChecks(address.clone()));
                self.send(awaiting, target, Method::Get, path, None, timeout);
            }
            let target = Target::Agent(address.clone());
            let path = String::from(AGENT_SERVICES_PATH);
            let awaiting = Awaiting::Sync(id, SyncWait::AgentServices(address));
            self.send(awaiting, target, Method::Get, path, None, timeout);
        }
    }

    /// The running round; only called while answering one.
    fn current_round(&mut self) -> &mut SyncRound {
        self.sync
            .round
            .as_mut()
            .expect("a sync answer is only handled while its round runs")
    }

    /// Plans and writes once every read is in; finishes once every write is answered.
    fn advance_sync(&mut self) {
        let in_catalog = self.registers_in_catalog();
        let Some(round) = self.sync.round.as_mut() else {
            return;
        };
        if round.reads_pending > 0 || (round.writing && round.writes_pending > 0) {
            return;
        }
        if round.writing {
            return self.finish_sync();
        }
        round.writing = true;
        let id = round.id;
        let (mut desired, source) = match round.given.take() {
            Some(given) => {
                let source = alloc::format!("{} services given", given.services.len());
                (given, source)
            }
            None => {
                let apps = round.apps.take().unwrap_or_default();
                self.names
                    .learn_snapshot(apps.iter().map(|app| app.id.as_str()));
                let desired = desired_state(&apps, &self.service_rules);
                // The apps are the largest thing a sync holds; nothing planned from here on
                // needs them.
                (desired, alloc::format!("{} apps", apps.len()))
            }
        };
        // Marathon's snapshot lags an end we have already seen; the task never runs again.
        let tasks = &self.tasks;
        desired.running_tasks.retain(|t| !tasks.has_ended(t));
        desired
            .services
            .retain(|id, _| !tasks.has_ended(task_of_service(id)));
        // What labels could not give is said once per app version, not at every sync.
        let mut skipped: Vec<String> = Vec::new();
        for (name, services) in &desired.app_services {
            if self.freshness.services_of(name, services.version()) != Some(services) {
                let app_id = services.app_id();
                skipped.extend(
                    services
                        .notes()
                        .iter()
                        .map(|n| alloc::format!("app {app_id}: {n}")),
                );
            }
        }
        self.freshness
            .learn_services(core::mem::take(&mut desired.app_services));
        self.freshness.keep_apps(&desired.live_names);
        let excluded = self.freshness.newer_than(round.snapshot);
        round.running_tasks = desired.running_tasks.len();
        // An agent whose checks are unknown is planned as if unlisted: nothing of it is purged,
        // and what it should hold is registered again.
        let unchecked = core::mem::take(&mut round.unchecked_agents);
        round
            .consul
            .services
            .retain(|s| !unchecked.contains(&s.agent));
        let clashes = core::mem::take(&mut desired.clashes);
        skipped.append(&mut desired.skipped);
        // A service on an external node carries no mirrored check (no agent holds its TTL), so
        // none is planned for it.
        if in_catalog {
            let agentless = self.config.placement == Placement::Agentless;
            for d in desired.services.values_mut() {
                let external = agentless
                    || round.failed_hosts.contains(&d.agent)
                    || self.members.membership(&d.agent, self.now) != Membership::Member;
                if external {
                    d.registration
                        .checks
                        .retain(|c| c.probe != CheckProbe::Mirror);
                }
            }
        }
        // External nodes this bridge made that nothing desired is on, and whose listed services
        // all go: removed too.
        let empty_nodes: Vec<String> = if round.external_nodes.is_empty() {
            Vec::new()
        } else {
            let desired_nodes: BTreeSet<&str> = desired
                .services
                .values()
                .map(|d| d.agent.as_str())
                .collect();
            round
                .external_nodes
                .iter()
                .filter(|(place, maker)| {
                    **maker == NodeMaker::Us && !desired_nodes.contains(external_node(place))
                })
                .map(|(node, _)| node.clone())
                .collect()
        };
        let mut plan = plan_sync(
            desired,
            &round.consul,
            &self.config.registration_id,
            &round.purge,
            &excluded,
        );
        // `--migrate-marathon-consul`: its leftovers go with our dead services (sweep.rs).
        let leftovers = self.sweep.take(&round.consul, &mut self.out);
        plan.deregister.extend(leftovers);
        let empty_nodes: Vec<String> = empty_nodes
            .into_iter()
            .filter(|node| {
                let listed = round.consul.services.iter().filter(|s| s.agent == *node);
                let going = |id: &str| plan.deregister.iter().any(|(a, i)| a == node && i == id);
                listed.into_iter().all(|s| going(&s.registration.id))
            })
            .collect();
        let external_nodes = core::mem::take(&mut round.external_nodes);
        // The listing is planned from; dropping it now keeps a warm sync's peak memory down.
        round.consul.services = Vec::new();
        round.consul.checks = Vec::new();
        round.consul.kv = None;
        round.notes.insert(0, source);
        let failed_hosts = core::mem::take(&mut round.failed_hosts);
        const SKIPPED_LINES: usize = 20;
        for line in skipped.iter().take(SKIPPED_LINES) {
            self.log(Level::Warn, line.clone());
        }
        if skipped.len() > SKIPPED_LINES {
            let more = skipped.len() - SKIPPED_LINES;
            self.log(
                Level::Warn,
                alloc::format!("… and {more} more apps or tasks skipped"),
            );
        }
        for (name, ids) in &clashes {
            let message = alloc::format!(
                "skipping apps whose Consul service name clashes: {name} => {}; rename one of them",
                ids.join(", ")
            );
            self.log(Level::Error, message);
        }
        // An external node has no agent to take a status write (none is planned: it carries
        // no mirrored check); a check it no longer has goes through the catalog.
        plan.checks.retain(|write| match write {
            CheckWrite::Update { agent, .. } => !external_nodes.contains_key(agent),
            CheckWrite::Remove { .. } => true,
        });
        let writes_planned = PlannedWrites {
            register: plan.register.len(),
            deregister: plan.deregister.len(),
            checks: plan.checks.len(),
            nodes: empty_nodes.len(),
            kv_ops: plan.kv.len(),
        };
        let writes = writes_planned.register
            + writes_planned.deregister
            + writes_planned.checks
            + writes_planned.nodes;
        if self.config.writes == WriteMode::DryRun {
            self.log_planned_writes(&plan, &empty_nodes, &failed_hosts);
            let round = self.current_round();
            round.notes.push(alloc::format!(
                "dry run: {} writes planned, none made",
                writes + plan.kv.len()
            ));
            return self.advance_sync();
        }
        let mut skipped = 0;
        for service in plan.register {
            let reachable = !failed_hosts.contains(&service.agent)
                && self.members.membership(&service.agent, self.now) == Membership::Member;
            let destination = self.destination(reachable);
            if destination == Destination::Nowhere {
                skipped += 1;
                continue;
            }
            let on_fallback = destination.is_fallback();
            let (target, path, body, timeout) = self.registration_request(&service, on_fallback);
            let awaiting = Awaiting::Sync(id, SyncWait::Register(service, on_fallback));
            self.send(awaiting, target, Method::Put, path, body, timeout);
        }
        let round = self.current_round();
        let sent = [
            (WriteKind::Register, writes_planned.register - skipped),
            (WriteKind::Deregister, writes_planned.deregister),
            (WriteKind::Check, writes_planned.checks),
            (WriteKind::Node, writes_planned.nodes),
            (WriteKind::Kv, writes_planned.kv_ops),
        ];
        for (kind, n) in sent {
            count_write(&mut round.sent, kind, n);
        }
        if skipped > 0 {
            round.notes.push(alloc::format!(
                "{skipped} tasks not registered: their host is a failed node or not a member of the Consul cluster"
            ));
            round.failures += skipped;
        }
        let writes = writes - skipped;
        for (agent, service_id) in &plan.deregister {
            let wait = SyncWait::Deregister(agent.clone(), service_id.clone());
            let awaiting = Awaiting::Sync(id, wait);
            if external_nodes.contains_key(agent) {
                let node = external_node(agent);
                let entry = CatalogEntry::Service(service_id);
                self.send_external_deregistration(awaiting, node, entry);
            } else {
                self.send_deregistration(awaiting, agent, service_id);
            }
        }
        for place in empty_nodes {
            let node = String::from(external_node(&place));
            let awaiting = Awaiting::Sync(id, SyncWait::RemoveNode(node.clone()));
            self.send_external_deregistration(awaiting, &node, CatalogEntry::Node);
        }
        for write in plan.checks {
            let awaiting = Awaiting::Sync(id, SyncWait::CheckWrite(write.clone()));
            match &write {
                CheckWrite::Remove { agent, check_id } if external_nodes.contains_key(agent) => {
                    let entry = CatalogEntry::Check(check_id);
                    self.send_external_deregistration(awaiting, external_node(agent), entry);
                }
                CheckWrite::Update { agent, .. } | CheckWrite::Remove { agent, .. } => {
                    let target = Target::Agent(agent.clone());
                    self.send_check_write(awaiting, target, &write);
                }
            }
        }
        let batches = self.send_kv_ops(&plan.kv, |n| Awaiting::Sync(id, SyncWait::KvWrite(n)));
        let round = self.current_round();
        round.writes_pending = writes + batches;
        round.writes = writes + batches;
        self.advance_sync();
    }

    /// `--dry-run`: every write the plan holds, one line each, where it would go.
    fn log_planned_writes(
        &mut self,
        plan: &crate::plan::SyncPlan,
        empty_nodes: &[String],
        failed_hosts: &BTreeSet<String>,
    ) {
        let mut lines = Vec::new();
        for service in &plan.register {
            let reachable = !failed_hosts.contains(&service.agent)
                && self.members.membership(&service.agent, self.now) == Membership::Member;
            let place = Self::destination_name(self.destination(reachable), &service.agent);
            let r = &service.registration;
            lines.push(alloc::format!(
                "would register {} ({}) on {place}",
                r.id,
                r.name
            ));
        }
        for (agent, id) in &plan.deregister {
            lines.push(alloc::format!(
                "would deregister {id} from {}",
                external_node(agent)
            ));
        }
        for write in &plan.checks {
            lines.push(match write {
                CheckWrite::Update {
                    agent,
                    check_id,
                    state,
                } => alloc::format!(
                    "would set check {check_id} on {} to {:?}",
                    external_node(agent),
                    state.status
                ),
                CheckWrite::Remove { agent, check_id } => alloc::format!(
                    "would remove check {check_id} from {}",
                    external_node(agent)
                ),
            });
        }
        for node in empty_nodes {
            lines.push(alloc::format!(
                "would remove external node {}",
                external_node(node)
            ));
        }
        for op in &plan.kv {
            let verb = match op {
                crate::consul::TxnOp::Set { .. } => "set",
                crate::consul::TxnOp::Delete { .. } => "delete",
                crate::consul::TxnOp::CheckSession { .. } => continue,
            };
            lines.push(alloc::format!(
                "would {verb} KV key {}",
                crate::marathon::ids::Shown(op.key())
            ));
        }
        for line in lines {
            self.log(Level::Info, alloc::format!("dry run: {line}"));
        }
    }

    fn finish_sync(&mut self) {
        let Some(round) = self.sync.round.take() else {
            return;
        };
        let complete = round.failures == 0 && round.kv_read && round.consul.services_complete;
        let result = if complete {
            SyncResult::Complete
        } else {
            SyncResult::Incomplete
        };
        let duration = self.now - round.started_at;
        self.metrics
            .sync_finished(result, duration, self.now, &round.sent);
        let mut message = alloc::format!(
            "sync done in {} ms: {} running tasks",
            (self.now - round.started_at).as_millis(),
            round.running_tasks
        );
        for note in &round.notes {
            message.push_str("; ");
            message.push_str(note);
        }
        if round.failures > 0 {
            message.push_str(&alloc::format!(
                "; {} writes failed (see above), retried next sync",
                round.failures
            ));
        }
        let level = if complete { Level::Info } else { Level::Warn };
        self.log(level, message);
        self.sync.last = Some(SyncReport {
            finished_at: self.now,
            outcome: result,
            duration,
            writes: round.writes,
        });
        if !round.consul.services_complete {
            // Terminated apps whose services could not be listed are purged next time.
            self.sync.terminated.extend(round.purge.apps);
        }
        self.schedule_next_sync(round.started_at);
    }

    fn abort_sync(&mut self, reason: String) {
        let Some(round) = self.sync.round.take() else {
            return;
        };
        let duration = self.now - round.started_at;
        self.metrics
            .sync_finished(SyncResult::Failed, duration, self.now, &round.sent);
        self.log(
            Level::Error,
            alloc::format!("sync failed, nothing written: {reason}; next sync retries"),
        );
        self.sync.last = Some(SyncReport {
            finished_at: self.now,
            outcome: SyncResult::Failed,
            duration,
            writes: 0,
        });
        self.schedule_next_sync(round.started_at);
    }

    /// Logs how far the running sync is, when its progress line is due: the reads still
    /// pending, or the writes answered of those planned.
    pub(super) fn on_sync_progress_timer(&mut self) {
        let now = self.now;
        let Some(round) = self.sync.round.as_mut() else {
            return;
        };
        if round.progress_at > now {
            return;
        }
        let elapsed = now.saturating_sub(round.started_at);
        // The next multiple of the period after now: a late wake-up logs once, not once per
        // period missed.
        let periods = elapsed.as_nanos() / PROGRESS_EVERY.as_nanos() + 1;
        let periods = u32::try_from(periods).unwrap_or(u32::MAX);
        round.progress_at = round.started_at + PROGRESS_EVERY.saturating_mul(periods);
        let message = if round.writing {
            alloc::format!(
                "sync running for {} s: {} of {} writes made",
                elapsed.as_secs(),
                round.writes.saturating_sub(round.writes_pending),
                round.writes
            )
        } else {
            alloc::format!(
                "sync running for {} s: reading, {} reads pending",
                elapsed.as_secs(),
                round.reads_pending
            )
        };
        self.log(Level::Info, message);
    }

    /// The next tick after now, counting from the round's start: ticks missed while it ran are
    /// skipped rather than run back to back.
    fn schedule_next_sync(&mut self, started_at: Duration) {
        if core::mem::take(&mut self.sync.again) {
            return self.start_sync();
        }
        let interval = self.sync.interval;
        if interval.is_zero() {
            self.sync.next_at = None;
            return;
        }
        let elapsed = self.now.saturating_sub(started_at);
        let ticks = elapsed.as_nanos() / interval.as_nanos() + 1;
        let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
        self.sync.next_at = Some(started_at + interval.saturating_mul(ticks));
    }
}

/// Where the services of external node `node` are observed: apart from an agent of the same
/// address, so each is deregistered where it is (`@` never begins a host).
fn external_place(node: &str) -> String {
    alloc::format!("@{node}")
}

/// The node of an external place.
fn external_node(place: &str) -> &str {
    place.strip_prefix('@').unwrap_or(place)
}

/// A Consul listing failed: the round still registers what is missing but purges nothing.
fn round_unlisted(round: &mut SyncRound, why: String) {
    if round.consul.services_complete {
        round
            .notes
            .push(alloc::format!("services not fully listed ({why})"));
    }
    round.consul.services_complete = false;
}
