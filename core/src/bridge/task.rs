//! A task's status update, end to end: RUNNING registers the task on its host's agent, then reads
//! the app and makes its KV labels match (unless they were made to match for the app version the
//! task runs); stop states deregister it. Updates of one task run one after another, in arrival
//! order, and a RUNNING that arrives after the task ended is stale and ignored. Tasks and apps
//! touched here are remembered so a concurrent sync does not undo them.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use super::members::Membership;
use super::names::NameClaim;
use super::writes::{Destination, Registered, Written};
use super::{Answer, Awaiting, Bridge};
use crate::config::{Placement, RegisterWhen};
use crate::consul::{
    agent_host, kv_tree_path, parse_agent_services, parse_kv_entries, service_name,
    task_of_service, Registration, AGENT_SERVICES_PATH, APP_ID_TAG_PREFIX, KV_ROOT,
    REG_ID_TAG_PREFIX,
};
use crate::consul::{node_services_path, parse_node_services, CatalogEntry};
use crate::io::{InboundId, Level, Method, Target};
use crate::marathon::ids::Shown;
use crate::marathon::{
    app_path, parse_app_definition, AppDefinition, StatusUpdate, TaskAction, TaskHealth,
};
use crate::plan::{
    plan_app_labels, AppServices, CheckWrite, DesiredService, Registering, TaskFacts,
};

/// Ended task ids remembered to recognise stale RUNNING updates; the oldest are forgotten first.
const ENDED_TASKS_REMEMBERED: usize = 16_384;
/// Updates of one task queued behind the one in progress; more are dropped (a callback gets 503,
/// so Marathon retries it; the stream's next sync repairs what a dropped one would have done).
const MAX_QUEUED_PER_TASK: usize = 1024;
/// Updates in progress or queued, over all tasks: bounds the memory a flood of updates for an
/// agent that never answers can take (about 1.5 KB each). Past it updates are dropped as above,
/// and a dropped stream update asks for a sync.
const MAX_PENDING_UPDATES: usize = 16_384;
/// Updates in progress or queued for the tasks of one host.
const MAX_PENDING_PER_HOST: usize = 4_096;

/// Identifies one status update being worked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ChainId(u64);

#[derive(Debug)]
enum TaskStep {
    /// Waiting for the catalog to say whether the task's host is a Consul member.
    AwaitMembers,
    /// Registering `service`; `rest` follow, one at a time. Then the label phase (`then`).
    Register {
        service: DesiredService,
        on_fallback: bool,
        rest: VecDeque<DesiredService>,
        then: AfterRegistering,
    },
    FetchApp,
    /// Registered before the app's shape was known; another update of the app is reading it,
    /// and corrects this one with what it reads.
    AwaitShape,
    /// The app's definition no longer has service `id` of the task: deregistering it, then
    /// `rest`, then reading the app's labels.
    DeregisterReplaced {
        agent: String,
        id: String,
        rest: VecDeque<String>,
        app: AppDefinition,
    },
    ReadLabels {
        app: AppDefinition,
    },
    WriteLabels {
        pending: usize,
        app_version: Option<String>,
    },
    /// Listing the agent's (or the external node's) services, to deregister only the task's
    /// services that are ours.
    ListTaskServices {
        agent: String,
        place: ServicePlace,
    },
    /// Deregistering `id`; `rest` follow.
    Deregister {
        agent: String,
        place: ServicePlace,
        id: String,
        rest: VecDeque<String>,
    },
    /// Setting the status of a mirrored check of a service just registered; the rest of the
    /// chain's `statuses` follow, then `then`.
    WriteStatus {
        write: CheckWrite,
        on_fallback: bool,
        then: AfterRegistering,
    },
}

/// Where a task's services are: on its host's agent, or on an external node named after the
/// host (`--fallback-mode catalog`, `--agentless`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServicePlace {
    Agent,
    External,
}

/// What a running task's update does, given its app and health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunningAct {
    /// Register its services.
    Register,
    /// Leave them as they are until Marathon has a health verdict.
    AwaitHealth,
    /// Deregister them: a health check fails under `--register-when-healthy`.
    Withdraw,
    /// The app's health checks are not known: read the app and its tasks first.
    ReadHealth,
}

/// How a chain's registrations stand against its app's known shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegisteredShape {
    /// Nothing registered, or what the known shape gives.
    Current,
    /// Registered before the app's shape was known.
    Unknown,
    /// The known shape gives other services.
    Stale,
}

/// Why a chain reads its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppReadFor {
    /// Its services and its labels (the chain syncs the app's KV).
    Labels,
    /// Its services only: another update of the app syncs the labels, and this one registered
    /// before the app's shape was known.
    Shape,
}

/// What follows a task's registrations.
#[derive(Debug)]
enum AfterRegistering {
    /// The label phase: read the app (unless its labels are in place for this version).
    Labels,
    /// The app was read and gave other services: deregister those it no longer has, then read
    /// its labels.
    Corrected {
        replaced: VecDeque<String>,
        app: Box<AppDefinition>,
    },
}

