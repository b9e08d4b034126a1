//! The command line: consular 1.3.0's flags (plus `--consul-token`, `--marathon-token`,
//! `--ca-file` and the per-peer TLS flags (`--consul-ca-file`, `--consul-ca-path`,
//! `--consul-client-cert`, `--consul-client-key`, `--consul-tls-server-name` and their
//! `--marathon-*` twins but the server name), `--events`, `--events-secret`,
//! `--accept-callbacks`, `--max-listing-bytes`, `--require-label`, `--address`,
//! `--health-checks`, `--register-when-healthy`, `--migrate-marathon-consul` and `--version`),
//! parsed with pico-args into a [`Command`], and turned into the core's [`Config`]
//! and the adapters' [`DriverSettings`]; and the `demo` subcommand's flags ([`DemoArgs`]).
//!
//! The environment (`CONSUL_HTTP_TOKEN`) comes in as an argument; the one thing read here is the
//! file of `--events-secret @FILE`, and nothing is bound. Every bad value is one [`CliError`] line
//! naming the flag (or variable) and the reason; it never shows a token, the events secret, or the
//! userinfo of a URL. Running the command lives in `main.rs`, logging in `logging.rs`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use consular_adapters::endpoints::{check_token, redact_userinfo};
use consular_adapters::server::ServerLimits;
use consular_adapters::tls::TlsOptions;
use consular_adapters::{BaseUrl, DriverSettings, Endpoints};
use consular_core::encoding::callback_url;
use consular_core::{
    AddressMode, Advertised, Config, EventSource, EventsEndpoint, FallbackMode, HaConfig,
    HealthChecks, MarathonConsulLeftovers, Placement, RegisterWhen, WriteMode,
};
use pico_args::Arguments;

/// `--help` output.
pub const USAGE: &str = "\
Usage: consular [OPTIONS]
       consular demo [--help]

  Keeps Consul's service catalog in step with Marathon (a drop-in for consular 1.3.0).
  `consular demo` shows it at work against a simulated Marathon and Consul.

Options:
  --scheme [http|https]      Scheme of the callback URL registered at Marathon.  [default: http]
  --host TEXT                Interface to listen on, also the host in the callback URL.
                             [default: localhost]
  --port INTEGER             Port to listen on, also the port in the callback URL.  [default: 7000]
  --consul TEXT              Consul's URL; its scheme and port also reach the agents.
                             [default: http://localhost:8500]
  --marathon TEXT            Marathon's URL; user:password@ in it becomes Basic auth.
                             [default: http://localhost:8080]
  --registration-id TEXT     Tags our services; must be unique for each consular process.
                             [default: consular]
  --sync-interval INTEGER    Seconds between full syncs; 0 turns them off.  [default: 0]
  --purge / --no-purge       During syncs, deregister our services whose tasks are gone and
                             delete the KV entries of deleted apps.  [default: no-purge]
  --logfile FILENAME         Append the log to this file instead of standard output.
  --debug / --no-debug       Log every request.  [default: no-debug]
  --timeout INTEGER          Seconds to wait for each Marathon or Consul request.  [default: 5]
  --fallback / --no-fallback Register on --consul when the task host's agent fails.
                             ONLY USE IF YOU KNOW WHAT YOU ARE DOING.  [default: no-fallback]
  --fallback-timeout INTEGER Seconds to wait for that fallback registration.  [default: 2]
  --events [sse|callback|auto]
                             Where Marathon's events come from: the /v2/events stream (sse),
                             HTTP callbacks to /events, or the stream with callbacks if Marathon
                             has none.  [default: auto]
  --consul-token TEXT        Consul ACL token for every Consul request (visible ASCII).
                             [default: $CONSUL_HTTP_TOKEN]
  --marathon-token TEXT      DC/OS ACS token, sent to Marathon as Authorization: token=....
  --events-secret TEXT       Secret every /events callback must carry; it goes into the
                             callback URL registered at Marathon. @FILE reads it from FILE.
  --accept-callbacks         Serve /events even while the event stream is the source.
  --max-listing-bytes INTEGER
                             Largest response read for a Marathon or Consul listing, at least
                             65536.  [default: 67108864]
  --ca-file FILENAME         Also trust the CA certificates in this PEM file for https.
  --consul-ca-file FILENAME  Also trust this PEM file's CAs for Consul and its agents.
  --consul-ca-path DIRECTORY Also trust every *.pem and *.crt file in it for Consul.
  --consul-client-cert FILENAME
                             PEM client certificate presented to Consul and its agents.
  --consul-client-key FILENAME
                             PEM private key of --consul-client-cert.
  --consul-tls-server-name TEXT
                             Name Consul's and every agent's certificate must carry (sent as
                             SNI) instead of the URL's host.
  --marathon-ca-file FILENAME
                             Also trust this PEM file's CAs for Marathon.
  --marathon-ca-path DIRECTORY
                             Also trust every *.pem and *.crt file in it for Marathon.
  --marathon-client-cert FILENAME
                             PEM client certificate presented to Marathon.
  --marathon-client-key FILENAME
                             PEM private key of --marathon-client-cert.
  --require-label TEXT       Register only the apps that carry this label (marathon-consul:
                             consul); apps that lose it are deregistered by the next sync.
  --address [auto|host|task-ip]
                             Address of a task's services: the task's own IP and container port
                             on IP-per-task or a container network without host ports (auto),
                             always the host and host port (host), or the task's IP whenever
                             Marathon reports one (task-ip).  [default: auto]
  --health-checks [none|mirror|agent]
                             Consul checks on the services of apps with Marathon health checks:
                             none; one check whose status follows Marathon's results (mirror);
                             or the agent runs Marathon's HTTP and TCP checks (agent).
                             [default: none]
  --register-when-healthy    Register a task of an app with health checks only once Marathon
                             reports all its checks alive; deregister it when one fails.
  --fallback-mode [agent|catalog]
                             Where --fallback registers a task whose host has no reachable agent:
                             on the main agent, or in the catalog on an external node named
                             after the host, for consul-esm (catalog implies --fallback).
                             [default: agent]
  --agentless                Register every task on an external node named after its host (for
                             clusters without Consul agents on the Mesos hosts).
  --dry-run                  Read Marathon and Consul as a sync would, log every write it would
                             make (one line each, and a summary), make none, and exit.
  --ha                       Run as one of several instances: only the one holding a Consul
                             lock (a session on --ha-key) acts; the others stand by.
  --ha-ttl INTEGER           Seconds of the session's TTL (10 to 86400).  [default: 15]
  --ha-key TEXT              The lock key.  [default: service/consular/<registration-id>/leader]
  --instance-id TEXT         This instance's name in the lock and the logs.  [default: <host>:<port>]
  --migrate-marathon-consul  Deregister the services marathon-consul registered (tagged both
                             marathon and marathon-task:...), once: every sync until one has
                             listed every agent. Stop marathon-consul first.
  --version                  Show the version and exit.
  --help                     Show this message and exit.
";

/// `demo --help` output.
pub const DEMO_USAGE: &str = "\
Usage: consular demo [OPTIONS]

  Runs consular against a simulated Marathon 1.10 and a stand-in Consul (a server agent on
  127.0.0.1 and client agents on 127.0.0.2 and 127.0.0.3, one port), all on loopback, and plays
  a scripted scenario (apps, tasks, failures, scaling, labels) until Ctrl-C.

Options:
  --consul URL               Use this real Consul instead of the stand-in; demo tasks run on
                             host 127.0.0.1, so they register with the agent there.
  --consul-port INTEGER      Port of the stand-in Consul.  [default: 8500, else a free one]
  --port INTEGER             Port consular listens on.  [default: 7000, else a free one]
  --step-seconds INTEGER     Seconds between scenario steps.  [default: 2]
  --help                     Show this message and exit.
";

/// Seconds accepted by the time flags: a year, far below where the core's clock arithmetic could
/// overflow.
const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;
/// Smallest `--max-listing-bytes`: below this even a small cluster's app list would not fit.
const MIN_LISTING_BYTES: usize = 64 * 1024;
/// The variable `--consul-token` defaults to.
const CONSUL_TOKEN_VAR: &str = "CONSUL_HTTP_TOKEN";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the bridge (boxed: the flags dwarf the other variants).
    Run(Box<RunArgs>),
    /// Run the demo.
    Demo(DemoArgs),
    /// Print [`DEMO_USAGE`].
    DemoHelp,
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
}

/// The flags of a bridge run, validated. Its `Debug` hides the tokens and the events secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// `--scheme`: `http` or `https`, only used in the callback URL.
    pub scheme: String,
    /// `--host`
    pub host: String,
    /// `--port`
    pub port: u16,
    /// `--consul`
    pub consul: BaseUrl,
    /// `--marathon`
    pub marathon: BaseUrl,
    /// `--registration-id`
    pub registration_id: String,
    /// `--sync-interval`; zero turns syncs off.
    pub sync_interval: Duration,
    /// `--purge/--no-purge`
    pub purge: bool,
    /// `--logfile`; `None` logs to standard output.
    pub logfile: Option<PathBuf>,
    /// `--debug/--no-debug`
    pub debug: bool,
    /// `--timeout`
    pub timeout: Duration,
    /// `--fallback/--no-fallback`
    pub fallback: bool,
    /// `--fallback-timeout`
    pub fallback_timeout: Duration,
    /// `--events`
    pub events: EventSource,
    /// `--consul-token`, else `$CONSUL_HTTP_TOKEN`.
    pub consul_token: Option<String>,
    /// `--marathon-token`: a DC/OS token for Marathon.
    pub marathon_token: Option<String>,
    /// `--ca-file`
    pub ca_file: Option<PathBuf>,
    /// `--consul-ca-file`, `--consul-ca-path`, `--consul-client-cert`, `--consul-client-key`,
    /// `--consul-tls-server-name` (without `--ca-file`, which `driver_settings` adds).
    pub consul_tls: TlsOptions,
    /// `--marathon-ca-file`, `--marathon-ca-path`, `--marathon-client-cert`,
    /// `--marathon-client-key` (without `--ca-file`).
    pub marathon_tls: TlsOptions,
    /// `--events-secret`, read from its file for `@FILE`.
    pub events_secret: Option<String>,
    /// `--accept-callbacks` makes it [`EventsEndpoint::Always`].
    pub events_endpoint: EventsEndpoint,
    /// `--max-listing-bytes`
    pub max_listing_bytes: usize,
    /// `--require-label`
    pub require_label: Option<String>,
    /// `--address`
    pub address: AddressMode,
    /// `--health-checks`
    pub health_checks: HealthChecks,
    /// `--register-when-healthy`
    pub register_when: RegisterWhen,
    /// `--migrate-marathon-consul` makes it [`MarathonConsulLeftovers::RemoveOnce`].
    pub marathon_consul: MarathonConsulLeftovers,
    /// `--ha` with `--ha-ttl`, `--ha-key` and `--instance-id`.
    pub ha: Option<HaConfig>,
    /// `--fallback-mode`
    pub fallback_mode: FallbackMode,
    /// `--dry-run`
    pub writes: WriteMode,
    /// `--agentless`
    pub placement: Placement,
}

