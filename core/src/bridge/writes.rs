//! The writes both workflows make — service registration (with the `--fallback` retry on the
//! main Consul), deregistration (where "already gone" is success), check status writes and
//! removals, and KV transactions in batches — and how their answers count. Which writes to make is decided by the callers.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::metrics::WriteResult;
use super::{Answer, Awaiting, Bridge};

/// How a registration answer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Registered {
    /// The agent (or the main Consul) holds the service.
    Done,
    /// The agent failed and `--fallback` is on: register on the main Consul.
    RetryOnMainConsul,
    /// Failed for good (logged).
    Failed,
}

/// Where a task's registration goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Destination {
    /// The agent of the task's host.
    HostAgent,
    /// The main Consul agent (`--fallback`).
    MainAgent,
    /// The catalog, on an external node named after the host.
    ExternalNode,
    /// Nowhere: the host is no member and nothing else is allowed.
    Nowhere,
}

impl Destination {
    /// True if not on the task host's agent (what registrations carry as `on_fallback`).
    pub(super) fn is_fallback(self) -> bool {
        self != Destination::HostAgent
    }
}

/// How a deregistration or KV transaction answer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// Applied (for a deregistration: the service is gone, whoever removed it).
    Done,
    /// Not applied (logged); the next sync retries.
    Failed,
}
use crate::config::{FallbackMode, Placement};
use crate::consul::{
    check_deregister_path, check_update_path, deregister_path, external_deregister_body,
    external_register_body, guarded_txn_batches, CatalogEntry, TxnOp, CATALOG_DEREGISTER_PATH,
    CATALOG_REGISTER_PATH, REGISTER_PATH, TXN_MAX_BYTES, TXN_PATH,
};
use crate::io::{Level, Method, Target};
use crate::marathon::ids::Shown;
use crate::plan::{CheckWrite, DesiredService};

impl Bridge {
    /// Registers `service` on its agent, or, when `on_fallback` (its host has no reachable agent,
    /// or `--agentless`), where [`Bridge::registers_in_catalog`] says.
    pub(super) fn send_registration(
        &mut self,
        awaiting: Awaiting,
        service: &DesiredService,
        on_fallback: bool,
    ) {
        let (target, path, body, timeout) = self.registration_request(service, on_fallback);
        self.send(awaiting, target, Method::Put, path, body, timeout);
    }

    /// True if a registration not on the task host's agent goes to the catalog, on an external
    /// node (`--fallback-mode catalog`, `--agentless`), rather than to the main agent.
    pub(super) fn registers_in_catalog(&self) -> bool {
        self.config.fallback_mode == FallbackMode::Catalog
            || self.config.placement == Placement::Agentless
    }

    /// Where a task's registration goes, given whether its host's agent can take it.
    pub(super) fn destination(&self, host_reachable: bool) -> Destination {
        let agentless = self.config.placement == Placement::Agentless;
        if host_reachable && !agentless {
            Destination::HostAgent
        } else if !(self.config.fallback || agentless) {
            Destination::Nowhere
        } else {
            self.fallback_destination()
        }
    }

    /// Where a registration goes that is not on its task host's agent.
    fn fallback_destination(&self) -> Destination {
        if self.registers_in_catalog() {
            Destination::ExternalNode
        } else {
            Destination::MainAgent
        }
    }

    /// How log lines name `destination` for a task on `agent`.
    pub(super) fn destination_name(destination: Destination, agent: &str) -> String {
        match destination {
            Destination::HostAgent => String::from(agent),
            Destination::MainAgent => String::from("the main Consul (fallback)"),
            Destination::ExternalNode => alloc::format!("external node {agent}"),
            Destination::Nowhere => alloc::format!("nowhere ({agent} is not a member)"),
        }
    }

    /// True if a registration made there keeps its mirrored checks, whose statuses are then
    /// written: the catalog carries none.
    pub(super) fn keeps_mirrored_checks(&self, on_fallback: bool) -> bool {
        !on_fallback || self.fallback_destination() != Destination::ExternalNode
    }

    /// Where a registration of `service` goes, its path, body and timeout: for callers whose
    /// awaiting entry takes `service` itself.
    pub(super) fn registration_request(
        &self,
        service: &DesiredService,
        on_fallback: bool,
    ) -> (Target, String, Option<Vec<u8>>, Duration) {
        if on_fallback && self.fallback_destination() == Destination::ExternalNode {
            let body = external_register_body(
                &self.config.registration_id,
                &service.agent,
                &service.registration.address,
                &service.registration,
            );
            let path = String::from(CATALOG_REGISTER_PATH);
            return (
                Target::Consul,
                path,
                Some(body),
                self.config.request_timeout,
            );
        }
        let (target, timeout) = if on_fallback {
            (Target::Consul, self.config.fallback_timeout)
        } else {
            let agent = Target::Agent(service.agent.clone());
            (agent, self.config.request_timeout)
        };
        let path = String::from(REGISTER_PATH);
        (target, path, Some(service.registration.to_json()), timeout)
    }

    /// Accounts for a registration answer.
    pub(super) fn registration_done(
        &mut self,
        service: &DesiredService,
        on_fallback: bool,
        answer: &Answer,
    ) -> Registered {
        let reg = &service.registration;
        if answer.body().is_some() {
            self.metrics.registration(WriteResult::Ok);
            let destination = match on_fallback {
                true => self.fallback_destination(),
                false => Destination::HostAgent,
            };
            let place = Self::destination_name(destination, &service.agent);
            self.log(
                Level::Info,
                alloc::format!("registered {} ({}) on {place}", reg.id, reg.name),
            );
            return Registered::Done;
        }
        if !on_fallback && self.config.fallback {
            self.log(
                Level::Warn,
                alloc::format!(
                    "{}; falling back to the main Consul for {}",
                    answer.failure(),
                    reg.id
                ),
            );
            return Registered::RetryOnMainConsul;
        }
        self.metrics.registration(WriteResult::Failed);
        self.log(
            Level::Error,
            alloc::format!("cannot register {}: {}", reg.id, answer.failure()),
        );
        Registered::Failed
    }