#[derive(Debug)]
struct Chain {
    reply_to: Option<InboundId>,
    update: StatusUpdate,
    /// The services this update has registered, as registered.
    registered: Vec<DesiredService>,
    /// Statuses of mirrored checks to write once the registrations in progress are done.
    statuses: VecDeque<CheckWrite>,
    /// What its read of the app is for.
    reads_app_for: AppReadFor,
    step: TaskStep,
    error: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Tasks {
    next_chain: u64,
    chains: BTreeMap<ChainId, Chain>,
    /// Tasks with an update in progress, and the updates queued behind it.
    busy: BTreeMap<String, VecDeque<(Option<InboundId>, StatusUpdate)>>,
    /// Updates in all of `busy`'s queues.
    queued: usize,
    /// Updates in progress or queued, by task host: a host whose agent hangs cannot take the
    /// places of the others.
    pending_by_host: BTreeMap<String, usize>,
    ended: BTreeSet<String>,
    ended_order: VecDeque<String>,
    /// Apps whose labels an update is syncing, by service name.
    label_syncs: BTreeMap<String, LabelSync>,
}

#[derive(Debug)]
struct LabelSync {
    /// The app version of the update syncing the labels.
    app_version: Option<String>,
    /// An update of another (or unknown) version arrived meanwhile: read the app once more.
    again: bool,
    /// Updates that registered before the app's shape was known, waiting for this read to
    /// correct them (`TaskStep::AwaitShape`).
    parked: Vec<ChainId>,
}

impl Tasks {
    /// An update of a task on `host` is over.
    fn update_done(&mut self, host: &str) {
        if let Some(n) = self.pending_by_host.get_mut(host) {
            *n -= 1;
            if *n == 0 {
                self.pending_by_host.remove(host);
            }
        }
    }

    /// True if the task reached a final state, so it can never run again.
    pub(super) fn has_ended(&self, task_id: &str) -> bool {
        self.ended.contains(task_id)
    }

    fn remember_ended(&mut self, task_id: &str) {
        if self.ended.insert(String::from(task_id)) {
            self.ended_order.push_back(String::from(task_id));
            if self.ended_order.len() > ENDED_TASKS_REMEMBERED {
                if let Some(oldest) = self.ended_order.pop_front() {
                    self.ended.remove(&oldest);
                }
            }
        }
    }
}

impl Bridge {
    /// Starts work on `update`, or queues it behind the update of the same task in progress.
    pub(super) fn handle_status_update(
        &mut self,
        reply_to: Option<InboundId>,
        update: StatusUpdate,
    ) {
        let pending = self.tasks.busy.len() + self.tasks.queued;
        let on_host = self.tasks.pending_by_host.get(&update.host).copied();
        let queue_len = self.tasks.busy.get(&update.task_id).map(VecDeque::len);
        let refusal = if pending >= MAX_PENDING_UPDATES {
            Some("too many updates are waiting")
        } else if on_host.is_some_and(|n| n >= MAX_PENDING_PER_HOST) {
            Some("too many updates of tasks on this host are waiting")
        } else if queue_len.is_some_and(|len| len >= MAX_QUEUED_PER_TASK) {
            Some("too many updates of this task are queued")
        } else {
            None
        };
        if let Some(why) = refusal {
            self.metrics.event_dropped();
            let message = alloc::format!(
                "dropped a {} update of {}: {why}",
                update.state.name(),
                update.task_id
            );
            self.log(Level::Warn, message);
            match reply_to {
                Some(id) => self.reply_error(id, 503, &alloc::format!("{why}; retry later")),
                // Nobody will resend a stream event: a sync repairs what it would have done.
                None => self.request_sync("stream events were dropped"),
            }
            return;
        }
        *self
            .tasks
            .pending_by_host
            .entry(update.host.clone())
            .or_default() += 1;
        if let Some(queue) = self.tasks.busy.get_mut(&update.task_id) {
            queue.push_back((reply_to, update));
            self.tasks.queued += 1;
            return;
        }
        self.tasks
            .busy
            .insert(update.task_id.clone(), VecDeque::new());
        if let Some(finished) = self.start_chain(reply_to, update) {
            self.finish_chains(finished);
        }
    }

    /// Starts the work `update` needs; an update that needs no request is handed back finished.
    fn start_chain(
        &mut self,
        reply_to: Option<InboundId>,
        update: StatusUpdate,
    ) -> Option<Finished> {
        self.freshness.update_started();
        if self.sync.is_running() {
            self.freshness.task_touched_during_sync(&update.task_id);
        }
        self.tasks.next_chain += 1;
        let chain_id = ChainId(self.tasks.next_chain);
        match update.state.action() {
            TaskAction::Ignore => return Some(Finished::ok(reply_to, update)),
            TaskAction::Register if self.tasks.has_ended(&update.task_id) => {
                let message = alloc::format!(
                    "ignoring {} of {}: the task already ended",
                    update.state.name(),
                    update.task_id
                );
                self.log(Level::Info, message);
                return Some(Finished::ok(reply_to, update));
            }
            TaskAction::Register => {
                let app_id = update.app_id.as_deref().unwrap_or_default();
                if let NameClaim::Clashes(ids) = self.names.claim(app_id) {
                    let message = alloc::format!(
                        "not registering {}: apps {} all map to Consul service {}; rename one of them",
                        update.task_id,
                        ids.join(", "),
                        service_name(app_id)
                    );
                    self.log(Level::Error, message.clone());
                    return Some(Finished::refused(reply_to, update, 409, message));
                }
            }
            TaskAction::Deregister if update.state.is_final() => {
                self.tasks.remember_ended(&update.task_id);
            }
            TaskAction::Deregister => {}
        }
        match self.members.membership(&update.host, self.now) {
            Membership::Unknown => {
                let chain = Chain {
                    reply_to,
                    update,
                    registered: Vec::new(),
                    statuses: VecDeque::new(),
                    reads_app_for: AppReadFor::Labels,
                    step: TaskStep::AwaitMembers,
                    error: None,
                };
                self.tasks.chains.insert(chain_id, chain);
                self.await_members(chain_id);
                None
            }
            known => self.act_on_agent(chain_id, reply_to, update, known),
        }
    }

