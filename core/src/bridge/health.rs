//! A health event, end to end. Marathon's health events name an app and an instance but no host
//! and (from 1.4) no task, and one check's result is not the task's verdict when an app has
//! several; so an event only says "read this app's tasks": the read gives each named task's
//! host, ports and every check's result, and each becomes an update of that task, queued with its
//! status updates (`task.rs`), that registers, withdraws or sets check statuses.
//!
//! One read per app at a time: events for an app whose tasks are being read wait for the next
//! read, which serves all of them. An app whose shape (`AppServices`) is not known is read first.
//! Events are only followed for apps the bridge knows, and the waiting instances are bounded, so
//! forged events cost at most one read per known app.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use super::{Answer, Awaiting, Bridge};
use crate::config::{HealthChecks, RegisterWhen};
use crate::consul::service_name;
use crate::io::{Level, Method, Target};
use crate::marathon::health::is_task_of_instance;
use crate::marathon::ids::{check_host, check_task_id};
use crate::marathon::{
    app_path, app_tasks_path, parse_app_definition, parse_tasks, StatusUpdate, TaskState,
};
use crate::plan::AppServices;

/// Instances waiting for one app's read; more are dropped and left to the next sync.
const MAX_INSTANCES_PER_APP: usize = 4096;
/// Apps with a read in progress.
const MAX_APPS_READING: usize = 1024;

/// Identifies the read of one app's health, by app id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HealthReadId(String);

/// What a health event led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HealthFollowed {
    /// The app's tasks are (or will be) read.
    Reading,
    /// Health does not matter under these flags, or the app is not one the bridge knows.
    Ignored,
    /// Too much is waiting; the next sync sees the verdict.
    Dropped,
}

#[derive(Debug)]
enum HealthStep {
    /// Reading the app's definition: its health checks and services.
    App,
    /// Reading its tasks.
    Tasks,
}

#[derive(Debug)]
struct HealthRead {
    step: HealthStep,
    /// Instances this read resolves.
    instances: BTreeSet<String>,
    /// Instances named while it runs: the next read's.
    next: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub(super) struct HealthReads {
    reads: BTreeMap<String, HealthRead>,
}

impl Bridge {
    /// True if Marathon's health verdicts change what Consul holds under these flags.
    pub(super) fn health_matters(&self) -> bool {
        self.config.health_checks == HealthChecks::Mirror
            || self.config.register_when == RegisterWhen::Healthy
    }

    /// An instance of `app_id` changed health: read the app's tasks for the verdict.
    pub(super) fn follow_health(&mut self, app_id: &str, instance_id: &str) -> HealthFollowed {
        if !self.health_matters() || !self.names.knows(app_id) {
            return HealthFollowed::Ignored;
        }
        if let Some(read) = self.health.reads.get_mut(app_id) {
            if read.next.len() >= MAX_INSTANCES_PER_APP {
                return HealthFollowed::Dropped;
            }
            read.next.insert(String::from(instance_id));
            return HealthFollowed::Reading;
        }
        if self.health.reads.len() >= MAX_APPS_READING {
            return HealthFollowed::Dropped;
        }
        self.metrics.health_read_started();
        let instances = core::iter::once(String::from(instance_id)).collect();
        self.start_health_read(String::from(app_id), instances);
        HealthFollowed::Reading
    }

    fn start_health_read(&mut self, app_id: String, instances: BTreeSet<String>) {
        let known = self
            .freshness
            .services_of(&service_name(&app_id), None)
            .is_some();
        let (step, path) = if known {
            (HealthStep::Tasks, app_tasks_path(&app_id))
        } else {
            (HealthStep::App, app_path(&app_id))
        };
        let timeout = self.config.request_timeout;
        let awaiting = Awaiting::Health(HealthReadId(app_id.clone()));
        self.send(awaiting, Target::Marathon, Method::Get, path, None, timeout);
        let read = HealthRead {
            step,
            instances,
            next: BTreeSet::new(),
        };
        self.health.reads.insert(app_id, read);
    }

    pub(super) fn on_health_answer(&mut self, id: HealthReadId, answer: Answer) {
        let app_id = id.0;
        let Some(read) = self.health.reads.get_mut(&app_id) else {
            return;
        };
        match read.step {
            HealthStep::App => match answer.required(parse_app_definition) {
                Ok(app) if app.id.trim_start_matches('/') == app_id.trim_start_matches('/') => {
                    read.step = HealthStep::Tasks;
                    let services = AppServices::of(&app, &self.service_rules);
                    self.learn_app(services);
                    let timeout = self.config.request_timeout;
                    let awaiting = Awaiting::Health(HealthReadId(app_id.clone()));
                    let path = app_tasks_path(&app_id);
                    self.send(awaiting, Target::Marathon, Method::Get, path, None, timeout);
                }
                Ok(_) => self.health_read_failed(app_id, "Marathon answered another app"),
                Err(e) => self.health_read_failed(app_id, &e),
            },
            HealthStep::Tasks => match answer.required(parse_tasks) {
                Ok(tasks) => {
                    let instances = core::mem::take(&mut read.instances);
                    let mut updates = Vec::new();
                    if let Some(services) = self.freshness.services_of(&service_name(&app_id), None)
                    {
                        for task in tasks.iter().filter(|t| t.is_running()) {
                            let named = instances.iter().any(|i| {
                                is_task_of_instance(&task.id, &task.health_check_results, i)
                            });
                            let sound =
                                check_task_id(&task.id).is_ok() && check_host(&task.host).is_ok();
                            let Ok(ports) = &task.ports else { continue };
                            if !named || !sound {
                                continue;
                            }
                            updates.push(StatusUpdate {
                                task_id: task.id.clone(),
                                app_id: Some(app_id.clone()),
                                host: task.host.clone(),
                                state: TaskState::Running,
                                ports: ports.clone(),
                                app_version: task.version.clone(),
                                ip_addresses: task.own_addresses(),
                                health: services.health_of(&task.health_check_results),
                            });
                        }
                    }
                    self.health_read_done(app_id);
                    for update in updates {
                        self.handle_status_update(None, update);
                    }
                }
                Err(e) => self.health_read_failed(app_id, &e),
            },
        }
    }

    /// Standing down as leader: reads in progress are forgotten.
    pub(super) fn abandon_health_reads(&mut self) {
        self.health.reads.clear();
    }

    fn health_read_failed(&mut self, app_id: String, why: &str) {
        let message = alloc::format!(
            "cannot read the health of {app_id}'s tasks: {why}; the next sync sees it"
        );
        self.log(Level::Error, message);
        self.health_read_done(app_id);
    }

    /// The read of `app_id` is over: start the next if events came meanwhile.
    fn health_read_done(&mut self, app_id: String) {
        let Some(read) = self.health.reads.remove(&app_id) else {
            return;
        };
        if !read.next.is_empty() {
            self.start_health_read(app_id, read.next);
        }
    }
}
