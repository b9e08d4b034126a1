//! Leader election among instances (`--ha`), on Consul itself: each instance keeps a TTL session,
//! renewed every third of the TTL; the one whose session holds the lock key is the leader and the
//! only one that acts (event stream, callback subscription, syncs, writes). Standbys read the key
//! with blocking queries and take it when it is free.
//!
//! Safety: a leader acts only until its *lease* ends: the send time of its last renewal Consul
//! confirmed, plus the TTL, less the request timeout and a second. Consul cannot end the session
//! before that send time plus the TTL, so a leader that cannot renew stops before anyone else can
//! take the key, and its writes in flight have landed or timed out by then. Its KV transactions
//! also carry a `check-session` on the key (`writes.rs`), so a deposed leader's batch fails.
//!
//! What standing down stops, and what taking the lead starts, is here too; the requests of this
//! module skip the queues (`Requests::submit_urgent`), so a renewal never waits behind a sync.

use alloc::string::String;
use core::time::Duration;

use super::sessions::{KeptSession, SessionChange, SessionPurpose};
use super::{Answer, Awaiting, Bridge};
use crate::config::{EventSource, HaConfig};
use crate::consul::{
    kv_lock_path, kv_watch_path, parse_lock_answer, parse_lock_holder, LockVerb, TxnOp,
};
use crate::io::{Level, Method};
use crate::marathon::ids::Shown;

/// How long a standby's blocking read of the key waits at most.
const WATCH_WAIT: Duration = Duration::from_secs(30);
/// Wait after a failed read or take of the key before the next try.
const RETRY: Duration = Duration::from_secs(1);

/// Whether this instance acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It acts: it holds the lock, or runs without `--ha`.
    Leader,
    /// Another instance leads (or none yet): this one writes nothing.
    Standby,
}

/// Which request on the key an answer is for.
#[derive(Debug)]
pub(super) enum LockWait {
    Watch,
    Acquire,
    Release { session: String },
}

#[derive(Debug)]
enum Lock {
    /// Read the key at `retry_at`, blocking while its index is `index` (0: answer at once).
    Read {
        retry_at: Duration,
        index: u64,
    },
    /// The key was seen free: take it at `retry_at`.
    Take {
        retry_at: Duration,
    },
    Watching,
    Acquiring,
    Held,
    /// Shut down: never again.
    Resigned,
}

#[derive(Debug)]
pub(super) struct Leadership {
    ha: Option<HaConfig>,
    session: KeptSession,
    lock: Lock,
}

impl Leadership {
    pub(super) fn new(ha: Option<HaConfig>, now: Duration) -> Self {
        Leadership {
            ha,
            session: KeptSession::new(now),
            lock: Lock::Read {
                retry_at: now,
                index: 0,
            },
        }
    }

    pub(super) fn session_mut(&mut self) -> &mut KeptSession {
        &mut self.session
    }

    /// This instance's role now.
    pub(super) fn role(&self) -> Role {
        match (&self.ha, &self.lock) {
            (None, _) | (Some(_), Lock::Held) => Role::Leader,
            (Some(_), _) => Role::Standby,
        }
    }

    /// The guard every KV transaction of a leader under `--ha` carries.
    pub(super) fn txn_guard(&self) -> Option<TxnOp> {
        match (&self.ha, self.session.id(), &self.lock) {
            (Some(ha), Some(id), Lock::Held) => Some(TxnOp::CheckSession {
                key: ha.key.clone(),
                session: String::from(id),
            }),
            _ => None,
        }
    }

    /// When the lease of a leader ends: see the module note.
    fn lease_until(&self, request_timeout: Duration) -> Option<Duration> {
        match (&self.ha, self.session.confirmed_at(), &self.lock) {
            (Some(ha), Some(confirmed_at), Lock::Held) => {
                let margin = request_timeout + Duration::from_secs(1);
                let lease = ha.ttl.saturating_sub(margin).max(ha.ttl / 3);
                Some(confirmed_at + lease)
            }
            _ => None,
        }
    }