    /// Standing down as leader: every update in progress or queued is dropped, a callback's
    /// with a 503 (Marathon's leader sends it again, to whichever instance leads).
    pub(super) fn abandon_updates(&mut self) {
        let chains = core::mem::take(&mut self.tasks.chains);
        let queued = core::mem::take(&mut self.tasks.busy);
        self.tasks.queued = 0;
        self.tasks.pending_by_host.clear();
        self.tasks.label_syncs.clear();
        let callbacks = chains
            .into_values()
            .filter_map(|chain| chain.reply_to)
            .chain(
                queued
                    .into_values()
                    .flatten()
                    .filter_map(|(reply_to, _)| reply_to),
            );
        let callbacks: Vec<InboundId> = callbacks.collect();
        for id in callbacks {
            self.reply_error(id, 503, "this instance is no longer the leader");
        }
    }

    /// The catalog was read for the update `chain_id` was waiting with.
    pub(super) fn on_members_known(&mut self, chain_id: ChainId) {
        let Some(chain) = self.tasks.chains.remove(&chain_id) else {
            return;
        };
        let membership = match self.members.membership(&chain.update.host, self.now) {
            Membership::Member => Membership::Member,
            // Just read: a host still missing is a stranger.
            Membership::Stranger | Membership::Unknown => Membership::Stranger,
        };
        if let Some(finished) =
            self.act_on_agent(chain_id, chain.reply_to, chain.update, membership)
        {
            self.finish_chains(finished);
        }
    }

    /// Sends the first request of `update` now that its host's membership is known; a host that
    /// is not a member gets none: the update registers on the main Consul with `--fallback`, and
    /// fails otherwise, as with an agent that cannot be reached.
    fn act_on_agent(
        &mut self,
        chain_id: ChainId,
        reply_to: Option<InboundId>,
        update: StatusUpdate,
        membership: Membership,
    ) -> Option<Finished> {
        let agent = agent_host(&update.host);
        let act = match update.state.action() {
            TaskAction::Register => Some(self.running_act(&update)),
            TaskAction::Deregister | TaskAction::Ignore => None,
        };
        if act == Some(RunningAct::ReadHealth) {
            let app_id = update.app_id.clone().unwrap_or_default();
            let _ = self.follow_health(&app_id, &update.task_id);
            return Some(Finished::ok(reply_to, update));
        }
        let registers = matches!(act, Some(RunningAct::Register | RunningAct::AwaitHealth));
        let agentless = self.config.placement == Placement::Agentless;
        // Where the task's services are for a stop: an external node if that is where they go.
        let external =
            agentless || (membership != Membership::Member && self.registers_in_catalog());
        let step = match membership {
            Membership::Member | Membership::Stranger if registers => {
                let destination = self.destination(membership == Membership::Member);
                if destination == Destination::Nowhere {
                    return Some(self.stranger_refused(reply_to, update));
                }
                let on_fallback = destination.is_fallback();
                if membership == Membership::Stranger {
                    let place = Self::destination_name(destination, &agent);
                    let message = alloc::format!(
                        "{agent} is not a member of the Consul cluster; registering {} on {place}",
                        update.task_id
                    );
                    self.log(Level::Warn, message);
                }
                let mut services: VecDeque<DesiredService> = self
                    .task_services(&update)
                    .into_iter()
                    .map(|registration| DesiredService {
                        agent: agent.clone(),
                        registration,
                    })
                    .collect();
                let Some(service) = services.pop_front() else {
                    // `--require-label` leaves the app out, or its health is not known yet; its
                    // labels still go to KV.
                    let chain = Chain {
                        reply_to,
                        update,
                        registered: Vec::new(),
                        statuses: VecDeque::new(),
                        reads_app_for: AppReadFor::Labels,
                        step: TaskStep::FetchApp,
                        error: None,
                    };
                    self.labels_phase(chain_id, chain);
                    return None;
                };
                self.send_registration(Awaiting::Task(chain_id), &service, on_fallback);
                TaskStep::Register {
                    service,
                    on_fallback,
                    rest: services,
                    then: AfterRegistering::Labels,
                }
            }
            _ if external => {
                let timeout = self.config.request_timeout;
                let path = node_services_path(&agent);
                let awaiting = Awaiting::Task(chain_id);
                self.send(awaiting, Target::Consul, Method::Get, path, None, timeout);
                TaskStep::ListTaskServices {
                    agent,
                    place: ServicePlace::External,
                }
            }
            Membership::Member => {
                let timeout = self.config.request_timeout;
                let path = String::from(AGENT_SERVICES_PATH);
                let target = Target::Agent(agent.clone());
                let awaiting = Awaiting::Task(chain_id);
                self.send(awaiting, target, Method::Get, path, None, timeout);
                TaskStep::ListTaskServices {
                    agent,
                    place: ServicePlace::Agent,
                }
            }
            Membership::Stranger | Membership::Unknown => {
                return Some(self.stranger_refused(reply_to, update))
            }
        };
        let chain = Chain {
            reply_to,
            update,
            registered: Vec::new(),
            statuses: VecDeque::new(),
            reads_app_for: AppReadFor::Labels,
            step,
            error: None,
        };
        self.tasks.chains.insert(chain_id, chain);
        None
    }

