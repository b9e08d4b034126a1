//! From the sources' values to a run's settings: each setting's winning value is checked (a flag,
//! a variable and a file key by the same rule, errors naming where the value came from), defaults
//! fill the rest, and every setting is recorded with its effective value and source for
//! `consular config`. A run and `consular config` both go through [`resolve`], so what is shown is
//! what would run. The sources and their precedence are `sources.rs`; secrets' reading is
//! `secrets.rs`; the listing's text is `show.rs`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use consular_adapters::tls::TlsOptions;
use consular_adapters::BaseUrl;
use consular_core::{
    AddressMode, Advertised, Config, EventSource, EventsEndpoint, FallbackMode, HaConfig,
    HealthChecks, MarathonConsulLeftovers, Placement, RegisterWhen, WriteMode,
};

use super::catalog::{self, CONFIG};
use super::env::Output;
use super::file;
use super::secrets::{self, SecretKind};
use super::show::{Effective, Listing, Shown};
use super::sources::{Given, Raw, Source, Sources};
use super::{CliError, RunArgs};
use crate::logging::{LogFormat, LogLevel};

/// Seconds accepted by the time settings: a year, far below where the core's clock arithmetic
/// could overflow.
pub const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;
/// Smallest `--max-listing-bytes`: below this even a small cluster's app list would not fit.
const MIN_LISTING_BYTES: usize = 64 * 1024;
/// Longest name `--consul-tls-server-name` takes, as for a DNS name.
const MAX_SERVER_NAME: usize = 253;

/// `text` as a port from 1 to 65535.
pub fn port_number(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|&port| port != 0)
}

/// `text` as whole seconds from `min` to [`MAX_SECONDS`].
pub fn whole_seconds(text: &str, min: u64) -> Option<u64> {
    text.parse::<u64>()
        .ok()
        .filter(|secs| (min..=MAX_SECONDS).contains(secs))
}

/// A run's settings and how each came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What a run uses.
    pub run: RunArgs,
    /// Every setting, its effective value and its source.
    pub listing: Listing,
}

