//! Model-based properties of the whole bridge in a simulated world (quickcheck): whatever happens
//! — apps come and go, tasks change to any state, agents go down, foreign services and keys sit
//! beside ours — once the world heals and a sync with purge runs, Consul holds exactly the running
//! tasks of existing apps and their labels; a further sync writes nothing; nothing foreign is ever
//! touched; every callback gets one reply; in-flight requests stay bounded; runs replay exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use consular_core::marathon::TaskState;
use consular_core::sim::consul::SimService;
use consular_core::sim::marathon::{MarathonVersion, SimMarathon};
use consular_core::sim::world::{agent_address, transcript, World};
use consular_core::{Config, EventSource};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const AGENTS: usize = 3;
const INTERVAL: Duration = Duration::from_secs(10);
const REG: &str = "consular";

#[derive(Clone, Debug)]
enum Op {
    PutApp {
        app: u8,
        labels: Vec<(u8, u8)>,
    },
    RemoveApp {
        app: u8,
    },
    StartTask {
        app: u8,
        agent: u8,
        ports: Vec<u16>,
    },
    ChangeTask {
        pick: u8,
        state: u8,
    },
    AgentDown {
        agent: u8,
    },
    AgentUp {
        agent: u8,
    },
    MarathonDown,
    MarathonUp,
    ForeignService {
        agent: u8,
        n: u8,
    },
    ForeignKey {
        n: u8,
    },
    /// A service with our tag whose task Marathon never heard of (left over from a crash).
    Orphan {
        agent: u8,
        n: u8,
    },
    Run {
        ms: u16,
    },
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let small = |g: &mut Gen| u8::arbitrary(g) % 8;
        match u8::arbitrary(g) % 20 {
            0..=2 => Op::PutApp {
                app: small(g),
                labels: (0..small(g) % 4).map(|_| (small(g), small(g))).collect(),
            },
            3 => Op::RemoveApp { app: small(g) },
            4..=7 => Op::StartTask {
                app: small(g),
                agent: small(g),
                ports: (0..small(g) % 3)
                    .map(|_| 31000 + u16::arbitrary(g) % 1000)
                    .collect(),
            },
            8..=11 => Op::ChangeTask {
                pick: u8::arbitrary(g),
                state: u8::arbitrary(g),
            },
            12 => Op::AgentDown { agent: small(g) },
            13 => Op::AgentUp { agent: small(g) },
            14 => Op::MarathonDown,
            15 => Op::MarathonUp,
            16 => Op::ForeignService {
                agent: small(g),
                n: small(g),
            },
            17 => Op::ForeignKey { n: small(g) },
            18 => Op::Orphan {
                agent: small(g),
                n: small(g),
            },
            _ => Op::Run {
                ms: u16::arbitrary(g) % 15_000,
            },
        }
    }
}

#[derive(Clone, Debug)]
struct Scenario {
    ops: Vec<Op>,
    version: u8,
    stream: bool,
    seed: u64,
}

