//! Core-only benchmarks: what the sans-IO state machine costs with no IO at all, on one thread.
//!
//! `cargo bench -p consular-core --bench core` prints:
//!
//! - **status events per second**: `status_update_event` (`TASK_RUNNING`) bodies fed through
//!   [`Bridge::handle_inbound`], each request the core asks for answered at once with a canned
//!   200 (register → empty body, the app read → the app as Marathon 1.10 sends it, its 10 tasks
//!   embedded, the label read → labels that already match, so no KV write follows), until the
//!   event's reply comes out; timed in 5 rounds (median and best). Twice: with the events as
//!   Marathon sends them, where a task of an app version whose labels are already synced only
//!   registers, and with their `version` removed, so that every event also reads the app and its
//!   labels (the cost of the first task of each new app version);
//! - **planning a 10,000-task sync**: [`desired_state`] + [`plan_sync`] for 1,000 apps × 10 tasks
//!   × 3 labels, against an empty Consul (everything to write) and a complete one (nothing);
//! - **a whole 10,000-task sync through the state machine**, cold and warm, every request answered
//!   at once from canned bodies: the core's CPU share of a real sync.
//!
//! Repeated timings report the median and the minimum: the work is identical each time, so the
//! gap between them is other load on the machine. `-- events|plan|sync` runs one measurement
//! alone (for a profiler); `CORE_BENCH_EVENTS` sets the number of events.
//!
//! The same measurements are printed in the `consular` crate's benchmark table
//! (`bin/benches/bridge.rs` includes this file as a module and calls the `pub` functions), so they
//! are measured in this one place only. The world they run on comes from [`bench_world`], which
//! the bridge benchmark also serves over HTTP.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use consular_core::consul::{
    kv_tree_path, label_value, service_name, AGENT_SERVICES_PATH, CATALOG_NODES_PATH,
    CRITICAL_CHECKS_PATH, KV_ROOT,
};
use consular_core::marathon::{app_path, parse_apps, APPS_WITH_TASKS_PATH};
use consular_core::plan::{
    desired_state, plan_sync, ConsulState, Exclusions, ObservedService, Purge, ServiceRules,
};
use consular_core::{
    Bridge, Config, EventSource, InboundId, Method, Output, Request, Response, Target,
};
use consular_sim::{MarathonVersion, SimConsul, SimMarathon};

/// The registration id the benchmarks' bridges tag their services with.
pub const REGISTRATION_ID: &str = "bench";

/// Task hosts: the addresses of the benchmark's Consul agents (a server and three clients).
pub const HOSTS: [&str; 4] = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];

/// Marathon version the benchmarks imitate: the newest, with the event stream and task `state`.
pub const MARATHON_VERSION: MarathonVersion = MarathonVersion::V1_10;

/// A Marathon with `apps` apps (`/bench/app-0000` …), each with `labels` labels and `tasks` tasks
/// in `TASK_RUNNING`, spread round-robin over [`HOSTS`], each on one host port.
pub struct BenchWorld {
    /// The model; the events its setup emitted have been taken out.
    pub marathon: SimMarathon,
    /// The `status_update_event` (`TASK_RUNNING`) body of every task, in start order.
    pub running_events: Vec<Vec<u8>>,
}

/// Builds a [`BenchWorld`].
pub fn bench_world(apps: usize, tasks: usize, labels: usize) -> BenchWorld {
    let mut marathon = SimMarathon::new(MARATHON_VERSION);
    let mut running_events = Vec::with_capacity(apps * tasks);
    let mut n = 0usize;
    for a in 0..apps {
        let app_id = app_id(a);
        let values: Vec<(String, String)> = (0..labels)
            .map(|l| (format!("label-{l}"), format!("value {a}.{l}")))
            .collect();
        let pairs: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        marathon.put_app(&app_id, &pairs);
        for _ in 0..tasks {
            let id = marathon.start_task(&app_id, HOSTS[n % HOSTS.len()], &[task_port(n)]);
            marathon.set_task_state(&id, "TASK_RUNNING");
            n += 1;
        }
        // Taken app by app, so a 10,000-task world never holds all 30,000 setup events at once.
        for event in marathon.take_events() {
            if event.event_type == "status_update_event"
                && event.value()["taskStatus"] == "TASK_RUNNING"
            {
                running_events.push(event.json);
            }
        }
    }
    BenchWorld {
        marathon,
        running_events,
    }
}