/// Resolves every setting of a run from `sources` (reading the config file they name, if any).
/// `stdout` decides the log format's default.
pub fn resolve(sources: Sources, stdout: Output) -> Result<Resolved, CliError> {
    let mut r = Resolver {
        sources,
        listing: Vec::new(),
    };
    r.read_config_file()?;

    let scheme = r.choice("scheme", &[("http", "http"), ("https", "https")], "http")?;
    let host = r.text("host", "localhost")?;
    let port = r.port("port", 7000)?;
    let consul = r.url("consul", "http://localhost:8500")?;
    let (marathon, marathon_source) = r.unrecorded_url("marathon", "http://localhost:8080")?;
    let marathon = match r.secret_file("marathon-password-file", SecretKind::Password)? {
        None => marathon,
        Some((password, source)) => marathon.with_password(password).map_err(|why| {
            CliError::flag(
                &source.label("marathon-password-file"),
                format!("--marathon: {why}"),
            )
        })?,
    };
    r.record(
        "marathon",
        Shown::Value(marathon.to_redacted_string()),
        marathon_source,
    );
    let registration_id = r.text("registration-id", "consular")?;
    let sync_interval = r.seconds("sync-interval", 0, 0)?;
    let purge = r.switch("purge")?;
    let logfile = r.path("logfile")?;
    let log_format_default = match (stdout, &logfile) {
        (Output::Terminal, None) => "text",
        _ => "json",
    };
    let log_format = r.choice(
        "log-format",
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        log_format_default,
    )?;
    let levels = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
    ];
    let (log_level, _, level_source) = r.unrecorded_choice("log-level", &levels, "info")?;
    let debug_source = r.given("debug").map(|g| g.source);
    let debug = r.switch("debug")?;
    // `--debug` logs every request, at debug level: it raises the level whatever else says.
    let (log_level, level_source) = match debug_source {
        Some(source) if debug => (LogLevel::Debug, source),
        _ => (log_level, level_source),
    };
    r.record(
        "log-level",
        Shown::Value(log_level.word().to_owned()),
        level_source,
    );
    let timeout = r.seconds("timeout", 5, 1)?;
    let fallback = r.switch("fallback")?;
    let fallback_timeout = r.seconds("fallback-timeout", 2, 1)?;
    let events = r.choice(
        "events",
        &[
            ("sse", EventSource::Stream),
            ("callback", EventSource::Callback),
            ("auto", EventSource::Auto),
        ],
        "auto",
    )?;
    let consul_token = r.secret("consul-token", Some("consul-token-file"), SecretKind::Token)?;
    let marathon_token = r.secret("marathon-token", None, SecretKind::Token)?;
    let ca_file = r.path("ca-file")?;
    let consul_tls = r.tls("consul", ca_file.as_ref(), true)?;
    let marathon_tls = r.tls("marathon", ca_file.as_ref(), false)?;
    let events_secret = r.secret("events-secret", None, SecretKind::CallbackSecret)?;
    let events_endpoint = match r.switch("accept-callbacks")? {
        true => EventsEndpoint::Always,
        false => EventsEndpoint::WhileCallbacks,
    };
    let max_listing_bytes = r.listing_bytes()?;
    let require_label = r.checked_text("require-label", "a label name", None, |label| {
        label.bytes().all(|b| b.is_ascii_graphic())
    })?;
    let address = r.choice(
        "address",
        &[
            ("auto", AddressMode::Auto),
            ("host", AddressMode::Host),
            ("task-ip", AddressMode::TaskIp),
        ],
        "auto",
    )?;
    let health_checks = r.choice(
        "health-checks",
        &[
            ("none", HealthChecks::None),
            ("mirror", HealthChecks::Mirror),
            ("agent", HealthChecks::Agent),
        ],
        "none",
    )?;
    let register_when = match r.switch("register-when-healthy")? {
        true => RegisterWhen::Healthy,
        false => RegisterWhen::Running,
    };
    let fallback_mode = r.choice(
        "fallback-mode",
        &[
            ("agent", FallbackMode::Agent),
            ("catalog", FallbackMode::Catalog),
        ],
        "agent",
    )?;
    let placement = match r.switch("agentless")? {
        true => Placement::Agentless,
        false => Placement::OnAgents,
    };
    let writes = match r.switch("dry-run")? {
        true => WriteMode::DryRun,
        false => WriteMode::Apply,
    };
    let ha_asked = r.switch("ha")?;
    let ha_ttl = r.seconds("ha-ttl", 15, 10)?;
    let default_ha_key = HaConfig::new(&registration_id, "").key;
    let ha_key = r
        .checked_text(
            "ha-key",
            "a KV key of visible ASCII, not under consular/",
            Some(&default_ha_key),
            // Outside `consular/`, which purges tidy; a plain key Consul takes as given.
            |key| {
                key.len() <= 512
                    && !key.starts_with('/')
                    && !key.starts_with("consular/")
                    && key.bytes().all(|b| b.is_ascii_graphic())
            },
        )?
        .unwrap_or(default_ha_key);
    let default_instance = format!("{host}:{port}");
    let instance_id = r
        .checked_text(
            "instance-id",
            "up to 255 visible ASCII characters",
            Some(&default_instance),
            |id| id.len() <= 255 && id.bytes().all(|b| b.is_ascii_graphic()),
        )?
        .unwrap_or(default_instance);
    let marathon_consul = match r.switch("migrate-marathon-consul")? {
        true => MarathonConsulLeftovers::RemoveOnce,
        false => MarathonConsulLeftovers::Keep,
    };

    let ha = ha_asked.then(|| {
        let mut ha = HaConfig::new(&registration_id, &instance_id);
        ha.ttl = ha_ttl;
        ha.key = ha_key;
        ha.advertise = Some(Advertised {
            address: host.clone(),
            port,
            check_url: format!("{scheme}://{host}:{port}/"),
        });
        ha
    });
    // `--fallback-mode catalog` is a way of falling back.
    let fallback = fallback || fallback_mode == FallbackMode::Catalog;
    let run = RunArgs {
        scheme: scheme.to_owned(),
        host,
        port,
        consul,
        marathon,
        registration_id,
        sync_interval,
        purge,
        logfile,
        log_format,
        log_level,
        debug: log_level == LogLevel::Debug,
        timeout,
        fallback,
        fallback_timeout,
        events,
        consul_token,
        marathon_token,
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
    };
    let mut listing = r.listing;
    let position = |name: &str| catalog::SETTINGS.iter().position(|s| s.name() == name);
    listing.sort_by_key(|effective| position(effective.name));
    Ok(Resolved {
        run,
        listing: Listing(listing),
    })
}

