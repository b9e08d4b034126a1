//! The one door for Marathon's events: a callback POSTed to `/events` and a frame of the event
//! stream both arrive here, parsed, and take the same path to the task and sync workflows. Only
//! the answer differs: a callback gets a reply, the stream has nobody to reply to. Who may post to
//! `/events` (served or not, the secret) is checked before, in `mod.rs`.

use alloc::string::String;

use super::health::HealthFollowed;
use super::metrics::EventKind;
use super::sync::Termination;
use super::Bridge;
use crate::io::{InboundId, Level};
use crate::marathon::{parse_event, MarathonEvent};

/// Where an event came from, and so whom to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventOrigin {
    /// POSTed to `/events`: answered exactly once.
    Callback(InboundId),
    /// A frame of the event stream.
    Stream,
}

impl Bridge {
    /// Parses one event body and acts on it.
    pub(super) fn take_event(&mut self, origin: EventOrigin, body: &[u8]) {
        let reply_to = match origin {
            EventOrigin::Callback(id) => Some(id),
            EventOrigin::Stream => None,
        };
        let event = parse_event(body);
        let kind = match &event {
            Ok(MarathonEvent::StatusUpdate(_)) => EventKind::StatusUpdate,
            Ok(MarathonEvent::HealthChanged { .. }) => EventKind::HealthChanged,
            Ok(MarathonEvent::AppTerminated { .. }) => EventKind::AppTerminated,
            Ok(MarathonEvent::Other(_)) => EventKind::Other,
            Err(_) => EventKind::Invalid,
        };
        self.metrics.event_received(kind);
        match event {
            Ok(MarathonEvent::StatusUpdate(update)) => {
                self.metrics.status_update_received(update.state);
                self.handle_status_update(reply_to, update);
            }
            Ok(MarathonEvent::HealthChanged {
                app_id,
                instance_id,
            }) => {
                let followed = self.follow_health(&app_id, &instance_id);
                match (followed, reply_to) {
                    (HealthFollowed::Reading, Some(id)) => {
                        self.reply(id, 200, String::from("{\"status\": \"ok\"}"))
                    }
                    (HealthFollowed::Ignored, Some(id)) => {
                        self.reply(id, 200, String::from("{\"status\": \"ignored\"}"))
                    }
                    (HealthFollowed::Dropped, Some(id)) => {
                        self.metrics.event_dropped();
                        self.reply_error(id, 503, "too many health events are waiting; retry later")
                    }
                    (HealthFollowed::Dropped, None) => {
                        self.metrics.event_dropped();
                        self.request_sync("health events were dropped")
                    }
                    (_, None) => {}
                }
            }
            Ok(MarathonEvent::AppTerminated { app_id }) => {
                let status = match self.handle_app_terminated(&app_id) {
                    Termination::Purging => "{\"status\": \"ok\"}",
                    Termination::UnknownApp => "{\"status\": \"ignored\"}",
                };
                if let Some(id) = reply_to {
                    self.reply(id, 200, String::from(status));
                }
            }
            Ok(MarathonEvent::Other(event_type)) => {
                // Marathon posts every event type to callbacks and backs off a callback that
                // fails, so unused types are acknowledged rather than rejected.
                self.debug(alloc::format!("ignoring {event_type}"));
                if let Some(id) = reply_to {
                    self.reply(id, 200, String::from("{\"status\": \"ignored\"}"));
                }
            }
            Err(e) => {
                let message = alloc::format!("{e}");
                match reply_to {
                    Some(id) => {
                        self.log(Level::Warn, alloc::format!("rejected event: {message}"));
                        self.reply_error(id, 400, &message);
                    }
                    None => self.log(
                        Level::Warn,
                        alloc::format!("skipped an unreadable stream event: {message}"),
                    ),
                }
            }
        }
    }
}
