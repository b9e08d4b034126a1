//! The world of an end-to-end test: a real Consul cluster ([`ConsulCluster`]), the Marathon simulator over HTTP
//! ([`MarathonServer`]) and the `consular` binary between them ([`Consular`]), with the waits and readings the tests
//! share. [`Peers`] is the world before the bridge starts (so a test can seed state the bridge must find);
//! [`Peers::launch`] starts the bridge and returns the [`World`].
//!
//! Also here: the builders of Marathon's events (`status_update`, `sse`), a task started in the model (`run_task`),
//! and `register_directly` for services another tool put on an agent.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use consular_adapters::simulator::MarathonServer;
use consular_sim::{sse_frame, MarathonVersion, SimEvent, SimMarathon};
use serde_json::{json, Value};

use super::bridge::Consular;
use super::consul::{self, wait_until, ClusterConfig, ConsulCluster};

/// How long anything the bridge should do may take. Generous for a loaded 2-core CI machine; a pass takes far less.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// The tag every service of this bridge carries (the default `--registration-id`).
pub const OUR_TAG: &str = "consular-reg-id=consular";
/// Agent indexes of [`ConsulCluster`]: the server (127.0.0.1) and the first two clients.
pub const SERVER: usize = 0;
pub const AGENT_2: usize = 1;
pub const AGENT_3: usize = 2;

// ---------------------------------------------------------------------------------------------------------------
// The world: Consul, Marathon and the bridge
// ---------------------------------------------------------------------------------------------------------------

/// One test's world. Fields drop in order: the bridge first, so it never sees its peers vanish.
pub struct World {
    pub consular: Consular,
    pub marathon: MarathonServer,
    pub cluster: ConsulCluster,
}

/// Consul and Marathon, before the bridge starts: a test can seed state the bridge must find.
pub struct Peers {
    pub marathon: MarathonServer,
    pub cluster: ConsulCluster,
}

impl Peers {
    /// Starts a Consul cluster with `clients` client agents and a Marathon of `version` whose model `setup`
    /// prepared.
    ///
    /// The events `setup` caused are discarded: they are history from before the bridge existed, so only a sync
    /// can bring that state into Consul.
    pub fn start(
        clients: usize,
        version: MarathonVersion,
        setup: impl FnOnce(&mut SimMarathon),
    ) -> Peers {
        Self::start_with(clients, &ClusterConfig::default(), version, setup)
    }

    /// [`start`](Self::start) with a cluster configured by `config` (TLS, ACLs).
    pub fn start_with(
        clients: usize,
        config: &ClusterConfig,
        version: MarathonVersion,
        setup: impl FnOnce(&mut SimMarathon),
    ) -> Peers {
        let cluster = ConsulCluster::start_with(clients, config);
        let mut model = SimMarathon::new(version);
        setup(&mut model);
        model.take_events();
        let marathon = MarathonServer::start(model).expect("starting the Marathon simulator");
        Peers { marathon, cluster }
    }

    /// Starts `consular` with `flags` and returns once it is connected to its event source: subscribed as a
    /// callback (`--events callback`) or with one open event stream (`--events sse`).
    pub fn launch(self, flags: &[&str]) -> World {
        let world = self.launch_unconnected(flags);
        if flags.windows(2).any(|w| w == ["--events", "callback"]) {
            let url = world.consular.callback_url();
            wait_until("consular to subscribe its callback URL", DEADLINE, || {
                world.marathon.with(|m| m.subscriptions().contains(&url))
            });
        } else if flags.windows(2).any(|w| w == ["--events", "sse"]) {
            wait_until("consular to open Marathon's event stream", DEADLINE, || {
                world.marathon.open_streams() == 1
            });
        }
        world
    }

    /// Starts `consular` with `flags` and returns once it serves HTTP, connected to its event source or not.
    pub fn launch_unconnected(self, flags: &[&str]) -> World {
        let consul = self.cluster.server_url();
        self.launch_at(&consul, flags)
    }

    /// As [`launch_unconnected`](Self::launch_unconnected), with `--consul` set to `consul` (the HTTPS URL, a host
    /// name the certificate does not carry, …).
    pub fn launch_at(self, consul: &str, flags: &[&str]) -> World {
        let Peers { marathon, cluster } = self;
        let consular = Consular::start(&marathon.url(), consul, flags);
        World {
            consular,
            marathon,
            cluster,
        }
    }
}

impl World {
    /// [`Peers::start`], then [`Peers::launch`].
    pub fn start(
        clients: usize,
        version: MarathonVersion,
        setup: impl FnOnce(&mut SimMarathon),
        flags: &[&str],
    ) -> World {
        Peers::start(clients, version, setup).launch(flags)
    }

    /// Agent `agent`'s services (`/v1/agent/services`), keyed by service ID.
    pub fn services(&self, agent: usize) -> Value {
        consul::agent_services(self.cluster.agent_addr(agent))
    }

    /// Service `id` on agent `agent`, if registered there.
    pub fn service(&self, agent: usize, id: &str) -> Option<Value> {
        self.services(agent).get(id).cloned()
    }

