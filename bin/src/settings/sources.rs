//! Where a setting's value can come from, and which source wins: a flag, then a variable
//! (`CONSULAR_…` before Consul's own), then the config file, then the default. This file holds the
//! values as given (still unchecked text or a switch's position) and picks the winner; reading the
//! command line is here too. Reading variables is `env.rs`, the file `file.rs`, checking values
//! `resolve.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use pico_args::Arguments;

use super::catalog::{Kind, SETTINGS};
use super::env::EnvValues;
use super::file::ConfigFile;
use super::CliError;

/// Where the value of a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// This environment variable.
    Env(String),
    /// This config file.
    File(PathBuf),
    /// Nothing set it.
    Default,
}

impl Source {
    /// How an error about `setting`'s value names where it came from: `--port`, `CONSULAR_PORT`,
    /// `/etc/consular.json: port`.
    pub fn label(&self, setting: &str) -> String {
        match self {
            Source::Flag | Source::Default => format!("--{setting}"),
            Source::Env(var) => var.clone(),
            Source::File(path) => format!("{}: {setting}", path.display()),
        }
    }

    /// Flag before environment before file before default. Two values of one rank cannot be
    /// ordered by precedence.
    pub fn rank(&self) -> u8 {
        match self {
            Source::Flag => 0,
            Source::Env(_) => 1,
            Source::File(_) => 2,
            Source::Default => 3,
        }
    }
}

impl fmt::Display for Source {
    /// As `consular config` shows it: `flag`, `env CONSULAR_PORT`, `file /etc/consular.json`,
    /// `default`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value as its source gave it, before any check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    /// Text (a number from the config file is its decimal text, checked like a flag's).
    Text(String),
    /// A switch, on or off.
    Switch(bool),
    /// A variable whose value is not UTF-8; an error once it is the value in use.
    NotText,
}

/// One source's value of one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// The value.
    pub raw: Raw,
    /// Where it came from.
    pub source: Source,
}

/// The values every source gives, by setting name.
#[derive(Debug, Default)]
pub struct Sources {
    flags: BTreeMap<&'static str, Raw>,
    env: EnvValues,
    file: Option<ConfigFile>,
}

impl Sources {
    /// The command line's and the environment's values, and the config file's once it is read.
    pub fn new(flags: BTreeMap<&'static str, Raw>, env: EnvValues) -> Self {
        Sources {
            flags,
            env,
            file: None,
        }
    }

    /// Adds the config file's values, below the flags and variables.
    pub fn with_file(self, file: ConfigFile) -> Self {
        Sources {
            file: Some(file),
            ..self
        }
    }

    /// The value of `name` that wins, if any source gives one.
    pub fn given(&self, name: &str) -> Option<Given> {
        if let Some(raw) = self.flags.get(name) {
            return Some(Given {
                raw: raw.clone(),
                source: Source::Flag,
            });
        }
        if let Some((var, raw)) = self.env.get(name) {
            return Some(Given {
                raw: raw.clone(),
                source: Source::Env(var.to_owned()),
            });
        }
        let file = self.file.as_ref()?;
        file.values.get(name).map(|raw| Given {
            raw: raw.clone(),
            source: Source::File(file.path.clone()),
        })
    }
}

/// Reads every setting's flag from `args`: values first, then what is left must be switches, in
/// command-line order so that the last of `--purge`/`--no-purge` wins. Anything else is an error.
pub fn flags(mut args: Arguments) -> Result<BTreeMap<&'static str, Raw>, CliError> {
    let mut given = BTreeMap::new();
    for setting in SETTINGS.iter().filter(|s| s.kind != Kind::Switch) {
        if let Some(text) = value(&mut args, setting.flag)? {
            given.insert(setting.name(), Raw::Text(text));
        }
    }
    for arg in args.finish() {
        let arg = arg.to_string_lossy();
        let switch = SETTINGS.iter().find_map(|setting| {
            if setting.kind != Kind::Switch {
                None
            } else if setting.flag == arg {
                Some((setting.name(), true))
            } else if setting.negation == Some(arg.as_ref()) {
                Some((setting.name(), false))
            } else {
                None
            }
        });
        match switch {
            Some((name, on)) => {
                given.insert(name, Raw::Switch(on));
            }
            None => return Err(unexpected(&arg)),
        }
    }
    Ok(given)
}

/// The value of `--flag value` or `--flag=value`, if given; giving it twice is a mistake.
pub fn value(args: &mut Arguments, flag: &'static str) -> Result<Option<String>, CliError> {
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

/// Why a leftover argument is not accepted. An unknown `--flag=value` is shown without its value
/// (it may be a mistyped token's), anything else with any userinfo redacted.
pub fn unexpected(arg: &str) -> CliError {
    let is_switch = |flag: &str| {
        SETTINGS.iter().any(|setting| {
            setting.kind == Kind::Switch && (setting.flag == flag || setting.negation == Some(flag))
        })
    };
    let shown = consular_adapters::endpoints::redact_userinfo(arg);
    match arg.split_once('=') {
        Some((flag, _)) if is_switch(flag) => {
            CliError::flag(flag, format!("takes no value, got {shown:?}"))
        }
        Some((flag, _)) if flag.starts_with('-') => {
            CliError::flag(flag, "unknown option (see --help)")
        }
        _ if arg.starts_with('-') => CliError::flag(&shown, "unknown option (see --help)"),
        _ => CliError::new(format!("unexpected argument {shown:?} (see --help)")),
    }
}