/// Resolution in progress: the sources, and the settings resolved so far.
struct Resolver {
    sources: Sources,
    listing: Vec<Effective>,
}

impl Resolver {
    fn given(&self, name: &str) -> Option<Given> {
        debug_assert!(catalog::by_name(name).is_some(), "no setting {name}");
        self.sources.given(name)
    }

    fn record(&mut self, name: &str, value: Shown, source: Source) {
        let name = catalog::by_name(name).map_or("?", |setting| setting.name());
        self.listing.push(Effective {
            name,
            value,
            source,
        });
    }

    /// The text of `name`'s winning value, with its source.
    fn given_text(&self, name: &str) -> Result<Option<(String, Source)>, CliError> {
        let Some(given) = self.given(name) else {
            return Ok(None);
        };
        let label = given.source.label(name);
        match given.raw {
            Raw::Text(text) => Ok(Some((text, given.source))),
            Raw::NotText => Err(CliError::flag(&label, "expected UTF-8 text")),
            Raw::Switch(_) => Err(CliError::flag(&label, "expected a value")),
        }
    }

    /// `--config` (or `CONSULAR_CONFIG`): reads the file, whose values then rank below the
    /// variables'.
    fn read_config_file(&mut self) -> Result<(), CliError> {
        let Some(path) = self.path(CONFIG)? else {
            return Ok(());
        };
        let label = self
            .given(CONFIG)
            .map_or_else(|| format!("--{CONFIG}"), |g| g.source.label(CONFIG));
        let file = file::read(&label, &path)?;
        let sources = std::mem::take(&mut self.sources);
        self.sources = sources.with_file(file);
        Ok(())
    }

    /// A non-empty text, or `default`.
    fn text(&mut self, name: &str, default: &str) -> Result<String, CliError> {
        let (text, source) = match self.given_text(name)? {
            None => (default.to_owned(), Source::Default),
            Some((text, source)) if text.trim().is_empty() => {
                return Err(CliError::invalid(
                    &source.label(name),
                    "a non-empty value",
                    &text,
                ))
            }
            Some(given) => given,
        };
        self.record(name, Shown::Value(text.clone()), source);
        Ok(text)
    }

    /// A text that passes `sound`, if given; `default_shown` is what `consular config` shows
    /// when it is not.
    fn checked_text(
        &mut self,
        name: &str,
        expected: &str,
        default_shown: Option<&str>,
        sound: impl Fn(&str) -> bool,
    ) -> Result<Option<String>, CliError> {
        match self.given_text(name)? {
            Some((text, source)) if !text.is_empty() && sound(&text) => {
                self.record(name, Shown::Value(text.clone()), source);
                Ok(Some(text))
            }
            Some((text, source)) => Err(CliError::invalid(&source.label(name), expected, &text)),
            None => {
                let shown = default_shown.map_or(Shown::NotSet, |d| Shown::Value(d.to_owned()));
                self.record(name, shown, Source::Default);
                Ok(None)
            }
        }
    }

    /// A file or directory name, if given.
    fn path(&mut self, name: &str) -> Result<Option<PathBuf>, CliError> {
        match self.given_text(name)? {
            Some((text, source)) if text.is_empty() => {
                Err(CliError::invalid(&source.label(name), "a file name", &text))
            }
            Some((text, source)) => {
                self.record(name, Shown::Value(text.clone()), source);
                Ok(Some(PathBuf::from(text)))
            }
            None => {
                self.record(name, Shown::NotSet, Source::Default);
                Ok(None)
            }
        }
    }