/// The id of app number `a` in [`bench_world`].
pub fn app_id(a: usize) -> String {
    format!("/bench/app-{a:04}")
}

/// The host port of task number `n` (any port works; distinct ones look like a real cluster).
pub fn task_port(n: usize) -> u16 {
    31_000 + (n % 2_000) as u16
}

/// A sim Consul with one agent per [`HOSTS`] entry (the first is the server).
fn sim_consul() -> SimConsul {
    let mut consul = SimConsul::new();
    for (i, host) in HOSTS.iter().enumerate() {
        consul.add_agent(&format!("node-{i}"), host);
    }
    consul
}

/// Canned answers for the requests of one workflow, looked up by target, method and path, so
/// the timed loops spend nothing on simulating Marathon or Consul.
struct Canned {
    bodies: HashMap<(Target, Method, String), (u16, Vec<u8>)>,
}

impl Canned {
    fn new() -> Self {
        Canned {
            bodies: HashMap::new(),
        }
    }

    fn insert(&mut self, target: Target, method: Method, path: String, status: u16, body: Vec<u8>) {
        self.bodies.insert((target, method, path), (status, body));
    }

    /// The canned answer, or an empty 200 for writes (registrations, txns: the bridge only
    /// checks the status). A read with no canned answer is a bug in the benchmark.
    fn answer(&self, request: &Request) -> Response {
        let key = (
            request.target.clone(),
            request.method,
            request.path_and_query.clone(),
        );
        match self.bodies.get(&key) {
            Some((status, body)) => Response {
                status: *status,
                body: body.clone(),
            },
            None if request.method != Method::Get => Response {
                status: 200,
                body: b"{}".to_vec(),
            },
            None => panic!(
                "no canned answer for {} {} {}",
                request.method, request.target, request.path_and_query
            ),
        }
    }
}

/// Which events [`status_event_throughput`] feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    /// As Marathon sends them, with the app version the task runs.
    AsSent,
    /// Without `version`: each one reads the app and its labels after registering.
    Unversioned,
}

/// Result of [`status_event_throughput`].
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Events fed, in [`THROUGHPUT_ROUNDS`] equal rounds.
    pub events: u64,
    /// Requests the core asked for, and got answered, for them.
    pub requests: u64,
    /// Events per second of the median round.
    pub median_per_second: f64,
    /// Events per second of the fastest round.
    pub best_per_second: f64,
}

/// Rounds of [`status_event_throughput`], timed one by one so other load on the machine shows as
/// spread rather than as a lower number.
pub const THROUGHPUT_ROUNDS: u64 = 5;