    /// Removes `entry` (a service, a check, or the node itself) from external node `node`.
    pub(super) fn send_external_deregistration(
        &mut self,
        awaiting: Awaiting,
        node: &str,
        entry: CatalogEntry<'_>,
    ) {
        let timeout = self.config.request_timeout;
        let body = external_deregister_body(node, entry);
        let path = String::from(CATALOG_DEREGISTER_PATH);
        self.send(
            awaiting,
            Target::Consul,
            Method::Put,
            path,
            Some(body),
            timeout,
        );
    }

    /// Deregisters service `id` from the agent on `agent`.
    pub(super) fn send_deregistration(&mut self, awaiting: Awaiting, agent: &str, id: &str) {
        let timeout = self.config.request_timeout;
        let target = Target::Agent(String::from(agent));
        self.send(
            awaiting,
            target,
            Method::Put,
            deregister_path(id),
            None,
            timeout,
        );
    }

    /// Accounts for a deregistration answer. An agent that no longer has the service answers 404
    /// (Consul ≥ 1.11) or 500 "Unknown service" (older, with ACLs): it is gone, so that is done.
    pub(super) fn deregistration_done(
        &mut self,
        agent: &str,
        id: &str,
        answer: &Answer,
    ) -> Written {
        let already_gone = match &answer.result {
            Ok(r) => r.status == 404 || (r.status == 500 && r.body.starts_with(b"Unknown service")),
            Err(_) => false,
        };
        if answer.body().is_some() || already_gone {
            self.metrics.deregistration(WriteResult::Ok);
            self.log(
                Level::Info,
                alloc::format!("deregistered {} from {agent}", Shown(id)),
            );
            Written::Done
        } else {
            self.metrics.deregistration(WriteResult::Failed);
            self.log(
                Level::Error,
                alloc::format!("cannot deregister {}: {}", Shown(id), answer.failure()),
            );
            Written::Failed
        }
    }

    /// Sends `write` to `target`: the agent holding the check (the main Consul for a service
    /// registered there as a fallback).
    pub(super) fn send_check_write(
        &mut self,
        awaiting: Awaiting,
        target: Target,
        write: &CheckWrite,
    ) {
        let timeout = self.config.request_timeout;
        let (path, body) = match write {
            CheckWrite::Update {
                check_id, state, ..
            } => (check_update_path(check_id), Some(state.to_json())),
            CheckWrite::Remove { check_id, .. } => (check_deregister_path(check_id), None),
        };
        self.send(awaiting, target, Method::Put, path, body, timeout);
    }

    /// Accounts for the answer to `write`. Removing a check that is already gone is done.
    pub(super) fn check_write_done(&mut self, write: &CheckWrite, answer: &Answer) -> Written {
        let (agent, check_id, what) = match write {
            CheckWrite::Update {
                agent,
                check_id,
                state,
            } => (
                agent,
                check_id,
                alloc::format!("set {check_id} to {:?}", state.status),
            ),
            CheckWrite::Remove { agent, check_id } => {
                (agent, check_id, alloc::format!("removed check {check_id}"))
            }
        };
        let gone = matches!(write, CheckWrite::Remove { .. }) && answer.status() == Some(404);
        if answer.body().is_some() || gone {
            self.metrics.check_write(WriteResult::Ok);
            self.log(Level::Info, alloc::format!("{what} on {agent}"));
            Written::Done
        } else {
            self.metrics.check_write(WriteResult::Failed);
            let message = alloc::format!(
                "cannot write check {check_id} on {agent}: {}",
                answer.failure()
            );
            self.log(Level::Error, message);
            Written::Failed
        }
    }

    /// Sends `ops` as transactions Consul accepts (at most 64 operations and 512 KiB each);
    /// returns how many were sent. Each is awaited by `awaiting(number of ops in it)`. An
    /// operation too large for any transaction is logged and left out: it fails every time.
    pub(super) fn send_kv_ops(
        &mut self,
        ops: &[TxnOp],
        awaiting: impl Fn(usize) -> Awaiting,
    ) -> usize {
        let timeout = self.config.request_timeout;
        let guard = self.leadership.txn_guard();
        let (batches, too_large) = guarded_txn_batches(ops, guard.as_ref());
        for key in too_large {
            let message = alloc::format!(
                "not writing {}: its value is too large for a Consul transaction ({TXN_MAX_BYTES} bytes)",
                Shown(&key)
            );
            self.log(Level::Error, message);
        }
        let sent = batches.len();
        for batch in batches {
            self.send(
                awaiting(batch.ops),
                Target::Consul,
                Method::Put,
                String::from(TXN_PATH),
                Some(batch.body),
                timeout,
            );
        }
        sent
    }

    /// Accounts for a transaction of `ops` operations.
    pub(super) fn kv_ops_done(&mut self, ops: usize, answer: &Answer) -> Written {
        if answer.body().is_some() {
            self.metrics.kv_ops(WriteResult::Ok, ops as u64);
            return Written::Done;
        }
        self.metrics.kv_ops(WriteResult::Failed, ops as u64);
        let why = if answer.status() == Some(409) && answer.acl_denial().is_none() {
            "KV changed since it was read; the next sync retries"
        } else {
            "the next sync retries"
        };
        self.log(
            Level::Error,
            alloc::format!(
                "KV transaction of {ops} operations failed: {}; {why}",
                answer.failure()
            ),
        );
        Written::Failed
    }
}
