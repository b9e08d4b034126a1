//! The Consul sessions an instance keeps under `--ha`: one holds the leader lock
//! (`leadership.rs`), one ties the instance's status key to its life (`instance.rs`). Each is
//! created, renewed every third of its TTL, and made again when Consul says it ended. What a
//! session is for, and what its end means, is decided by its owner.

use alloc::string::String;
use core::time::Duration;

use super::{Answer, Awaiting, Bridge};
use crate::consul::{
    parse_session_created, session_create_body, session_destroy_path, session_renew_path,
    SessionBehavior, SESSION_CREATE_PATH,
};
use crate::io::{Level, Method, Target};

/// Wait after a failed session request before the next try.
const RETRY: Duration = Duration::from_secs(1);

/// Which of an instance's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SessionPurpose {
    /// Holds the leader key (locks released when it ends).
    Lock,
    /// Holds the instance's status key (deleted when it ends).
    Status,
}

/// Which request of a session an answer is for.
#[derive(Debug)]
pub(super) enum SessionWait {
    Create { sent_at: Duration },
    Renew { id: String, sent_at: Duration },
    Destroy,
}

/// What an answer did to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SessionChange {
    /// It now exists.
    Created,
    /// Consul ended it (a renewal found it gone); another is being made.
    Ended,
    /// Nothing its owner must act on.
    Unchanged,
}

#[derive(Debug)]
enum SessionState {
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

/// One session kept alive.
#[derive(Debug)]
pub(super) struct KeptSession {
    state: SessionState,
}

impl KeptSession {
    pub(super) fn new(now: Duration) -> Self {
        KeptSession {
            state: SessionState::Absent { retry_at: now },
        }
    }

