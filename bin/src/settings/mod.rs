//! The settings of a run and how they are read: consular 1.3.0's flags and this project's, the
//! same settings as `CONSULAR_*` variables, Consul's own variables and keys of a `--config` JSON
//! file; `consular config`, which shows them; and `consular demo`'s flags ([`DemoArgs`]).
//!
//! Here: the [`Command`] the arguments ask for, the validated [`RunArgs`] and what they become
//! (the core's [`Config`], the adapters' [`DriverSettings`]), and [`CliError`]. The list of
//! settings is `catalog.rs`; the sources and which wins, `sources.rs` (flags), `env.rs`,
//! `file.rs`; checking values, `resolve.rs`; secrets, `secrets.rs`; `consular config`'s text,
//! `show.rs`; `--help`, `usage.rs`; the demo's flags, `demo_flags.rs`.
//!
//! Precedence: flag, then `CONSULAR_*`, then Consul's variable, then the file, then the default.
//! The environment comes in as an [`Environment`] that `main` captured: nothing here reads the
//! process's variables. The files read are the config file and secret files, bounded, and nothing
//! is bound. Every bad value is one [`CliError`] line naming the flag, variable or file and key,
//! and the reason; it never shows a token, the events secret, a password, or the userinfo of a
//! URL. Running the command lives in `main.rs`, logging in `logging/`.

mod catalog;
mod demo_flags;
mod env;
mod file;
mod resolve;
mod secrets;
mod show;
mod sources;
mod usage;

#[cfg(test)]
mod precedence_tests;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use consular_adapters::endpoints::redact_userinfo;
use consular_adapters::server::ServerLimits;
use consular_adapters::tls::TlsOptions;
use consular_adapters::{BaseUrl, DriverSettings, Endpoints};
use consular_core::encoding::callback_url;
use consular_core::{
    AddressMode, Config, EventSource, EventsEndpoint, FallbackMode, HaConfig, HealthChecks,
    MarathonConsulLeftovers, Placement, RegisterWhen, WriteMode,
};
use pico_args::Arguments;

pub use demo_flags::DemoArgs;
pub use env::{Environment, Output};
pub use show::Listing;
pub use usage::{DEMO_USAGE, USAGE};

use crate::logging::{LogFormat, LogLevel};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the bridge (boxed: the flags dwarf the other variants).
    Run(Box<RunArgs>),
    /// `consular config`: print the settings a run would use.
    Config(Box<Listing>),
    /// Run the demo.
    Demo(DemoArgs),
    /// Print [`DEMO_USAGE`].
    DemoHelp,
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
}

/// The settings of a bridge run, validated. Its `Debug` hides the tokens and the events secret.
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
    /// `--log-format`
    pub log_format: LogFormat,
    /// `--log-level`, raised to debug by `--debug`.
    pub log_level: LogLevel,
    /// Whether every request is logged: `--debug`, or `--log-level debug`.
    pub debug: bool,
    /// `--timeout`
    pub timeout: Duration,
    /// `--fallback/--no-fallback`
    pub fallback: bool,
    /// `--fallback-timeout`
    pub fallback_timeout: Duration,
    /// `--events`
    pub events: EventSource,
    /// `--consul-token` or `--consul-token-file`, else `$CONSUL_HTTP_TOKEN(_FILE)`.
    pub consul_token: Option<String>,
    /// `--marathon-token`: a DC/OS token for Marathon.
    pub marathon_token: Option<String>,
    /// `--ca-file`, `--consul-ca-file`, `--consul-ca-path`, `--consul-client-cert`,
    /// `--consul-client-key` and `--consul-tls-server-name`.
    pub consul_tls: TlsOptions,
    /// `--ca-file`, `--marathon-ca-file`, `--marathon-ca-path`, `--marathon-client-cert` and
    /// `--marathon-client-key`.
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
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("debug", &self.debug)
            .field("timeout", &self.timeout)
            .field("fallback", &self.fallback)
            .field("fallback_timeout", &self.fallback_timeout)
            .field("events", &self.events)
            .field("consul_token", &hidden(&self.consul_token))
            .field("marathon_token", &hidden(&self.marathon_token))
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
            consul_tls: self.consul_tls.clone(),
            marathon_tls: self.marathon_tls.clone(),
            listen_host: self.host.clone(),
            listen_port: self.port,
            server: ServerLimits::default(),
        }
    }
}

/// A command line that cannot be run, as one line: `--port: expected …, got "abc"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(String);

impl CliError {
    fn new(message: String) -> Self {
        CliError(message)
    }

    /// `what: why`, where `what` is a flag, a variable, or a file and key.
    fn flag(what: &str, why: impl fmt::Display) -> Self {
        CliError(format!("{what}: {why}"))
    }

    /// `got` is shown with any userinfo redacted: it may be a URL given to the wrong setting.
    fn invalid(what: &str, expected: &str, got: &str) -> Self {
        let got = redact_userinfo(got);
        CliError::flag(what, format!("expected {expected}, got {got:?}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments after the program name, with the variables and terminal of
/// `environment`.
pub fn parse(args: Vec<OsString>, environment: &Environment) -> Result<Command, CliError> {
    let mut args = Arguments::from_vec(args);
    // Subcommands (`demo`, `config`) are matched here, before the flags of a run.
    let word = first_word(&mut args)?;
    if word.as_deref() == Some("demo") {
        return match args.contains("--help") {
            true => Ok(Command::DemoHelp),
            false => demo_flags::parse(args).map(Command::Demo),
        };
    }
    if let Some(other) = word.as_deref().filter(|w| *w != "config") {
        return Err(CliError(format!(
            "unexpected argument {:?} (see --help)",
            redact_userinfo(other)
        )));
    }
    if args.contains("--help") {
        return Ok(Command::Help);
    }
    if args.contains("--version") {
        return Ok(Command::Version);
    }
    let flags = sources::flags(args)?;
    let env = env::values(environment)?;
    let resolved = resolve::resolve(sources::Sources::new(flags, env), environment.stdout)?;
    match word {
        Some(_) => Ok(Command::Config(Box::new(resolved.listing))),
        None => Ok(Command::Run(Box::new(resolved.run))),
    }
}

/// The first argument if it is not a flag.
fn first_word(args: &mut Arguments) -> Result<Option<String>, CliError> {
    args.subcommand()
        .map_err(|_| CliError("arguments must be UTF-8 text".to_owned()))
}
