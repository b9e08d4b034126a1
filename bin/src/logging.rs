//! The process's `log` backend: one line of newline-delimited JSON per record, in femme's shape
//! (`{"level":30,"time":<unix ms>,"msg":"…"}`), written to standard output or appended to
//! `--logfile`. One formatter for both destinations.
//!
//! Why not femme itself: femme 2.2 only writes to standard output and panics when a write fails,
//! which with `panic = "abort"` would kill the daemon when its stdout goes away. Write errors are
//! ignored here. What gets logged is decided elsewhere (the core filters its debug records).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use consular_core::encoding::json_ascii_string;
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Installs the logger: `Info` and up, `Debug` too with `--debug`. Other crates' records are capped
/// at `Info` so `--debug` shows consular's detail, not its libraries'.
pub fn init(logfile: Option<&Path>, debug: bool) -> io::Result<()> {
    let out: Box<dyn Write + Send> = match logfile {
        Some(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        None => Box::new(io::stdout()),
    };
    let max = if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let logger = JsonLines {
        out: Mutex::new(out),
        max,
    };
    // Only fails if a logger is already installed, which `main` never does twice.
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
    Ok(())
}

struct JsonLines {
    out: Mutex<Box<dyn Write + Send>>,
    max: LevelFilter,
}

impl Log for JsonLines {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let ours = metadata.target().starts_with("consular");
        metadata.level() <= self.max && (ours || metadata.level() <= Level::Info)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.as_millis());
        let line = format_line(record.level(), time, &record.args().to_string());
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Nowhere to report a failed log write; dropping the line beats stopping the bridge.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }

    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.flush();
    }
}

/// One record as a JSON line, with femme's numeric levels.
fn format_line(level: Level, unix_millis: u128, message: &str) -> String {
    let level = match level {
        Level::Trace => 10,
        Level::Debug => 20,
        Level::Info => 30,
        Level::Warn => 40,
        Level::Error => 50,
    };
    format!(
        "{{\"level\":{level},\"time\":{unix_millis},\"msg\":{}}}\n",
        json_ascii_string(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_femme_shaped_json_lines() {
        assert_eq!(
            format_line(Level::Warn, 1_700_000_000_123, "agent \"h\" is\ndown: é"),
            "{\"level\":40,\"time\":1700000000123,\"msg\":\"agent \\\"h\\\" is\\ndown: \\u00e9\"}\n"
        );
    }

    #[test]
    fn debug_shows_consulars_detail_but_not_its_libraries() {
        let logger = |max| JsonLines {
            out: Mutex::new(Box::new(io::sink())),
            max,
        };
        let meta = |level, target| Metadata::builder().level(level).target(target).build();
        let quiet = logger(LevelFilter::Info);
        assert!(quiet.enabled(&meta(Level::Info, "consular")));
        assert!(!quiet.enabled(&meta(Level::Debug, "consular")));
        assert!(quiet.enabled(&meta(Level::Info, "tide::server")));
        let debug = logger(LevelFilter::Debug);
        assert!(debug.enabled(&meta(Level::Debug, "consular")));
        assert!(debug.enabled(&meta(Level::Debug, "consular_adapters::server")));
        assert!(!debug.enabled(&meta(Level::Debug, "async_h1::server")));
        assert!(debug.enabled(&meta(Level::Warn, "rustls")));
    }
}
