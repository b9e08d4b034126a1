//! `consular demo`: the bridge at work with no infrastructure. It starts a simulated Marathon 1.10
//! and a stand-in Consul (a server agent on 127.0.0.1 and client agents on 127.0.0.2 and
//! 127.0.0.3, one port; or a real Consul given with `--consul`), runs the real bridge in-process
//! against them, and plays [`SCENARIO`], one step every `--step-seconds`, until SIGINT or SIGTERM.
//!
//! Here: which stand-ins to start, the scenario (data) and the loop that plays it. Not here: the
//! simulators (`consular_adapters::simulator`), the bridge (`consular-core`), flags (`settings/demo_flags.rs`).
//! Everything listens on loopback only.

use std::io;
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consular_adapters::server::ServerLimits;
use consular_adapters::simulator::{ConsulServer, MarathonServer};
use consular_adapters::{BaseUrl, DriverSettings, Endpoints};
use consular_core::{Bridge, Config, EventSource};
use consular_sim::{MarathonVersion, SimConsul, SimMarathon, SimTask};
use smol::{future, Timer};

use crate::logging::{self, LogFormat, LogLevel};
use crate::settings::DemoArgs;

/// The stand-in Consul's agents: `(node, address)`, the server first.
const AGENTS: [(&str, &str); 3] = [
    ("consul-server", "127.0.0.1"),
    ("agent-2", "127.0.0.2"),
    ("agent-3", "127.0.0.3"),
];
const DEFAULT_CONSUL_PORT: u16 = 8500;
const DEFAULT_BRIDGE_PORT: u16 = 7000;
/// Host ports handed to demo tasks count up from here.
const FIRST_TASK_PORT: u16 = 31000;

const WEB: &str = "/demo/web";
const API: &str = "/demo/api";
type Labels = &'static [(&'static str, &'static str)];
const WEB_LABELS: Labels = &[("domain", "web.demo.local"), ("HAPROXY_0_VHOST", "web")];
const WEB_LABELS_CHANGED: Labels = &[("domain", "www.demo.local"), ("HAPROXY_0_VHOST", "www")];
const API_LABELS: Labels = &[("domain", "api.demo.local")];