    /// The registrations of a running task as far as the bridge knows its app: from the shape
    /// its last read (by a sync or an update) gave for the task's app version, else consular
    /// 1.3.0's one service, corrected once the app is read.
    fn task_services(&self, update: &StatusUpdate) -> Vec<Registration> {
        let app_id = update.app_id.as_deref().unwrap_or_default();
        let version = update.app_version.as_deref();
        let default;
        let services = match self.known_services(update) {
            Some(known) => known,
            None => {
                default = AppServices::default_for(app_id, version);
                &default
            }
        };
        let facts = TaskFacts {
            id: &update.task_id,
            host: &update.host,
            ports: &update.ports,
            addresses: &update.ip_addresses,
            health: &update.health,
        };
        services.registrations(&self.service_rules, facts)
    }

    /// What a running task's update does: from its app's known shape and the update's health;
    /// an app not read yet registers consular 1.3.0's service (corrected once it is read),
    /// unless only healthy tasks register: then its health checks must be known first. An
    /// update made by a health read (its health reported) never asks for another read: it takes
    /// the shape that read left, whatever app version the task runs.
    fn running_act(&self, update: &StatusUpdate) -> RunningAct {
        let name = service_name(update.app_id.as_deref().unwrap_or_default());
        let version = update.app_version.as_deref();
        let reported = update.health != TaskHealth::Unreported;
        let known = self.freshness.services_of(&name, version).or_else(|| {
            reported
                .then(|| self.freshness.services_of(&name, None))
                .flatten()
        });
        match known {
            Some(services) => match services.registering(&self.service_rules, &update.health) {
                Registering::Now => RunningAct::Register,
                Registering::AwaitHealth => RunningAct::AwaitHealth,
                Registering::Withdraw => RunningAct::Withdraw,
            },
            None if reported => RunningAct::AwaitHealth,
            None if self.config.register_when == RegisterWhen::Healthy => RunningAct::ReadHealth,
            None => RunningAct::Register,
        }
    }

    /// The services of the update's app version, as last read; for an update a health read made,
    /// the app as that read left it.
    fn known_services(&self, update: &StatusUpdate) -> Option<&AppServices> {
        let name = service_name(update.app_id.as_deref().unwrap_or_default());
        let version = update.app_version.as_deref();
        let reported = update.health != TaskHealth::Unreported;
        self.freshness.services_of(&name, version).or_else(|| {
            reported
                .then(|| self.freshness.services_of(&name, None))
                .flatten()
        })
    }

    fn send_task_deregistration(
        &mut self,
        awaiting: Awaiting,
        agent: &str,
        place: ServicePlace,
        id: &str,
    ) {
        match place {
            ServicePlace::Agent => self.send_deregistration(awaiting, agent, id),
            ServicePlace::External => {
                let entry = CatalogEntry::Service(id);
                self.send_external_deregistration(awaiting, agent, entry)
            }
        }
    }

    fn stranger_refused(&mut self, reply_to: Option<InboundId>, update: StatusUpdate) -> Finished {
        let error = alloc::format!(
            "{} is not a member of the Consul cluster: no request was sent to it",
            agent_host(&update.host)
        );
        self.log(
            Level::Error,
            alloc::format!("cannot act on {}: {error}", update.task_id),
        );
        Finished::refused(reply_to, update, 502, error)
    }

