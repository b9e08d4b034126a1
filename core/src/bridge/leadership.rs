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
use alloc::vec::Vec;
use core::time::Duration;

use super::{Answer, Awaiting, Bridge, Counter};
use crate::config::{EventSource, HaConfig};
use crate::consul::{
    kv_lock_path, kv_watch_path, parse_lock_answer, parse_lock_holder, parse_session_created,
    session_create_body, session_destroy_path, session_renew_path, LockVerb, TxnOp,
    SESSION_CREATE_PATH,
};
use crate::io::{Level, Method, Target};
use crate::marathon::ids::Shown;

/// How long a standby's blocking read of the key waits at most.
const WATCH_WAIT: Duration = Duration::from_secs(30);
/// Wait after a failed request of this module before the next try.
const RETRY: Duration = Duration::from_secs(1);

/// Whether this instance acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It acts: it holds the lock, or runs without `--ha`.
    Leader,
    /// Another instance leads (or none yet): this one writes nothing.
    Standby,
}

/// Which request of this module an answer is for.
#[derive(Debug)]
pub(super) enum LeadershipWait {
    Create { sent_at: Duration },
    Renew { session: String, sent_at: Duration },
    Watch,
    Acquire,
    Release { session: String },
    Destroy,
}

#[derive(Debug)]
enum Session {
    Absent {
        retry_at: Duration,
    },
    Creating,
    Live {
        id: String,
        renew_at: Duration,
        renewing: bool,
        /// Send time of the last renewal (or the creation) Consul confirmed.
        confirmed_at: Duration,
    },
    /// Shut down: no session, and none is made.
    Ended,
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
    session: Session,
    lock: Lock,
}

impl Leadership {
    pub(super) fn new(ha: Option<HaConfig>, now: Duration) -> Self {
        Leadership {
            ha,
            session: Session::Absent { retry_at: now },
            lock: Lock::Read {
                retry_at: now,
                index: 0,
            },
        }
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
        match (&self.ha, &self.session, &self.lock) {
            (Some(ha), Session::Live { id, .. }, Lock::Held) => Some(TxnOp::CheckSession {
                key: ha.key.clone(),
                session: id.clone(),
            }),
            _ => None,
        }
    }

    /// When the lease of a leader ends: see the module note.
    fn lease_until(&self, request_timeout: Duration) -> Option<Duration> {
        match (&self.ha, &self.session, &self.lock) {
            (Some(ha), Session::Live { confirmed_at, .. }, Lock::Held) => {
                let margin = request_timeout + Duration::from_secs(1);
                let lease = ha.ttl.saturating_sub(margin).max(ha.ttl / 3);
                Some(*confirmed_at + lease)
            }
            _ => None,
        }
    }

