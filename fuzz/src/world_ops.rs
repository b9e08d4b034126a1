//! The `world_ops` harness: the simulated [`World`] (bridge, SimMarathon, SimConsul, seeded
//! network) driven by ops decoded from fuzz bytes — the op set of `core/tests/sim_properties.rs`
//! (apps come and go, tasks change state, agents and Marathon go down, foreign services and keys
//! and our orphans appear, time runs). libFuzzer's coverage guidance reaches corners quickcheck's
//! uniform generation rarely does.
//!
//! Checked: `world.violations` (foreign services deregistered, keys touched outside `consular/`,
//! second replies, refused callbacks) stays empty after every op; and once the world heals and
//! two sync intervals pass, Consul holds exactly Marathon's running tasks and labels, every
//! foreign service and key is still there, every callback was answered, and in-flight requests
//! never passed the limit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use consular_core::marathon::TaskState;
use consular_core::sim::consul::SimService;
use consular_core::sim::marathon::{MarathonVersion, SimMarathon};
use consular_core::sim::world::{agent_address, World};
use consular_core::{Config, EventSource};

use crate::choices::Choices;

const AGENTS: usize = 3;
const INTERVAL: Duration = Duration::from_secs(10);
const REG: &str = "consular";
const MAX_IN_FLIGHT: usize = 16;
/// Ops decoded from one input at most: each may run up to 15 s of virtual time.
const MAX_OPS: usize = 64;

/// One change to the world, decoded from fuzz bytes (the op set of the quickcheck properties).
#[derive(Debug, Clone)]
pub enum Op {
    /// Creates or updates an app with labels `k<a>=v<b>`.
    PutApp {
        /// Which app id.
        app: u8,
        /// Label key and value numbers.
        labels: Vec<(u8, u8)>,
    },
    /// Deletes an app (its tasks are killed).
    RemoveApp {
        /// Which app id.
        app: u8,
    },
    /// Starts a task of an existing app on an agent.
    StartTask {
        /// Which app id.
        app: u8,
        /// Which agent.
        agent: u8,
        /// Host ports.
        ports: Vec<u16>,
    },
    /// Moves a task (picked among all) to a state Mesos allows from its current one.
    ChangeTask {
        /// Which task.
        pick: u8,
        /// Which state.
        state: u8,
    },
    /// An agent goes down.
    AgentDown {
        /// Which agent.
        agent: u8,
    },
    /// An agent comes back.
    AgentUp {
        /// Which agent.
        agent: u8,
    },
    /// Marathon becomes unreachable.
    MarathonDown,
    /// Marathon is back.
    MarathonUp,
    /// Someone else registers a service (with another registration id's tag, or none).
    ForeignService {
        /// Which agent.
        agent: u8,
        /// Which id.
        n: u8,
    },
    /// Someone else writes a key outside `consular/`.
    ForeignKey {
        /// Which key.
        n: u8,
    },
    /// A service with our tag whose task Marathon never heard of (left over from a crash).
    Orphan {
        /// Which agent.
        agent: u8,
        /// Which id.
        n: u8,
    },
    /// Virtual time passes.
    Run {
        /// Milliseconds.
        ms: u16,
    },
}

fn decode_op(c: &mut Choices) -> Option<Op> {
    let small = |c: &mut Choices| c.u8().map(|n| n % 8);
    Some(match c.below(20)? {
        0..=2 => Op::PutApp {
            app: small(c)?,
            labels: (0..small(c)? % 4)
                .map(|_| Some((small(c)?, small(c)?)))
                .collect::<Option<_>>()?,
        },
        3 => Op::RemoveApp { app: small(c)? },
        4..=7 => Op::StartTask {
            app: small(c)?,
            agent: small(c)?,
            ports: (0..small(c)? % 3)
                .map(|_| c.below(1000).map(|p| 31000 + p as u16))
                .collect::<Option<_>>()?,
        },
        8..=11 => Op::ChangeTask {
            pick: c.u8()?,
            state: c.u8()?,
        },
        12 => Op::AgentDown { agent: small(c)? },
        13 => Op::AgentUp { agent: small(c)? },
        14 => Op::MarathonDown,
        15 => Op::MarathonUp,
        16 => Op::ForeignService {
            agent: small(c)?,
            n: small(c)?,
        },
        17 => Op::ForeignKey { n: small(c)? },
        18 => Op::Orphan {
            agent: small(c)?,
            n: small(c)?,
        },
        _ => Op::Run {
            ms: c.u16()? % 15_000,
        },
    })
}

/// App ids whose service names cannot clash (`/grp/svcN` → `grp-svcN`).
fn app_id(n: u8) -> String {
    if n.is_multiple_of(2) {
        format!("/app{}", n % 4)
    } else {
        format!("/grp/svc{}", n % 4)
    }
}

fn agent(n: u8) -> String {
    agent_address(1 + n as usize % AGENTS)
}

/// What the fuzzer planted that the bridge must leave alone.
#[derive(Default)]
struct Foreign {
    services: BTreeSet<(String, String)>,
    keys: BTreeSet<String>,
}