    /// One of `options` (word, value), or the one called `default`; errors list the words.
    fn choice<T: Copy>(
        &mut self,
        name: &str,
        options: &[(&'static str, T)],
        default: &str,
    ) -> Result<T, CliError> {
        let (value, word, source) = self.unrecorded_choice(name, options, default)?;
        self.record(name, Shown::Value(word.to_owned()), source);
        Ok(value)
    }

    fn unrecorded_choice<T: Copy>(
        &self,
        name: &str,
        options: &[(&'static str, T)],
        default: &str,
    ) -> Result<(T, &'static str, Source), CliError> {
        let (word, source) = self
            .given_text(name)?
            .unwrap_or_else(|| (default.to_owned(), Source::Default));
        match options.iter().find(|(w, _)| *w == word) {
            Some((w, value)) => Ok((*value, w, source)),
            None => {
                let words: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
                let expected = match words.split_last() {
                    Some((last, [])) => (*last).to_owned(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                };
                Err(CliError::invalid(&source.label(name), &expected, &word))
            }
        }
    }

    /// On or off; off unless given.
    fn switch(&mut self, name: &str) -> Result<bool, CliError> {
        let (on, source) = match self.given(name) {
            None => (false, Source::Default),
            Some(Given {
                raw: Raw::Switch(on),
                source,
            }) => (on, source),
            Some(Given { source, .. }) => {
                return Err(CliError::flag(
                    &source.label(name),
                    "expected true or false",
                ))
            }
        };
        self.record(name, Shown::Value(on.to_string()), source);
        Ok(on)
    }

    /// A port from 1 to 65535, or `default`.
    fn port(&mut self, name: &str, default: u16) -> Result<u16, CliError> {
        self.number(name, default, port_number, "an integer from 1 to 65535")
    }

    /// Whole seconds from `min` to [`MAX_SECONDS`], or `default`.
    fn seconds(&mut self, name: &str, default: u64, min: u64) -> Result<Duration, CliError> {
        let expected = format!("a whole number of seconds from {min} to {MAX_SECONDS}");
        let parse = |text: &str| whole_seconds(text, min);
        self.number(name, default, parse, &expected)
            .map(Duration::from_secs)
    }

    /// `--max-listing-bytes`: at least [`MIN_LISTING_BYTES`].
    fn listing_bytes(&mut self) -> Result<usize, CliError> {
        let parse = |text: &str| {
            text.parse::<usize>()
                .ok()
                .filter(|&bytes| bytes >= MIN_LISTING_BYTES)
        };
        let expected = format!("an integer of at least {MIN_LISTING_BYTES}");
        let default = Config::default().max_listing_bytes;
        self.number("max-listing-bytes", default, parse, &expected)
    }

    /// A number `parse` accepts, or `default`; `expected` says what `parse` accepts.
    fn number<T: fmt::Display + Copy>(
        &mut self,
        name: &str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, CliError> {
        let (number, source) = match self.given_text(name)? {
            None => (default, Source::Default),
            Some((text, source)) => match parse(&text) {
                Some(number) => (number, source),
                None => return Err(CliError::invalid(&source.label(name), expected, &text)),
            },
        };
        self.record(name, Shown::Value(number.to_string()), source);
        Ok(number)
    }

    /// An http(s) URL, or `default`.
    fn url(&mut self, name: &str, default: &str) -> Result<BaseUrl, CliError> {
        let (url, source) = self.unrecorded_url(name, default)?;
        self.record(name, Shown::Value(url.to_redacted_string()), source);
        Ok(url)
    }

    fn unrecorded_url(&self, name: &str, default: &str) -> Result<(BaseUrl, Source), CliError> {
        let (text, source) = self
            .given_text(name)?
            .unwrap_or_else(|| (default.to_owned(), Source::Default));
        match BaseUrl::parse(&text) {
            Ok(url) => Ok((url, source)),
            Err(e) => Err(CliError::flag(&source.label(name), e)),
        }
    }

    /// A secret given as `name` (a value, or `@FILE` except in Consul's own variables) or as the
    /// file named by `file_name`. The one from the higher-ranked source wins; both from one source
    /// is ambiguous and refused.
    fn secret(
        &mut self,
        name: &str,
        file_name: Option<&str>,
        kind: SecretKind,
    ) -> Result<Option<String>, CliError> {
        let value = self.given(name);
        let file = file_name.and_then(|file_name| self.given(file_name).map(|g| (file_name, g)));
        if let (Some(value), Some((file_name, file))) = (&value, &file) {
            if value.source.rank() == file.source.rank() {
                return Err(CliError::new(format!(
                    "{} and {}: give the {} one way, not both",
                    value.source.label(name),
                    file.source.label(file_name),
                    kind.noun(),
                )));
            }
        }
        let file_wins = match (&value, &file) {
            (Some(value), Some((_, file))) => file.source.rank() < value.source.rank(),
            (None, Some(_)) => true,
            _ => false,
        };
        if let (Some(file_name), true) = (file_name, file_wins) {
            if let Some((secret, source)) = self.secret_file(file_name, kind)? {
                self.record(name, Shown::Redacted, source);
                return Ok(Some(secret));
            }
        }
        if let Some(file_name) = file_name {
            match file {
                Some((_, outranked)) => self.record(file_name, Shown::Outranked, outranked.source),
                None => self.record(file_name, Shown::NotSet, Source::Default),
            }
        }
        let Some(Given { raw, source }) = value else {
            self.record(name, Shown::NotSet, Source::Default);
            return Ok(None);
        };
        let label = source.label(name);
        let text = match raw {
            Raw::Text(text) => text,
            Raw::NotText => {
                let why = format!("the {} is not text (it must be visible ASCII)", kind.noun());
                return Err(CliError::flag(&label, why));
            }
            Raw::Switch(_) => return Err(CliError::flag(&label, "expected a value")),
        };
        // Consul's own variables mean what they mean to Consul: the value, never `@FILE`.
        let consul_own = matches!(&source, Source::Env(var)
            if catalog::by_name(name).and_then(|s| s.consul_var) == Some(var.as_str()));
        let secret = if consul_own {
            secrets::literal(&label, kind, text)?
        } else {
            secrets::value_or_at_file(&label, kind, text)?
        };
        self.record(name, Shown::Redacted, source);
        Ok(Some(secret))
    }

    /// The secret in the file `name` names, if given; records the file's name.
    fn secret_file(
        &mut self,
        name: &str,
        kind: SecretKind,
    ) -> Result<Option<(String, Source)>, CliError> {
        let Some((text, source)) = self.given_text(name)? else {
            self.record(name, Shown::NotSet, Source::Default);
            return Ok(None);
        };
        let label = source.label(name);
        if text.is_empty() {
            return Err(CliError::invalid(&label, "a file name", &text));
        }
        let secret = secrets::from_file(&label, kind, text.as_ref())?;
        self.record(name, Shown::Value(text), source.clone());
        Ok(Some((secret, source)))
    }

    /// The TLS options towards `peer` (`consul`, `marathon`): `--ca-file` (trusted for both),
    /// then the peer's own CA file and directory, client certificate and key (both or neither),
    /// and, for Consul, the name its certificate is checked against.
    fn tls(
        &mut self,
        peer: &str,
        shared_ca: Option<&PathBuf>,
        with_server_name: bool,
    ) -> Result<TlsOptions, CliError> {
        let mut ca_files: Vec<PathBuf> = shared_ca.into_iter().cloned().collect();
        ca_files.extend(self.path(&format!("{peer}-ca-file"))?);
        let ca_dirs = self.path(&format!("{peer}-ca-path"))?.into_iter().collect();
        let (cert_name, key_name) = (format!("{peer}-client-cert"), format!("{peer}-client-key"));
        let cert_source = self.given(&cert_name).map(|g| g.source);
        let key_source = self.given(&key_name).map(|g| g.source);
        let client_cert = self.path(&cert_name)?;
        let client_key = self.path(&key_name)?;
        match (&cert_source, &key_source) {
            (Some(source), None) => {
                let why = format!("a client certificate needs its key (--{key_name})");
                return Err(CliError::flag(&source.label(&cert_name), why));
            }
            (None, Some(source)) => {
                let why = format!("a client key needs its certificate (--{cert_name})");
                return Err(CliError::flag(&source.label(&key_name), why));
            }
            _ => {}
        }
        let server_name = if with_server_name {
            self.checked_text(
                &format!("{peer}-tls-server-name"),
                "a DNS name or an IP address",
                None,
                |name| {
                    name.len() <= MAX_SERVER_NAME
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
                },
            )?
        } else {
            None
        };
        Ok(TlsOptions {
            ca_files,
            ca_dirs,
            client_cert,
            client_key,
            server_name,
        })
    }
}
