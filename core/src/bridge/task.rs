//! A task's status update, end to end: RUNNING registers the task on its host's agent, then reads
//! the app and makes its KV labels match (unless they were made to match for the app version the
//! task runs); stop states deregister it. Updates of one task run one after another, in arrival
//! order, and a RUNNING that arrives after the task ended is stale and ignored. Tasks and apps
//! touched here are remembered so a concurrent sync does not undo them.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;

use super::{Answer, Awaiting, Bridge};
use crate::consul::{
    agent_host, kv_tree_path, parse_kv_entries, service_name, Registration, KV_ROOT,
};
use crate::io::{InboundId, Level, Method, Target};
use crate::marathon::{app_path, parse_app_labels, AppLabels, StatusUpdate, TaskAction};
use crate::plan::{plan_app_labels, DesiredService};

/// Ended task ids remembered to recognise stale RUNNING updates; the oldest are forgotten first.
const ENDED_TASKS_REMEMBERED: usize = 16_384;
/// Apps whose synced label version is remembered. Syncs prune the list to Marathon's apps; without
/// syncs it is cleared when full, which costs only an app read per app.
const APP_VERSIONS_REMEMBERED: usize = 16_384;

/// Identifies one status update being worked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ChainId(u64);

#[derive(Debug)]
enum Step {
    Register {
        service: DesiredService,
        on_fallback: bool,
    },
    FetchApp,
    ReadLabels {
        app: AppLabels,
    },
    WriteLabels {
        pending: usize,
        app_version: Option<String>,
    },
    Deregister {
        agent: String,
    },
}

#[derive(Debug)]
struct Chain {
    reply_to: Option<InboundId>,
    update: StatusUpdate,
    step: Step,
    error: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Tasks {
    next_chain: u64,
    chains: BTreeMap<ChainId, Chain>,
    /// Tasks with an update in progress, and the updates queued behind it.
    busy: BTreeMap<String, VecDeque<(Option<InboundId>, StatusUpdate)>>,
    ended: BTreeSet<String>,
    ended_order: VecDeque<String>,
    /// Counts updates; a sync compares it with the value when it read Marathon.
    pub(super) epoch: u64,
    pub(super) touched_tasks: BTreeMap<String, u64>,
    pub(super) touched_apps: BTreeMap<String, u64>,
    /// Apps whose labels an update is syncing, by service name.
    label_syncs: BTreeMap<String, LabelSync>,
    /// The app version whose labels an update last made KV match, by service name. Marathon gives
    /// every change of an app a new version, so a task of that version needs no label sync: a
    /// rolling start of N tasks reads the app once, not N times. Pruned to Marathon's apps by
    /// every sync, so it holds at most one entry per app, and [`APP_VERSIONS_REMEMBERED`] at most.
    pub(super) labels_synced: BTreeMap<String, String>,
}

#[derive(Debug)]
struct LabelSync {
    /// The app version of the update syncing the labels.
    app_version: Option<String>,
    /// An update of another (or unknown) version arrived meanwhile: read the app once more.
    again: bool,
}

impl Tasks {
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
        if let Some(queue) = self.tasks.busy.get_mut(&update.task_id) {
            queue.push_back((reply_to, update));
            return;
        }
        self.tasks
            .busy
            .insert(update.task_id.clone(), VecDeque::new());
        self.start_chain(reply_to, update);
    }

