//! Outbound requests between "the core wants this sent" and "its answer came back": id
//! allocation, queueing under the global and per-target in-flight limits, deadlines the core
//! enforces itself so a driver that never answers cannot stall a workflow, and, with each request,
//! the workflow step waiting for its answer (one table, so the two can never disagree). What a
//! response means is not decided here.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::Awaiting;
use crate::consul::AclRule;
use crate::encoding::redact_secret;
use crate::io::{Method, Output, Request, RequestId, Target};

/// The core waits this much longer than the request's own timeout before giving up, so the
/// driver's timeout normally reports first.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// What the core remembers about a request it handed to the driver.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) target: Target,
    pub(crate) method: Method,
    pub(crate) path: String,
    /// The Consul ACL permission the request needs, for naming it when the token lacks it.
    pub(crate) acl_rule: Option<AclRule>,
    /// When it was handed to the driver: its answer's latency counts from here.
    pub(crate) released_at: Duration,
    deadline: Duration,
}

impl Sent {
    fn of(request: &Request, released_at: Duration, deadline: Duration) -> Sent {
        Sent {
            target: request.target.clone(),
            method: request.method,
            path: request.path_and_query.clone(),
            acl_rule: AclRule::of_request(
                &request.target,
                request.method,
                &request.path_and_query,
                request.body.as_deref(),
            ),
            released_at,
            deadline,
        }
    }

    /// `PUT agent h /v1/...`, for log lines (an events secret in the path shows as `***`).
    pub(crate) fn describe(&self) -> String {
        let path = redact_secret(&self.path);
        alloc::format!("{} {} {path}", self.method, self.target)
    }
}

/// A request as a workflow asks for it: everything but the id, which [`Requests`] allocates.
#[derive(Debug)]
pub(crate) struct NewRequest {
    pub(crate) target: Target,
    pub(crate) method: Method,
    pub(crate) path_and_query: String,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) response_limit: usize,
    pub(crate) timeout: Duration,
}

#[derive(Debug)]
pub(crate) struct Requests {
    next_id: u64,
    max_total: usize,
    max_per_target: usize,
    /// Not yet handed out, per target, with the step waiting for each; empty queues are removed.
    queues: BTreeMap<Target, VecDeque<(Request, Awaiting)>>,
    /// The target after which the next release round starts, so no target starves the others.
    cursor: Option<Target>,
    in_flight: BTreeMap<RequestId, (Sent, Awaiting)>,
    per_target: BTreeMap<Target, usize>,
    deadlines: BTreeSet<(Duration, RequestId)>,
}

