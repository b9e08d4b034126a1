//! Settings of a [`crate::Bridge`]: everything the core needs to decide, nothing about how to reach
//! peers (URLs, TLS and credentials belong to the driver).

use alloc::string::String;
use core::time::Duration;

/// Where Marathon's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// Only the HTTP callback (`/events`), subscribed at [`Config::callback_url`].
    Callback,
    /// Only the `/v2/events` stream.
    Stream,
    /// The stream; HTTP callbacks if Marathon has no stream.
    Auto,
}

/// When `/events` takes Marathon's HTTP callbacks. Every task in the cluster can reach the
/// listener, so the endpoint is open only while it is the event source unless asked otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsEndpoint {
    /// Only while callbacks are the event source ([`EventSource::Callback`], or
    /// [`EventSource::Auto`] on a Marathon without a stream); otherwise `/events` answers 404.
    WhileCallbacks,
    /// Always, whatever the event source (`--accept-callbacks`).
    Always,
}

/// Which address a task's services register (`--address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressMode {
    /// The task's own IP and container port for an app on IP-per-task or a container network
    /// without host ports; the host and host port for everything else.
    Auto,
    /// Always the task's host and host port (consular 1.3.0).
    Host,
    /// The task's own IP (and container port) whenever Marathon reports one.
    TaskIp,
}

/// Which Consul checks a task's services carry (`--health-checks`). Only apps with Marathon
/// health checks get any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChecks {
    /// None (consular 1.3.0).
    None,
    /// One TTL check per service whose status follows Marathon's health results.
    Mirror,
    /// The agent runs the equivalent of each of Marathon's HTTP and TCP checks itself.
    Agent,
}

/// When a task of an app with health checks is registered (`--register-when-healthy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterWhen {
    /// On `TASK_RUNNING`, healthy or not (consular 1.3.0).
    Running,
    /// Once Marathon reports every check alive; deregistered when one fails. Tasks of apps
    /// without health checks still register on `TASK_RUNNING`.
    Healthy,
}

/// What the sync does with the services allegro/marathon-consul registered
/// (`--migrate-marathon-consul`), for users replacing it with this bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarathonConsulLeftovers {
    /// Leave them alone, as everything not ours (consular 1.3.0).
    Keep,
    /// Deregister them, once per process: every sync until the first one that listed every
    /// agent, then never again (see [`crate::plan::migration`] for which services those are).
    RemoveOnce,
}

/// Where a task whose host has no reachable agent registers (`--fallback-mode`, with
/// `--fallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackMode {
    /// On the main Consul agent (consular 1.3.0's `--fallback`).
    Agent,
    /// In the catalog, on an external node named after the host (consul-esm runs its checks).
    Catalog,
}

/// Where tasks register (`--agentless`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On their host's agent.
    OnAgents,
    /// Every task on an external node named after its host: clusters without agents on the
    /// Mesos hosts.
    Agentless,
}

/// Whether a sync's writes are made (`--dry-run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Made.
    Apply,
    /// Logged, one line each and a summary, and not made; the bridge is done after its first
    /// sync ([`crate::Bridge::is_done`]).
    DryRun,
}

/// Leader election among several instances (`--ha`): a Consul session holds `key`; only its
/// holder acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// The lock key (`--ha-key`); outside `consular/`, so no purge can touch it.
    pub key: String,
    /// The session's TTL (`--ha-ttl`; Consul takes 10 s to 24 h).
    pub ttl: Duration,
    /// Consul's lock delay: after a holder's session ends, nobody may take the key this long.
    pub lock_delay: Duration,
    /// This instance's name (`--instance-id`), in the session name and the key's value.
    pub instance_id: String,
    /// Where this instance serves HTTP, for the `consular` service it registers; `None`: it
    /// registers none.
    pub advertise: Option<Advertised>,
    /// The wall-clock time (ms since the Unix epoch) at the bridge's time zero, for the times
    /// in the status key; `None`: they are left out.
    pub started_at_unix_ms: Option<u64>,
}

/// Where an instance serves HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    /// The address other hosts reach it on.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// The URL of its `/`, which Consul's check requests.
    pub check_url: String,
}

impl HaConfig {
    /// `--ha` with its defaults for `registration_id` and `instance_id`.
    pub fn new(registration_id: &str, instance_id: &str) -> Self {
        HaConfig {
            key: alloc::format!("service/consular/{registration_id}/leader"),
            ttl: Duration::from_secs(15),
            lock_delay: Duration::from_secs(1),
            instance_id: String::from(instance_id),
            advertise: None,
            started_at_unix_ms: None,
        }
    }
}

