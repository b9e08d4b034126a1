//! Which task hosts are members of the Consul cluster, so the Consul token goes only to agents
//! that belong to it. A task host comes from Marathon (or from whoever posts to `/events`): one
//! that is not a node of the catalog, by address or by name, gets no request at all and is
//! treated like an agent that cannot be reached.
//!
//! The catalog's nodes are cached: every sync's node listing refreshes them, and a host not in
//! the cache triggers one shared refresh, at most every [`MIN_REFRESH_INTERVAL`]. What a task
//! update does once its host is known is `task.rs`'s business.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::task::ChainId;
use super::{Answer, Awaiting, Bridge};
use crate::consul::{agent_host, parse_catalog_nodes, CatalogNode, CATALOG_NODES_PATH};
use crate::io::{Level, Method, Target};
use crate::marathon::ids::check_host;

/// A host missing from the cache is looked up again at most this often, so a flood of events
/// naming strangers costs one catalog read per interval.
pub(super) const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// Whether a host may be sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Membership {
    /// A node of the catalog.
    Member,
    /// Not a node, as of a read recent enough to trust.
    Stranger,
    /// Not in the cache, and the cache may be refreshed: ask the catalog.
    Unknown,
}

#[derive(Debug, Default)]
pub(super) struct Members {
    /// Lower-cased addresses and names of the catalog's nodes.
    hosts: BTreeSet<String>,
    /// When the catalog was last read (or a read failed).
    read_at: Option<Duration>,
    /// Updates waiting for the refresh in flight, if one is.
    waiting: Option<Vec<ChainId>>,
}

impl Members {
    pub(super) fn membership(&self, host: &str, now: Duration) -> Membership {
        if self.hosts.contains(&agent_host(host)) {
            Membership::Member
        } else if self
            .read_at
            .is_some_and(|at| now.saturating_sub(at) < MIN_REFRESH_INTERVAL)
        {
            Membership::Stranger
        } else {
            Membership::Unknown
        }
    }

    /// The catalog as just read: every node's address and name.
    pub(super) fn learn(&mut self, nodes: &[CatalogNode], now: Duration) {
        // An external node has no agent: its host is no member, and gets no request.
        self.hosts = nodes
            .iter()
            .filter(|n| !n.is_external())
            .flat_map(|n| [agent_host(&n.address), agent_host(&n.name)])
            .filter(|h| check_host(h).is_ok())
            .collect();
        self.read_at = Some(now);
    }
}

impl Bridge {
    /// Parks update `chain` until the catalog has been read again; the read is shared by every
    /// update waiting for it.
    pub(super) fn await_members(&mut self, chain: ChainId) {
        if let Some(waiting) = &mut self.members.waiting {
            waiting.push(chain);
            return;
        }
        self.members.waiting = Some(alloc::vec![chain]);
        let timeout = self.config.request_timeout;
        let path = String::from(CATALOG_NODES_PATH);
        self.send(
            Awaiting::Members,
            Target::Consul,
            Method::Get,
            path,
            None,
            timeout,
        );
    }

    pub(super) fn on_members_answer(&mut self, answer: Answer) {
        match answer.required(parse_catalog_nodes) {
            Ok(nodes) => self.members.learn(&nodes, self.now),
            Err(e) => {
                // Unknown hosts stay strangers until the next attempt: no token goes out unchecked.
                self.members.read_at = Some(self.now);
                self.log(
                    Level::Error,
                    alloc::format!("cannot read the Consul cluster's members: {e}"),
                );
            }
        }
        for chain in self.members.waiting.take().unwrap_or_default() {
            self.on_members_known(chain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_are_looked_up_at_most_every_interval() {
        let mut members = Members::default();
        let t0 = Duration::from_secs(100);
        assert_eq!(members.membership("h", t0), Membership::Unknown);
        let node = CatalogNode {
            name: "Node-1".into(),
            address: "10.0.0.1".into(),
            meta: Default::default(),
        };
        members.learn(&[node], t0);
        assert_eq!(members.membership("node-1", t0), Membership::Member);
        assert_eq!(members.membership("NODE-1", t0), Membership::Member);
        assert_eq!(members.membership("10.0.0.1", t0), Membership::Member);
        assert_eq!(members.membership("10.0.0.9", t0), Membership::Stranger);
        let later = t0 + MIN_REFRESH_INTERVAL;
        assert_eq!(members.membership("10.0.0.9", later), Membership::Unknown);
    }
}
