//! The real `consular` binary as a subprocess, for end-to-end tests.
//!
//! [`Consular::start`] runs `env!("CARGO_BIN_EXE_consular")` with `--host 127.0.0.1 --port <free port>
//! --marathon … --consul … --debug` plus the test's own flags, sends its standard output and error (the JSON-lines
//! log) to a temp file, and returns once it answers `GET /` on its port. Dropping it kills the process; if the
//! test is panicking, the tail of its log is printed first, so a failed assertion comes with what the bridge did.
//!
//! [`Consular::start_with`] does the same for another command line, such as the static build under `chroot`.
//!
//! [`Consular::terminate`] sends SIGTERM and returns the exit status, for tests of a clean shutdown.
//! [`Consular::rss_bytes`], [`Consular::peak_rss_bytes`] and [`Consular::open_fds`] read what the kernel says about
//! the process (`/proc/<pid>/status` and `/proc/<pid>/fd`), and [`RssWatch`] samples its resident memory on a thread
//! during a flood. [`run_to_exit`] runs the binary with flags and environment of a test's choosing and collects how
//! it exits, for command lines that must be refused before anything starts.
//!
//! Both start the binary without the test process's own `CONSUL_*` and `CONSULAR_*` variables (a developer's shell
//! often has `CONSUL_HTTP_ADDR` or `CONSUL_HTTP_TOKEN` set), so a test's settings are exactly the ones it gives.
//!
//! `--debug` is always on: it makes the bridge log every request it sends and its answer, which is what one needs
//! to read a failure. It changes nothing else.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
        Self::start_with(
            || Command::new(env!("CARGO_BIN_EXE_consular")),
            marathon,
            consul,
            extra,
        )
    }

    /// [`Consular::start`] with the command `launch` returns (another binary, or this one under a wrapper such as
    /// `chroot ROOT /consular`); the flags are appended to its arguments.
    pub fn start_with(
        launch: impl Fn() -> Command,
        marathon: &str,
        consul: &str,
        extra: &[&str],
    ) -> Consular {
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
            let child = without_our_variables(launch())
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

    /// The callback URL it subscribes at Marathon: with its `--registration-id` (default `consular`) and, if given
    /// as a value rather than `@FILE`, its `--events-secret`.
    pub fn callback_url(&self) -> String {
        let registration_id = self.flag_value("--registration-id").unwrap_or("consular");
        let secret = self
            .flag_value("--events-secret")
            .filter(|s| !s.starts_with('@'));
        consular_core::encoding::callback_url(
            "http",
            "127.0.0.1",
            self.port,
            registration_id,
            secret,
        )
    }

    /// The value given to `flag` (as `--flag value`), if it was.
    fn flag_value(&self, flag: &str) -> Option<&str> {
        self.args
            .windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1].as_str())
    }

    /// `POST /events` with `body` → (status, body as text).
    pub fn post_event(&self, body: &[u8]) -> (u16, String) {
        let (status, body) = consul::request(self.addr(), "POST", "/events", body)
            .unwrap_or_else(|e| panic!("POST /events to consular: {e}\n{}", self.log_tail(20)));
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("consular is running").id()
    }

    /// Resident memory now (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        proc_status_bytes(self.pid(), "VmRSS:")
    }

    /// The most resident memory the process has had since it started (`VmHWM`, the kernel's high-water mark), in
    /// bytes: what "stayed under N throughout" needs, with no sample to miss a spike.
    pub fn peak_rss_bytes(&self) -> u64 {
        proc_status_bytes(self.pid(), "VmHWM:")
    }

    /// File descriptors the process has open now (entries of `/proc/<pid>/fd`).
    pub fn open_fds(&self) -> usize {
        let dir = format!("/proc/{}/fd", self.pid());
        fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
            .count()
    }

    /// Starts sampling the process's resident memory every 20 ms on a thread; see [`RssWatch`].
    pub fn watch_rss(&self) -> RssWatch {
        RssWatch::start(self.pid())
    }

    /// Panics (with the log) unless `GET /` answers 200 within 10 s on a new connection.
    pub fn assert_serving(&self) {
        match consul::request_with_timeout(self.addr(), "GET", "/", b"", Duration::from_secs(10)) {
            Ok((200, _)) => {}
            other => panic!(
                "GET / on consular: expected 200, got {other:?}\n{}",
                self.log_tail(TAIL_LINES)
            ),
        }
    }

    /// Log lines (so far) that contain `needle`.
    pub fn log_lines_with(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// The log file's size in bytes now.
    pub fn log_bytes(&self) -> u64 {
        fs::metadata(&self.log).map_or(0, |m| m.len())
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

    /// Kills the process (SIGKILL) and reaps it: a crash, with no chance to clean up.
    pub fn kill(&mut self) {
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

/// A number of bytes from a `/proc/<pid>/status` line such as `VmRSS:     1234 kB`.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {path}"));
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {line:?}: {e}"));
    kib * 1024
}

/// Samples a process's resident memory (`VmRSS`) every 20 ms on a thread until [`RssWatch::stop`], which returns the
/// largest sample. For watching a flood as it happens; [`Consular::peak_rss_bytes`] is the kernel's own maximum.
pub struct RssWatch {
    stop: Arc<AtomicBool>,
    sampler: Option<thread::JoinHandle<u64>>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let sampler = thread::spawn(move || {
            let mut max = 0;
            while !stopped.load(Ordering::Relaxed) {
                // The process may be gone (a test about to fail on that); the samples so far stand.
                let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                    break;
                };
                let rss = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .map_or(0, |kib| kib * 1024);
                max = max.max(rss);
                thread::sleep(Duration::from_millis(20));
            }
            max
        });
        RssWatch {
            stop,
            sampler: Some(sampler),
        }
    }

    /// Stops sampling; the largest `VmRSS` seen, in bytes.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.take().and_then(|s| s.join().ok()).unwrap_or(0)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How a run of the binary ended: its status and everything it wrote.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `consular` with exactly `args` (nothing added) and the environment variables `env` set on top of the test's
/// own, waits up to `timeout` for it to exit, and returns how it did. Panics if it is still running then (it is
/// killed first). For command lines that must be refused at once.
pub fn run_to_exit<K, V>(args: &[&str], env: &[(K, V)], timeout: Duration) -> Exited
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut child = consular_command()
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning consular: {e}"));
    // Read on threads, so a chatty child cannot block on a full pipe while we wait for it.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for consular") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("consular {args:?} was still running after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Exited {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The `consular` binary, with none of the variables it reads inherited from this process.
fn consular_command() -> Command {
    without_our_variables(Command::new(env!("CARGO_BIN_EXE_consular")))
}

/// `command` without the `CONSUL_*` and `CONSULAR_*` variables of this process (a developer's own).
fn without_our_variables(mut command: Command) -> Command {
    for (name, _) in std::env::vars_os() {
        let ours = name
            .to_str()
            .is_some_and(|name| name.starts_with("CONSUL_") || name.starts_with("CONSULAR_"));
        if ours {
            command.env_remove(name);
        }
    }
    command
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
