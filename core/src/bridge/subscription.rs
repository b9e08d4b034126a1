//! The HTTP callback subscription: make sure our `/events` URL is registered at Marathon, and keep
//! retrying with backoff while Marathon cannot be reached or refuses. consular 1.3.0 tried once.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;
use serde::Deserialize;

use super::{Answer, Awaiting, Bridge};
use crate::encoding::{encode_query_value, redact_secret};
use crate::io::{Level, Method, Target};
use crate::marathon::SUBSCRIPTIONS_PATH;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// Which subscription request a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SubscriptionStep {
    List,
    Subscribe,
}

/// Whether Marathon holds our callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallbackState {
    /// Not (yet) registered at Marathon.
    Pending,
    /// Marathon listed it, or took it.
    Registered,
}

#[derive(Debug)]
pub(super) struct Subscription {
    next_attempt: Option<Duration>,
    backoff: Duration,
    state: CallbackState,
}

impl Subscription {
    /// A subscription that starts at `start`, or never.
    pub(super) fn new(start: Option<Duration>) -> Self {
        Subscription {
            next_attempt: start,
            backoff: FIRST_RETRY,
            state: CallbackState::Pending,
        }
    }

    pub(super) fn state(&self) -> CallbackState {
        self.state
    }

    pub(super) fn is_due(&self, now: Duration) -> bool {
        self.next_attempt.is_some_and(|at| at <= now)
    }

    pub(super) fn next_at(&self) -> Option<Duration> {
        self.next_attempt
    }
}

#[derive(Deserialize)]
struct CallbackUrls {
    #[serde(rename = "callbackUrls")]
    callback_urls: Vec<String>,
}

impl Bridge {
    pub(super) fn start_subscription(&mut self) {
        self.subscription.next_attempt = None;
        if self.config.callback_url.is_none() {
            return;
        }
        let timeout = self.config.request_timeout;
        let path = String::from(SUBSCRIPTIONS_PATH);
        self.send(
            Awaiting::Subscription(SubscriptionStep::List),
            Target::Marathon,
            Method::Get,
            path,
            None,
            timeout,
        );
    }

    pub(super) fn on_subscription_answer(&mut self, step: SubscriptionStep, answer: Answer) {
        let Some(url) = self.config.callback_url.clone() else {
            return;
        };
        let Some(body) = answer.body() else {
            return self.retry_subscription(&answer);
        };
        match step {
            SubscriptionStep::List => {
                let listed = serde_json::from_slice::<CallbackUrls>(body)
                    .is_ok_and(|l| l.callback_urls.contains(&url));
                if listed {
                    self.subscription.backoff = FIRST_RETRY;
                    self.subscription.state = CallbackState::Registered;
                    let shown = redact_secret(&url);
                    self.log(
                        Level::Info,
                        alloc::format!("callback {shown} is already registered at Marathon"),
                    );
                } else {
                    let path = alloc::format!(
                        "{SUBSCRIPTIONS_PATH}?callbackUrl={}",
                        encode_query_value(&url)
                    );
                    let timeout = self.config.request_timeout;
                    let awaiting = Awaiting::Subscription(SubscriptionStep::Subscribe);
                    self.send(
                        awaiting,
                        Target::Marathon,
                        Method::Post,
                        path,
                        None,
                        timeout,
                    );
                }
            }
            SubscriptionStep::Subscribe => {
                self.subscription.backoff = FIRST_RETRY;
                self.subscription.state = CallbackState::Registered;
                let shown = redact_secret(&url);
                self.log(
                    Level::Info,
                    alloc::format!("registered callback {shown} at Marathon"),
                );
            }
        }
    }

    fn retry_subscription(&mut self, answer: &Answer) {
        let hint = match answer.status() {
            Some(400) => "Marathon's HTTP callbacks are off; start Marathon with --event_subscriber http_callback",
            Some(404) => "this Marathon has no HTTP callbacks (removed in 1.5)",
            Some(401) | Some(403) => "check the Marathon credentials",
            _ => "check --marathon and that Marathon is up",
        };
        let backoff = self.subscription.backoff;
        self.log(
            Level::Error,
            alloc::format!(
                "cannot register the event callback: {}; {hint}; retrying in {}s",
                answer.failure(),
                backoff.as_secs()
            ),
        );
        self.subscription.next_attempt = Some(self.now + backoff);
        self.subscription.backoff = (backoff * 2).min(MAX_RETRY);
    }
}
