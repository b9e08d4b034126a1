//! Marathon: the task-state vocabulary, the id grammar ([`ids`]), event parsing, app and task parsing, and the requests the
//! bridge sends to Marathon. Nothing here decides what to do with a task; that is [`crate::plan`]
//! and [`crate::bridge`].

mod app;
mod event;
pub mod health;
pub mod ids;
mod requests;
mod sse;
mod task_state;

pub use app::{
    parse_app_definition, parse_apps, parse_tasks, App, AppDefinition, AppOf, BadPorts, Container,
    Discovery, DockerContainer, IpPerTask, Network, PortSpec, Skipped, Task, TaskAddress,
};
pub use event::{parse_event, EventError, MarathonEvent, StatusUpdate};
pub use health::{HealthCheckSpec, HealthResult, TaskHealth};
pub use requests::{app_path, app_tasks_path, APPS_WITH_TASKS_PATH, SUBSCRIPTIONS_PATH};
pub use sse::{SseEvent, SseParser};
pub use task_state::{TaskAction, TaskState};