    /// The session's id while it exists.
    pub(super) fn id(&self) -> Option<&str> {
        match &self.state {
            SessionState::Live { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Send time of the last renewal Consul confirmed, while it exists.
    pub(super) fn confirmed_at(&self) -> Option<Duration> {
        match &self.state {
            SessionState::Live { confirmed_at, .. } => Some(*confirmed_at),
            _ => None,
        }
    }

    /// When it next needs a request.
    pub(super) fn next_at(&self) -> Option<Duration> {
        match &self.state {
            SessionState::Absent { retry_at } => Some(*retry_at),
            SessionState::Live {
                renew_at,
                renewing: false,
                ..
            } => Some(*renew_at),
            _ => None,
        }
    }

    /// Ends it for good (shutting down); hands back the id of the one that existed.
    pub(super) fn end(&mut self) -> Option<String> {
        match core::mem::replace(&mut self.state, SessionState::Ended) {
            SessionState::Live { id, .. } => Some(id),
            _ => None,
        }
    }
}

impl Bridge {
    fn kept_session(&mut self, purpose: SessionPurpose) -> &mut KeptSession {
        match purpose {
            SessionPurpose::Lock => self.leadership.session_mut(),
            SessionPurpose::Status => self.instance.session_mut(),
        }
    }

    /// Creates or renews session `purpose` if it is due.
    pub(super) fn keep_session(&mut self, purpose: SessionPurpose) {
        let Some(ha) = self.config.ha.clone() else {
            return;
        };
        let now = self.now;
        let session = self.kept_session(purpose);
        let request = match &mut session.state {
            SessionState::Absent { retry_at } if *retry_at <= now => {
                session.state = SessionState::Creating;
                let (what, behavior) = match purpose {
                    SessionPurpose::Lock => ("leader", SessionBehavior::Release),
                    SessionPurpose::Status => ("status", SessionBehavior::Delete),
                };
                let name = alloc::format!("consular {} {what}", ha.instance_id);
                let body = session_create_body(&name, ha.ttl, ha.lock_delay, behavior);
                let wait = SessionWait::Create { sent_at: now };
                Some((wait, String::from(SESSION_CREATE_PATH), Some(body)))
            }
            SessionState::Live {
                id,
                renew_at,
                renewing,
                ..
            } if !*renewing && *renew_at <= now => {
                *renewing = true;
                let path = session_renew_path(id);
                let wait = SessionWait::Renew {
                    id: id.clone(),
                    sent_at: now,
                };
                Some((wait, path, None))
            }
            _ => None,
        };
        if let Some((wait, path, body)) = request {
            self.send_session(purpose, wait, path, body);
        }
    }

    /// Destroys session `id` (shutting down, or one made too late).
    pub(super) fn destroy_session(&mut self, purpose: SessionPurpose, id: &str) {
        let path = session_destroy_path(id);
        self.send_session(purpose, SessionWait::Destroy, path, None);
    }

    fn send_session(
        &mut self,
        purpose: SessionPurpose,
        wait: SessionWait,
        path: String,
        body: Option<alloc::vec::Vec<u8>>,
    ) {
        let timeout = self.config.request_timeout;
        self.send_urgent(
            Awaiting::Session(purpose, wait),
            Method::Put,
            path,
            body,
            timeout,
        );
    }

    pub(super) fn on_session_answer(
        &mut self,
        purpose: SessionPurpose,
        wait: SessionWait,
        answer: Answer,
    ) -> SessionChange {
        let now = self.now;
        let ttl = self.config.ha.as_ref().map_or(RETRY, |ha| ha.ttl);
        match wait {
            SessionWait::Create { sent_at } => {
                let created = answer.required(parse_session_created);
                let session = self.kept_session(purpose);
                let creating = matches!(session.state, SessionState::Creating);
                match created {
                    Ok(id) if creating => {
                        session.state = SessionState::Live {
                            id: id.clone(),
                            renew_at: sent_at + ttl / 3,
                            renewing: false,
                            confirmed_at: sent_at,
                        };
                        self.log(Level::Info, alloc::format!("Consul session {id} created"));
                        SessionChange::Created
                    }
                    Ok(id) => {
                        // Ended meanwhile: end what was just made.
                        self.destroy_session(purpose, &id);
                        SessionChange::Unchanged
                    }
                    Err(e) => {
                        if creating {
                            session.state = SessionState::Absent {
                                retry_at: now + RETRY,
                            };
                        }
                        let message = alloc::format!("cannot create a Consul session: {e}");
                        self.log(Level::Error, message);
                        SessionChange::Unchanged
                    }
                }
            }
            SessionWait::Renew {
                id: renewed,
                sent_at,
            } => {
                let session = self.kept_session(purpose);
                let SessionState::Live {
                    id,
                    renew_at,
                    renewing,
                    confirmed_at,
                } = &mut session.state
                else {
                    return SessionChange::Unchanged;
                };
                if *id != renewed {
                    return SessionChange::Unchanged;
                }
                *renewing = false;
                if answer.body().is_some() {
                    *confirmed_at = sent_at;
                    *renew_at = sent_at + ttl / 3;
                    return SessionChange::Unchanged;
                }
                if answer.status() == Some(404) {
                    session.state = SessionState::Absent { retry_at: now };
                    let message = alloc::format!("Consul session {renewed} ended; making another");
                    self.log(Level::Warn, message);
                    return SessionChange::Ended;
                }
                *renew_at = now + RETRY;
                let message = alloc::format!("cannot renew a Consul session: {}", answer.failure());
                self.log(Level::Warn, message);
                SessionChange::Unchanged
            }
            SessionWait::Destroy => SessionChange::Unchanged,
        }
    }

    /// Sends a request of `--ha`'s own past the queues and limits: to the main Consul.
    pub(super) fn send_urgent(
        &mut self,
        awaiting: Awaiting,
        method: Method,
        path: String,
        body: Option<alloc::vec::Vec<u8>>,
        timeout: Duration,
    ) {
        let new = super::requests::NewRequest {
            target: Target::Consul,
            method,
            path_and_query: path,
            body,
            response_limit: crate::Config::WRITE_RESPONSE_LIMIT,
            timeout,
        };
        self.requests
            .submit_urgent(self.now, awaiting, new, &mut self.out);
    }
}