impl Arbitrary for Scenario {
    fn arbitrary(g: &mut Gen) -> Self {
        Scenario {
            ops: Vec::arbitrary(g),
            version: u8::arbitrary(g),
            stream: bool::arbitrary(g),
            seed: u64::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let this = self.clone();
        Box::new(self.ops.shrink().map(move |ops| Scenario {
            ops,
            ..this.clone()
        }))
    }
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

fn world(s: &Scenario) -> World {
    let version = [
        MarathonVersion::V0_15,
        MarathonVersion::V1_1,
        MarathonVersion::V1_4,
        MarathonVersion::V1_10,
    ][s.version as usize % 4];
    let config = Config {
        registration_id: REG.into(),
        callback_url: Some("http://consular:7000/events?registration=consular".into()),
        sync_interval: INTERVAL,
        purge: true,
        events: if s.stream {
            EventSource::Stream
        } else {
            EventSource::Callback
        },
        max_in_flight: 16,
        max_in_flight_per_target: 4,
        seed: s.seed,
        ..Config::default()
    };
    World::new(config, SimMarathon::new(version), AGENTS, s.seed)
}

/// What the test planted that the bridge must leave alone.
#[derive(Default)]
struct Foreign {
    services: BTreeSet<(String, String)>,
    keys: BTreeSet<String>,
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
        Op::Run { ms } => w.run_for(Duration::from_millis(*ms as u64)),
    }
}

/// A state Mesos can move a task to from `current`: never back to staging or starting once it
/// ran, and only to an end state once it is being killed. Biased towards RUNNING so there are
/// services to purge later.
/// Marathon before 1.4 (no `state` on tasks) reports only the first seven Mesos states.
fn next_state(current: &str, choice: u8, modern: bool) -> TaskState {
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

fn run(s: &Scenario) -> (World, Foreign) {
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

type ServiceView = (String, String, String, String, Option<u16>, Vec<String>);

fn expected_services(w: &World) -> BTreeSet<ServiceView> {
    let mut out = BTreeSet::new();
    for app in w.marathon.apps() {
        for task in app.tasks.iter().filter(|t| t.state == "TASK_RUNNING") {
            let name = app.id.trim_start_matches('/').replace('/', "-");
            let tags = vec![
                format!("consular-reg-id={REG}"),
                format!("consular-app-id={}", app.id),
            ];
            out.insert((
                task.host.clone(),
                task.id.clone(),
                name,
                task.host.clone(),
                task.ports.iter().copied().min(),
                tags,
            ));
        }
    }
    out
}

fn our_services(w: &World) -> BTreeSet<ServiceView> {
    let tag = format!("consular-reg-id={REG}");
    w.consul
        .all_services()
        .into_iter()
        .filter(|(_, s)| s.tags.contains(&tag))
        .map(|(agent, s)| (agent, s.id, s.name, s.address, s.port, s.tags))
        .collect()
}

fn expected_kv(w: &World) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for app in w.marathon.apps() {
        let name = app.id.trim_start_matches('/').replace('/', "-");
        for (k, v) in &app.labels {
            out.insert(
                format!("consular/{name}/{k}"),
                serde_json::to_vec(v).unwrap(),
            );
        }
    }
    out
}

fn our_kv(w: &World) -> BTreeMap<String, Vec<u8>> {
    w.consul
        .kv()
        .iter()
        .filter(|(k, _)| k.starts_with("consular/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn converges(s: Scenario) -> TestResult {
    let (w, foreign) = run(&s);
    if !w.violations.is_empty() {
        return TestResult::error(format!("ownership violations: {:#?}", w.violations));
    }
    if our_services(&w) != expected_services(&w) {
        return TestResult::error(format!(
            "services\n got {:#?}\nwant {:#?}\nlogs {:#?}",
            our_services(&w),
            expected_services(&w),
            w.logs
        ));
    }
    if our_kv(&w) != expected_kv(&w) {
        return TestResult::error(format!(
            "kv\n got {:#?}\nwant {:#?}",
            our_kv(&w),
            expected_kv(&w)
        ));
    }
    let all: BTreeSet<(String, String)> = w
        .consul
        .all_services()
        .into_iter()
        .map(|(a, s)| (a, s.id))
        .collect();
    if !foreign.services.is_subset(&all) {
        return TestResult::error("a foreign service is gone");
    }
    if !foreign.keys.iter().all(|k| w.consul.kv().contains_key(k)) {
        return TestResult::error("a foreign key is gone");
    }
    if w.unanswered() != 0 {
        return TestResult::error(format!("{} callbacks never answered", w.unanswered()));
    }
    if w.max_in_flight > 16 {
        return TestResult::error(format!("{} requests in flight", w.max_in_flight));
    }
    TestResult::passed()
}

fn warm_sync_writes_nothing(s: Scenario) -> TestResult {
    let (mut w, _) = run(&s);
    let writes = w.consul.counts().writes;
    w.run_for(INTERVAL * 2);
    w.settle();
    let extra = w.consul.counts().writes - writes;
    if extra == 0 {
        TestResult::passed()
    } else {
        TestResult::error(format!("{extra} writes in a sync with nothing to change"))
    }
}

fn replays_exactly(s: Scenario) -> bool {
    transcript(&run(&s).0) == transcript(&run(&s).0)
}

fn check<A: quickcheck::Testable>(property: A) {
    // 100 cases; QUICKCHECK_TESTS=N runs more.
    QuickCheck::new().quickcheck(property);
}

#[test]
fn after_healing_consul_holds_exactly_marathons_running_tasks_and_labels() {
    check(converges as fn(Scenario) -> TestResult);
}

#[test]
fn a_sync_with_nothing_to_change_writes_nothing() {
    check(warm_sync_writes_nothing as fn(Scenario) -> TestResult);
}

#[test]
fn runs_are_deterministic() {
    QuickCheck::new()
        .tests(30)
        .quickcheck(replays_exactly as fn(Scenario) -> bool);
}