/// How the bridge behaves. [`Config::default`] matches consular 1.3.0's defaults (callbacks only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Written into the `consular-reg-id=<id>` tag; only services carrying it are ever purged.
    pub registration_id: String,
    /// Our `/events` URL to subscribe at Marathon as an HTTP callback, or `None` not to subscribe.
    pub callback_url: Option<String>,
    /// Time between full syncs; zero turns scheduled syncs off. The first sync starts at once.
    pub sync_interval: Duration,
    /// During syncs, deregister our services whose task no longer runs and delete dead apps' KV.
    pub purge: bool,
    /// Timeout of every request to Marathon and Consul.
    pub request_timeout: Duration,
    /// Only apps carrying this label are registered; apps that lose it are deregistered.
    pub require_label: Option<String>,
    /// Which address a task's services register.
    pub address: AddressMode,
    /// Which checks a task's services carry.
    pub health_checks: HealthChecks,
    /// When tasks of apps with health checks are registered.
    pub register_when: RegisterWhen,
    /// Register on the main Consul endpoint when the task host's agent fails.
    pub fallback: bool,
    /// Timeout of the fallback registration.
    pub fallback_timeout: Duration,
    /// Where a fallback registration goes.
    pub fallback_mode: FallbackMode,
    /// Where tasks register at all.
    pub placement: Placement,
    /// Requests in flight at most, over all targets.
    pub max_in_flight: usize,
    /// Requests in flight at most to any one target, so a slow agent cannot starve the others.
    pub max_in_flight_per_target: usize,
    /// Emit [`crate::Level::Debug`] records (one per request).
    pub debug: bool,
    /// Where events come from.
    pub events: EventSource,
    /// When `/events` is served.
    pub events_endpoint: EventsEndpoint,
    /// A secret every `/events` request must carry as its `secret` query parameter (it is put in
    /// the subscribed [`Config::callback_url`]); requests without it get 403.
    pub events_secret: Option<String>,
    /// Reconnect a stream that sent nothing, not even Marathon's 10-second heartbeat, this long.
    pub stream_idle_timeout: Duration,
    /// Events larger than this are skipped (and counted), never buffered.
    pub max_event_bytes: usize,
    /// Largest response body read for a `GET` (Marathon's app list, Consul's listings); a write's
    /// answer is limited to [`Config::WRITE_RESPONSE_LIMIT`].
    pub max_listing_bytes: usize,
    /// Seed of the reconnect jitter, so runs can be replayed.
    pub seed: u64,
    /// Whether syncs remove marathon-consul's services.
    pub marathon_consul: MarathonConsulLeftovers,
    /// Leader election among instances; `None`: this instance always acts.
    pub ha: Option<HaConfig>,
    /// Whether syncs write.
    pub writes: WriteMode,
}

impl Config {
    /// How tasks become services under this configuration.
    pub fn service_rules(&self) -> crate::plan::ServiceRules {
        crate::plan::ServiceRules {
            registration_id: self.registration_id.clone(),
            require_label: self.require_label.clone(),
            address: self.address,
            health_checks: self.health_checks,
            register_when: self.register_when,
        }
    }

    /// Largest answer read for a write (a registration, a deregistration, a KV transaction, the
    /// callback subscription): Consul and Marathon answer these with a few hundred bytes.
    pub const WRITE_RESPONSE_LIMIT: usize = 256 << 10;
}

impl Default for Config {
    fn default() -> Self {
        Config {
            registration_id: String::from("consular"),
            callback_url: None,
            sync_interval: Duration::ZERO,
            purge: false,
            request_timeout: Duration::from_secs(5),
            require_label: None,
            address: AddressMode::Auto,
            health_checks: HealthChecks::None,
            register_when: RegisterWhen::Running,
            fallback: false,
            fallback_timeout: Duration::from_secs(2),
            fallback_mode: FallbackMode::Agent,
            placement: Placement::OnAgents,
            max_in_flight: 64,
            max_in_flight_per_target: 8,
            debug: false,
            events: EventSource::Callback,
            events_endpoint: EventsEndpoint::WhileCallbacks,
            events_secret: None,
            stream_idle_timeout: Duration::from_secs(30),
            max_event_bytes: 1 << 20,
            max_listing_bytes: 64 << 20,
            seed: 0,
            marathon_consul: MarathonConsulLeftovers::Keep,
            ha: None,
            writes: WriteMode::Apply,
        }
    }
}
