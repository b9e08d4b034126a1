//! The real `consular` binary as a subprocess, for end-to-end tests.
//!
//! [`Consular::start`] runs `env!("CARGO_BIN_EXE_consular")` with `--host 127.0.0.1 --port <free port>
//! --marathon … --consul … --debug` plus the test's own flags, sends its standard output and error (the JSON-lines
//! log) to a temp file, and returns once it answers `GET /` on its port. Dropping it kills the process; if the
//! test is panicking, the tail of its log is printed first, so a failed assertion comes with what the bridge did.
//!
//! [`Consular::terminate`] sends SIGTERM and returns the exit status, for tests of a clean shutdown.
//!
//! `--debug` is always on: it makes the bridge log every request it sends and its answer, which is what one needs
//! to read a failure. It changes nothing else.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::consul;

/// How long the binary may take to start serving HTTP.
pub const START_DEADLINE: Duration = Duration::from_secs(15);
/// Log lines printed when a test fails.
const TAIL_LINES: usize = 60;
/// A bind failure (another process took the port between our probe and the bridge's bind) is retried this often.
const START_ATTEMPTS: usize = 3;

/// Ports handed out in this test process, so two parallel tests never get the same one.
static TAKEN_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());
static LOG_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A running `consular` process; see the module doc.
pub struct Consular {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    args: Vec<String>,
}

impl Consular {
    /// Starts `consular` against `marathon` and `consul` (base URLs) with `extra` flags (`--events sse`,
    /// `--sync-interval 1`, …) and waits until it serves `GET /`. Panics with the log if it exits or does not answer
    /// within [`START_DEADLINE`].
    pub fn start(marathon: &str, consul: &str, extra: &[&str]) -> Consular {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut args: Vec<String> = [
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--marathon",
                marathon,
                "--consul",
                consul,
                "--debug",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            let log = new_log_path();
            let out = File::create(&log)
                .unwrap_or_else(|e| panic!("creating the consular log {}: {e}", log.display()));
            let err = out.try_clone().expect("cloning the log file handle");
            let child = Command::new(env!("CARGO_BIN_EXE_consular"))
                .args(&args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("spawning consular: {e}"));
            let mut bridge = Consular {
                child: Some(child),
                port,
                log,
                args,
            };
            match bridge.wait_until_serving() {
                Ok(()) => return bridge,
                // Exit code 1 with "cannot listen": someone else bound the port first; try another.
                Err(why) if why.contains("cannot listen") => {
                    failures.push(why);
                    bridge.keep_quiet();
                }
                Err(why) => panic!("{why}"),
            }
        }
        panic!(
            "consular: {START_ATTEMPTS} starts failed to bind:\n{}",
            failures.join("\n")
        );
    }

    fn wait_until_serving(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "consular {:?} exited during start ({status}):\n{}",
                    self.args,
                    self.log_tail(TAIL_LINES)
                ));
            }
            if let Ok((200, _)) =
                consul::request_with_timeout(self.addr(), "GET", "/", b"", Duration::from_secs(1))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "consular {:?} did not answer GET / within {START_DEADLINE:?}:\n{}",
                    self.args,
                    self.log_tail(TAIL_LINES)
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address it listens on: 127.0.0.1:<port>.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The callback URL it subscribes at Marathon with the default registration id.
    pub fn callback_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/events?registration=consular",
            self.port
        )
    }

    /// `POST /events` with `body` → (status, body as text).
    pub fn post_event(&self, body: &[u8]) -> (u16, String) {
        let (status, body) = consul::request(self.addr(), "POST", "/events", body)
            .unwrap_or_else(|e| panic!("POST /events to consular: {e}\n{}", self.log_tail(20)));
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Panics (with the log) unless the process is still running.
    pub fn assert_running(&mut self) {
        let exited = self
            .child
            .as_mut()
            .map_or(Some(None), |c| c.try_wait().ok().flatten().map(Some));
        if let Some(status) = exited {
            panic!(
                "consular is not running (exit status {status:?}):\n{}",
                self.log_tail(TAIL_LINES)
            );
        }
    }

    /// Sends SIGTERM (through `kill`, to stay free of `unsafe` and extra crates) and waits up to `timeout` for the
    /// process to exit; returns its exit status. Panics with the log if it is still running then.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("consular is running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for consular") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "consular did not exit within {timeout:?} of SIGTERM:\n{}",
                self.log_tail(TAIL_LINES)
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole log so far (standard output and error: JSON lines, plus any panic text).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's last `n` lines.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let mut out = format!(
            "--- consular log {} (last {n} lines):\n",
            self.log.display()
        );
        for line in &lines[lines.len().saturating_sub(n)..] {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills the process without printing its log (a start attempt that lost its port).
    fn keep_quiet(&mut self) {
        self.kill();
        let _ = fs::remove_file(&self.log);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it already exited, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Consular {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("consular {:?}\n{}", self.args, self.log_tail(TAIL_LINES));
            eprintln!("consular: full log kept in {}", self.log.display());
        } else {
            let _ = fs::remove_file(&self.log);
        }
    }
}

/// A TCP port free on 127.0.0.1 right now, from the kernel's ephemeral range (the Consul helper draws its ports
/// below it, so the two never collide), never handed out twice in this process.
pub fn free_port() -> u16 {
    let mut taken = TAKEN_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("binding 127.0.0.1:0")
            .port();
        if !taken.contains(&port) {
            taken.push(port);
            return port;
        }
    }
}

fn new_log_path() -> PathBuf {
    let n = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("consular-e2e-{}-{n}.log", std::process::id()))
}
