//! The process's `log` backend: one line per record, written to standard output or appended to
//! `--logfile`, as JSON in femme's shape (`json.rs`) or as text for people (`text.rs`, with the
//! local time from `local_time.rs`). `--log-format` picks one (text by default when the log goes
//! to a terminal), `--log-level` how much; which flags say so is `settings/`.
//!
//! Why not femme itself: femme 2.2 only writes to standard output and panics when a write fails,
//! which with `panic = "abort"` would kill the daemon when its stdout goes away. Write errors are
//! ignored here. What gets logged is decided elsewhere (the core filters its debug records).

mod json;
mod local_time;
mod text;

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// How each record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-12-02 03:04:05.678 +01:00 INFO  message`: for a person at a terminal.
    Text,
    /// femme's JSON line: for a log collector.
    Json,
}

/// The least severe records written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// What the bridge does: registrations, syncs (the default).
    Info,
    /// Also every request (what `--debug` asks for).
    Debug,
}

impl LogLevel {
    /// The word `--log-level` takes for it.
    pub fn word(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }

    fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Error => LevelFilter::Error,
            LogLevel::Warn => LevelFilter::Warn,
            LogLevel::Info => LevelFilter::Info,
            LogLevel::Debug => LevelFilter::Debug,
        }
    }
}

/// Installs the logger: records at `level` and above, in `format`. Other crates' records are
/// capped at `Info` so debug shows consular's detail, not its libraries'.
pub fn init(logfile: Option<&Path>, format: LogFormat, level: LogLevel) -> io::Result<()> {
    let out: Box<dyn Write + Send> = match logfile {
        Some(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        None => Box::new(io::stdout()),
    };
    let max = level.filter();
    let logger = LineLogger {
        out: Mutex::new(out),
        max,
        format,
    };
    // Only fails if a logger is already installed, which `main` never does twice.
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
    Ok(())
}

struct LineLogger {
    out: Mutex<Box<dyn Write + Send>>,
    max: LevelFilter,
    format: LogFormat,
}

impl Log for LineLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let ours = metadata.target().starts_with("consular");
        metadata.level() <= self.max && (ours || metadata.level() <= Level::Info)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let unix_millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.as_millis());
        let message = record.args().to_string();
        let line = match self.format {
            LogFormat::Json => json::format_line(record.level(), unix_millis, &message),
            LogFormat::Text => {
                let unix_millis = i64::try_from(unix_millis).unwrap_or(i64::MAX);
                let offset = local_time::utc_offset_seconds(unix_millis.div_euclid(1000));
                text::format_line(record.level(), unix_millis, offset, &message)
            }
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Nowhere to report a failed log write; dropping the line beats stopping the bridge.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }

    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger(level: LogLevel) -> LineLogger {
        LineLogger {
            out: Mutex::new(Box::new(io::sink())),
            max: level.filter(),
            format: LogFormat::Json,
        }
    }

    fn meta(level: Level, target: &str) -> Metadata<'_> {
        Metadata::builder().level(level).target(target).build()
    }

    #[test]
    fn debug_shows_consulars_detail_but_not_its_libraries() {
        let quiet = logger(LogLevel::Info);
        assert!(quiet.enabled(&meta(Level::Info, "consular")));
        assert!(!quiet.enabled(&meta(Level::Debug, "consular")));
        assert!(quiet.enabled(&meta(Level::Info, "tide::server")));
        let debug = logger(LogLevel::Debug);
        assert!(debug.enabled(&meta(Level::Debug, "consular")));
        assert!(debug.enabled(&meta(Level::Debug, "consular_adapters::server")));
        assert!(!debug.enabled(&meta(Level::Debug, "async_h1::server")));
        assert!(debug.enabled(&meta(Level::Warn, "rustls")));
    }

    #[test]
    fn the_level_keeps_out_what_is_less_severe() {
        let warn = logger(LogLevel::Warn);
        assert!(warn.enabled(&meta(Level::Warn, "consular")));
        assert!(warn.enabled(&meta(Level::Error, "rustls")));
        assert!(!warn.enabled(&meta(Level::Info, "consular")));
        let error = logger(LogLevel::Error);
        assert!(error.enabled(&meta(Level::Error, "consular")));
        assert!(!error.enabled(&meta(Level::Warn, "consular")));
    }
}