/// Decodes `bytes` (Marathon version, event source, seed, then ops), runs them, and checks.
pub fn run(bytes: &[u8]) {
    let mut c = Choices::new(bytes);
    let (Some(version), Some(stream), Some(seed)) = (c.below(4), c.bool(), c.u64()) else {
        return;
    };
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        match decode_op(&mut c) {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    let version = [
        MarathonVersion::V0_15,
        MarathonVersion::V1_1,
        MarathonVersion::V1_4,
        MarathonVersion::V1_10,
    ][version];
    let config = Config {
        registration_id: REG.into(),
        callback_url: Some("http://consular:7000/events?registration=consular".into()),
        sync_interval: INTERVAL,
        purge: true,
        events: if stream {
            EventSource::Stream
        } else {
            EventSource::Callback
        },
        max_in_flight: MAX_IN_FLIGHT,
        max_in_flight_per_target: 4,
        seed,
        ..Config::default()
    };
    let mut w = World::new(config, SimMarathon::new(version), AGENTS, seed);
    let mut foreign = Foreign::default();
    for op in &ops {
        apply(&mut w, op, &mut foreign);
        w.run_for(Duration::from_millis(5));
        assert!(w.violations.is_empty(), "after {op:?}: {:#?}", w.violations);
    }
    for i in 1..=AGENTS {
        w.set_agent_up(&agent_address(i), true);
    }
    w.set_marathon_up(true);
    // Two full intervals: one sync may have started before the world healed.
    w.run_for(INTERVAL * 2 + Duration::from_secs(1));
    w.settle();
    check_converged(&w, &foreign);
}

fn apply(w: &mut World, op: &Op, foreign: &mut Foreign) {
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
                let state = next_state(current, *state, modern);
                w.marathon.set_task_state(task, state.name());
            }
        }
        Op::AgentDown { agent: a } => w.set_agent_up(&agent(*a), false),
        Op::AgentUp { agent: a } => w.set_agent_up(&agent(*a), true),
        Op::MarathonDown => w.set_marathon_up(false),
        Op::MarathonUp => w.set_marathon_up(true),
        Op::ForeignService { agent: a, n } => {
            let tags = if n % 2 == 0 {
                vec!["consular-reg-id=someone-else".into()]
            } else {
                vec![]
            };
            let id = format!("foreign-{n}");
            w.consul.register(
                &agent(*a),
                SimService {
                    id: id.clone(),
                    name: "other".into(),
                    address: agent(*a),
                    port: Some(80),
                    tags,
                },
            );
            foreign.services.insert((agent(*a), id));
        }
        Op::ForeignKey { n } => {
            let key = format!("elsewhere/{n}");
            w.consul.put_kv(&key, b"x");
            foreign.keys.insert(key);
        }
        Op::Orphan { agent: a, n } => {
            let tags = vec![
                format!("consular-reg-id={REG}"),
                "consular-app-id=/app0".into(),
            ];
            w.consul.register(
                &agent(*a),
                SimService {
                    id: format!("orphan-{n}"),
                    name: "app0".into(),
                    address: agent(*a),
                    port: None,
                    tags,
                },
            );
        }
        Op::Run { ms } => w.run_for(Duration::from_millis(u64::from(*ms))),
    }
}

/// A state Mesos can move a task to from `current` (as in the quickcheck properties): never back
/// to staging or starting once it ran, only to an end state once killing; biased to RUNNING.
/// Marathon before 1.4 reports only the first seven Mesos states.
fn next_state(current: &str, choice: u8, modern: bool) -> TaskState {
    let started = !matches!(current, "TASK_STAGING" | "TASK_STARTING");
    let known = if modern { 14 } else { 7 };
    let state = if choice.is_multiple_of(3) {
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

fn check_converged(w: &World, foreign: &Foreign) {
    assert!(w.violations.is_empty(), "{:#?}", w.violations);
    let tag = format!("consular-reg-id={REG}");
    let ours: BTreeSet<ServiceView> = w
        .consul
        .all_services()
        .into_iter()
        .filter(|(_, s)| s.tags.contains(&tag))
        .map(|(agent, s)| (agent, s.id, s.name, s.address, s.port, s.tags))
        .collect();
    let mut expected = BTreeSet::new();
    let mut expected_kv = BTreeMap::new();
    for app in w.marathon.apps() {
        let name = app.id.trim_start_matches('/').replace('/', "-");
        for task in app.tasks.iter().filter(|t| t.state == "TASK_RUNNING") {
            let tags = vec![tag.clone(), format!("consular-app-id={}", app.id)];
            expected.insert((
                task.host.clone(),
                task.id.clone(),
                name.clone(),
                task.host.clone(),
                task.ports.iter().copied().min(),
                tags,
            ));
        }
        for (k, v) in &app.labels {
            let value = serde_json::to_vec(v).expect("strings serialise");
            expected_kv.insert(format!("consular/{name}/{k}"), value);
        }
    }
    assert_eq!(ours, expected, "services after healing; logs {:#?}", w.logs);
    let kv: BTreeMap<String, Vec<u8>> = w
        .consul
        .kv()
        .iter()
        .filter(|(k, _)| k.starts_with("consular/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(kv, expected_kv, "KV after healing");
    let all: BTreeSet<(String, String)> = w
        .consul
        .all_services()
        .into_iter()
        .map(|(a, s)| (a, s.id))
        .collect();
    assert!(
        foreign.services.is_subset(&all),
        "a foreign service is gone"
    );
    assert!(
        foreign.keys.iter().all(|k| w.consul.kv().contains_key(k)),
        "a foreign key is gone"
    );
    assert_eq!(w.unanswered(), 0, "callbacks never answered");
    assert!(
        w.max_in_flight <= MAX_IN_FLIGHT,
        "{} requests in flight",
        w.max_in_flight
    );
}