impl fmt::Debug for RunArgs {
    /// Credentials show as present or absent only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |value: &Option<String>| value.as_ref().map(|_| "***");
        f.debug_struct("RunArgs")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("consul", &self.consul)
            .field("marathon", &self.marathon)
            .field("registration_id", &self.registration_id)
            .field("sync_interval", &self.sync_interval)
            .field("purge", &self.purge)
            .field("logfile", &self.logfile)
            .field("debug", &self.debug)
            .field("timeout", &self.timeout)
            .field("fallback", &self.fallback)
            .field("fallback_timeout", &self.fallback_timeout)
            .field("events", &self.events)
            .field("consul_token", &hidden(&self.consul_token))
            .field("marathon_token", &hidden(&self.marathon_token))
            .field("ca_file", &self.ca_file)
            .field("consul_tls", &self.consul_tls)
            .field("marathon_tls", &self.marathon_tls)
            .field("events_secret", &hidden(&self.events_secret))
            .field("events_endpoint", &self.events_endpoint)
            .field("max_listing_bytes", &self.max_listing_bytes)
            .field("require_label", &self.require_label)
            .field("address", &self.address)
            .field("health_checks", &self.health_checks)
            .field("register_when", &self.register_when)
            .field("marathon_consul", &self.marathon_consul)
            .field("ha", &self.ha)
            .field("fallback_mode", &self.fallback_mode)
            .field("writes", &self.writes)
            .field("placement", &self.placement)
            .finish()
    }
}

impl RunArgs {
    /// The core's configuration for these flags.
    pub fn config(&self) -> Config {
        let config = Config {
            registration_id: self.registration_id.clone(),
            callback_url: Some(callback_url(
                &self.scheme,
                &self.host,
                self.port,
                &self.registration_id,
                self.events_secret.as_deref(),
            )),
            sync_interval: self.sync_interval,
            purge: self.purge,
            request_timeout: self.timeout,
            fallback: self.fallback,
            fallback_timeout: self.fallback_timeout,
            debug: self.debug,
            events: self.events,
            events_endpoint: self.events_endpoint,
            events_secret: self.events_secret.clone(),
            max_listing_bytes: self.max_listing_bytes,
            require_label: self.require_label.clone(),
            address: self.address,
            health_checks: self.health_checks,
            register_when: self.register_when,
            marathon_consul: self.marathon_consul,
            ha: self.ha.clone(),
            fallback_mode: self.fallback_mode,
            placement: self.placement,
            ..Config::default()
        };
        match self.writes {
            WriteMode::Apply => config,
            // One sync, at once, and nothing else: no callback, no stream, no election.
            WriteMode::DryRun => Config {
                writes: WriteMode::DryRun,
                callback_url: None,
                events: EventSource::Callback,
                sync_interval: Duration::from_secs(3600),
                ha: None,
                ..config
            },
        }
    }