/// Feeds `events` `status_update_event` (`TASK_RUNNING`) bodies of the `apps` × 10 × 3 world
/// through one bridge, answering every request at once, and times it. Panics if any event's
/// reply is not `200`, since the number would then measure an error path.
pub fn status_event_throughput(apps: usize, events: u64, kind: Events) -> Throughput {
    let BenchWorld {
        mut marathon,
        running_events: mut bodies,
    } = bench_world(apps, 10, 3);
    if kind == Events::Unversioned {
        for body in &mut bodies {
            let mut event: serde_json::Value = serde_json::from_slice(body).expect("event JSON");
            event.as_object_mut().map(|e| e.remove("version"));
            *body = serde_json::to_vec(&event).expect("JSON");
        }
    }
    let mut consul = sim_consul();
    let mut canned = Canned::new();
    for a in 0..apps {
        let app_id = app_id(a);
        let name = service_name(&app_id);
        let app = marathon.app(&app_id).expect("app exists").clone();
        for (label, value) in &app.labels {
            consul.put_kv(&format!("{KV_ROOT}{name}/{label}"), &label_value(value));
        }
        // The app as `GET /v2/apps/<id>` returns it: with its 10 tasks embedded.
        let path = app_path(&app_id);
        let response = marathon.handle(Method::Get, &path, b"");
        canned.insert(Target::Marathon, Method::Get, path, 200, response.body);
        let kv_path = kv_tree_path(&format!("{KV_ROOT}{name}/"));
        let response = consul.handle(HOSTS[0], Method::Get, &kv_path, b"");
        canned.insert(Target::Consul, Method::Get, kv_path, 200, response.body);
    }

    // The first event's host makes the bridge read the cluster's members once.
    let nodes = consul.handle(HOSTS[0], Method::Get, CATALOG_NODES_PATH, b"");
    canned.insert(
        Target::Consul,
        Method::Get,
        CATALOG_NODES_PATH.into(),
        200,
        nodes.body,
    );
    let mut bridge = Bridge::new(Config::default(), Duration::ZERO);
    // A short warm-up, so allocator and caches settle before the clock starts.
    let warm_up = bodies.len().min(1_000) as u64;
    feed_events(&mut bridge, &bodies, &canned, 0..warm_up);
    let per_round = events / THROUGHPUT_ROUNDS;
    let mut requests = 0;
    let mut rates: Vec<f64> = (0..THROUGHPUT_ROUNDS)
        .map(|r| {
            let first = warm_up + r * per_round;
            let started = Instant::now();
            requests += feed_events(&mut bridge, &bodies, &canned, first..first + per_round);
            per_round as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    Throughput {
        events: per_round * THROUGHPUT_ROUNDS,
        requests,
        median_per_second: rates[rates.len() / 2],
        best_per_second: rates[rates.len() - 1],
    }
}

/// Feeds event number `i` of `numbers` (cycling through `bodies`) as inbound request `i`, and
/// answers each request it causes at once, until its reply; returns the requests answered.
fn feed_events(
    bridge: &mut Bridge,
    bodies: &[Vec<u8>],
    canned: &Canned,
    numbers: std::ops::Range<u64>,
) -> u64 {
    let mut work = VecDeque::new();
    let mut requests = 0;
    for i in numbers {
        let body = &bodies[(i % bodies.len() as u64) as usize];
        bridge
            .handle_inbound(Duration::ZERO, InboundId(i), "/events", body)
            .expect("inbound ids are fresh");
        let mut replied = false;
        loop {
            match bridge.poll_output() {
                Output::Request(request) => work.push_back(request),
                Output::Reply(_, reply) => {
                    assert_eq!(
                        reply.status,
                        200,
                        "{}",
                        String::from_utf8_lossy(&reply.body)
                    );
                    replied = true;
                }
                Output::Timeout(_) => match work.pop_front() {
                    Some(request) => {
                        requests += 1;
                        let response = canned.answer(&request);
                        bridge.handle_response(Duration::ZERO, request.id, Ok(response));
                    }
                    None => break,
                },
                Output::Log(_) | Output::OpenStream(_) | Output::CloseStream(_) => {}
            }
        }
        assert!(replied, "event {i} got no reply");
    }
    requests
}

/// Result of [`plan_times`].
#[derive(Debug, Clone, Copy)]
pub struct PlanTimes {
    /// Tasks in the world.
    pub tasks: usize,
    /// `parse_apps` of Marathon's `/v2/apps?embed=apps.tasks` body (not part of the target, shown
    /// because a sync pays it too).
    pub parse: Timing,
    /// Size of that body.
    pub apps_body_bytes: usize,
    /// `desired_state` + `plan_sync` against an empty Consul.
    pub cold: Timing,
    /// Registrations the cold plan makes.
    pub cold_registrations: usize,
    /// `desired_state` + `plan_sync` against a Consul that already holds everything.
    pub warm: Timing,
    /// Writes the warm plan makes (must be 0).
    pub warm_writes: usize,
}

/// Times planning a sync of `apps` × `tasks` × 3 labels, median of `runs`.
pub fn plan_times(apps: usize, tasks: usize, runs: usize) -> PlanTimes {
    let mut marathon = bench_world(apps, tasks, 3).marathon;
    let body = marathon.handle(Method::Get, APPS_WITH_TASKS_PATH, b"").body;
    let parsed = parse_apps(&body).expect("the simulator's apps parse");
    let desired = desired_state(&parsed, &ServiceRules::for_registration_id(REGISTRATION_ID));
    let empty = ConsulState {
        services: Vec::new(),
        services_complete: true,
        checks: Vec::new(),
        kv: Some(Vec::new()),
    };
    let full = ConsulState {
        services: desired
            .services
            .values()
            .map(|d| ObservedService {
                agent: d.agent.clone(),
                registration: d.registration.clone(),
            })
            .collect(),
        services_complete: true,
        checks: Vec::new(),
        kv: Some(
            desired
                .kv
                .iter()
                .enumerate()
                .map(|(i, (key, value))| consular_core::consul::KvEntry {
                    key: key.clone(),
                    value: value.clone(),
                    modify_index: 100 + i as u64,
                    flags: 0,
                })
                .collect(),
        ),
    };
    let purge = Purge {
        everything: true,
        ..Purge::default()
    };
    let excluded = Exclusions::default();
    let plan = |consul: &ConsulState| {
        let desired = desired_state(&parsed, &ServiceRules::for_registration_id(REGISTRATION_ID));
        plan_sync(desired, consul, REGISTRATION_ID, &purge, &excluded)
    };
    let cold_plan = plan(&empty);
    let warm_plan = plan(&full);
    PlanTimes {
        tasks: desired.services.len(),
        parse: median(runs, || {
            std::hint::black_box(parse_apps(&body).expect("parses"));
        }),
        apps_body_bytes: body.len(),
        cold: median(runs, || {
            std::hint::black_box(plan(&empty));
        }),
        cold_registrations: cold_plan.register.len(),
        warm: median(runs, || {
            std::hint::black_box(plan(&full));
        }),
        warm_writes: warm_plan.register.len() + warm_plan.deregister.len() + warm_plan.kv.len(),
    }
}

/// Result of [`sync_times`].
#[derive(Debug, Clone, Copy)]
pub struct SyncTimes {
    /// A first sync into an empty Consul, from `Bridge::new` to the sync's end.
    pub cold: Timing,
    /// Requests of the cold sync.
    pub cold_requests: usize,
    /// A sync into a Consul that holds everything.
    pub warm: Timing,
    /// Requests of the warm sync.
    pub warm_requests: usize,
}

/// Times whole syncs of `apps` × `tasks` × 3 labels through the state machine, every request
/// answered at once with canned bodies (the Consul side read from a [`SimConsul`] that one
/// untimed sync filled), median of `runs`.
pub fn sync_times(apps: usize, tasks: usize, runs: usize) -> SyncTimes {
    let mut marathon = bench_world(apps, tasks, 3).marathon;
    let mut consul = sim_consul();
    let apps_body = marathon.handle(Method::Get, APPS_WITH_TASKS_PATH, b"").body;
    let mut cold = Canned::new();
    let kv_root = kv_tree_path(KV_ROOT);
    let nodes = consul.handle(HOSTS[0], Method::Get, CATALOG_NODES_PATH, b"");
    cold.insert(
        Target::Marathon,
        Method::Get,
        APPS_WITH_TASKS_PATH.into(),
        200,
        apps_body.clone(),
    );
    cold.insert(
        Target::Consul,
        Method::Get,
        CRITICAL_CHECKS_PATH.into(),
        200,
        b"[]".to_vec(),
    );
    cold.insert(
        Target::Consul,
        Method::Get,
        CATALOG_NODES_PATH.into(),
        200,
        nodes.body.clone(),
    );
    cold.insert(
        Target::Consul,
        Method::Get,
        kv_root.clone(),
        404,
        Vec::new(),
    );
    for host in HOSTS {
        let agent = Target::Agent(host.into());
        cold.insert(
            agent,
            Method::Get,
            AGENT_SERVICES_PATH.into(),
            200,
            b"{}".to_vec(),
        );
    }
    // One untimed sync against the live simulator fills it, so the warm bodies are exactly what
    // Consul would list after a cold sync.
    let requests = run_sync(|request| {
        let agent = match &request.target {
            Target::Agent(host) => host.as_str(),
            _ => HOSTS[0],
        };
        let body = request.body.as_deref().unwrap_or_default();
        if request.target == Target::Marathon {
            let r = marathon.handle(request.method, &request.path_and_query, body);
            return Response {
                status: r.status,
                body: r.body,
            };
        }
        let r = consul.handle(agent, request.method, &request.path_and_query, body);
        Response {
            status: r.status,
            body: r.body,
        }
    });
    assert!(
        requests > apps * tasks,
        "the filling sync registered everything"
    );
    let mut warm = Canned::new();
    warm.insert(
        Target::Marathon,
        Method::Get,
        APPS_WITH_TASKS_PATH.into(),
        200,
        apps_body,
    );
    warm.insert(
        Target::Consul,
        Method::Get,
        CRITICAL_CHECKS_PATH.into(),
        200,
        b"[]".to_vec(),
    );
    warm.insert(
        Target::Consul,
        Method::Get,
        CATALOG_NODES_PATH.into(),
        200,
        nodes.body,
    );
    let kv = consul.handle(HOSTS[0], Method::Get, &kv_root, b"");
    warm.insert(Target::Consul, Method::Get, kv_root, kv.status, kv.body);
    for host in HOSTS {
        let services = consul.handle(host, Method::Get, AGENT_SERVICES_PATH, b"");
        warm.insert(
            Target::Agent(host.into()),
            Method::Get,
            AGENT_SERVICES_PATH.into(),
            200,
            services.body,
        );
    }
    let mut cold_requests = 0;
    let mut warm_requests = 0;
    SyncTimes {
        cold: median(runs, || cold_requests = run_sync(|r| cold.answer(r))),
        cold_requests,
        warm: median(runs, || warm_requests = run_sync(|r| warm.answer(r))),
        warm_requests,
    }
}

/// Runs one sync on a fresh bridge (purge on, no event source), answering every request with
/// `answer` in the order asked; returns the number of requests.
fn run_sync(mut answer: impl FnMut(&Request) -> Response) -> usize {
    let config = Config {
        registration_id: REGISTRATION_ID.into(),
        sync_interval: Duration::from_secs(3_600),
        purge: true,
        events: EventSource::Callback,
        callback_url: None,
        ..Config::default()
    };
    let mut bridge = Bridge::new(config, Duration::ZERO);
    let mut work = VecDeque::new();
    let mut requests = 0;
    loop {
        match bridge.poll_output() {
            Output::Request(request) => work.push_back(request),
            Output::Timeout(_) => match work.pop_front() {
                Some(request) => {
                    requests += 1;
                    let response = answer(&request);
                    bridge.handle_response(Duration::ZERO, request.id, Ok(response));
                }
                None => break,
            },
            _ => {}
        }
    }
    assert!(!bridge.is_syncing(), "the sync ended");
    assert_eq!(bridge.metrics().syncs_completed(), 1, "the sync completed");
    requests
}

/// Median wall time of `runs` calls of `f`, after one untimed call.
fn median(runs: usize, mut f: impl FnMut()) -> Timing {
    f();
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    Timing {
        median: times[times.len() / 2],
        min: times[0],
    }
}

/// Wall times of repeated runs. The median is what is judged; the minimum shows how much of it
/// was other load on the machine (the work is the same every run).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The median run.
    pub median: Duration,
    /// The fastest run.
    pub min: Duration,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (min {})", ms(self.median), ms(self.min))
    }
}

