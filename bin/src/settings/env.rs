//! The process environment as the settings see it: `main` reads it once into an [`Environment`]
//! (the only place the binary reads variables), and this file turns its `CONSULAR_<FLAG>` and
//! Consul's own variables into values of settings. Which value wins against flags and the file is
//! `sources.rs`; what a value must look like is `resolve.rs`.
//!
//! Empty variables count as unset, as Consul's tools treat them. A `CONSULAR_` variable that names
//! no setting is an error (a typo would otherwise be silently ignored); other variables are not
//! looked at. `CONSUL_HTTP_SSL` only says which scheme a scheme-less `CONSUL_HTTP_ADDR` gets.

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::catalog::{self, Kind};
use super::sources::Raw;
use super::CliError;

/// The prefix of our own variables.
const OUR_PREFIX: &str = "CONSULAR_";
/// Consul's address variable: `host:port` or `http(s)://host:port`.
const CONSUL_ADDR_VAR: &str = "CONSUL_HTTP_ADDR";
/// Consul's "use https" variable, for a `CONSUL_HTTP_ADDR` without a scheme.
const CONSUL_SSL_VAR: &str = "CONSUL_HTTP_SSL";

/// What the settings need from the process's surroundings, captured once by `main`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// The variables, as the OS gives them.
    pub vars: Vec<(OsString, OsString)>,
    /// Whether standard output is a terminal (the log's default format depends on it).
    pub stdout: Output,
}

/// Where standard output goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    /// A terminal: someone reads the log as it comes.
    Terminal,
    /// A file, a pipe or nothing.
    #[default]
    NotTerminal,
}

impl Environment {
    /// No variables at all, standard output not a terminal.
    #[cfg(test)]
    pub fn empty() -> Self {
        Environment::default()
    }

    /// The value of `name`; empty counts as unset.
    fn var(&self, name: &str) -> Option<&OsString> {
        self.vars
            .iter()
            .rev()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value)
    }
}

/// Each setting's value from the environment, with the variable it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvValues(BTreeMap<&'static str, (String, Raw)>);

impl EnvValues {
    /// The value of setting `name`, and its variable.
    pub fn get(&self, name: &str) -> Option<(&str, &Raw)> {
        self.0.get(name).map(|(var, raw)| (var.as_str(), raw))
    }
}

/// The settings `environment` sets. Where a `CONSULAR_` and a Consul variable set the same one,
/// ours wins.
pub fn values(environment: &Environment) -> Result<EnvValues, CliError> {
    let mut values = BTreeMap::new();
    for setting in catalog::SETTINGS {
        let Some(var) = setting.consul_var else {
            continue;
        };
        let Some(value) = environment.var(var) else {
            continue;
        };
        let raw = if var == CONSUL_ADDR_VAR {
            consul_address(value, environment.var(CONSUL_SSL_VAR))?
        } else {
            text(value)
        };
        values.insert(setting.name(), (var.to_owned(), raw));
    }
    for (key, value) in &environment.vars {
        let Some(var) = key.to_str().filter(|k| k.starts_with(OUR_PREFIX)) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let setting = catalog::by_env_var(var)
            .filter(|setting| setting.env_var() == var)
            .ok_or_else(|| CliError::flag(var, "no such setting (see --help)"))?;
        let raw = match setting.kind {
            Kind::Switch => match value.to_str() {
                Some("true") => Raw::Switch(true),
                Some("false") => Raw::Switch(false),
                _ => {
                    let shown = value.to_string_lossy();
                    return Err(CliError::invalid(var, "true or false", &shown));
                }
            },
            Kind::Text | Kind::Integer => text(value),
        };
        values.insert(setting.name(), (var.to_owned(), raw));
    }
    Ok(EnvValues(values))
}

fn text(value: &OsString) -> Raw {
    value
        .to_str()
        .map_or(Raw::NotText, |text| Raw::Text(text.to_owned()))
}

/// `CONSUL_HTTP_ADDR` as a URL: as given when it has a scheme (`unix://` is then refused like any
/// scheme but http and https), else `https://` if `CONSUL_HTTP_SSL` is true or 1, `http://` if not.
fn consul_address(addr: &OsString, ssl: Option<&OsString>) -> Result<Raw, CliError> {
    let Some(addr) = addr.to_str() else {
        return Ok(Raw::NotText);
    };
    if addr.contains("://") {
        return Ok(Raw::Text(addr.to_owned()));
    }
    let https = match ssl.map(|ssl| ssl.to_string_lossy()) {
        None => false,
        Some(ssl) => match ssl.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(CliError::invalid(
                    CONSUL_SSL_VAR,
                    "true, false, 1 or 0",
                    &ssl,
                ))
            }
        },
    };
    let scheme = if https { "https" } else { "http" };
    Ok(Raw::Text(format!("{scheme}://{addr}")))
}