    /// How the adapters reach Marathon, Consul and the listening address.
    pub fn driver_settings(&self) -> DriverSettings {
        DriverSettings {
            endpoints: Endpoints::new(self.marathon.clone(), self.consul.clone())
                .with_consul_token(self.consul_token.clone())
                .with_marathon_token(self.marathon_token.clone()),
            consul_tls: with_ca_file(&self.consul_tls, &self.ca_file),
            marathon_tls: with_ca_file(&self.marathon_tls, &self.ca_file),
            listen_host: self.host.clone(),
            listen_port: self.port,
            server: ServerLimits::default(),
        }
    }
}

/// The flags of `consular demo`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
// Parsed in every build; read only by the `demo` feature's `demo.rs`.
#[cfg_attr(not(feature = "demo"), allow(dead_code))]
pub struct DemoArgs {
    /// `--consul`: a real Consul; `None` starts the stand-in.
    pub consul: Option<BaseUrl>,
    /// `--consul-port`; `None`: 8500 if free, else any free port.
    pub consul_port: Option<u16>,
    /// `--port`; `None`: 7000 if free, else any free port.
    pub port: Option<u16>,
    /// `--step-seconds`
    pub step: Duration,
}

/// A command line that cannot be run, as one line: `--port: expected …, got "abc"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(String);

impl CliError {
    fn flag(flag: &str, why: impl fmt::Display) -> Self {
        CliError(format!("{flag}: {why}"))
    }