/// Everything this file measures, as printed by [`main`] and by the bridge benchmark.
pub struct CoreReport {
    /// Status events through the state machine, as Marathon sends them.
    pub throughput: Throughput,
    /// The same without their `version`.
    pub unversioned: Throughput,
    /// Planning a 1,000 × 10 sync.
    pub plan: PlanTimes,
    /// Whole 1,000 × 10 syncs through the state machine.
    pub sync: SyncTimes,
}

/// Runs every core measurement, with progress on stderr.
pub fn measure_core() -> CoreReport {
    eprintln!("core: status events through the state machine …");
    let throughput = status_event_throughput(1_000, 200_000, Events::AsSent);
    let unversioned = status_event_throughput(1_000, 200_000, Events::Unversioned);
    eprintln!("core: planning a 10,000-task sync …");
    let plan = plan_times(1_000, 10, 21);
    eprintln!("core: whole 10,000-task syncs through the state machine …");
    let sync = sync_times(1_000, 10, 5);
    CoreReport {
        throughput,
        unversioned,
        plan,
        sync,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The report's lines as (what, measured, target, pass), for a table.
pub fn core_rows(report: &CoreReport) -> Vec<(String, String, String, Option<bool>)> {
    let t = &report.throughput;
    let u = &report.unversioned;
    let p = &report.plan;
    let s = &report.sync;
    let worst_plan = p.cold.median.max(p.warm.median);
    let rate = |t: &Throughput| {
        format!(
            "{:.0}/s median of {THROUGHPUT_ROUNDS} rounds (best {:.0}/s; {} events, {:.2} \
             requests each)",
            t.median_per_second,
            t.best_per_second,
            t.events,
            t.requests as f64 / t.events as f64
        )
    };
    vec![
        (
            "core: status events/s (TASK_RUNNING as Marathon sends them, answered at once, 1 \
             thread)"
                .into(),
            rate(t),
            "≥ 200,000/s".into(),
            Some(t.median_per_second >= 200_000.0),
        ),
        (
            "core: the same events without `version`: each reads the app and its labels (info)"
                .into(),
            rate(u),
            "–".into(),
            None,
        ),
        (
            format!(
                "core: plan a {}-task sync (desired_state + plan_sync)",
                p.tasks
            ),
            format!(
                "cold {} ({} registrations), warm {} ({} writes)",
                p.cold, p.cold_registrations, p.warm, p.warm_writes
            ),
            "< 50 ms".into(),
            Some(worst_plan < Duration::from_millis(50) && p.warm_writes == 0),
        ),
        (
            "core: parse Marathon's apps body (info)".into(),
            format!("{} for {:.1} MB", p.parse, p.apps_body_bytes as f64 / 1e6),
            "–".into(),
            None,
        ),
        (
            "core: whole sync through the state machine (info)".into(),
            format!(
                "cold {} ({} requests), warm {} ({} requests)",
                s.cold, s.cold_requests, s.warm, s.warm_requests
            ),
            "–".into(),
            None,
        ),
    ]
}

/// `cargo bench -p consular-core --bench core [-- events|plan|sync …]`: with names, runs only
/// those measurements (for profiling one of them); `CORE_BENCH_EVENTS` overrides the number of
/// events (callgrind runs about 50 times slower).
///
/// `cargo test --all-targets` runs this too, in a debug build and without `--bench`: then every
/// measurement runs once on a tiny world, as a test that the benchmark still works.
#[allow(dead_code)] // `main` is unused where the bridge benchmark includes this file as a module.
fn main() {
    // Cargo passes `--bench` to benchmarks without the libtest harness, and not to tests.
    if !std::env::args().any(|a| a == "--bench") {
        smoke_test();
        return;
    }
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if only.is_empty() {
        print_rows(&core_rows(&measure_core()));
        return;
    }
    for name in only {
        match name.as_str() {
            "events" => {
                let events = std::env::var("CORE_BENCH_EVENTS")
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(200_000);
                for kind in [Events::AsSent, Events::Unversioned] {
                    println!(
                        "{kind:?}: {:?}",
                        status_event_throughput(1_000, events, kind)
                    );
                }
            }
            "plan" => println!("{:?}", plan_times(1_000, 10, 21)),
            "sync" => println!("{:?}", sync_times(1_000, 10, 5)),
            other => panic!("unknown measurement {other:?}: events, plan or sync"),
        }
    }
}

/// Every measurement once on 10 apps × 2 tasks, checking what the numbers rely on: events get
/// `200` (checked inside), a warm plan writes nothing, a warm sync reads only.
fn smoke_test() {
    // 100 tasks of 10 apps: every app was read in the warm-up (one event per task), so a timed
    // event as sent only registers; an unversioned one reads the app and its labels too.
    let events = THROUGHPUT_ROUNDS * 20;
    let versioned = status_event_throughput(10, events, Events::AsSent);
    assert_eq!(versioned.requests, events);
    let unversioned = status_event_throughput(10, events, Events::Unversioned);
    assert_eq!(unversioned.requests, events * 3);
    let plan = plan_times(10, 2, 1);
    assert_eq!((plan.cold_registrations, plan.warm_writes), (20, 0));
    let sync = sync_times(10, 2, 1);
    // The reads: Marathon, KV, the node list and one per agent.
    assert_eq!(sync.warm_requests, 4 + HOSTS.len());
    println!("core benchmark smoke run: ok (cargo bench -p consular-core --bench core measures)");
}

fn print_rows(rows: &[(String, String, String, Option<bool>)]) {
    println!("| what | measured | target | result |");
    println!("|---|---|---|---|");
    for (what, measured, target, pass) in rows {
        let result = match pass {
            Some(true) => "pass",
            Some(false) => "FAIL",
            None => "info",
        };
        println!("| {what} | {measured} | {target} | {result} |");
    }
}