    /// The next time this module has something to do.
    pub(super) fn next_at(&self, request_timeout: Duration) -> Option<Duration> {
        self.ha.as_ref()?;
        let lock = match (self.session.id(), &self.lock) {
            (Some(_), Lock::Read { retry_at, .. } | Lock::Take { retry_at }) => Some(*retry_at),
            _ => None,
        };
        [
            self.session.next_at(),
            lock,
            self.lease_until(request_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Bridge {
    /// True if this instance acts now (see [`Role`]).
    pub(super) fn acts(&self) -> bool {
        self.leadership.role() == Role::Leader
    }

    /// Runs what is due: the session to make or renew, the key to read or take, a lease that
    /// ended.
    pub(super) fn on_leadership_timer(&mut self) {
        let Some(ha) = self.leadership.ha.clone() else {
            return;
        };
        let now = self.now;
        if let Some(lease) = self.leadership.lease_until(self.config.request_timeout) {
            if now >= lease {
                self.read_key_again(now);
                self.stand_down("its Consul session could not be renewed in time");
            }
        }
        self.keep_session(SessionPurpose::Lock);
        let Some(session) = self.leadership.session.id().map(String::from) else {
            return;
        };
        match self.leadership.lock {
            Lock::Read { retry_at, index } if retry_at <= now => {
                self.leadership.lock = Lock::Watching;
                let path = kv_watch_path(&ha.key, index, WATCH_WAIT);
                // A blocking read answers after up to its wait (and Consul adds up to 1/16).
                let timeout = self.config.request_timeout + WATCH_WAIT + WATCH_WAIT / 16;
                self.send_urgent(
                    Awaiting::Lock(LockWait::Watch),
                    Method::Get,
                    path,
                    None,
                    timeout,
                );
            }
            Lock::Take { retry_at } if retry_at <= now => {
                self.leadership.lock = Lock::Acquiring;
                let value = serde_json::json!({"instance": ha.instance_id});
                let body = serde_json::to_vec(&value).unwrap_or_default();
                let path = kv_lock_path(&ha.key, LockVerb::Acquire, &session);
                let timeout = self.config.request_timeout;
                let awaiting = Awaiting::Lock(LockWait::Acquire);
                self.send_urgent(awaiting, Method::Put, path, Some(body), timeout);
            }
            _ => {}
        }
    }

    fn read_key_again(&mut self, now: Duration) {
        self.leadership.lock = Lock::Read {
            retry_at: now,
            index: 0,
        };
    }

    /// The lock session's answer: a session Consul ended takes the lead with it.
    pub(super) fn on_lock_session_change(&mut self, change: SessionChange) {
        if change == SessionChange::Ended {
            let was_leader = matches!(self.leadership.lock, Lock::Held);
            self.read_key_again(self.now);
            if was_leader {
                self.stand_down("its Consul session ended");
            }
        }
        // What the answer made due (reading the key, a renewal) goes out now.
        self.on_leadership_timer();
    }

    pub(super) fn on_lock_answer(&mut self, wait: LockWait, answer: Answer) {
        let now = self.now;
        match wait {
            LockWait::Watch => {
                if !matches!(self.leadership.lock, Lock::Watching) {
                    return;
                }
                let ours = self.leadership.session.id().map(String::from);
                self.leadership.lock = match answer.parsed(parse_lock_holder) {
                    // No key, or nobody holds it: take it.
                    Ok(None) => Lock::Take { retry_at: now },
                    Ok(Some(holder)) if holder.session.is_none() => Lock::Take { retry_at: now },
                    Ok(Some(holder)) if holder.session == ours => return self.take_lead(),
                    Ok(Some(holder)) => Lock::Read {
                        retry_at: now,
                        index: holder.modify_index.max(1),
                    },
                    Err(e) => {
                        self.log(
                            Level::Warn,
                            alloc::format!("cannot read the leader key: {e}"),
                        );
                        Lock::Read {
                            retry_at: now + RETRY,
                            index: 0,
                        }
                    }
                };
            }
            LockWait::Acquire => {
                if !matches!(self.leadership.lock, Lock::Acquiring) {
                    return;
                }
                match answer.required(parse_lock_answer) {
                    Ok(true) => return self.take_lead(),
                    Ok(false) => {
                        // Held by another, or within the lock delay after its holder ended:
                        // read it again once that delay is over.
                        let delay = self
                            .leadership
                            .ha
                            .as_ref()
                            .map_or(RETRY, |ha| ha.lock_delay);
                        self.leadership.lock = Lock::Read {
                            retry_at: now + delay,
                            index: 0,
                        };
                    }
                    Err(e) => {
                        self.log(
                            Level::Warn,
                            alloc::format!("cannot take the leader key: {e}"),
                        );
                        self.leadership.lock = Lock::Read {
                            retry_at: now + RETRY,
                            index: 0,
                        };
                    }
                }
            }
            LockWait::Release { session } => {
                // Released (or not): the session goes either way, and with it any lock.
                self.destroy_session(SessionPurpose::Lock, &session);
                return;
            }
        }
        self.on_leadership_timer();
    }

    /// This instance holds the key: it leads from now on, starting with a full sync.
    fn take_lead(&mut self) {
        self.leadership.lock = Lock::Held;
        self.metrics.leadership_taken();
        let instance = self
            .leadership
            .ha
            .as_ref()
            .map_or(String::new(), |ha| ha.instance_id.clone());
        self.log(
            Level::Info,
            alloc::format!("{} became the leader", Shown(&instance)),
        );
        match self.config.events {
            // The stream's connection starts the sync, as at start.
            EventSource::Stream | EventSource::Auto => self.hold_sync_for_stream(),
            EventSource::Callback => self.request_sync("this instance became the leader"),
        }
    }

    /// Stops everything a leader does: the stream, the sync, updates in progress and their
    /// queued writes. Requests already sent are answered into nothing.
    fn stand_down(&mut self, why: &str) {
        self.log(
            Level::Warn,
            alloc::format!("standing down as leader: {why}"),
        );
        self.stop_stream();
        self.stop_sync();
        self.abandon_updates();
        self.abandon_health_reads();
        let dropped = self.requests.abandon_queued(|awaiting| {
            matches!(
                awaiting,
                Awaiting::Task(_) | Awaiting::TaskKv(..) | Awaiting::Sync(..) | Awaiting::Health(_)
            )
        });
        if dropped > 0 {
            self.log(
                Level::Info,
                alloc::format!("{dropped} queued requests dropped"),
            );
        }
    }

    /// Shutting down: a leader releases the key, so a standby leads at once (no lock delay);
    /// the session is destroyed. Nothing is acted on afterwards.
    pub(super) fn resign(&mut self) {
        let was_leader = matches!(self.leadership.lock, Lock::Held);
        self.leadership.lock = Lock::Resigned;
        let session = self.leadership.session.end();
        let (Some(ha), Some(session)) = (self.leadership.ha.clone(), session) else {
            return;
        };
        if was_leader {
            self.stand_down("shutting down");
            let path = kv_lock_path(&ha.key, LockVerb::Release, &session);
            let timeout = self.config.request_timeout;
            let awaiting = Awaiting::Lock(LockWait::Release { session });
            self.send_urgent(awaiting, Method::Put, path, None, timeout);
        } else {
            self.destroy_session(SessionPurpose::Lock, &session);
        }
    }
}