    /// `kv_ops` is the number of operations when `answer` answers a label transaction.
    pub(super) fn on_task_answer(&mut self, chain_id: ChainId, kv_ops: usize, answer: Answer) {
        let Some(mut chain) = self.tasks.chains.remove(&chain_id) else {
            return;
        };
        let awaiting = Awaiting::Task(chain_id);
        let app_id = chain.update.app_id.clone().unwrap_or_default();
        let step = core::mem::replace(&mut chain.step, TaskStep::AwaitMembers);
        chain.step = match step {
            TaskStep::Register {
                service,
                on_fallback,
                mut rest,
                then,
            } => match self.registration_done(&service, on_fallback, &answer) {
                Registered::Done => {
                    if self.keeps_mirrored_checks(on_fallback) {
                        chain.statuses.extend(status_writes(&service));
                    }
                    chain.registered.push(service);
                    match rest.pop_front() {
                        Some(next) => {
                            self.send_registration(awaiting, &next, on_fallback);
                            TaskStep::Register {
                                service: next,
                                on_fallback,
                                rest,
                                then,
                            }
                        }
                        None => return self.after_registering(chain_id, chain, on_fallback, then),
                    }
                }
                Registered::RetryOnMainConsul => {
                    self.send_registration(awaiting, &service, true);
                    TaskStep::Register {
                        service,
                        on_fallback: true,
                        rest,
                        then,
                    }
                }
                Registered::Failed => {
                    return self.finish_chain(
                        chain.reply_to,
                        chain.update,
                        Some(alloc::format!("cannot register: {}", answer.summary())),
                    )
                }
            },
            TaskStep::FetchApp => match answer.parsed(parse_app_definition) {
                Ok(Some(app))
                    if app.id.trim_start_matches('/') == app_id.trim_start_matches('/') =>
                {
                    return self.app_read(chain_id, chain, app)
                }
                _ if chain.reads_app_for == AppReadFor::Shape => {
                    // The registrations stand as made; the next sync corrects them.
                    let message = alloc::format!(
                        "cannot read app {app_id} to correct {}'s services: {}",
                        chain.update.task_id,
                        answer.summary()
                    );
                    self.log(Level::Warn, message);
                    return self.finish_chain(chain.reply_to, chain.update, None);
                }
                Ok(Some(app)) => {
                    let message = alloc::format!(
                        "Marathon answered app {} for app {app_id}; its labels are left as they are",
                        Shown(&app.id)
                    );
                    self.log(Level::Error, message.clone());
                    let error = Err(message);
                    return self.labels_done(chain_id, chain, error);
                }
                Ok(None) => {
                    let message = alloc::format!(
                        "app {app_id} no longer exists in Marathon; its labels are left as they are"
                    );
                    self.log(Level::Warn, message);
                    return self.labels_done(chain_id, chain, Ok(None));
                }
                Err(e) => {
                    self.log(
                        Level::Error,
                        alloc::format!("cannot read app {app_id}: {e}"),
                    );
                    let error = Err(alloc::format!("reading app {app_id}: {}", answer.summary()));
                    return self.labels_done(chain_id, chain, error);
                }
            },
            TaskStep::DeregisterReplaced {
                agent,
                id,
                rest,
                app,
            } => {
                if self.deregistration_done(&agent, &id, &answer) == Written::Done {
                    chain.registered.retain(|s| s.registration.id != id);
                }
                return self.deregister_replaced(chain_id, chain, rest, app);
            }
            TaskStep::ReadLabels { app } => {
                let current = match answer.parsed(parse_kv_entries) {
                    Ok(entries) => entries.unwrap_or_default(),
                    Err(e) => {
                        self.log(Level::Error, alloc::format!("cannot read labels: {e}"));
                        let error = Err(alloc::format!("reading labels: {}", answer.summary()));
                        return self.labels_done(chain_id, chain, error);
                    }
                };
                let name = service_name(&app.id);
                let ops =
                    plan_app_labels(&name, &app.labels, &current, &self.config.registration_id);
                if ops.is_empty() {
                    let synced = Ok(app.version);
                    return self.labels_done(chain_id, chain, synced);
                }
                self.log(
                    Level::Info,
                    alloc::format!("syncing {} label keys of {name}", ops.len()),
                );
                let pending = self.send_kv_ops(&ops, |n| Awaiting::TaskKv(chain_id, n));
                TaskStep::WriteLabels {
                    pending,
                    app_version: app.version,
                }
            }
            TaskStep::WriteLabels {
                pending,
                app_version,
            } => {
                if self.kv_ops_done(kv_ops, &answer) == Written::Failed {
                    chain.error.get_or_insert_with(|| {
                        alloc::format!("writing labels: {}", answer.summary())
                    });
                }
                if pending > 1 {
                    TaskStep::WriteLabels {
                        pending: pending - 1,
                        app_version,
                    }
                } else {
                    let synced = chain.error.take().map_or(Ok(app_version), Err);
                    return self.labels_done(chain_id, chain, synced);
                }
            }
            TaskStep::WriteStatus {
                write,
                on_fallback,
                then,
            } => {
                // A status that did not land is the next sync's to repair; the update stands.
                let _ = self.check_write_done(&write, &answer);
                return self.after_registering(chain_id, chain, on_fallback, then);
            }
            TaskStep::AwaitMembers => TaskStep::AwaitMembers,
            TaskStep::AwaitShape => TaskStep::AwaitShape,
            TaskStep::ListTaskServices { agent, place } => {
                let task_id = chain.update.task_id.clone();
                let listed = match place {
                    ServicePlace::Agent => answer.required(parse_agent_services),
                    ServicePlace::External => answer
                        .required(parse_node_services)
                        .map(|listing| listing.services),
                };
                let listed = match listed {
                    Ok(services) => services,
                    Err(e) => {
                        let message = alloc::format!("cannot list the services of {agent}: {e}");
                        self.log(Level::Error, message);
                        let error = alloc::format!("cannot deregister: {}", answer.summary());
                        return self.finish_chain(chain.reply_to, chain.update, Some(error));
                    }
                };
                let (ours, foreign): (Vec<Registration>, Vec<Registration>) = listed
                    .into_iter()
                    .filter(|s| task_of_service(&s.id) == task_id)
                    .partition(|s| s.is_owned_by(&self.config.registration_id));
                for service in &foreign {
                    let message = alloc::format!(
                        "not deregistering {} from {agent}: it does not carry our {REG_ID_TAG_PREFIX}{} and {APP_ID_TAG_PREFIX} tags",
                        service.id,
                        self.config.registration_id
                    );
                    self.log(Level::Warn, message);
                }
                let mut ids: VecDeque<String> = ours.into_iter().map(|s| s.id).collect();
                let Some(id) = ids.pop_front() else {
                    self.debug(alloc::format!("{task_id} is not registered on {agent}"));
                    return self.finish_chain(chain.reply_to, chain.update, None);
                };
                self.send_task_deregistration(awaiting, &agent, place, &id);
                TaskStep::Deregister {
                    agent,
                    place,
                    id,
                    rest: ids,
                }
            }
            TaskStep::Deregister {
                agent,
                place,
                id,
                mut rest,
            } => {
                if self.deregistration_done(&agent, &id, &answer) == Written::Failed {
                    chain.error.get_or_insert_with(|| {
                        alloc::format!("cannot deregister: {}", answer.summary())
                    });
                }
                match rest.pop_front() {
                    Some(next) => {
                        self.send_task_deregistration(awaiting, &agent, place, &next);
                        TaskStep::Deregister {
                            agent,
                            place,
                            id: next,
                            rest,
                        }
                    }
                    None => return self.finish_chain(chain.reply_to, chain.update, chain.error),
                }
            }
        };
        self.tasks.chains.insert(chain_id, chain);
    }

