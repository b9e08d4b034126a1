//! `consular`: reads the command line and the environment, sets up logging, and runs the bridge
//! until SIGINT or SIGTERM, or prints the settings (`consular config`). Settings live in
//! `settings/`, the log formats in `logging/`, `consular demo` in `demo.rs`, everything that talks
//! to the network in `consular-adapters`, and every decision in `consular-core`. This is the one
//! place that reads the process's environment variables; the settings get them passed in.
//!
//! Exit codes: 0 after a signal, `--help`, `--version` or `consular config`; 2 for bad settings
//! (flags, variables, config file) or log file (and for `consular demo` in a build without the
//! `demo` feature); 1 when the bridge cannot run (e.g. the port is taken).
//!
//! Feature `demo` (default) compiles `consular demo` and, with it, the simulators
//! (`consular-sim`, `consular-adapters/simulator`); `--no-default-features` leaves them out.
// Denied rather than forbidden: `logging/local_time.rs` allows it for one `localtime_r` call.
#![deny(unsafe_code)]

#[cfg(feature = "demo")]
mod demo;
mod logging;
mod settings;

use std::future::Future;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use async_signal::{Signal, Signals};
use consular_core::Bridge;
use smol::stream::StreamExt;

use crate::settings::{Command, DemoArgs, Environment, Output, RunArgs};

fn main() -> ExitCode {
    // As given, not as UTF-8: a token that is not text is reported, not silently dropped.
    let environment = Environment {
        vars: std::env::vars_os().collect(),
        stdout: match io::stdout().is_terminal() {
            true => Output::Terminal,
            false => Output::NotTerminal,
        },
    };
    match settings::parse(std::env::args_os().skip(1).collect(), &environment) {
        Ok(Command::Run(args)) => run(*args),
        // Not `print!`, which panics when the reader went away (`consular config | head -3`).
        Ok(Command::Config(listing)) => match write!(io::stdout().lock(), "{listing}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Ok(Command::Demo(args)) => run_demo(args),
        Ok(Command::DemoHelp) => {
            print!("{}", settings::DEMO_USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Help) => {
            print!("{}", settings::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("consular {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("consular: {error}");
            ExitCode::from(2)
        }
    }
}

#[cfg(feature = "demo")]
fn run_demo(args: DemoArgs) -> ExitCode {
    demo::run(args)
}

#[cfg(not(feature = "demo"))]
fn run_demo(_: DemoArgs) -> ExitCode {
    eprintln!("consular: this build has no demo (it was built without the `demo` feature)");
    ExitCode::from(2)
}

fn run(args: RunArgs) -> ExitCode {
    if let Err(error) = logging::init(args.logfile.as_deref(), args.log_format, args.log_level) {
        let path = args.logfile.as_deref().unwrap_or_else(|| "-".as_ref());
        eprintln!("consular: --logfile: cannot open {path:?}: {error}");
        return ExitCode::from(2);
    }
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(error) => {
            eprintln!("consular: cannot handle SIGINT/SIGTERM: {error}");
            return ExitCode::FAILURE;
        }
    };
    let settings = args.driver_settings();
    log::info!(
        "consular {} starting: Marathon {}, Consul {}, HTTP server on {}:{}",
        env!("CARGO_PKG_VERSION"),
        settings.endpoints.marathon(),
        settings.endpoints.consul(),
        settings.listen_host,
        settings.listen_port,
    );
    // The driver's clock starts when `run` starts, so the bridge starts at zero.
    let mut config = args.config();
    if let Some(ha) = &mut config.ha {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        ha.started_at_unix_ms = since_epoch.ok().map(|d| d.as_millis() as u64);
    }
    let bridge = Bridge::new(config, Duration::ZERO);
    match smol::block_on(consular_adapters::run(bridge, settings, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("{error}");
            eprintln!("consular: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on the first SIGINT or SIGTERM. Handling starts now, so a signal that comes before
/// the future is first polled still counts.
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    let mut signals = Signals::new([Signal::Int, Signal::Term])?;
    Ok(async move {
        if let Some(Ok(signal)) = signals.next().await {
            log::info!("received {signal:?}, shutting down");
        }
    })
}
