//! The desired-state plan: which services a task becomes ([`services`]), what Consul should hold
//! given a Marathon snapshot ([`desired`]), and the smallest set of writes that gets it there
//! from what Consul holds now ([`diff`]), and which services marathon-consul left behind
//! ([`migration`]). Pure
//! functions over owned data; no requests, no timing.

pub mod desired;
pub mod diff;
pub mod migration;
pub mod services;

pub use desired::{desired_state, DesiredService, DesiredState};
pub use diff::{
    plan_app_labels, plan_sync, CheckWrite, ConsulState, Exclusions, ObservedCheck,
    ObservedService, Purge, SyncPlan,
};
pub use migration::{marathon_consul_leftovers, Leftovers};
pub use services::{AppServices, Registering, Selection, ServiceRules, TaskFacts};