    /// The registrations in progress are done: write the statuses of their mirrored checks, one
    /// at a time, then go on with `then`.
    fn after_registering(
        &mut self,
        chain_id: ChainId,
        mut chain: Chain,
        on_fallback: bool,
        then: AfterRegistering,
    ) {
        if let Some(write) = chain.statuses.pop_front() {
            let target = match (&write, on_fallback) {
                (_, true) => Target::Consul,
                (CheckWrite::Update { agent, .. } | CheckWrite::Remove { agent, .. }, false) => {
                    Target::Agent(agent.clone())
                }
            };
            self.send_check_write(Awaiting::Task(chain_id), target, &write);
            chain.step = TaskStep::WriteStatus {
                write,
                on_fallback,
                then,
            };
            self.tasks.chains.insert(chain_id, chain);
            return;
        }
        match then {
            AfterRegistering::Labels => self.labels_phase(chain_id, chain),
            AfterRegistering::Corrected { replaced, app } => {
                self.deregister_replaced(chain_id, chain, replaced, *app)
            }
        }
    }

    /// After the registrations: make the app's KV labels match, unless they are in place for the
    /// task's app version, or another update of the app is already at it.
    fn labels_phase(&mut self, chain_id: ChainId, mut chain: Chain) {
        let app_id = chain.update.app_id.clone().unwrap_or_default();
        let name = service_name(&app_id);
        if self.sync.is_running() {
            self.freshness.app_touched_during_sync(&name);
        }
        let version = chain.update.app_version.as_ref();
        if self.freshness.labels_match(&name, version) {
            return self.finish_chain(chain.reply_to, chain.update, None);
        }
        let shape = self.registered_shape(&chain);
        if let Some(sync) = self.tasks.label_syncs.get_mut(&name) {
            // Another update of this app is syncing its labels; it re-reads once when done
            // (unless it syncs this same version), so this one need not race it (and lose with
            // a stale index).
            sync.again |= version.is_none() || sync.app_version.as_ref() != version;
            // But what this one registered may still need the app's shape to be corrected: the
            // other's read corrects it too, unless the shape is known and differs (then this one
            // reads the app itself, and leaves the labels to the other).
            if shape == RegisteredShape::Unknown {
                sync.parked.push(chain_id);
                chain.step = TaskStep::AwaitShape;
                self.tasks.chains.insert(chain_id, chain);
                return;
            }
            if shape == RegisteredShape::Stale {
                chain.reads_app_for = AppReadFor::Shape;
                let timeout = self.config.request_timeout;
                let path = app_path(&app_id);
                let awaiting = Awaiting::Task(chain_id);
                self.send(awaiting, Target::Marathon, Method::Get, path, None, timeout);
                chain.step = TaskStep::FetchApp;
                self.tasks.chains.insert(chain_id, chain);
                return;
            }
            return self.finish_chain(chain.reply_to, chain.update, None);
        }
        let sync = LabelSync {
            app_version: chain.update.app_version.clone(),
            again: false,
            parked: Vec::new(),
        };
        self.tasks.label_syncs.insert(name, sync);
        let timeout = self.config.request_timeout;
        let path = app_path(&app_id);
        let awaiting = Awaiting::Task(chain_id);
        self.send(awaiting, Target::Marathon, Method::Get, path, None, timeout);
        chain.step = TaskStep::FetchApp;
        self.tasks.chains.insert(chain_id, chain);
    }

    /// The updates waiting for the read of app `name` to correct them.
    fn take_parked(&mut self, name: &str) -> Vec<ChainId> {
        self.tasks
            .label_syncs
            .get_mut(name)
            .map(|sync| core::mem::take(&mut sync.parked))
            .unwrap_or_default()
    }

    /// How what `chain` registered stands against its app's known shape.
    fn registered_shape(&self, chain: &Chain) -> RegisteredShape {
        if chain.registered.is_empty() {
            return RegisteredShape::Current;
        }
        if self.known_services(&chain.update).is_none() {
            return RegisteredShape::Unknown;
        }
        let wanted = self.task_services(&chain.update);
        let registered = chain.registered.iter().map(|r| &r.registration);
        if wanted.iter().eq(registered) {
            RegisteredShape::Current
        } else {
            RegisteredShape::Stale
        }
    }

