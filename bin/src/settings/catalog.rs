//! The list of settings a run has: each one's flag, the JSON type its config-file key takes, its
//! switch spelling, and the Consul variable that may also set it. Every source (flags, variables,
//! the config file) is read against this one list, so a setting cannot exist in one and not in
//! another, and `consular config` shows them in this order. What a value means is not here: that
//! is `resolve.rs`.

/// What kind of value a setting takes, which is also its JSON type in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--flag TEXT`; a JSON string.
    Text,
    /// `--flag INTEGER`; a JSON number.
    Integer,
    /// `--flag` alone (and `--no-flag` where there is one); a JSON boolean.
    Switch,
}

/// One setting of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Its long flag, `--sync-interval`; without `--` it is the config-file key.
    pub flag: &'static str,
    /// What it takes.
    pub kind: Kind,
    /// The flag that turns a switch off, `--no-purge`, for the switches consular 1.3.0 paired.
    pub negation: Option<&'static str>,
    /// Consul's own variable for the same thing (`CONSUL_HTTP_ADDR` for `--consul`).
    pub consul_var: Option<&'static str>,
}

impl Setting {
    /// The name without `--`: the config-file key, and how `consular config` lists it.
    pub fn name(&self) -> &'static str {
        &self.flag[2..]
    }

    /// `CONSULAR_<NAME_IN_UPPER_SNAKE>`.
    pub fn env_var(&self) -> String {
        let upper: String = self
            .name()
            .chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        format!("CONSULAR_{upper}")
    }
}

/// The setting that names the config file: a flag or a variable, never a key of the file itself.
pub const CONFIG: &str = "config";

const fn text(flag: &'static str) -> Setting {
    Setting {
        flag,
        kind: Kind::Text,
        negation: None,
        consul_var: None,
    }
}

const fn integer(flag: &'static str) -> Setting {
    Setting {
        kind: Kind::Integer,
        ..text(flag)
    }
}

const fn switch(flag: &'static str, negation: Option<&'static str>) -> Setting {
    Setting {
        kind: Kind::Switch,
        negation,
        ..text(flag)
    }
}

const fn consul_text(flag: &'static str, var: &'static str) -> Setting {
    Setting {
        consul_var: Some(var),
        ..text(flag)
    }
}

/// Every setting of a run, in the order `--help` and `consular config` show them.
pub const SETTINGS: &[Setting] = &[
    text("--config"),
    text("--scheme"),
    text("--host"),
    integer("--port"),
    consul_text("--consul", "CONSUL_HTTP_ADDR"),
    text("--marathon"),
    text("--registration-id"),
    integer("--sync-interval"),
    switch("--purge", Some("--no-purge")),
    text("--logfile"),
    text("--log-format"),
    text("--log-level"),
    switch("--debug", Some("--no-debug")),
    integer("--timeout"),
    switch("--fallback", Some("--no-fallback")),
    integer("--fallback-timeout"),
    text("--events"),
    consul_text("--consul-token", "CONSUL_HTTP_TOKEN"),
    consul_text("--consul-token-file", "CONSUL_HTTP_TOKEN_FILE"),
    text("--marathon-token"),
    text("--marathon-password-file"),
    text("--ca-file"),
    consul_text("--consul-ca-file", "CONSUL_CACERT"),
    consul_text("--consul-ca-path", "CONSUL_CAPATH"),
    consul_text("--consul-client-cert", "CONSUL_CLIENT_CERT"),
    consul_text("--consul-client-key", "CONSUL_CLIENT_KEY"),
    consul_text("--consul-tls-server-name", "CONSUL_TLS_SERVER_NAME"),
    text("--marathon-ca-file"),
    text("--marathon-ca-path"),
    text("--marathon-client-cert"),
    text("--marathon-client-key"),
    text("--events-secret"),
    switch("--accept-callbacks", None),
    integer("--max-listing-bytes"),
    text("--require-label"),
    text("--address"),
    text("--health-checks"),
    switch("--register-when-healthy", None),
    text("--fallback-mode"),
    switch("--agentless", None),
    switch("--dry-run", None),
    switch("--ha", None),
    integer("--ha-ttl"),
    text("--ha-key"),
    text("--instance-id"),
    switch("--migrate-marathon-consul", None),
];

/// The setting called `name` (without `--`).
pub fn by_name(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.name() == name)
}

/// The setting with the variable `var`, `CONSULAR_…` or Consul's.
pub fn by_env_var(var: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|setting| setting.consul_var == Some(var) || setting.env_var() == var)
}
