//! `--migrate-marathon-consul` in the bridge: the sweep that adds marathon-consul's leftovers to a
//! sync's deregistrations, and the fact that it is done. Which services are leftovers is
//! [`crate::plan::migration`]'s rule; sending and counting the deregistrations is the sync's
//! (they count in [`super::Stats::deregistered`]).
//!
//! It sweeps every sync until one has listed every agent, then never again in this process: a
//! node that was failed or did not answer the first time is swept when it next answers, and once
//! all have been seen a service registered later with marathon-consul's tags is left alone.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::MarathonConsulLeftovers;
use crate::io::{Level, LogRecord, Output};
use crate::plan::{marathon_consul_leftovers, ConsulState};

/// Where the sweep stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SweepState {
    /// Not asked for: syncs look for no leftovers.
    NotAsked,
    /// Every sync looks, until one lists every agent.
    Pending,
    /// A sync listed every agent: no later one looks.
    Done,
}

/// The sweep of marathon-consul's leftovers, owned by the bridge for the life of the process.
#[derive(Debug)]
pub(super) struct Sweep {
    state: SweepState,
}

impl Sweep {
    pub(super) fn new(setting: MarathonConsulLeftovers) -> Self {
        let state = match setting {
            MarathonConsulLeftovers::Keep => SweepState::NotAsked,
            MarathonConsulLeftovers::RemoveOnce => SweepState::Pending,
        };
        Sweep { state }
    }

    /// The `(agent, service id)` pairs of marathon-consul's services among what a sync listed, to
    /// deregister with the sync's own; logs one line per agent and a summary into `out`. A sync
    /// that listed every agent ends the sweep.
    pub(super) fn take(
        &mut self,
        consul: &ConsulState,
        out: &mut VecDeque<Output>,
    ) -> Vec<(String, String)> {
        if self.state != SweepState::Pending {
            return Vec::new();
        }
        let found = marathon_consul_leftovers(&consul.services);
        let mut per_agent: BTreeMap<&str, usize> = BTreeMap::new();
        for (agent, _) in &found.services {
            *per_agent.entry(agent).or_default() += 1;
        }
        let mut log = |message: String| {
            out.push_back(Output::Log(LogRecord {
                level: Level::Info,
                message,
            }))
        };
        for (agent, count) in &per_agent {
            log(alloc::format!(
                "marathon-consul migration: removing {count} of its services from {agent}"
            ));
        }
        let mut summary = alloc::format!(
            "marathon-consul migration: removing {} services from {} agents",
            found.services.len(),
            per_agent.len()
        );
        if found.implausible > 0 {
            summary.push_str(&alloc::format!(
                "; {} with its tags but an id it never makes left alone",
                found.implausible
            ));
        }
        if consul.services_complete {
            summary.push_str("; every agent was listed, later syncs leave its tags alone");
            self.state = SweepState::Done;
        } else {
            summary.push_str("; not every agent was listed, the next sync looks again");
        }
        log(summary);
        found.services
    }
}
