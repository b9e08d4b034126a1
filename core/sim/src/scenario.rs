//! Whole-world scenarios: a list of [`Op`]s (apps come and go, tasks change state along Mesos'
//! state graph, agents and Marathon go down, foreign services and keys and our orphans appear,
//! time runs) played against a [`SimWorld`], and the convergence check after the world heals. The
//! quickcheck properties and the `world_ops` fuzz target both generate ops and call this; how they
//! generate them is theirs.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use consular_core::marathon::TaskState;
use consular_core::{Config, EventSource};

use crate::consul::SimService;
use crate::marathon::{MarathonVersion, SimMarathon};
use crate::world::{agent_address, SimWorld};

/// Consul agents in the world (the first is the server).
pub const AGENTS: usize = 3;
/// The bridge's sync interval.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// The bridge's registration id.
pub const REGISTRATION_ID: &str = "consular";
/// The bridge's limit of requests in flight.
pub const MAX_IN_FLIGHT: usize = 16;

/// One change to the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Creates or updates app number `app` with labels `k<a>=v<b>`.
    PutApp {
        /// Which app.
        app: u8,
        /// Label key and value numbers.
        labels: Vec<(u8, u8)>,
    },
    /// Deletes app number `app` (its tasks are killed).
    RemoveApp {
        /// Which app.
        app: u8,
    },
    /// Starts a task of app `app`, if it exists, on agent `agent`.
    StartTask {
        /// Which app.
        app: u8,
        /// Which agent.
        agent: u8,
        /// Host ports.
        ports: Vec<u16>,
    },
    /// Moves task number `pick` (among all) to a state Mesos allows from its current one.
    ChangeTask {
        /// Which task.
        pick: u8,
        /// Which state (see [`next_state`]).
        state: u8,
    },
    /// Takes an agent off the network.
    AgentDown {
        /// Which agent.
        agent: u8,
    },
    /// Brings an agent back.
    AgentUp {
        /// Which agent.
        agent: u8,
    },
    /// Makes Marathon unreachable.
    MarathonDown,
    /// Makes Marathon reachable again.
    MarathonUp,
    /// Registers a service that is not ours (untagged, or another registration id's).
    ForeignService {
        /// Which agent.
        agent: u8,
        /// Which service.
        n: u8,
    },
    /// Writes a key outside `consular/`.
    ForeignKey {
        /// Which key.
        n: u8,
    },
    /// Registers a service with our tag whose task Marathon never heard of (left from a crash).
    Orphan {
        /// Which agent.
        agent: u8,
        /// Which service.
        n: u8,
    },
    /// Lets time run.
    Run {
        /// Milliseconds.
        ms: u16,
    },
}

/// A whole scenario: the world's shape and what happens in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// What happens.
    pub ops: Vec<Op>,
    /// Marathon's version: 0.15, 1.1, 1.4 or 1.10 (modulo 4).
    pub version: u8,
    /// Events by stream rather than by callback.
    pub stream: bool,
    /// Seed of the network delays and the bridge's jitter.
    pub seed: u64,
}

/// What a scenario planted that the bridge must leave alone.
#[derive(Debug, Default)]
pub struct Foreign {
    services: BTreeSet<(String, String)>,
    keys: BTreeSet<String>,
}

/// App ids whose service names cannot clash (`/grp/svcN` → `grp-svcN`).
fn app_id(n: u8) -> String {
    if n % 2 == 0 {
        format!("/app{}", n % 4)
    } else {
        format!("/grp/svc{}", n % 4)
    }
}

fn agent(n: u8) -> String {
    agent_address(1 + n as usize % AGENTS)
}

/// The world at time zero: the bridge with sync, purge and the scenario's event source.
pub fn world(s: &Scenario) -> SimWorld {
    let versions = [
        MarathonVersion::V0_15,
        MarathonVersion::V1_1,
        MarathonVersion::V1_4,
        MarathonVersion::V1_10,
    ];
    let config = Config {
        registration_id: REGISTRATION_ID.into(),
        callback_url: Some(format!(
            "http://consular:7000/events?registration={REGISTRATION_ID}"
        )),
        sync_interval: INTERVAL,
        purge: true,
        events: if s.stream {
            EventSource::Stream
        } else {
            EventSource::Callback
        },
        max_in_flight: MAX_IN_FLIGHT,
        max_in_flight_per_target: 4,
        seed: s.seed,
        ..Config::default()
    };
    SimWorld::new(
        config,
        SimMarathon::new(versions[s.version as usize % 4]),
        AGENTS,
        s.seed,
    )
}

/// Plays every op (each followed by 5 ms), heals the world, and lets two sync intervals pass.
pub fn run(s: &Scenario) -> (SimWorld, Foreign) {
    let mut w = world(s);
    let mut foreign = Foreign::default();
    for op in &s.ops {
        apply(&mut w, op, &mut foreign);
        w.run_for(Duration::from_millis(5));
    }
    for i in 1..=AGENTS {
        w.set_agent_up(&agent_address(i), true);
    }
    w.set_marathon_up(true);
    // Two full intervals: one sync may have started before the world healed.
    w.run_for(INTERVAL * 2 + Duration::from_secs(1));
    w.settle();
    (w, foreign)
}