    /// IDs of the services on agent `agent` that carry our registration tag.
    pub fn our_services(&self, agent: usize) -> BTreeSet<String> {
        let services = self.services(agent);
        let map = services.as_object().expect("agent services are an object");
        map.iter()
            .filter(|(_, s)| tags(s).iter().any(|t| t == OUR_TAG))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Waits until agent `agent` has service `id`, and returns it.
    pub fn wait_registered(&self, agent: usize, id: &str) -> Value {
        let what = format!("{id} on {}", self.cluster.agent_addr(agent));
        wait_until(&what, DEADLINE, || self.service(agent, id).is_some());
        self.service(agent, id).expect("just seen")
    }

    /// Starts a task of `app` on agent `agent`'s host in Marathon (the bridge hears of it by event), waits for its
    /// service there, kills it and waits for the service to go. Returns the task id.
    pub fn start_and_kill_task(&self, agent: usize, app: &str, ports: &[u16]) -> String {
        let host = self.cluster.agent_ip(agent).to_string();
        let task = self.marathon.with(|m| run_task(m, app, &host, ports));
        self.wait_registered(agent, &task);
        self.marathon
            .with(|m| m.set_task_state(&task, "TASK_KILLED"));
        self.wait_deregistered(agent, &task);
        task
    }

    /// Waits until agent `agent` no longer has service `id`.
    pub fn wait_deregistered(&self, agent: usize, id: &str) {
        let what = format!("{id} gone from {}", self.cluster.agent_addr(agent));
        wait_until(&what, DEADLINE, || self.service(agent, id).is_none());
    }

    /// Waits until our services on agent `agent` are exactly `ids`.
    pub fn wait_our_services(&self, agent: usize, ids: &[&str]) {
        let want: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        let what = format!(
            "our services on {} to be {want:?}",
            self.cluster.agent_addr(agent)
        );
        wait_until_or(
            &what,
            DEADLINE,
            || self.our_services(agent) == want,
            || format!("last seen: {:?}", self.our_services(agent)),
        );
    }

    /// The raw value of KV `key` as text, `None` if the key does not exist.
    pub fn kv(&self, key: &str) -> Option<String> {
        self.cluster
            .kv_get_raw(key)
            .map(|v| String::from_utf8(v).expect("KV values here are UTF-8"))
    }

    /// Waits until the KV keys under `prefix` (a plain prefix) are exactly `want` (key, raw value) pairs.
    pub fn wait_kv(&self, prefix: &str, want: &[(&str, &str)]) {
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let what = format!("KV under {prefix:?} to be {want:?}");
        wait_until_or(
            &what,
            DEADLINE,
            || self.kv_under(prefix) == want,
            || format!("last seen: {:?}", self.kv_under(prefix)),
        );
    }

    /// (key, raw value) of every KV key starting with `prefix`, in key order.
    pub fn kv_under(&self, prefix: &str) -> Vec<(String, String)> {
        self.cluster
            .kv_keys(prefix)
            .into_iter()
            .filter_map(|k| self.kv(&k).map(|v| (k, v)))
            .collect()
    }

    /// Full syncs started so far: each begins with `GET /v2/apps` (with or without a query).
    pub fn sync_rounds(&self) -> usize {
        self.marathon
            .requests()
            .iter()
            .filter(|(method, path)| method == "GET" && path.split('?').next() == Some("/v2/apps"))
            .count()
    }

    /// Waits until two more full syncs have started. Syncs never overlap, so the first of them has then finished:
    /// whatever the syncs running now would write is written.
    pub fn wait_two_more_syncs(&self) {
        let before = self.sync_rounds();
        wait_until("two more sync rounds", DEADLINE, || {
            self.sync_rounds() >= before + 2
        });
    }

    /// Requests for the event stream (`GET /v2/events…`) so far: one per connection attempt.
    pub fn stream_requests(&self) -> usize {
        self.marathon
            .requests()
            .iter()
            .filter(|(method, path)| method == "GET" && path.starts_with("/v2/events"))
            .count()
    }
}

/// A service's `Tags` as strings.
pub fn tags(service: &Value) -> Vec<String> {
    service["Tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// [`wait_until`] whose timeout message also says what was last seen.
pub fn wait_until_or(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
    seen: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; {}",
            seen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts `holds` stays true for `how_long`. Only used after a later effect was already observed (see the module
/// doc), as a short guard against a write still in flight, never as the only evidence.
pub fn assert_stays(what: &str, how_long: Duration, mut holds: impl FnMut() -> bool) {
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        assert!(holds(), "{what} stopped holding");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A task becoming RUNNING in Marathon: staged on `host` with `ports`, then running; returns its id.
pub fn run_task(m: &mut SimMarathon, app: &str, host: &str, ports: &[u16]) -> String {
    let id = m.start_task(app, host, ports);
    m.set_task_state(&id, "TASK_RUNNING");
    id
}

/// A `status_update_event` as Marathon 1.10 writes it (the fields the bridge reads, plus the usual others).
pub fn status_update(task: &str, status: &str, app: &str, host: &str, ports: &[u16]) -> Value {
    json!({
        "slaveId": "5e1d0000-0000-4000-8000-000000000001-S0",
        "taskId": task,
        "taskStatus": status,
        "message": "",
        "appId": app,
        "host": host,
        "ipAddresses": [],
        "ports": ports,
        "version": "2026-01-01T00:00:00.000Z",
        "eventType": "status_update_event",
        "timestamp": "2026-01-01T00:00:01.000Z",
    })
}

/// The SSE frame Marathon would write for `event` on `/v2/events`.
pub fn sse(event: &Value) -> Vec<u8> {
    sse_frame(&SimEvent {
        event_type: event["eventType"].as_str().expect("eventType").to_string(),
        json: serde_json::to_vec(event).expect("serializable"),
    })
}

/// Registers `body` (agent service JSON) straight on agent `agent`, as another tool or bridge would.
pub fn register_directly(cluster: &ConsulCluster, agent: usize, body: Value) {
    let (status, text) = consul::put(
        cluster.agent_addr(agent),
        "/v1/agent/service/register",
        body.to_string(),
    )
    .expect("registering on the agent");
    assert_eq!(status, 200, "register {body}: {text}");
}