    /// The next time this module has something to do.
    pub(super) fn next_at(&self, request_timeout: Duration) -> Option<Duration> {
        self.ha.as_ref()?;
        let session = match &self.session {
            Session::Absent { retry_at } => Some(*retry_at),
            Session::Live {
                renew_at,
                renewing: false,
                ..
            } => Some(*renew_at),
            _ => None,
        };
        let lock = match (&self.session, &self.lock) {
            (Session::Live { .. }, Lock::Read { retry_at, .. } | Lock::Take { retry_at }) => {
                Some(*retry_at)
            }
            _ => None,
        };
        [session, lock, self.lease_until(request_timeout)]
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

    /// Runs what is due: a session to make or renew, the key to read, a lease that ended.
    pub(super) fn on_leadership_timer(&mut self) {
        let Some(ha) = self.leadership.ha.clone() else {
            return;
        };
        let now = self.now;
        if let Some(lease) = self.leadership.lease_until(self.config.request_timeout) {
            if now >= lease {
                self.leadership.lock = Lock::Read {
                    retry_at: now,
                    index: 0,
                };
                self.stand_down("its Consul session could not be renewed in time");
            }
        }
        match &mut self.leadership.session {
            Session::Absent { retry_at } if *retry_at <= now => {
                self.leadership.session = Session::Creating;
                let name = alloc::format!("consular {}", ha.instance_id);
                let body = session_create_body(&name, ha.ttl, ha.lock_delay);
                let wait = LeadershipWait::Create { sent_at: now };
                self.send_leadership(
                    wait,
                    Method::Put,
                    String::from(SESSION_CREATE_PATH),
                    Some(body),
                );
            }
            Session::Live {
                id,
                renew_at,
                renewing,
                ..
            } if !*renewing && *renew_at <= now => {
                *renewing = true;
                let session = id.clone();
                let path = session_renew_path(&session);
                let wait = LeadershipWait::Renew {
                    session,
                    sent_at: now,
                };
                self.send_leadership(wait, Method::Put, path, None);
            }
            _ => {}
        }
        let Session::Live { id, .. } = &self.leadership.session else {
            return;
        };
        let session = id.clone();
        match self.leadership.lock {
            Lock::Read { retry_at, index } if retry_at <= now => {
                self.leadership.lock = Lock::Watching;
                let path = kv_watch_path(&ha.key, index, WATCH_WAIT);
                self.send_leadership(LeadershipWait::Watch, Method::Get, path, None);
            }
            Lock::Take { retry_at } if retry_at <= now => {
                self.leadership.lock = Lock::Acquiring;
                let value = serde_json::json!({"instance": ha.instance_id});
                let body = serde_json::to_vec(&value).unwrap_or_default();
                let path = kv_lock_path(&ha.key, LockVerb::Acquire, &session);
                self.send_leadership(LeadershipWait::Acquire, Method::Put, path, Some(body));
            }
            _ => {}
        }
    }

    fn send_leadership(
        &mut self,
        wait: LeadershipWait,
        method: Method,
        path: String,
        body: Option<Vec<u8>>,
    ) {
        // A blocking read answers after up to its wait (and Consul adds up to 1/16 of it).
        let timeout = match wait {
            LeadershipWait::Watch => self.config.request_timeout + WATCH_WAIT + WATCH_WAIT / 16,
            _ => self.config.request_timeout,
        };
        let new = super::requests::NewRequest {
            target: Target::Consul,
            method,
            path_and_query: path,
            body,
            response_limit: crate::Config::WRITE_RESPONSE_LIMIT,
            timeout,
        };
        let awaiting = Awaiting::Leadership(wait);
        self.requests
            .submit_urgent(self.now, awaiting, new, &mut self.out);
    }

    pub(super) fn on_leadership_answer(&mut self, wait: LeadershipWait, answer: Answer) {
        self.leadership_answered(wait, answer);
        // What the answer made due (a read of the key, a renewal) goes out now, not at the
        // driver's next timeout.
        self.on_leadership_timer();
    }

    fn leadership_answered(&mut self, wait: LeadershipWait, answer: Answer) {
        let now = self.now;
        match wait {
            LeadershipWait::Create { sent_at } => match answer.required(parse_session_created) {
                Ok(id) if matches!(self.leadership.session, Session::Creating) => {
                    let ttl = self.leadership.ha.as_ref().map_or(RETRY, |ha| ha.ttl);
                    self.log(Level::Info, alloc::format!("Consul session {id} created"));
                    self.leadership.session = Session::Live {
                        id,
                        renew_at: sent_at + ttl / 3,
                        renewing: false,
                        confirmed_at: sent_at,
                    };
                }
                Ok(id) => {
                    // Shut down meanwhile: end what was just made.
                    self.send_leadership(
                        LeadershipWait::Destroy,
                        Method::Put,
                        session_destroy_path(&id),
                        None,
                    );
                }
                Err(e) => {
                    self.log(
                        Level::Error,
                        alloc::format!("cannot create a Consul session: {e}"),
                    );
                    if matches!(self.leadership.session, Session::Creating) {
                        self.leadership.session = Session::Absent {
                            retry_at: now + RETRY,
                        };
                    }
                }
            },
            LeadershipWait::Renew { session, sent_at } => {
                let ttl = self.leadership.ha.as_ref().map_or(RETRY, |ha| ha.ttl);
                let Session::Live {
                    id,
                    renew_at,
                    renewing,
                    confirmed_at,
                } = &mut self.leadership.session
                else {
                    return;
                };
                if *id != session {
                    return;
                }
                *renewing = false;
                if answer.body().is_some() {
                    *confirmed_at = sent_at;
                    *renew_at = sent_at + ttl / 3;
                } else if answer.status() == Some(404) {
                    let message = alloc::format!("Consul session {session} ended; making another");
                    self.leadership.session = Session::Absent { retry_at: now };
                    let was_leader = matches!(self.leadership.lock, Lock::Held);
                    self.leadership.lock = Lock::Read {
                        retry_at: now,
                        index: 0,
                    };
                    self.log(Level::Warn, message);
                    if was_leader {
                        self.stand_down("its Consul session ended");
                    }
                } else {
                    *renew_at = now + RETRY;
                    let message =
                        alloc::format!("cannot renew the Consul session: {}", answer.failure());
                    self.log(Level::Warn, message);
                }
            }
            LeadershipWait::Watch => {
                if !matches!(self.leadership.lock, Lock::Watching) {
                    return;
                }
                let ours = match &self.leadership.session {
                    Session::Live { id, .. } => Some(id.clone()),
                    _ => None,
                };
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
            LeadershipWait::Acquire => {
                if !matches!(self.leadership.lock, Lock::Acquiring) {
                    return;
                }
                match answer.required(parse_lock_answer) {
                    Ok(true) => self.take_lead(),
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
            LeadershipWait::Release { session } => {
                // Released (or not): the session goes either way, and with it any lock.
                self.send_leadership(
                    LeadershipWait::Destroy,
                    Method::Put,
                    session_destroy_path(&session),
                    None,
                );
            }
            LeadershipWait::Destroy => {}
        }
    }

    /// This instance holds the key: it leads from now on, starting with a full sync.
    fn take_lead(&mut self) {
        self.leadership.lock = Lock::Held;
        self.stats.count(Counter::LeadershipsTaken, 1);
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
        let session = match core::mem::replace(&mut self.leadership.session, Session::Ended) {
            Session::Live { id, .. } => Some(id),
            _ => None,
        };
        self.leadership.lock = Lock::Resigned;
        let (Some(ha), Some(session)) = (self.leadership.ha.clone(), session) else {
            return;
        };
        if was_leader {
            self.stand_down("shutting down");
            let path = kv_lock_path(&ha.key, LockVerb::Release, &session);
            self.send_leadership(LeadershipWait::Release { session }, Method::Put, path, None);
        } else {
            self.send_leadership(
                LeadershipWait::Destroy,
                Method::Put,
                session_destroy_path(&session),
                None,
            );
        }
    }
}