    fn start_chain(&mut self, reply_to: Option<InboundId>, update: StatusUpdate) {
        self.tasks.epoch += 1;
        // Only a sync in flight can be undone by this update; with none, remembering it would only
        // grow memory with every event.
        if self.sync.is_running() {
            let epoch = self.tasks.epoch;
            self.tasks
                .touched_tasks
                .insert(update.task_id.clone(), epoch);
        }
        self.tasks.next_chain += 1;
        let chain_id = ChainId(self.tasks.next_chain);
        let agent = agent_host(&update.host);
        let step = match update.state.action() {
            TaskAction::Ignore => return self.finish_chain(reply_to, update, None),
            TaskAction::Register if self.tasks.has_ended(&update.task_id) => {
                let message = alloc::format!(
                    "ignoring {} of {}: the task already ended",
                    update.state.name(),
                    update.task_id
                );
                self.log(Level::Info, message);
                return self.finish_chain(reply_to, update, None);
            }
            TaskAction::Register => {
                let app_id = update.app_id.as_deref().unwrap_or_default();
                let registration = Registration::for_task(
                    &self.config.registration_id,
                    app_id,
                    &update.task_id,
                    &update.host,
                    &update.ports,
                );
                let service = DesiredService {
                    agent,
                    registration,
                };
                self.send_registration(Awaiting::Task(chain_id), &service, false);
                Step::Register {
                    service,
                    on_fallback: false,
                }
            }
            TaskAction::Deregister => {
                if update.state.is_final() {
                    self.tasks.remember_ended(&update.task_id);
                }
                self.send_deregistration(Awaiting::Task(chain_id), &agent, &update.task_id);
                Step::Deregister { agent }
            }
        };
        self.tasks.chains.insert(
            chain_id,
            Chain {
                reply_to,
                update,
                step,
                error: None,
            },
        );
    }