    /// `got` is shown with any userinfo redacted: it may be a URL given to the wrong flag.
    fn invalid(flag: &str, expected: &str, got: &str) -> Self {
        let got = redact_userinfo(got);
        CliError::flag(flag, format!("expected {expected}, got {got:?}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments after the program name. `consul_token_env` is `$CONSUL_HTTP_TOKEN`.
pub fn parse(args: Vec<OsString>, consul_token_env: Option<OsString>) -> Result<Command, CliError> {
    let mut args = Arguments::from_vec(args);
    // Subcommands (`demo`, …) are matched here, before the flags of a run.
    if let Some(word) = first_word(&mut args)? {
        return match word.as_str() {
            "demo" if args.contains("--help") => Ok(Command::DemoHelp),
            "demo" => parse_demo(args).map(Command::Demo),
            _ => Err(CliError(format!(
                "unexpected argument {:?} (see --help)",
                redact_userinfo(&word)
            ))),
        };
    }
    if args.contains("--help") {
        return Ok(Command::Help);
    }
    if args.contains("--version") {
        return Ok(Command::Version);
    }
    parse_run(args, consul_token_env).map(|run| Command::Run(Box::new(run)))
}

/// The first argument if it is not a flag.
fn first_word(args: &mut Arguments) -> Result<Option<String>, CliError> {
    args.subcommand()
        .map_err(|_| CliError("arguments must be UTF-8 text".to_owned()))
}

fn parse_run(mut args: Arguments, consul_token_env: Option<OsString>) -> Result<RunArgs, CliError> {
    let scheme = match value(&mut args, "--scheme")?.as_deref() {
        None | Some("http") => "http".to_owned(),
        Some("https") => "https".to_owned(),
        Some(other) => return Err(CliError::invalid("--scheme", "http or https", other)),
    };
    let host = text(&mut args, "--host", "localhost")?;
    let port = port(&mut args, "--port")?.unwrap_or(7000);
    let consul = url(&mut args, "--consul", "http://localhost:8500")?;
    let marathon = url(&mut args, "--marathon", "http://localhost:8080")?;
    let registration_id = text(&mut args, "--registration-id", "consular")?;
    let sync_interval = seconds(&mut args, "--sync-interval", 0, 0)?;
    let logfile = value(&mut args, "--logfile")?.map(PathBuf::from);
    let timeout = seconds(&mut args, "--timeout", 5, 1)?;
    let fallback_timeout = seconds(&mut args, "--fallback-timeout", 2, 1)?;
    let events = match value(&mut args, "--events")?.as_deref() {
        Some("callback") => EventSource::Callback,
        Some("sse") => EventSource::Stream,
        None | Some("auto") => EventSource::Auto,
        Some(other) => {
            return Err(CliError::invalid(
                "--events",
                "sse, callback or auto",
                other,
            ))
        }
    };
    let consul_token = match value(&mut args, "--consul-token")? {
        Some(token) => Some(token_value("--consul-token", token)?),
        None => env_token(CONSUL_TOKEN_VAR, consul_token_env)?,
    };
    let marathon_token = value(&mut args, "--marathon-token")?
        .map(|token| token_value("--marathon-token", token))
        .transpose()?;
    let ca_file = value(&mut args, "--ca-file")?.map(PathBuf::from);
    let path =
        |args: &mut Arguments, flag| Ok::<_, CliError>(value(args, flag)?.map(PathBuf::from));
    let consul_tls = TlsOptions {
        ca_files: path(&mut args, "--consul-ca-file")?.into_iter().collect(),
        ca_dirs: path(&mut args, "--consul-ca-path")?.into_iter().collect(),
        client_cert: path(&mut args, "--consul-client-cert")?,
        client_key: path(&mut args, "--consul-client-key")?,
        server_name: value(&mut args, "--consul-tls-server-name")?,
    };
    let marathon_tls = TlsOptions {
        ca_files: path(&mut args, "--marathon-ca-file")?.into_iter().collect(),
        ca_dirs: path(&mut args, "--marathon-ca-path")?.into_iter().collect(),
        client_cert: path(&mut args, "--marathon-client-cert")?,
        client_key: path(&mut args, "--marathon-client-key")?,
        server_name: None,
    };
    let events_secret = value(&mut args, "--events-secret")?
        .map(events_secret)
        .transpose()?;
    let require_label = value(&mut args, "--require-label")?
        .map(|label| {
            let printable = !label.is_empty() && label.bytes().all(|b| b.is_ascii_graphic());
            if printable {
                Ok(label)
            } else {
                Err(CliError::invalid("--require-label", "a label name", &label))
            }
        })
        .transpose()?;
    let address = match value(&mut args, "--address")?.as_deref() {
        None | Some("auto") => AddressMode::Auto,
        Some("host") => AddressMode::Host,
        Some("task-ip") => AddressMode::TaskIp,
        Some(other) => {
            return Err(CliError::invalid(
                "--address",
                "auto, host or task-ip",
                other,
            ))
        }
    };
    let health_checks = match value(&mut args, "--health-checks")?.as_deref() {
        None | Some("none") => HealthChecks::None,
        Some("mirror") => HealthChecks::Mirror,
        Some("agent") => HealthChecks::Agent,
        Some(other) => {
            return Err(CliError::invalid(
                "--health-checks",
                "none, mirror or agent",
                other,
            ))
        }
    };
    let max_listing_bytes = match value(&mut args, "--max-listing-bytes")? {
        None => Config::default().max_listing_bytes,
        Some(given) => given
            .parse::<usize>()
            .ok()
            .filter(|&bytes| bytes >= MIN_LISTING_BYTES)
            .ok_or_else(|| {
                let expected = format!("an integer of at least {MIN_LISTING_BYTES}");
                CliError::invalid("--max-listing-bytes", &expected, &given)
            })?,
    };

    // What is left are switches and mistakes, in command-line order: the last switch wins.
    let (mut purge, mut debug, mut fallback) = (false, false, false);
    let mut events_endpoint = EventsEndpoint::WhileCallbacks;
    let mut register_when = RegisterWhen::Running;
    let mut marathon_consul = MarathonConsulLeftovers::Keep;
    let ha_ttl = seconds(&mut args, "--ha-ttl", 15, 10)?;
    let ha_key = value(&mut args, "--ha-key")?
        .map(|key| {
            // Outside `consular/`, which purges tidy; a plain key Consul takes as given.
            let sound = !key.is_empty()
                && key.len() <= 512
                && !key.starts_with('/')
                && !key.starts_with("consular/")
                && key.bytes().all(|b| b.is_ascii_graphic());
            if sound {
                Ok(key)
            } else {
                Err(CliError::invalid(
                    "--ha-key",
                    "a KV key of visible ASCII, not under consular/",
                    &key,
                ))
            }
        })
        .transpose()?;
    let instance_id = value(&mut args, "--instance-id")?
        .map(|id| {
            let sound =
                !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_graphic());
            if sound {
                Ok(id)
            } else {
                Err(CliError::invalid(
                    "--instance-id",
                    "up to 255 visible ASCII characters",
                    &id,
                ))
            }
        })
        .transpose()?
        .unwrap_or_else(|| format!("{host}:{port}"));
    let mut ha_asked = false;
    let fallback_mode = match value(&mut args, "--fallback-mode")?.as_deref() {
        None | Some("agent") => FallbackMode::Agent,
        Some("catalog") => FallbackMode::Catalog,
        Some(other) => {
            return Err(CliError::invalid(
                "--fallback-mode",
                "agent or catalog",
                other,
            ))
        }
    };
    let mut placement = Placement::OnAgents;
    let mut writes = WriteMode::Apply;
    for arg in args.finish() {
        let arg = arg.to_string_lossy();
        match arg.as_ref() {
            "--purge" => purge = true,
            "--no-purge" => purge = false,
            "--debug" => debug = true,
            "--no-debug" => debug = false,
            "--fallback" => fallback = true,
            "--no-fallback" => fallback = false,
            "--accept-callbacks" => events_endpoint = EventsEndpoint::Always,
            "--register-when-healthy" => register_when = RegisterWhen::Healthy,
            "--migrate-marathon-consul" => marathon_consul = MarathonConsulLeftovers::RemoveOnce,
            "--ha" => ha_asked = true,
            "--agentless" => placement = Placement::Agentless,
            "--dry-run" => writes = WriteMode::DryRun,
            other => return Err(unexpected(other)),
        }
    }
    let ha = ha_asked.then(|| {
        let mut ha = HaConfig::new(&registration_id, &instance_id);
        ha.ttl = ha_ttl;
        ha.key = ha_key.unwrap_or(ha.key);
        ha.advertise = Some(Advertised {
            address: host.clone(),
            port,
            check_url: format!("{scheme}://{host}:{port}/"),
        });
        ha
    });
    // `--fallback-mode catalog` is a way of falling back.
    let fallback = fallback || fallback_mode == FallbackMode::Catalog;
    Ok(RunArgs {
        scheme,
        host,
        port,
        consul,
        marathon,
        registration_id,
        sync_interval,
        purge,
        logfile,
        debug,
        timeout,
        fallback,
        fallback_timeout,
        events,
        consul_token,
        marathon_token,
        ca_file,
        consul_tls,
        marathon_tls,
        events_secret,
        events_endpoint,
        max_listing_bytes,
        require_label,
        address,
        health_checks,
        register_when,
        marathon_consul,
        ha,
        fallback_mode,
        placement,
        writes,
    })
}

/// A token given on the command line, if it can go into a header; the error never shows it.
/// `options` plus `--ca-file`, which every kind of peer trusts.
fn with_ca_file(options: &TlsOptions, ca_file: &Option<PathBuf>) -> TlsOptions {
    let mut options = options.clone();
    options.ca_files.extend(ca_file.iter().cloned());
    options
}

fn token_value(flag: &str, token: String) -> Result<String, CliError> {
    check_token(&token).map_err(|problem| CliError::flag(flag, format!("the token {problem}")))?;
    Ok(token)
}

/// The token in the environment variable `name`, whose value is `given`. Empty is the same as
/// unset, as Consul's own tools read `CONSUL_HTTP_TOKEN`; anything else must be a valid token.
fn env_token(name: &str, given: Option<OsString>) -> Result<Option<String>, CliError> {
    let Some(given) = given.filter(|token| !token.is_empty()) else {
        return Ok(None);
    };
    let token = given
        .into_string()
        .map_err(|_| CliError::flag(name, "the token is not text (it must be visible ASCII)"))?;
    token_value(name, token).map(Some)
}

/// `--events-secret`: the value itself, or with `@FILE` the contents of FILE without the trailing
/// newline. Either must be a non-empty run of visible ASCII, as it goes into a URL and is compared
/// with what callers send. Errors name the file, never what is in it.
fn events_secret(given: String) -> Result<String, CliError> {
    const FLAG: &str = "--events-secret";
    let Some(path) = given.strip_prefix('@') else {
        check_token(&given)
            .map_err(|problem| CliError::flag(FLAG, format!("the secret {problem}")))?;
        return Ok(given);
    };
    if path.is_empty() {
        return Err(CliError::flag(FLAG, "expected a file name after @"));
    }
    let path = Path::new(path);
    let mut secret = std::fs::read_to_string(path)
        .map_err(|e| CliError::flag(FLAG, format!("cannot read {path:?}: {e}")))?;
    let kept = secret
        .strip_suffix("\r\n")
        .or_else(|| secret.strip_suffix('\n'))
        .map_or(secret.len(), str::len);
    secret.truncate(kept);
    check_token(&secret)
        .map_err(|problem| CliError::flag(FLAG, format!("the secret in {path:?} {problem}")))?;
    Ok(secret)
}

fn parse_demo(mut args: Arguments) -> Result<DemoArgs, CliError> {
    let consul = value(&mut args, "--consul")?
        .map(|given| BaseUrl::parse(&given).map_err(|e| CliError::flag("--consul", e)))
        .transpose()?;
    let consul_port = port(&mut args, "--consul-port")?;
    if consul.is_some() && consul_port.is_some() {
        return Err(CliError::flag(
            "--consul-port",
            "is for the stand-in Consul; --consul names a real one",
        ));
    }
    let port = port(&mut args, "--port")?;
    let step = seconds(&mut args, "--step-seconds", 2, 1)?;
    if let Some(arg) = args.finish().first() {
        return Err(unexpected(&arg.to_string_lossy()));
    }
    Ok(DemoArgs {
        consul,
        consul_port,
        port,
        step,
    })
}

/// Why a leftover argument is not accepted. An unknown `--flag=value` is shown without its value
/// (it may be a mistyped token's), anything else with any userinfo redacted.
fn unexpected(arg: &str) -> CliError {
    const SWITCHES: [&str; 8] = [
        "--purge",
        "--no-purge",
        "--debug",
        "--no-debug",
        "--fallback",
        "--no-fallback",
        "--accept-callbacks",
        "--migrate-marathon-consul",
    ];
    let shown = redact_userinfo(arg);
    match arg.split_once('=') {
        Some((flag, _)) if SWITCHES.contains(&flag) => {
            CliError::flag(flag, format!("takes no value, got {shown:?}"))
        }
        Some((flag, _)) if flag.starts_with('-') => {
            CliError::flag(flag, "unknown option (see --help)")
        }
        _ if arg.starts_with('-') => CliError::flag(&shown, "unknown option (see --help)"),
        _ => CliError(format!("unexpected argument {shown:?} (see --help)")),
    }
}

/// The value of `--flag value` or `--flag=value`, if given; giving it twice is a mistake.
fn value(args: &mut Arguments, flag: &'static str) -> Result<Option<String>, CliError> {
    let next = |args: &mut Arguments| {
        args.opt_value_from_str::<_, String>(flag)
            .map_err(|e| match e {
                pico_args::Error::OptionWithoutAValue(_) => {
                    CliError::flag(flag, "expected a value")
                }
                _ => CliError::flag(flag, "expected UTF-8 text"),
            })
    };
    let first = next(args)?;
    if first.is_some() && next(args)?.is_some() {
        return Err(CliError::flag(flag, "given more than once"));
    }
    Ok(first)
}

/// A port from 1 to 65535, if given.
fn port(args: &mut Arguments, flag: &'static str) -> Result<Option<u16>, CliError> {
    value(args, flag)?
        .map(|given| {
            given
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| CliError::invalid(flag, "an integer from 1 to 65535", &given))
        })
        .transpose()
}

/// A non-empty text value, or `default`.
fn text(args: &mut Arguments, flag: &'static str, default: &str) -> Result<String, CliError> {
    match value(args, flag)? {
        None => Ok(default.to_owned()),
        Some(v) if v.trim().is_empty() => Err(CliError::invalid(flag, "a non-empty value", &v)),
        Some(v) => Ok(v),
    }
}

/// An http(s) URL, or `default`.
fn url(args: &mut Arguments, flag: &'static str, default: &str) -> Result<BaseUrl, CliError> {
    let given = value(args, flag)?;
    BaseUrl::parse(given.as_deref().unwrap_or(default)).map_err(|e| CliError::flag(flag, e))
}

/// Whole seconds from `min` to [`MAX_SECONDS`], or `default`.
fn seconds(
    args: &mut Arguments,
    flag: &'static str,
    default: u64,
    min: u64,
) -> Result<Duration, CliError> {
    let secs = match value(args, flag)? {
        None => default,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| (min..=MAX_SECONDS).contains(s))
            .ok_or_else(|| {
                let expected = format!("a whole number of seconds from {min} to {MAX_SECONDS}");
                CliError::invalid(flag, &expected, &v)
            })?,
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(OsString::from).collect(), None)
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse_args(args) {
            Ok(Command::Run(run)) => *run,
            other => panic!("{args:?}: expected a run, got {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse_args(args) {
            Err(e) => e.to_string(),
            other => panic!("{args:?}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_consular_1_3_0s() {
        let run = run_args(&[]);
        assert_eq!(run.scheme, "http");
        assert_eq!(run.host, "localhost");
        assert_eq!(run.port, 7000);
        assert_eq!(run.consul.to_string(), "http://localhost:8500");
        assert_eq!(run.marathon.to_string(), "http://localhost:8080");
        assert_eq!(run.registration_id, "consular");
        assert_eq!(run.sync_interval, Duration::ZERO);
        assert!(!run.purge);
        assert_eq!(run.logfile, None);
        assert!(!run.debug);
        assert_eq!(run.timeout, Duration::from_secs(5));
        assert!(!run.fallback);
        assert_eq!(run.fallback_timeout, Duration::from_secs(2));
        assert_eq!(run.events, EventSource::Auto);
        assert_eq!(run.consul_token, None);
        assert_eq!(run.ca_file, None);
        assert_eq!(run.events_secret, None);
        assert_eq!(run.events_endpoint, EventsEndpoint::WhileCallbacks);
        assert_eq!(run.max_listing_bytes, 67_108_864);
        assert_eq!(run.marathon_consul, MarathonConsulLeftovers::Keep);

        let config = run.config();
        assert_eq!(
            config.callback_url.as_deref(),
            Some("http://localhost:7000/events?registration=consular")
        );
        assert_eq!(
            config,
            Config {
                callback_url: config.callback_url.clone(),
                // The one default that differs from 1.3.0: the event stream where Marathon has one.
                events: EventSource::Auto,
                ..Config::default()
            }
        );
        let settings = run.driver_settings();
        assert_eq!(
            (settings.listen_host.as_str(), settings.listen_port),
            ("localhost", 7000)
        );
        assert_eq!(settings.server.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn every_flag_is_read_and_reaches_the_config() {
        let run = run_args(&[
            "--scheme",
            "https",
            "--host",
            "Consular.Example",
            "--port",
            "7001",
            "--consul",
            "https://consul.example:8501/ignored",
            "--marathon",
            "http://u:p@marathon.example:8080/marathon",
            "--registration-id",
            "host-1",
            "--sync-interval",
            "300",
            "--purge",
            "--logfile",
            "/var/log/consular.log",
            "--debug",
            "--timeout",
            "7",
            "--fallback",
            "--fallback-timeout",
            "3",
            "--events",
            "auto",
            "--consul-token",
            "secret",
            "--marathon-token",
            "dcos-jwt",
            "--ca-file",
            "/etc/ssl/ca.pem",
            "--events-secret",
            "cb-s3cret",
            "--accept-callbacks",
            "--max-listing-bytes",
            "1048576",
            "--migrate-marathon-consul",
        ]);
        assert_eq!(run.marathon_token.as_deref(), Some("dcos-jwt"));
        assert_eq!(run.logfile, Some(PathBuf::from("/var/log/consular.log")));
        assert_eq!(run.ca_file, Some(PathBuf::from("/etc/ssl/ca.pem")));
        assert_eq!(run.consul_token.as_deref(), Some("secret"));
        assert_eq!(run.consul.to_string(), "https://consul.example:8501");
        assert_eq!(run.marathon.to_string(), "http://marathon.example:8080");

        let config = run.config();
        assert_eq!(config.registration_id, "host-1");
        assert_eq!(
            config.callback_url.as_deref(),
            Some("https://consular.example:7001/events?registration=host-1&secret=cb-s3cret")
        );
        assert_eq!(config.events_secret.as_deref(), Some("cb-s3cret"));
        assert_eq!(config.events_endpoint, EventsEndpoint::Always);
        assert_eq!(config.max_listing_bytes, 1 << 20);
        assert_eq!(config.sync_interval, Duration::from_secs(300));
        assert!(config.purge);
        assert!(config.debug);
        assert_eq!(config.request_timeout, Duration::from_secs(7));
        assert!(config.fallback);
        assert_eq!(config.fallback_timeout, Duration::from_secs(3));
        assert_eq!(config.events, EventSource::Auto);
        assert_eq!(config.marathon_consul, MarathonConsulLeftovers::RemoveOnce);

        let settings = run.driver_settings();
        assert_eq!(settings.listen_host, "Consular.Example");
        assert_eq!(settings.listen_port, 7001);
        let ca_files = vec![PathBuf::from("/etc/ssl/ca.pem")];
        assert_eq!(settings.consul_tls.ca_files, ca_files);
        assert_eq!(settings.marathon_tls.ca_files, ca_files);
        assert_eq!(
            settings.endpoints.marathon().to_string(),
            "http://marathon.example:8080"
        );
    }

    #[test]
    fn tls_flags_go_to_their_own_kind_of_peer_and_ca_file_to_both() {
        let run = run_args(&[
            "--ca-file=/both.pem",
            "--consul-ca-file=/c.pem",
            "--consul-ca-path=/c.d",
            "--consul-client-cert=/c-cert.pem",
            "--consul-client-key=/c-key.pem",
            "--consul-tls-server-name=consul.internal",
            "--marathon-ca-file=/m.pem",
            "--marathon-ca-path=/m.d",
            "--marathon-client-cert=/m-cert.pem",
            "--marathon-client-key=/m-key.pem",
        ]);
        let settings = run.driver_settings();
        let paths = |list: &[&str]| list.iter().map(PathBuf::from).collect::<Vec<_>>();
        let consul = settings.consul_tls;
        assert_eq!(consul.ca_files, paths(&["/c.pem", "/both.pem"]));
        assert_eq!(consul.ca_dirs, paths(&["/c.d"]));
        assert_eq!(consul.client_cert, Some(PathBuf::from("/c-cert.pem")));
        assert_eq!(consul.client_key, Some(PathBuf::from("/c-key.pem")));
        assert_eq!(consul.server_name.as_deref(), Some("consul.internal"));
        let marathon = settings.marathon_tls;
        assert_eq!(marathon.ca_files, paths(&["/m.pem", "/both.pem"]));
        assert_eq!(marathon.ca_dirs, paths(&["/m.d"]));
        assert_eq!(marathon.client_cert, Some(PathBuf::from("/m-cert.pem")));
        assert_eq!(marathon.client_key, Some(PathBuf::from("/m-key.pem")));
        assert_eq!(marathon.server_name, None);
        assert_eq!(
            run_args(&[]).driver_settings().consul_tls,
            TlsOptions::default()
        );
    }

    #[test]
    fn equals_form_works_for_every_value_flag() {
        let run = run_args(&[
            "--scheme=https",
            "--host=0.0.0.0",
            "--port=8000",
            "--consul=http://c:1",
            "--marathon=http://m:2",
            "--registration-id=a=b",
            "--sync-interval=10",
            "--logfile=log.txt",
            "--timeout=9",
            "--fallback-timeout=4",
            "--events=sse",
            "--consul-token=t",
            "--ca-file=ca.pem",
            "--events-secret=s",
            "--max-listing-bytes=65536",
            "--marathon-token=m",
        ]);
        assert_eq!(run.scheme, "https");
        assert_eq!(run.host, "0.0.0.0");
        assert_eq!(run.port, 8000);
        assert_eq!(run.consul.to_string(), "http://c:1");
        assert_eq!(run.marathon.to_string(), "http://m:2");
        assert_eq!(run.registration_id, "a=b");
        assert_eq!(run.sync_interval, Duration::from_secs(10));
        assert_eq!(run.logfile, Some(PathBuf::from("log.txt")));
        assert_eq!(run.timeout, Duration::from_secs(9));
        assert_eq!(run.fallback_timeout, Duration::from_secs(4));
        assert_eq!(run.events, EventSource::Stream);
        assert_eq!(run.consul_token.as_deref(), Some("t"));
        assert_eq!(run.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(run.events_secret.as_deref(), Some("s"));
        assert_eq!(run.max_listing_bytes, 65536);
        assert_eq!(run.marathon_token.as_deref(), Some("m"));
    }

    #[test]
    fn the_last_of_a_switch_pair_wins() {
        let run = run_args(&["--purge", "--no-purge", "--no-debug", "--debug"]);
        assert!(!run.purge);
        assert!(run.debug);
        let run = run_args(&["--no-fallback", "--fallback", "--sync-interval", "0"]);
        assert!(run.fallback);
        assert_eq!(run.sync_interval, Duration::ZERO);
    }

    fn parse_with_env(args: &[&str], env: Option<&str>) -> Result<Command, CliError> {
        parse(
            args.iter().map(OsString::from).collect(),
            env.map(OsString::from),
        )
    }

    #[test]
    fn the_token_flag_beats_the_environment_and_an_empty_variable_means_none() {
        let from_env = |args: &[&str], env: Option<&str>| match parse_with_env(args, env) {
            Ok(Command::Run(run)) => run.consul_token,
            other => panic!("{other:?}"),
        };
        assert_eq!(from_env(&[], Some("env")).as_deref(), Some("env"));
        assert_eq!(
            from_env(&["--consul-token", "flag"], Some("env")).as_deref(),
            Some("flag")
        );
        // Not even checked when the flag is given: it is not used.
        assert_eq!(
            from_env(&["--consul-token", "flag"], Some("bad\ntoken")).as_deref(),
            Some("flag")
        );
        assert_eq!(from_env(&[], Some("")), None);
        assert_eq!(from_env(&[], None), None);
    }

    #[test]
    fn tokens_must_be_visible_ascii_and_are_never_shown() {
        let token_error = |args: &[&str], env: Option<&str>| match parse_with_env(args, env) {
            Err(e) => e.to_string(),
            other => panic!("{args:?}: expected an error, got {other:?}"),
        };
        let cases: &[(&[&str], Option<&str>, &str)] = &[
            (
                &[],
                Some("t0ken\nX-Evil: yes"),
                "CONSUL_HTTP_TOKEN: the token has a character that is not visible ASCII (0x21-0x7e) at position 6",
            ),
            (
                &["--consul-token", "t0ken\r\nX-Evil: yes"],
                None,
                "--consul-token: the token has a character that is not visible ASCII (0x21-0x7e) at position 6",
            ),
            (&["--consul-token", ""], None, "--consul-token: the token is empty"),
            (
                &["--marathon-token", "t0ken with space"],
                None,
                "--marathon-token: the token has a character that is not visible ASCII (0x21-0x7e) at position 6",
            ),
            (&["--marathon-token", ""], None, "--marathon-token: the token is empty"),
            (
                &["--marathon-token=caf\u{e9}t0ken"],
                None,
                "--marathon-token: the token has a character that is not visible ASCII (0x21-0x7e) at position 4",
            ),
        ];
        for (args, env, expected) in cases {
            let message = token_error(args, *env);
            assert_eq!(&message, expected, "{args:?} {env:?}");
            assert!(!message.contains("t0ken"), "{message}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let not_text = OsString::from_vec(vec![b't', 0xff]);
            assert_eq!(
                parse(Vec::new(), Some(not_text)).unwrap_err().to_string(),
                "CONSUL_HTTP_TOKEN: the token is not text (it must be visible ASCII)"
            );
        }
    }

    /// A file with `contents` in a directory of this test process under the system temp directory.
    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("consular-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn the_events_secret_is_given_or_read_from_a_file_and_reaches_the_callback_url() {
        let run = run_args(&["--events-secret", "s3cr&t"]);
        assert_eq!(run.events_secret.as_deref(), Some("s3cr&t"));
        let config = run.config();
        assert_eq!(config.events_secret.as_deref(), Some("s3cr&t"));
        assert_eq!(
            config.callback_url.as_deref(),
            Some("http://localhost:7000/events?registration=consular&secret=s3cr%26t")
        );

        for (name, contents) in [
            ("lf", &b"from-file\n"[..]),
            ("crlf", b"from-file\r\n"),
            ("bare", b"from-file"),
        ] {
            let path = temp_file(&format!("secret-{name}"), contents);
            let run = run_args(&[&format!("--events-secret=@{}", path.display())]);
            assert_eq!(run.events_secret.as_deref(), Some("from-file"), "{name}");
        }

        let shown = format!(
            "{:?}",
            run_args(&[
                "--events-secret",
                "s3cr&t",
                "--consul-token",
                "c0nsul",
                "--marathon-token",
                "marath0n"
            ])
        );
        for secret in ["s3cr", "c0nsul", "marath0n"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains(r#"events_secret: Some("***")"#), "{shown}");
    }

    #[test]
    fn a_bad_events_secret_names_the_problem_and_the_file_but_not_the_secret() {
        let missing = std::env::temp_dir().join("consular-no-such-secret");
        let message = error(&["--events-secret", &format!("@{}", missing.display())]);
        assert!(
            message.starts_with(&format!("--events-secret: cannot read {missing:?}: ")),
            "{message}"
        );
        let two_lines = temp_file("secret-two-lines", b"hidden-1\nhidden-2\n");
        let message = error(&["--events-secret", &format!("@{}", two_lines.display())]);
        assert_eq!(
            message,
            format!("--events-secret: the secret in {two_lines:?} has a character that is not visible ASCII (0x21-0x7e) at position 9")
        );
        let empty = temp_file("secret-empty", b"\n");
        assert_eq!(
            error(&["--events-secret", &format!("@{}", empty.display())]),
            format!("--events-secret: the secret in {empty:?} is empty")
        );
        assert_eq!(
            error(&["--events-secret", "@"]),
            "--events-secret: expected a file name after @"
        );
        assert_eq!(
            error(&["--events-secret", ""]),
            "--events-secret: the secret is empty"
        );
        let message = error(&["--events-secret", "hidden secret"]);
        assert_eq!(
            message,
            "--events-secret: the secret has a character that is not visible ASCII (0x21-0x7e) at position 7"
        );
    }

    #[test]
    fn accept_callbacks_serves_events_always() {
        let run = run_args(&["--events", "sse", "--accept-callbacks"]);
        assert_eq!(run.events_endpoint, EventsEndpoint::Always);
        assert_eq!(run.config().events_endpoint, EventsEndpoint::Always);
        assert_eq!(
            error(&["--accept-callbacks=yes"]),
            r#"--accept-callbacks: takes no value, got "--accept-callbacks=yes""#
        );
    }

    #[test]
    fn max_listing_bytes_is_at_least_64_kib() {
        assert_eq!(
            run_args(&["--max-listing-bytes", "65536"])
                .config()
                .max_listing_bytes,
            65536
        );
        assert_eq!(
            run_args(&["--max-listing-bytes=1073741824"]).max_listing_bytes,
            1 << 30
        );
        for bad in ["65535", "0", "-1", "1e6", "64MiB", ""] {
            assert_eq!(
                error(&["--max-listing-bytes", bad]),
                format!("--max-listing-bytes: expected an integer of at least 65536, got {bad:?}"),
            );
        }
    }

    #[test]
    fn no_error_shows_the_userinfo_of_a_url() {
        let cases: &[&[&str]] = &[
            &["--marathon", "http://alice:hunter2@[bad"],
            &["--marathon=http://alice:hunter2@m:99999"],
            &["--consul", "alice:hunter2@c:8500"],
            &["--consul", "ftp://alice:hunter2@c"],
            &["--port", "http://alice:hunter2@m:1"],
            &["--scheme", "http://alice:hunter2@m"],
            &["--purge=http://alice:hunter2@m"],
            &["--debug", "http://alice:hunter2@m"],
            &["http://alice:hunter2@m"],
            &["--marathn=http://alice:hunter2@m"],
            &["--max-listing-bytes", "http://alice:hunter2@m"],
            &["demo", "--consul", "http://alice:hunter2@[bad"],
        ];
        for args in cases {
            let message = error(args);
            assert!(!message.contains("hunter2"), "{args:?}: {message}");
            assert!(!message.contains("alice"), "{args:?}: {message}");
        }
        assert_eq!(
            error(&["--marathon", "http://alice:hunter2@[bad"]),
            r#"--marathon: expected an http or https URL, got "http://***@[bad" (invalid IPv6 address)"#
        );
        assert_eq!(
            error(&["--marathn=http://alice:hunter2@m"]),
            "--marathn: unknown option (see --help)"
        );
    }

    #[test]
    fn demo_takes_its_own_flags() {
        let demo = |args: &[&str]| match parse_args(args) {
            Ok(Command::Demo(demo)) => demo,
            other => panic!("{args:?}: expected a demo, got {other:?}"),
        };
        assert_eq!(
            demo(&["demo"]),
            DemoArgs {
                consul: None,
                consul_port: None,
                port: None,
                step: Duration::from_secs(2),
            }
        );
        let given = demo(&[
            "demo",
            "--consul-port=8600",
            "--port",
            "7001",
            "--step-seconds",
            "1",
        ]);
        assert_eq!(given.consul_port, Some(8600));
        assert_eq!(given.port, Some(7001));
        assert_eq!(given.step, Duration::from_secs(1));
        let real = demo(&["demo", "--consul", "http://127.0.0.1:8500"]);
        assert_eq!(real.consul.unwrap().to_string(), "http://127.0.0.1:8500");

        assert_eq!(parse_args(&["demo", "--help"]), Ok(Command::DemoHelp));
        for flag in [
            "--consul",
            "--consul-port",
            "--port",
            "--step-seconds",
            "--help",
        ] {
            assert!(DEMO_USAGE.contains(flag), "{flag} is not in the demo help");
        }
        let errors: &[(&[&str], &str)] = &[
            (
                &["demo", "--step-seconds", "0"],
                r#"--step-seconds: expected a whole number of seconds from 1 to 31536000, got "0""#,
            ),
            (
                &["demo", "--consul", "http://c:1", "--consul-port", "1"],
                "--consul-port: is for the stand-in Consul; --consul names a real one",
            ),
            (
                &["demo", "--marathon", "http://m:1"],
                "--marathon: unknown option (see --help)",
            ),
            (
                &["demo", "extra"],
                r#"unexpected argument "extra" (see --help)"#,
            ),
        ];
        for (args, expected) in errors {
            assert_eq!(&error(args), expected, "{args:?}");
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_args(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_args(&["--port", "abc", "--help"]), Ok(Command::Help));
        assert_eq!(parse_args(&["--version"]), Ok(Command::Version));
        for flag in [
            "--scheme",
            "--host",
            "--port",
            "--consul",
            "--marathon",
            "--registration-id",
            "--sync-interval",
            "--purge",
            "--logfile",
            "--debug",
            "--timeout",
            "--fallback",
            "--fallback-timeout",
            "--events",
            "--consul-token",
            "--marathon-token",
            "--ca-file",
            "--events-secret",
            "--accept-callbacks",
            "--max-listing-bytes",
            "--migrate-marathon-consul",
            "--version",
        ] {
            assert!(USAGE.contains(flag), "{flag} is not in the help");
        }
    }

    #[test]
    fn require_label_and_address_shape_the_services() {
        let run = run_args(&["--require-label", "consul", "--address", "task-ip"]);
        let config = run.config();
        assert_eq!(config.require_label.as_deref(), Some("consul"));
        assert_eq!(config.address, AddressMode::TaskIp);
        let defaults = run_args(&[]).config();
        assert_eq!(
            (defaults.require_label, defaults.address),
            (None, AddressMode::Auto)
        );
        assert_eq!(run_args(&["--address", "host"]).address, AddressMode::Host);
        assert!(error(&["--address", "ip"]).contains("--address"));
        assert!(error(&["--require-label", "a b"]).contains("--require-label"));
        let health = run_args(&["--health-checks", "mirror", "--register-when-healthy"]);
        assert_eq!(health.config().health_checks, HealthChecks::Mirror);
        assert_eq!(health.config().register_when, RegisterWhen::Healthy);
        assert_eq!(run_args(&[]).config().health_checks, HealthChecks::None);
        assert_eq!(run_args(&[]).config().register_when, RegisterWhen::Running);
        assert!(error(&["--health-checks", "all"]).contains("--health-checks"));
        assert_eq!(run_args(&[]).config().ha, None);
        let ha = run_args(&["--ha", "--ha-ttl", "20", "--port", "7001"])
            .config()
            .ha
            .unwrap();
        assert_eq!(ha.ttl, Duration::from_secs(20));
        assert_eq!(ha.key, "service/consular/consular/leader");
        assert_eq!(ha.instance_id, "localhost:7001");
        assert!(error(&["--ha", "--ha-ttl", "5"]).contains("--ha-ttl"));
        assert!(error(&["--ha", "--ha-key", "consular/x"]).contains("--ha-key"));
        let catalog = run_args(&["--fallback-mode", "catalog"]).config();
        assert_eq!(
            (catalog.fallback, catalog.fallback_mode),
            (true, FallbackMode::Catalog)
        );
        assert_eq!(
            run_args(&["--agentless"]).config().placement,
            Placement::Agentless
        );
        assert!(error(&["--fallback-mode", "x"]).contains("--fallback-mode"));
        let dry = run_args(&["--dry-run", "--ha", "--events", "sse"]).config();
        assert_eq!(dry.writes, WriteMode::DryRun);
        assert_eq!(
            (dry.events, dry.ha, dry.callback_url),
            (EventSource::Callback, None, None)
        );
    }

    #[test]
    fn bad_values_are_one_line_naming_the_flag_and_why() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--port", "abc"],
                r#"--port: expected an integer from 1 to 65535, got "abc""#,
            ),
            (
                &["--port=0"],
                r#"--port: expected an integer from 1 to 65535, got "0""#,
            ),
            (
                &["--port", "65536"],
                r#"--port: expected an integer from 1 to 65535, got "65536""#,
            ),
            (
                &["--port", "-1"],
                r#"--port: expected an integer from 1 to 65535, got "-1""#,
            ),
            (
                &["--timeout", "-5"],
                r#"--timeout: expected a whole number of seconds from 1 to 31536000, got "-5""#,
            ),
            (
                &["--timeout", "0"],
                r#"--timeout: expected a whole number of seconds from 1 to 31536000, got "0""#,
            ),
            (
                &["--fallback-timeout", "1.5"],
                r#"--fallback-timeout: expected a whole number of seconds from 1 to 31536000, got "1.5""#,
            ),
            (
                &["--sync-interval", "-1"],
                r#"--sync-interval: expected a whole number of seconds from 0 to 31536000, got "-1""#,
            ),
            (
                &["--sync-interval", "99999999999999999999"],
                r#"--sync-interval: expected a whole number of seconds from 0 to 31536000, got "99999999999999999999""#,
            ),
            (
                &["--consul", "localhost:8500"],
                r#"--consul: expected an http or https URL, got "localhost:8500" (scheme "localhost" is not supported)"#,
            ),
            (
                &["--marathon=not a url"],
                r#"--marathon: expected an http or https URL, got "not a url" (relative URL without a base)"#,
            ),
            (
                &["--scheme", "ftp"],
                r#"--scheme: expected http or https, got "ftp""#,
            ),
            (
                &["--events", "stream"],
                r#"--events: expected sse, callback or auto, got "stream""#,
            ),
            (
                &["--host", ""],
                r#"--host: expected a non-empty value, got """#,
            ),
            (
                &["--registration-id= "],
                r#"--registration-id: expected a non-empty value, got " ""#,
            ),
            (&["--port"], "--port: expected a value"),
            (&["--port="], "--port: expected a value"),
            (
                &["--port", "1", "--port", "2"],
                "--port: given more than once",
            ),
            (
                &["--frobnicate"],
                "--frobnicate: unknown option (see --help)",
            ),
            (
                &["--purge=yes"],
                r#"--purge: takes no value, got "--purge=yes""#,
            ),
            (
                &["--migrate-marathon-consul=1"],
                r#"--migrate-marathon-consul: takes no value, got "--migrate-marathon-consul=1""#,
            ),
            (
                &["--debug", "extra"],
                r#"unexpected argument "extra" (see --help)"#,
            ),
            (&["run"], r#"unexpected argument "run" (see --help)"#),
        ];
        for (args, expected) in cases {
            let message = error(args);
            assert_eq!(&message, expected, "{args:?}");
            assert!(!message.contains('\n'), "{args:?}: more than one line");
        }
    }
}