/// Applies one op.
pub fn apply(w: &mut SimWorld, op: &Op, foreign: &mut Foreign) {
    match op {
        Op::PutApp { app, labels } => {
            let labels: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (format!("k{k}"), format!("v{v}")))
                .collect();
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            w.marathon.put_app(&app_id(*app), &labels);
        }
        Op::RemoveApp { app } => w.marathon.remove_app(&app_id(*app)),
        Op::StartTask {
            app,
            agent: a,
            ports,
        } => {
            if w.marathon.app(&app_id(*app)).is_some() {
                w.marathon.start_task(&app_id(*app), &agent(*a), ports);
            }
        }
        Op::ChangeTask { pick, state } => {
            let tasks: Vec<(String, String)> = w
                .marathon
                .apps()
                .flat_map(|a| a.tasks.iter().map(|t| (t.id.clone(), t.state.clone())))
                .collect();
            if !tasks.is_empty() {
                let (task, current) = &tasks[*pick as usize % tasks.len()];
                let modern = !matches!(
                    w.marathon.version(),
                    MarathonVersion::V0_15 | MarathonVersion::V1_1
                );
                w.marathon
                    .set_task_state(task, next_state(current, *state, modern).name());
            }
        }
        Op::AgentDown { agent: a } => w.set_agent_up(&agent(*a), false),
        Op::AgentUp { agent: a } => w.set_agent_up(&agent(*a), true),
        Op::MarathonDown => w.set_marathon_up(false),
        Op::MarathonUp => w.set_marathon_up(true),
        Op::ForeignService { agent: a, n } => {
            let tags = if n % 2 == 0 {
                vec![String::from("consular-reg-id=someone-else")]
            } else {
                vec![]
            };
            let id = format!("foreign-{n}");
            let service = SimService {
                id: id.clone(),
                name: "other".into(),
                address: agent(*a),
                port: Some(80),
                tags,
            };
            w.consul.register(&agent(*a), service);
            foreign.services.insert((agent(*a), id));
        }
        Op::ForeignKey { n } => {
            let key = format!("elsewhere/{n}");
            w.consul.put_kv(&key, b"x");
            foreign.keys.insert(key);
        }
        Op::Orphan { agent: a, n } => {
            let tags = vec![
                format!("consular-reg-id={REGISTRATION_ID}"),
                "consular-app-id=/app0".to_string(),
            ];
            let service = SimService {
                id: format!("orphan-{n}"),
                name: "app0".into(),
                address: agent(*a),
                port: None,
                tags,
            };
            w.consul.register(&agent(*a), service);
        }
        Op::Run { ms } => w.run_for(Duration::from_millis(u64::from(*ms))),
    }
}

/// A state Mesos can move a task to from `current`: never back to staging or starting once it
/// ran, and only to an end state once it is being killed; biased towards RUNNING so there are
/// services to purge later. Marathon before 1.4 reports only the first seven Mesos states.
pub fn next_state(current: &str, choice: u8, modern: bool) -> TaskState {
    let started = !matches!(current, "TASK_STAGING" | "TASK_STARTING");
    let known = if modern { 14 } else { 7 };
    let state = if choice % 3 == 0 {
        TaskState::Running
    } else {
        TaskState::ALL[choice as usize % known]
    };
    match state {
        _ if current == "TASK_KILLING" => {
            [TaskState::Killed, TaskState::Failed, TaskState::Finished][choice as usize % 3]
        }
        TaskState::Staging | TaskState::Starting if started => TaskState::Running,
        state => state,
    }
}

type ServiceView = (String, String, String, String, Option<u16>, Vec<String>);

/// Checks the healed world: no ownership violation ever; Consul holds exactly the running tasks
/// of existing apps and their labels (built here from Marathon's state, independently of the
/// bridge's own code); every foreign service and key is still there; every callback was
/// answered; in-flight requests never passed the limit.
pub fn check_converged(w: &SimWorld, foreign: &Foreign) -> Result<(), String> {
    if !w.violations.is_empty() {
        return Err(format!("ownership violations: {:#?}", w.violations));
    }
    let tag = format!("consular-reg-id={REGISTRATION_ID}");
    let mut expected = BTreeSet::new();
    let mut expected_kv = BTreeMap::new();
    for app in w.marathon.apps() {
        let name = app.id.trim_start_matches('/').replace('/', "-");
        for task in app.tasks.iter().filter(|t| t.state == "TASK_RUNNING") {
            let tags = vec![tag.clone(), format!("consular-app-id={}", app.id)];
            let port = task.ports.iter().copied().min();
            expected.insert((
                task.host.clone(),
                task.id.clone(),
                name.clone(),
                task.host.clone(),
                port,
                tags,
            ));
        }
        for (k, v) in &app.labels {
            expected_kv.insert(
                format!("consular/{name}/{k}"),
                serde_json::to_vec(v).unwrap_or_default(),
            );
        }
    }
    let ours: BTreeSet<ServiceView> = w
        .consul
        .all_services()
        .into_iter()
        .filter(|(_, s)| s.tags.contains(&tag))
        .map(|(agent, s)| (agent, s.id, s.name, s.address, s.port, s.tags))
        .collect();
    if ours != expected {
        return Err(format!(
            "services\n got {ours:#?}\nwant {expected:#?}\nlogs {:#?}",
            w.logs
        ));
    }
    let kv: BTreeMap<String, Vec<u8>> = w
        .consul
        .kv()
        .iter()
        .filter(|(k, _)| k.starts_with("consular/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if kv != expected_kv {
        return Err(format!("KV\n got {kv:#?}\nwant {expected_kv:#?}"));
    }
    let all: BTreeSet<(String, String)> = w
        .consul
        .all_services()
        .into_iter()
        .map(|(a, s)| (a, s.id))
        .collect();
    if !foreign.services.is_subset(&all) {
        return Err("a foreign service is gone".into());
    }
    if !foreign.keys.iter().all(|k| w.consul.kv().contains_key(k)) {
        return Err("a foreign key is gone".into());
    }
    if w.unanswered() != 0 {
        return Err(format!("{} callbacks never answered", w.unanswered()));
    }
    if w.max_in_flight > MAX_IN_FLIGHT {
        return Err(format!("{} requests in flight", w.max_in_flight));
    }
    Ok(())
}