    /// `kv_ops` is the number of operations when `answer` answers a label transaction.
    pub(super) fn on_task_answer(&mut self, chain_id: ChainId, kv_ops: usize, answer: Answer) {
        let Some(mut chain) = self.tasks.chains.remove(&chain_id) else {
            return;
        };
        let awaiting = Awaiting::Task(chain_id);
        let app_id = chain.update.app_id.clone().unwrap_or_default();
        let timeout = self.config.request_timeout;
        chain.step = match chain.step {
            Step::Register {
                service,
                on_fallback,
            } => match self.registration_done(&service, on_fallback, &answer) {
                Ok(()) => {
                    let name = service.registration.name.clone();
                    if self.sync.is_running() {
                        let epoch = self.tasks.epoch;
                        self.tasks.touched_apps.insert(name.clone(), epoch);
                    }
                    let version = chain.update.app_version.as_ref();
                    if version.is_some() && self.tasks.labels_synced.get(&name) == version {
                        return self.finish_chain(chain.reply_to, chain.update, None);
                    }
                    if let Some(sync) = self.tasks.label_syncs.get_mut(&name) {
                        // Another update of this app is syncing its labels; it re-reads once when
                        // done (unless it syncs this same version), so this one need not race it
                        // (and lose with a stale index).
                        sync.again |= version.is_none() || sync.app_version.as_ref() != version;
                        return self.finish_chain(chain.reply_to, chain.update, None);
                    }
                    let sync = LabelSync {
                        app_version: chain.update.app_version.clone(),
                        again: false,
                    };
                    self.tasks.label_syncs.insert(name, sync);
                    self.send(
                        awaiting,
                        Target::Marathon,
                        Method::Get,
                        app_path(&app_id),
                        None,
                        timeout,
                    );
                    Step::FetchApp
                }
                Err(true) => {
                    self.send_registration(awaiting, &service, true);
                    Step::Register {
                        service,
                        on_fallback: true,
                    }
                }
                Err(false) => {
                    return self.finish_chain(
                        chain.reply_to,
                        chain.update,
                        Some(alloc::format!("cannot register: {}", answer.failure())),
                    )
                }
            },
            Step::FetchApp => match answer.parsed(parse_app_labels) {
                Ok(Some(app)) => {
                    let prefix = alloc::format!("{KV_ROOT}{}/", service_name(&app.id));
                    let path = kv_tree_path(&prefix);
                    self.send(awaiting, Target::Consul, Method::Get, path, None, timeout);
                    Step::ReadLabels { app }
                }
                Ok(None) => {
                    let message = alloc::format!(
                        "app {app_id} no longer exists in Marathon; its labels are left as they are"
                    );
                    self.log(Level::Warn, message);
                    return self.labels_done(chain_id, chain.reply_to, chain.update, Ok(None));
                }
                Err(e) => {
                    let error = Err(alloc::format!("reading app {app_id}: {e}"));
                    return self.labels_done(chain_id, chain.reply_to, chain.update, error);
                }
            },
            Step::ReadLabels { app } => {
                let current = match answer.parsed(parse_kv_entries) {
                    Ok(entries) => entries.unwrap_or_default(),
                    Err(e) => {
                        return self.labels_done(chain_id, chain.reply_to, chain.update, Err(e))
                    }
                };
                let name = service_name(&app.id);
                let ops = plan_app_labels(&name, &app.labels, &current);
                if ops.is_empty() {
                    let synced = Ok(app.version);
                    return self.labels_done(chain_id, chain.reply_to, chain.update, synced);
                }
                self.log(
                    Level::Info,
                    alloc::format!("syncing {} label keys of {name}", ops.len()),
                );
                let pending = self.send_kv_ops(&ops, |n| Awaiting::TaskKv(chain_id, n));
                Step::WriteLabels {
                    pending,
                    app_version: app.version,
                }
            }
            Step::WriteLabels {
                pending,
                app_version,
            } => {
                if !self.kv_ops_done(kv_ops, &answer) {
                    chain.error.get_or_insert_with(|| {
                        alloc::format!("writing labels: {}", answer.failure())
                    });
                }
                if pending > 1 {
                    Step::WriteLabels {
                        pending: pending - 1,
                        app_version,
                    }
                } else {
                    let synced = chain.error.map_or(Ok(app_version), Err);
                    return self.labels_done(chain_id, chain.reply_to, chain.update, synced);
                }
            }
            Step::Deregister { agent } => {
                let gone = self.deregistration_done(&agent, &chain.update.task_id, &answer);
                let error =
                    (!gone).then(|| alloc::format!("cannot deregister: {}", answer.failure()));
                return self.finish_chain(chain.reply_to, chain.update, error);
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
        reply_to: Option<InboundId>,
        update: StatusUpdate,
        synced: Result<Option<String>, String>,
    ) {
        let name = service_name(update.app_id.as_deref().unwrap_or_default());
        match &synced {
            Ok(Some(version)) => {
                let synced = &mut self.tasks.labels_synced;
                if synced.len() >= APP_VERSIONS_REMEMBERED && !synced.contains_key(&name) {
                    synced.clear();
                }
                synced.insert(name.clone(), version.clone());
            }
            // Unknown now: a failed write may have left some keys behind.
            _ => {
                self.tasks.labels_synced.remove(&name);
            }
        }
        if let Some(sync) = self.tasks.label_syncs.get_mut(&name).filter(|s| s.again) {
            sync.again = false;
            let path = app_path(update.app_id.as_deref().unwrap_or_default());
            let timeout = self.config.request_timeout;
            self.send(
                Awaiting::Task(chain_id),
                Target::Marathon,
                Method::Get,
                path,
                None,
                timeout,
            );
            let chain = Chain {
                reply_to,
                update,
                step: Step::FetchApp,
                error: None,
            };
            self.tasks.chains.insert(chain_id, chain);
            return;
        }
        self.tasks.label_syncs.remove(&name);
        self.finish_chain(reply_to, update, synced.err());
    }

    /// Replies (502 if `error`), then starts the next queued update of the same task.
    fn finish_chain(
        &mut self,
        reply_to: Option<InboundId>,
        update: StatusUpdate,
        error: Option<String>,
    ) {
        if let Some(id) = reply_to {
            match &error {
                None => self.reply(id, 200, String::from("{\"status\": \"ok\"}")),
                Some(e) => self.reply_error(id, 502, e),
            }
        }
        let next = self
            .tasks
            .busy
            .get_mut(&update.task_id)
            .and_then(VecDeque::pop_front);
        match next {
            Some((reply_to, next)) => self.start_chain(reply_to, next),
            None => {
                self.tasks.busy.remove(&update.task_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Bridge, Config, InboundId, Output, Response};
    use core::time::Duration;

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
            let mut answered = alloc::vec::Vec::new();
            loop {
                match bridge.poll_output() {
                    Output::Request(r) => answered.push(r.id),
                    Output::Timeout(_) => break,
                    _ => {}
                }
            }
            for id in answered {
                let ok = Response {
                    status: 200,
                    body: alloc::vec::Vec::new(),
                };
                bridge.handle_response(Duration::ZERO, id, Ok(ok));
            }
        }
        assert!(bridge.tasks.touched_tasks.is_empty());
        assert!(bridge.tasks.busy.is_empty());
        assert_eq!(bridge.stats().deregistered, 100);
    }
}