impl Requests {
    pub(crate) fn new(max_total: usize, max_per_target: usize) -> Self {
        Requests {
            next_id: 0,
            max_total: max_total.max(1),
            max_per_target: max_per_target.max(1),
            queues: BTreeMap::new(),
            cursor: None,
            in_flight: BTreeMap::new(),
            per_target: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// A fresh id, for requests that bypass the queue (the event stream).
    pub(crate) fn allocate_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    /// Queues `new` for the step `awaiting`; [`Requests::release`] hands it out when the limits
    /// allow.
    pub(crate) fn submit(&mut self, awaiting: Awaiting, new: NewRequest) -> RequestId {
        let id = self.allocate_id();
        let target = new.target.clone();
        let request = Request {
            id,
            target: new.target,
            method: new.method,
            path_and_query: new.path_and_query,
            body: new.body,
            response_limit: new.response_limit,
            timeout: new.timeout,
        };
        self.queues
            .entry(target)
            .or_default()
            .push_back((request, awaiting));
        id
    }

    /// Moves queued requests into `out` while the in-flight limits allow, one per target per
    /// round.
    pub(crate) fn release(&mut self, now: Duration, out: &mut VecDeque<Output>) {
        while self.in_flight.len() < self.max_total {
            let targets: Vec<Target> = match &self.cursor {
                Some(c) => {
                    let after = self.queues.range(c..).filter(|(t, _)| *t != c);
                    after
                        .chain(self.queues.range(..=c))
                        .map(|(t, _)| t.clone())
                        .collect()
                }
                None => self.queues.keys().cloned().collect(),
            };
            let mut released = false;
            for target in targets {
                if self.in_flight.len() >= self.max_total {
                    break;
                }
                let busy = self.per_target.get(&target).copied().unwrap_or(0);
                if busy >= self.max_per_target {
                    continue;
                }
                let Some(queue) = self.queues.get_mut(&target) else {
                    continue;
                };
                let Some((request, awaiting)) = queue.pop_front() else {
                    continue;
                };
                if queue.is_empty() {
                    self.queues.remove(&target);
                }
                let deadline = now + request.timeout + DEADLINE_GRACE;
                self.deadlines.insert((deadline, request.id));
                *self.per_target.entry(target.clone()).or_default() += 1;
                let sent = Sent::of(&request, now, deadline);
                self.in_flight.insert(request.id, (sent, awaiting));
                self.cursor = Some(target);
                out.push_back(Output::Request(request));
                released = true;
            }
            if !released {
                break;
            }
        }
    }

    /// Hands `new` out at once, past the queues and the in-flight limits: for the few requests
    /// that keep leadership (a session renewal must not wait behind a sync's writes).
    pub(crate) fn submit_urgent(
        &mut self,
        now: Duration,
        awaiting: Awaiting,
        new: NewRequest,
        out: &mut VecDeque<Output>,
    ) {
        let id = self.allocate_id();
        let deadline = now + new.timeout + DEADLINE_GRACE;
        self.deadlines.insert((deadline, id));
        *self.per_target.entry(new.target.clone()).or_default() += 1;
        let request = Request {
            id,
            target: new.target,
            method: new.method,
            path_and_query: new.path_and_query,
            body: new.body,
            response_limit: new.response_limit,
            timeout: new.timeout,
        };
        self.in_flight
            .insert(id, (Sent::of(&request, now, deadline), awaiting));
        out.push_back(Output::Request(request));
    }

    /// Drops the queued requests (not yet handed out) whose step `drop` picks: an instance
    /// that stands down sends none of its pending writes.
    pub(crate) fn abandon_queued(&mut self, drop: impl Fn(&Awaiting) -> bool) -> usize {
        let mut dropped = 0;
        for queue in self.queues.values_mut() {
            let before = queue.len();
            queue.retain(|(_, awaiting)| !drop(awaiting));
            dropped += before - queue.len();
        }
        self.queues.retain(|_, queue| !queue.is_empty());
        dropped
    }

    /// Forgets an in-flight request and hands back the step waiting for it; `None` if it is
    /// unknown (already answered or given up on).
    pub(crate) fn finish(&mut self, id: RequestId) -> Option<(Sent, Awaiting)> {
        let (sent, awaiting) = self.in_flight.remove(&id)?;
        self.deadlines.remove(&(sent.deadline, id));
        if let Some(n) = self.per_target.get_mut(&sent.target) {
            *n -= 1;
            if *n == 0 {
                self.per_target.remove(&sent.target);
            }
        }
        Some((sent, awaiting))
    }

    /// Ids of in-flight requests whose deadline has passed.
    pub(crate) fn expired(&self, now: Duration) -> Vec<RequestId> {
        self.deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|&(_, id)| id)
            .collect()
    }

    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub(crate) fn queued(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(target: Target, path: &str) -> NewRequest {
        NewRequest {
            target,
            method: Method::Get,
            path_and_query: path.into(),
            body: None,
            response_limit: 1024,
            timeout: Duration::from_secs(5),
        }
    }

    fn drain(out: &mut VecDeque<Output>) -> Vec<Request> {
        out.drain(..)
            .filter_map(|o| match o {
                Output::Request(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn limits_hold_and_a_busy_target_does_not_block_others() {
        let mut requests = Requests::new(3, 2);
        let mut out = VecDeque::new();
        let slow = Target::Agent("slow".into());
        for _ in 0..4 {
            requests.submit(Awaiting::Members, get(slow.clone(), "/x"));
        }
        let fast = requests.submit(Awaiting::Members, get(Target::Consul, "/y"));
        requests.release(Duration::ZERO, &mut out);
        let sent = drain(&mut out);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent.iter().filter(|r| r.target == slow).count(), 2);
        assert!(sent.iter().any(|r| r.id == fast));
        assert_eq!(requests.queued(), 2);
        assert!(requests.finish(fast).is_some());
        assert!(
            requests.finish(fast).is_none(),
            "a request is finished once"
        );
        requests.release(Duration::ZERO, &mut out);
        assert!(
            drain(&mut out).is_empty(),
            "the slow target is still at its own limit"
        );
    }

    #[test]
    fn deadlines_expire_after_timeout_plus_grace() {
        let mut requests = Requests::new(8, 8);
        let mut out = VecDeque::new();
        let id = requests.submit(Awaiting::Members, get(Target::Marathon, "/"));
        requests.release(Duration::from_secs(10), &mut out);
        assert_eq!(requests.next_deadline(), Some(Duration::from_secs(16)));
        assert!(requests.expired(Duration::from_secs(15)).is_empty());
        assert_eq!(requests.expired(Duration::from_secs(16)), [id]);
    }
}