    /// The app's definition was read: remember the services it gives, correct the task's
    /// registrations if they differ (registering the new before removing the replaced), then
    /// read the app's labels.
    fn app_read(&mut self, chain_id: ChainId, mut chain: Chain, app: AppDefinition) {
        let services = AppServices::of(&app, &self.service_rules);
        if chain.reads_app_for == AppReadFor::Labels {
            self.learn_app(services.clone());
            for parked_id in self.take_parked(&service_name(&app.id)) {
                if let Some(mut parked) = self.tasks.chains.remove(&parked_id) {
                    parked.reads_app_for = AppReadFor::Shape;
                    self.app_read(parked_id, parked, app.clone());
                }
            }
        }
        if self.members.membership(&chain.update.host, self.now) != Membership::Member {
            // Registered on the main Consul (fallback), if anywhere: corrections would reach the
            // task's host, which is not a member. The app's shape is still remembered.
            self.learn_app(services);
            return self.deregister_replaced(chain_id, chain, VecDeque::new(), app);
        }
        let agent = agent_host(&chain.update.host);
        let facts = TaskFacts {
            id: &chain.update.task_id,
            host: &chain.update.host,
            ports: &chain.update.ports,
            addresses: &chain.update.ip_addresses,
            health: &chain.update.health,
        };
        let wanted = services.registrations(&self.service_rules, facts);
        self.learn_app(services);
        let mut register: VecDeque<DesiredService> = wanted
            .iter()
            .filter(|w| !chain.registered.iter().any(|r| r.registration == **w))
            .map(|registration| DesiredService {
                agent: agent.clone(),
                registration: registration.clone(),
            })
            .collect();
        let replaced: VecDeque<String> = chain
            .registered
            .iter()
            .map(|r| r.registration.id.clone())
            .filter(|id| !wanted.iter().any(|w| &w.id == id))
            .collect();
        match register.pop_front() {
            Some(service) => {
                self.send_registration(Awaiting::Task(chain_id), &service, false);
                chain.step = TaskStep::Register {
                    service,
                    on_fallback: false,
                    rest: register,
                    then: AfterRegistering::Corrected {
                        replaced,
                        app: Box::new(app),
                    },
                };
                self.tasks.chains.insert(chain_id, chain);
            }
            None => self.deregister_replaced(chain_id, chain, replaced, app),
        }
    }

    /// Remembers what an app's tasks become, as just read, and says what its labels could not give
    /// them: once per app version, not at every read.
    pub(super) fn learn_app(&mut self, services: AppServices) {
        let name = service_name(services.app_id());
        if self.freshness.services_of(&name, services.version()) != Some(&services) {
            for note in services.notes() {
                let message = alloc::format!("app {}: {note}", services.app_id());
                self.log(Level::Warn, message);
            }
        }
        self.freshness.remember_services(&name, services);
    }

    /// Deregisters the first of `replaced`, or, with none left, reads the app's labels.
    fn deregister_replaced(
        &mut self,
        chain_id: ChainId,
        mut chain: Chain,
        mut replaced: VecDeque<String>,
        app: AppDefinition,
    ) {
        let awaiting = Awaiting::Task(chain_id);
        chain.step = match replaced.pop_front() {
            Some(id) => {
                let agent = agent_host(&chain.update.host);
                self.send_deregistration(awaiting, &agent, &id);
                TaskStep::DeregisterReplaced {
                    agent,
                    id,
                    rest: replaced,
                    app,
                }
            }
            None if chain.reads_app_for == AppReadFor::Shape => {
                return self.finish_chain(chain.reply_to, chain.update, None);
            }
            None => {
                let prefix = alloc::format!("{KV_ROOT}{}/", service_name(&app.id));
                let path = kv_tree_path(&prefix);
                let timeout = self.config.request_timeout;
                self.send(awaiting, Target::Consul, Method::Get, path, None, timeout);
                TaskStep::ReadLabels { app }
            }
        };
        self.tasks.chains.insert(chain_id, chain);
    }

    /// The label sync of a chain ended: `Ok` with the app version whose labels KV now holds (if
    /// Marathon said), or the error. If another update of the app asked for a sync meanwhile, the
    /// chain reads the app again; otherwise it finishes.
    fn labels_done(
        &mut self,
        chain_id: ChainId,
        mut chain: Chain,
        synced: Result<Option<String>, String>,
    ) {
        let app_id = chain.update.app_id.clone().unwrap_or_default();
        let name = service_name(&app_id);
        match &synced {
            Ok(Some(version)) => self.freshness.labels_synced(&name, version),
            // Unknown now: a failed write may have left some keys behind.
            _ => self.freshness.labels_unknown(&name),
        }
        if let Some(sync) = self.tasks.label_syncs.get_mut(&name).filter(|s| s.again) {
            sync.again = false;
            let timeout = self.config.request_timeout;
            let awaiting = Awaiting::Task(chain_id);
            self.send(
                awaiting,
                Target::Marathon,
                Method::Get,
                app_path(&app_id),
                None,
                timeout,
            );
            chain.step = TaskStep::FetchApp;
            chain.error = None;
            self.tasks.chains.insert(chain_id, chain);
            return;
        }
        // Updates still waiting were not corrected (the read failed, or named no app): their
        // registrations stand as made, and the next sync corrects them.
        for parked_id in self.take_parked(&name) {
            if let Some(parked) = self.tasks.chains.remove(&parked_id) {
                self.finish_chain(parked.reply_to, parked.update, None);
            }
        }
        self.tasks.label_syncs.remove(&name);
        self.finish_chain(chain.reply_to, chain.update, synced.err());
    }

    /// Replies (502 if `error`), then starts the next queued update of the same task.
    fn finish_chain(
        &mut self,
        reply_to: Option<InboundId>,
        update: StatusUpdate,
        error: Option<String>,
    ) {
        self.finish_chains(Finished {
            reply_to,
            update,
            error: error.map(|message| (502, message)),
        });
    }