/// One thing that happens in Marathon. Marathon schedules nothing by itself in the simulator,
/// so launching and killing tasks are steps too.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Create the app, or replace its labels.
    Define(&'static str, Labels),
    /// Launch (staging) or kill (newest first) tasks until the app has this many.
    Scale(&'static str, usize),
    /// Every staging task of the app reports `TASK_RUNNING`.
    Run(&'static str),
    /// The oldest task of the app reports `TASK_FAILED`.
    Fail(&'static str),
    /// Delete the app; its tasks are killed.
    Delete(&'static str),
}

/// The scenario, played in a loop: each step with its narration.
#[rustfmt::skip] // A table: one step a line.
const SCENARIO: &[(Step, &str)] = &[
    (Step::Define(WEB, WEB_LABELS), "create app /demo/web (domain=web.demo.local, HAPROXY_0_VHOST=web); its labels go to KV"),
    (Step::Define(API, API_LABELS), "create app /demo/api (domain=api.demo.local)"),
    (Step::Scale(WEB, 2), "/demo/web: Marathon launches 2 tasks (staging, not registered yet)"),
    (Step::Run(WEB), "/demo/web: tasks RUNNING, registered as service demo-web on their agents"),
    (Step::Scale(API, 1), "/demo/api: Marathon launches 1 task"),
    (Step::Run(API), "/demo/api: task RUNNING, registered as demo-api"),
    (Step::Fail(WEB), "/demo/web: a task FAILED, its service is deregistered"),
    (Step::Scale(WEB, 2), "/demo/web: Marathon launches a replacement"),
    (Step::Run(WEB), "/demo/web: the replacement is RUNNING and registered"),
    (Step::Scale(API, 3), "/demo/api: scaled up to 3 instances"),
    (Step::Run(API), "/demo/api: 3 tasks RUNNING and registered"),
    (Step::Scale(API, 1), "/demo/api: scaled down to 1, two services deregistered"),
    (Step::Define(WEB, WEB_LABELS_CHANGED), "/demo/web: labels changed (domain=www.demo.local, HAPROXY_0_VHOST=www); KV follows at the next sync"),
    (Step::Delete(API), "/demo/api deleted: its service and its KV are gone"),
    (Step::Define(API, API_LABELS), "/demo/api created again"),
    (Step::Scale(API, 1), "/demo/api: Marathon launches 1 task"),
    (Step::Run(API), "/demo/api: task RUNNING, registered again"),
    (Step::Delete(WEB), "/demo/web deleted"),
    (Step::Delete(API), "/demo/api deleted; the scenario starts over"),
];

/// Runs the demo until SIGINT or SIGTERM.
pub fn run(args: DemoArgs) -> ExitCode {
    // Standard output cannot fail to open.
    let _ = logging::init(None, LogFormat::Json, LogLevel::Info);
    let shutdown = match crate::shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(error) => return fail(format!("cannot handle SIGINT/SIGTERM: {error}")),
    };
    let stage = match Stage::start(&args) {
        Ok(stage) => stage,
        Err(error) => return fail(format!("cannot start the stand-ins: {error}")),
    };
    let settings = DriverSettings {
        endpoints: Endpoints::new(stage.marathon_url.clone(), stage.consul_url.clone()),
        consul_tls: Default::default(),
        marathon_tls: Default::default(),
        listen_host: "127.0.0.1".to_owned(),
        listen_port: bridge_port(args.port),
        server: ServerLimits::default(),
    };
    stage.print_how_to_look(&settings, args.step);
    let config = Config {
        registration_id: "consular-demo".to_owned(),
        events: EventSource::Stream,
        sync_interval: Duration::from_secs(10),
        purge: true,
        ..Config::default()
    };
    // The driver's clock starts when `run` starts, so the bridge starts at zero.
    let bridge = Bridge::new(config, Duration::ZERO);
    let bridging = consular_adapters::run(bridge, settings, shutdown);
    let playing = async {
        stage.play(args.step).await;
        Ok(())
    };
    match smol::block_on(future::or(bridging, playing)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error.to_string()),
    }
}

fn fail(message: String) -> ExitCode {
    log::error!("{message}");
    eprintln!("consular demo: {message}");
    ExitCode::FAILURE
}

/// The simulated Marathon, the stand-in Consul if there is one, and where tasks run.
struct Stage {
    marathon: MarathonServer,
    marathon_url: BaseUrl,
    /// `None` with `--consul`.
    consul: Option<ConsulServer>,
    consul_url: BaseUrl,
    /// Task hosts: the stand-in's client agents, or 127.0.0.1 for a real Consul.
    hosts: Vec<&'static str>,
    /// Why there are fewer agents than usual, if there are.
    note: Option<String>,
}

impl Stage {
    fn start(args: &DemoArgs) -> io::Result<Stage> {
        let marathon = MarathonServer::start(SimMarathon::new(MarathonVersion::V1_10))?;
        marathon.with(|m| m.leader = marathon.addr().to_string());
        let marathon_url = base_url(&marathon.url())?;
        let (consul, consul_url, hosts, note) = match &args.consul {
            Some(real) => (None, real.clone(), vec!["127.0.0.1"], None),
            None => {
                let (consul, hosts, note) = start_consul(args.consul_port)?;
                let url = base_url(&consul.url())?;
                (Some(consul), url, hosts, note)
            }
        };
        Ok(Stage {
            marathon,
            marathon_url,
            consul,
            consul_url,
            hosts,
            note,
        })
    }

    fn print_how_to_look(&self, settings: &DriverSettings, step: Duration) {
        let consul = &self.consul_url;
        let marathon = &self.marathon_url;
        println!(
            "consular demo: the bridge between a simulated Marathon 1.10 and Consul, on loopback."
        );
        println!("  Marathon  {marathon}   (curl {marathon}/v2/apps)");
        match &self.consul {
            Some(stand_in) => println!(
                "  Consul    {consul}   (stand-in; tasks run on the agents at {}, port {})",
                self.hosts.join(", "),
                stand_in.port()
            ),
            None => println!("  Consul    {consul}   (yours; demo tasks run on host 127.0.0.1)"),
        }
        if let Some(note) = &self.note {
            println!("            {note}");
        }
        println!(
            "  consular  http://{}:{}   (registration id consular-demo, events from /v2/events)",
            settings.listen_host, settings.listen_port
        );
        println!("See what it does:");
        println!("  curl {consul}/v1/agent/services");
        if let Some(stand_in) = &self.consul {
            for host in self.hosts.iter().filter(|h| **h != "127.0.0.1") {
                println!("  curl http://{host}:{}/v1/agent/services", stand_in.port());
            }
        }
        println!("  curl {consul}/v1/catalog/services");
        println!("  curl '{consul}/v1/kv/consular/?recurse'");
        println!("A step every {} s; Ctrl-C stops.", step.as_secs());
    }

    /// Plays [`SCENARIO`] forever, one step every `every`.
    async fn play(&self, every: Duration) {
        let mut launcher = Launcher {
            hosts: &self.hosts,
            launched: 0,
        };
        for (step, narration) in SCENARIO.iter().cycle() {
            Timer::after(every).await;
            let where_ = self.marathon.with(|m| {
                m.set_time(now_millis());
                launcher.apply(m, *step)
            });
            log::info!("demo: {narration}{where_}");
        }
    }
}

/// Starts the stand-in Consul on `port` (default: 8500, else a free one), with all three
/// agents, or with the server alone if the other loopback addresses cannot be used.
fn start_consul(
    port: Option<u16>,
) -> io::Result<(ConsulServer, Vec<&'static str>, Option<String>)> {
    let start = |agents: &[(&str, &str)]| {
        let consul = || {
            let mut consul = SimConsul::new();
            for (node, address) in agents {
                consul.add_agent(node, address);
            }
            consul
        };
        match port {
            Some(port) => ConsulServer::start(consul(), port),
            None => ConsulServer::start(consul(), DEFAULT_CONSUL_PORT)
                .or_else(|_| ConsulServer::start(consul(), 0)),
        }
    };
    let clients: Vec<&str> = AGENTS[1..].iter().map(|(_, address)| *address).collect();
    match start(&AGENTS) {
        Ok(consul) => Ok((consul, clients, None)),
        Err(error) => {
            let consul = start(&AGENTS[..1])?;
            let note = format!(
                "cannot listen on {} ({error}): one agent only",
                clients.join(", ")
            );
            Ok((consul, vec![AGENTS[0].1], Some(note)))
        }
    }
}

/// `requested`, or 7000 if it is free, else a free port. (Checked by binding for a moment: the
/// port could be taken again before the bridge binds it, which then fails with a clear error.)
fn bridge_port(requested: Option<u16>) -> u16 {
    requested.unwrap_or_else(|| {
        let free = |port| TcpListener::bind(("127.0.0.1", port)).and_then(|l| l.local_addr());
        free(DEFAULT_BRIDGE_PORT)
            .or_else(|_| free(0))
            .map_or(DEFAULT_BRIDGE_PORT, |addr| addr.port())
    })
}

fn base_url(url: &str) -> io::Result<BaseUrl> {
    BaseUrl::parse(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

/// `(id, host, state)` of each task of `app`, oldest first.
fn tasks(marathon: &SimMarathon, app: &str) -> Vec<(String, String, String)> {
    let Some(app) = marathon.app(app) else {
        return Vec::new();
    };
    let task = |t: &SimTask| (t.id.clone(), t.host.clone(), t.state.clone());
    app.tasks.iter().map(task).collect()
}

/// Plays the scheduler's part: spreads new tasks over the hosts, hands out host ports.
struct Launcher<'a> {
    hosts: &'a [&'static str],
    launched: usize,
}

impl Launcher<'_> {
    /// Applies `step` to Marathon; returns where it happened, for the narration.
    fn apply(&mut self, marathon: &mut SimMarathon, step: Step) -> String {
        let mut touched = Vec::new();
        match step {
            Step::Define(app, labels) => marathon.put_app(app, labels),
            Step::Scale(app, wanted) => {
                marathon.set_app_instances(app, u32::try_from(wanted).unwrap_or(u32::MAX));
                let current = tasks(marathon, app);
                for _ in current.len()..wanted {
                    let host = self.hosts[self.launched % self.hosts.len()];
                    let port = FIRST_TASK_PORT + (self.launched % 1000) as u16;
                    self.launched += 1;
                    marathon.start_task(app, host, &[port]);
                    touched.push(format!("{host}:{port}"));
                }
                for (id, host, _) in current.iter().skip(wanted).rev() {
                    marathon.set_task_state(id, "TASK_KILLED");
                    touched.push(host.clone());
                }
            }
            Step::Run(app) => {
                for (id, host, state) in tasks(marathon, app) {
                    if state == "TASK_STAGING" {
                        marathon.set_task_state(&id, "TASK_RUNNING");
                        touched.push(host);
                    }
                }
            }
            Step::Fail(app) => {
                if let Some((id, host, _)) = tasks(marathon, app).into_iter().next() {
                    marathon.set_task_state(&id, "TASK_FAILED");
                    touched.push(host);
                }
            }
            Step::Delete(app) => marathon.remove_app(app),
        }
        if touched.is_empty() {
            String::new()
        } else {
            format!(" [{}]", touched.join(", "))
        }
    }
}
