//! `consular demo`'s flags. The demo reads no variables and no config file: it is a show on
//! loopback, not a deployment. Running it is `../demo.rs`.

use std::time::Duration;

use consular_adapters::BaseUrl;
use pico_args::Arguments;

use super::resolve::{port_number, whole_seconds, MAX_SECONDS};
use super::sources::{unexpected, value};
use super::CliError;

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

/// The demo's flags in `args` (after `demo`).
pub fn parse(mut args: Arguments) -> Result<DemoArgs, CliError> {
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
    let step = match value(&mut args, "--step-seconds")? {
        None => Duration::from_secs(2),
        Some(text) => whole_seconds(&text, 1)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                let expected = format!("a whole number of seconds from 1 to {MAX_SECONDS}");
                CliError::invalid("--step-seconds", &expected, &text)
            })?,
    };
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

fn port(args: &mut Arguments, flag: &'static str) -> Result<Option<u16>, CliError> {
    value(args, flag)?
        .map(|text| {
            port_number(&text)
                .ok_or_else(|| CliError::invalid(flag, "an integer from 1 to 65535", &text))
        })
        .transpose()
}