    /// Finishes `first`, then every queued update of its task that needs no request, in a loop:
    /// a long queue of such updates must not nest one call per update.
    fn finish_chains(&mut self, first: Finished) {
        let mut next_finished = Some(first);
        while let Some(Finished {
            reply_to,
            update,
            error,
        }) = next_finished.take()
        {
            if let Some(id) = reply_to {
                match &error {
                    None => self.reply(id, 200, String::from("{\"status\": \"ok\"}")),
                    Some((status, message)) => self.reply_error(id, *status, message),
                }
            }
            self.tasks.update_done(&update.host);
            let queued = self
                .tasks
                .busy
                .get_mut(&update.task_id)
                .and_then(VecDeque::pop_front);
            match queued {
                Some((reply_to, queued)) => {
                    self.tasks.queued -= 1;
                    next_finished = self.start_chain(reply_to, queued);
                }
                None => {
                    self.tasks.busy.remove(&update.task_id);
                }
            }
        }
    }
}

/// The status writes a registration of `service` calls for: its mirrored checks whose status is
/// known.
pub(super) fn status_writes(service: &DesiredService) -> impl Iterator<Item = CheckWrite> + '_ {
    service.registration.checks.iter().filter_map(|check| {
        check.state.as_ref().map(|state| CheckWrite::Update {
            agent: service.agent.clone(),
            check_id: check.id.clone(),
            state: state.clone(),
        })
    })
}

/// An update whose work is over, waiting for its reply.
struct Finished {
    reply_to: Option<InboundId>,
    update: StatusUpdate,
    /// The error reply's status and message.
    error: Option<(u16, String)>,
}

impl Finished {
    fn ok(reply_to: Option<InboundId>, update: StatusUpdate) -> Self {
        Finished {
            reply_to,
            update,
            error: None,
        }
    }

    fn refused(
        reply_to: Option<InboundId>,
        update: StatusUpdate,
        status: u16,
        message: String,
    ) -> Self {
        Finished {
            reply_to,
            update,
            error: Some((status, message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Bridge, Config, InboundId, Method, Output, Reply, Response};
    use alloc::vec::Vec;
    use core::time::Duration;

    /// Node `h`'s services: ours, with the task ids the tests use (`t`, `t0` … `t99`).
    fn listing() -> alloc::string::String {
        let ours = r#"{"Service":"a","Tags":["consular-reg-id=consular","consular-app-id=/a"]}"#;
        let entries: Vec<alloc::string::String> =
            core::iter::once(alloc::string::String::from("t"))
                .chain((0..100).map(|i| alloc::format!("t{i}")))
                .map(|id| alloc::format!(r#""{id}":{ours}"#))
                .collect();
        alloc::format!("{{{}}}", entries.join(","))
    }

    /// Answers every request as a healthy Consul with one node `h` holding our services would,
    /// until the bridge asks for nothing more; returns the replies.
    fn answer_all(bridge: &mut Bridge) -> Vec<Reply> {
        let mut replies = Vec::new();
        loop {
            let mut requests = Vec::new();
            loop {
                match bridge.poll_output() {
                    Output::Request(r) => requests.push(r),
                    Output::Reply(_, reply) => replies.push(reply),
                    Output::Timeout(_) => break,
                    _ => {}
                }
            }
            if requests.is_empty() {
                return replies;
            }
            for r in requests {
                let body: Vec<u8> = match (r.method, r.path_and_query.as_str()) {
                    (Method::Get, "/v1/catalog/nodes") => {
                        br#"[{"Node":"h","Address":"h"}]"#.to_vec()
                    }
                    (Method::Get, "/v1/agent/services") => listing().into_bytes(),
                    _ => Vec::new(),
                };
                let ok = Response { status: 200, body };
                bridge.handle_response(Duration::ZERO, r.id, Ok(ok));
            }
        }
    }

    /// 10,000 updates of one task queued behind a deregistration, none needing a request once
    /// the first ends: they are drained by a loop, so the stack stays flat (this overflowed it
    /// when each finished update started the next from within).
    #[test]
    fn a_long_queue_of_one_task_is_drained_without_recursion() {
        let mut bridge = Bridge::new(Config::default(), Duration::ZERO);
        let event = |state: &str| {
            alloc::format!(
                r#"{{"eventType":"status_update_event","taskStatus":"{state}","taskId":"t","appId":"/a","host":"h"}}"#
            )
        };
        let killed = event("TASK_KILLED");
        bridge
            .handle_inbound(Duration::ZERO, InboundId(0), "/events", killed.as_bytes())
            .unwrap();
        let staging = event("TASK_STAGING");
        for i in 1..10_000u64 {
            bridge
                .handle_inbound(Duration::ZERO, InboundId(i), "/events", staging.as_bytes())
                .unwrap();
        }
        let replies = answer_all(&mut bridge);
        let refused = replies.iter().filter(|r| r.status == 503).count();
        let done = replies.iter().filter(|r| r.status == 200).count();
        assert_eq!(refused, 10_000 - 1 - super::MAX_QUEUED_PER_TASK);
        assert_eq!(done, 1 + super::MAX_QUEUED_PER_TASK);
        assert_eq!(bridge.metrics().deregistered(), 1);
        assert!(bridge.tasks.busy.is_empty());
    }

    #[test]
    fn without_a_sync_in_flight_updates_leave_no_trace() {
        let mut bridge = Bridge::new(Config::default(), Duration::ZERO);
        for i in 0..100u64 {
            let body = alloc::format!(
                r#"{{"eventType":"status_update_event","taskStatus":"TASK_KILLED","taskId":"t{i}","host":"h"}}"#
            );
            bridge
                .handle_inbound(Duration::ZERO, InboundId(i), "/events", body.as_bytes())
                .unwrap();
            answer_all(&mut bridge);
        }
        assert!(bridge.freshness.remembers_no_touch());
        assert!(bridge.tasks.busy.is_empty());
        assert_eq!(bridge.metrics().deregistered(), 100);
    }
}
