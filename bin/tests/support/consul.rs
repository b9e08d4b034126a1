//! A real Consul 1.8.7 cluster on loopback for end-to-end tests, and blocking HTTP helpers to talk to it.
//!
//! [`ConsulCluster::start(n)`](ConsulCluster::start) runs a dev-mode server on 127.0.0.1 (agent 0, node
//! `consul-server`) and `n` client agents on 127.0.0.2, 127.0.0.3 … (agent `i`, node `agent-{i+1}`), all on one
//! HTTP port, which is the layout consular expects: it reaches the agent of each task's host at
//! `node.Address:<port>`. The binary comes from `CONSUL_BIN`, or from `.cache/consul-1.8.7/consul` in the repo,
//! which `.ci/fetch-consul` fills. Dropping the cluster kills every agent it started, also when a test panics.
//! [`ConsulCluster::start_with`] adds TLS (an HTTPS port requiring client certificates) and/or ACLs (default deny)
//! to every agent ([`ClusterConfig`]); the plain HTTP port stays, and the helpers below keep using it.
//!
//! The HTTP helpers ([`get`], [`put`], [`delete`], [`request`]) are blocking, over `std::net::TcpStream`: HTTP/1.1
//! with `Connection: close`, read to EOF, chunked bodies decoded; the bytes are written and parsed by the
//! workspace's one HTTP/1.1 helper, `consular_adapters::simulator::http1`. They return `io::Result`, so a test can assert that
//! a stopped agent refuses connections; the JSON conveniences ([`get_json`], [`agent_services`], the cluster's
//! `kv_*` and `catalog_*` methods) panic with the status and body on anything unexpected.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consular_adapters::simulator::http1;
use serde_json::Value;

/// The Consul version the tests are written against (what Debian bullseye ships).
pub const CONSUL_VERSION: &str = "1.8.7";

/// How long `start`, `start_agent` and the waits inside them may take before the test fails.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous, so a blocking query with a short `?wait=` still fits; a hung agent still fails the test.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
/// Readiness polls give up fast: on a port clash the address may belong to a process that never answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Port clashes with other processes are rare (ports are probed first); a few retries cover the races.
const START_ATTEMPTS: usize = 5;
/// Ports are drawn from below Linux's ephemeral range (32768+), so outgoing connections never take them.
const PORT_RANGE: std::ops::Range<u16> = 20000..32000;

/// Ports handed out in this test process. Tests run in parallel threads; this keeps two clusters of one process
/// from drawing the same port between one's probe and its agents' bind.
static TAKEN_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());
static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The Consul binary to run: `$CONSUL_BIN`, else `<repo>/.cache/consul-1.8.7/consul`; panics when neither exists.
pub fn consul_bin() -> PathBuf {
    fetched_tool(
        "CONSUL_BIN",
        &format!("consul-{CONSUL_VERSION}/consul"),
        "Consul 1.8.7 not found: run .ci/fetch-consul (or set CONSUL_BIN)",
    )
}

/// A tool the `.ci/fetch-*` scripts fetch: the file `$var` names, else `<repo>/.cache/<cached>`; panics with `hint`
/// when neither is a file.
pub fn fetched_tool(var: &str, cached: &str, hint: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "{hint}; {var}={} is not a file",
            bin.display()
        );
        return bin;
    }
    // CARGO_MANIFEST_DIR is bin/, whose parent is the repo root.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.cache")
        .join(cached);
    assert!(path.is_file(), "{hint}; looked for {}", path.display());
    path
}

#[derive(Clone, Copy, Debug)]
struct Ports {
    http: u16,
    serf_lan: u16,
    serf_wan: u16,
    server: u16,
    /// Drawn only for a cluster with [`ClusterConfig::tls`].
    https: Option<u16>,
}

/// What a cluster's agents run with beyond the defaults (plain HTTP, no ACLs). Every agent gets the same.
#[derive(Clone, Debug, Default)]
pub struct ClusterConfig {
    /// Also serve HTTPS on a port of its own ([`ConsulCluster::https_url`]), with these files.
    pub tls: Option<ClusterTls>,
    /// Enable ACLs with `default_policy = "deny"` and this master token (a UUID).
    pub acl_master: Option<String>,
}

/// The PEM files of a cluster's TLS: every agent presents `cert_file` (so it must name every agent's IP, and be
/// usable for client auth too: agents present it to each other) and trusts `ca_file`.
#[derive(Clone, Debug)]
pub struct ClusterTls {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl ClusterConfig {
    /// The agents' config file (JSON) for `ports`.
    ///
    /// TLS: HTTPS with `verify_incoming`, so an https client without a certificate signed by the CA is refused;
    /// `verify_outgoing`, so the agents speak TLS to each other too. The plain HTTP port stays open for this
    /// helper's own requests.
    ///
    /// ACLs: the master token is also the agents' own token and the `default` token, the one Consul uses for a
    /// request that carries none. That keeps this helper's requests (which carry none) working; the bridge always
    /// sends its `--consul-token`, so for it only that token's policy counts.
    fn agent_config(&self, ports: Ports) -> Option<Value> {
        let mut config = serde_json::Map::new();
        if let Some(tls) = &self.tls {
            let https = ports.https.expect("a TLS cluster has an HTTPS port");
            config.insert("ports".into(), serde_json::json!({ "https": https }));
            config.insert("verify_incoming".into(), true.into());
            config.insert("verify_outgoing".into(), true.into());
            for (name, path) in [
                ("ca_file", &tls.ca_file),
                ("cert_file", &tls.cert_file),
                ("key_file", &tls.key_file),
            ] {
                config.insert(name.into(), path.display().to_string().into());
            }
        }
        if let Some(master) = &self.acl_master {
            config.insert("primary_datacenter".into(), "dc1".into());
            config.insert(
                "acl".into(),
                serde_json::json!({
                    "enabled": true,
                    "default_policy": "deny",
                    "down_policy": "extend-cache",
                    "tokens": { "master": master, "agent": master, "default": master },
                }),
            );
        }
        (!config.is_empty()).then_some(Value::Object(config))
    }
}

struct Agent {
    ip: Ipv4Addr,
    node: String,
    /// Everything after the binary, kept so `start_agent` restarts it exactly as it first ran.
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// One KV entry as `?recurse` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    /// The opaque `Flags` a writer set (consular puts its registration id's mark here).
    pub flags: u64,
    /// The value, base64-encoded as Consul lists it; `None` for a null value.
    pub value: Option<String>,
    /// Raft index of the last write.
    pub modify_index: u64,
}

/// What a cluster holds at one moment; see [`ConsulCluster::snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConsulSnapshot {
    /// The catalog's (node name, address) pairs.
    pub nodes: Vec<(String, String)>,
    /// (node name, `/v1/agent/services`) of every running agent.
    pub services: Vec<(String, Value)>,
    /// Every KV entry.
    pub kv: Vec<KvEntry>,
}

/// Why a start attempt failed: a port taken by someone else is worth another try on fresh ports.
enum StartError {
    PortClash(String),
    Fatal(String),
}

/// A Consul dev server plus client agents on loopback; see the module doc. Agent 0 is the server.
pub struct ConsulCluster {
    bin: PathBuf,
    ports: Ports,
    /// Temp dir holding each agent's log file and each client's data dir.
    dir: PathBuf,
    agents: Vec<Agent>,
    /// Set when a start failed, so the logs named in the panic message are still there to read.
    keep_dir: bool,
}

impl ConsulCluster {
    /// Starts a dev server on 127.0.0.1 and `n_clients` client agents on 127.0.0.2 …, all on one free HTTP port,
    /// and returns once the server has a leader, every client knows it, and the catalog lists all `n_clients + 1`
    /// nodes. Panics (with the tail of every agent's log) if that takes longer than [`START_DEADLINE`].
    pub fn start(n_clients: usize) -> ConsulCluster {
        Self::start_with(n_clients, &ClusterConfig::default())
    }

    /// [`start`](Self::start) with TLS and/or ACLs on every agent, as `config` says.
    pub fn start_with(n_clients: usize, config: &ClusterConfig) -> ConsulCluster {
        assert!(
            n_clients <= 250,
            "at most 250 client agents (127.0.0.2 … 127.0.0.251)"
        );
        let bin = consul_bin();
        let began = Instant::now();
        let mut clashes = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let ports = pick_ports(n_clients + 1, config.tls.is_some());
            match Self::try_start(&bin, ports, n_clients, config) {
                Ok(cluster) => {
                    eprintln!(
                        "consul cluster: server + {n_clients} clients up on HTTP port {} in {:?}",
                        ports.http,
                        began.elapsed()
                    );
                    return cluster;
                }
                Err(StartError::PortClash(why)) => clashes.push(why),
                Err(StartError::Fatal(why)) => panic!("{why}"),
            }
        }
        panic!(
            "consul cluster: {START_ATTEMPTS} start attempts all hit a port clash:\n{}",
            clashes.join("\n")
        );
    }

    fn try_start(
        bin: &Path,
        ports: Ports,
        n_clients: usize,
        config: &ClusterConfig,
    ) -> Result<ConsulCluster, StartError> {
        let dir = new_temp_dir();
        // One file for all: every agent gets the same TLS and ACL settings.
        let config_file = config.agent_config(ports).map(|agent_config| {
            let path = dir.join("agent-config.json");
            fs::write(&path, agent_config.to_string())
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            path
        });
        let with_config = |mut args: Vec<String>| {
            if let Some(path) = &config_file {
                args.push("-config-file".to_string());
                args.push(path.display().to_string());
            }
            args
        };
        let mut agents = vec![Agent {
            ip: Ipv4Addr::LOCALHOST,
            node: "consul-server".to_string(),
            args: with_config(server_args(ports)),
            log: dir.join("consul-server.log"),
            child: None,
        }];
        for i in 1..=n_clients {
            let ip = agent_ip(i);
            let node = format!("agent-{}", i + 1);
            let data_dir = dir.join(&node);
            agents.push(Agent {
                args: with_config(client_args(ports, ip, &node, &data_dir)),
                log: dir.join(format!("{node}.log")),
                ip,
                node,
                child: None,
            });
        }
        // Built first so that, whatever fails below, Drop kills what was started.
        let mut cluster = ConsulCluster {
            bin: bin.to_path_buf(),
            ports,
            dir,
            agents,
            keep_dir: false,
        };

        // Server first: clients join it, and their retry loop would otherwise spin against a closed port.
        cluster.spawn(0)?;
        cluster.wait_for("the dev server to elect itself leader", &[0], |c| {
            has_leader(c.agent_addr(0))
        })?;
        for i in 1..=n_clients {
            cluster.spawn(i)?;
        }
        let all: Vec<usize> = (0..=n_clients).collect();
        cluster.wait_for(
            &format!("all {} nodes in /v1/catalog/nodes", n_clients + 1),
            &all,
            |c| {
                (1..=n_clients).all(|i| has_leader(c.agent_addr(i)))
                    && try_catalog_nodes(c.agent_addr(0)).is_some_and(|n| n.len() == n_clients + 1)
            },
        )?;
        Ok(cluster)
    }

    /// The one HTTP port every agent listens on (each on its own address).
    pub fn http_port(&self) -> u16 {
        self.ports.http
    }

    /// `https://127.0.0.1:<port>`: the dev server's HTTPS API; panics for a cluster without TLS.
    pub fn https_url(&self) -> String {
        let port = self
            .ports
            .https
            .expect("a cluster started with ClusterConfig::tls");
        format!("https://127.0.0.1:{port}")
    }

    /// For a cluster with ACLs: creates a policy of each `(name, rules)` (Consul 1.8 HCL rules) and a token with all
    /// of them, and returns the token's secret. Sent with the default token, which is the master token.
    pub fn acl_token(&self, policies: &[(&str, &str)]) -> String {
        let server = self.agent_addr(0);
        for (name, rules) in policies {
            let body = serde_json::json!({ "Name": name, "Rules": rules });
            let (status, text) =
                put(server, "/v1/acl/policy", body.to_string()).expect("PUT /v1/acl/policy");
            assert_eq!(status, 200, "creating ACL policy {name}: {text}");
        }
        let names: Vec<Value> = policies
            .iter()
            .map(|(name, _)| serde_json::json!({ "Name": name }))
            .collect();
        let body = serde_json::json!({ "Description": "consular test", "Policies": names });
        let (status, text) =
            put(server, "/v1/acl/token", body.to_string()).expect("PUT /v1/acl/token");
        assert_eq!(status, 200, "creating an ACL token: {text}");
        let token: Value = serde_json::from_str(&text).expect("the token as JSON");
        token["SecretID"].as_str().expect("a SecretID").to_string()
    }

    /// `http://127.0.0.1:<port>`: the dev server's HTTP API.
    pub fn server_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.http)
    }

    /// Agent `i`'s HTTP address: 127.0.0.1 for the server (`i == 0`), 127.0.0.(1+i) for client `i`.
    pub fn agent_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.agent(i).ip, self.ports.http))
    }

    /// Agent `i`'s IP address, which is also its node's `Address` in the catalog.
    pub fn agent_ip(&self, i: usize) -> Ipv4Addr {
        self.agent(i).ip
    }

    /// `http://127.0.0.(1+i):<port>`.
    pub fn agent_url(&self, i: usize) -> String {
        format!("http://{}", self.agent_addr(i))
    }

    /// Agent `i`'s node name: `consul-server` for 0, `agent-{i+1}` for clients (so the name ends in the last octet).
    pub fn node_name(&self, i: usize) -> &str {
        &self.agent(i).node
    }

    /// Number of agents: the server plus the clients.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Agent `i`'s log file (stdout and stderr; restarts append to it).
    pub fn log_path(&self, i: usize) -> &Path {
        &self.agent(i).log
    }

    /// Kills client agent `i` with SIGKILL, as a crash would, and waits until it has exited, so its address refuses
    /// connections from then on. It does not leave the cluster: the server marks the node failed after a few seconds,
    /// and its catalog entries stay. Its data dir stays too, for [`start_agent`](Self::start_agent).
    pub fn stop_agent(&mut self, i: usize) {
        self.assert_client(i);
        let agent = &mut self.agents[i];
        let mut child = agent
            .child
            .take()
            .unwrap_or_else(|| panic!("agent {i} ({}) is not running", agent.node));
        // An error here means it already exited, which is the state we want.
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Restarts client agent `i` on the same address, ports and data dir, and waits until it serves HTTP again, knows
    /// the leader, and the server sees its node's `serfHealth` as passing.
    pub fn start_agent(&mut self, i: usize) {
        self.assert_client(i);
        assert!(
            self.agents[i].child.is_none(),
            "agent {i} is already running"
        );
        let began = Instant::now();
        let node = self.agents[i].node.clone();
        let result = self.spawn(i).and_then(|()| {
            self.wait_for(&format!("{node} to rejoin"), &[0, i], |c| {
                has_leader(c.agent_addr(i))
                    && serf_health(c.agent_addr(0), &node).as_deref() == Some("passing")
            })
        });
        match result {
            Ok(()) => eprintln!("consul cluster: {node} rejoined in {:?}", began.elapsed()),
            Err(StartError::PortClash(why) | StartError::Fatal(why)) => {
                self.keep_dir = true;
                panic!("{why}")
            }
        }
    }

    /// The server's view of agent `i`'s liveness: the status of its node's `serfHealth` check (`"passing"`, or
    /// `"critical"` a few seconds after the agent died), `None` if unknown.
    pub fn serf_health(&self, i: usize) -> Option<String> {
        serf_health(self.agent_addr(0), self.node_name(i))
    }

    /// `GET /v1/catalog/nodes` on the server as (node name, address) pairs, in Consul's order (sorted by name).
    pub fn catalog_nodes(&self) -> Vec<(String, String)> {
        try_catalog_nodes(self.agent_addr(0)).expect("GET /v1/catalog/nodes on the server failed")
    }

    /// `GET /v1/catalog/service/<name>` on the server: one JSON object per instance (`Node`, `ServiceID`, …).
    pub fn catalog_service(&self, name: &str) -> Vec<Value> {
        let path = format!("/v1/catalog/service/{}", encode_path(name));
        match get_json(self.agent_addr(0), &path) {
            Value::Array(instances) => instances,
            other => panic!("GET {path}: expected an array, got {other}"),
        }
    }

    /// The raw value of `key` (`GET /v1/kv/<key>?raw`), or `None` when the key does not exist.
    pub fn kv_get_raw(&self, key: &str) -> Option<Vec<u8>> {
        let path = format!("/v1/kv/{}?raw", encode_path(key));
        let (status, body) = request(self.agent_addr(0), "GET", &path, b"")
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        match status {
            200 => Some(body),
            404 => None,
            _ => panic!("GET {path}: {status} {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Stores `value` at `key` (`PUT /v1/kv/<key>`), for seeding state consular reads.
    pub fn kv_put(&self, key: &str, value: impl AsRef<[u8]>) {
        let path = format!("/v1/kv/{}", encode_path(key));
        let (status, body) =
            put(self.agent_addr(0), &path, value).unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        // The agent answers `true` plus a newline.
        assert_eq!((status, body.trim()), (200, "true"), "PUT {path}");
    }

    /// All keys starting with `prefix` (`GET /v1/kv/<prefix>?keys`; a plain string prefix, so `a/b` also
    /// matches `a/bc`). Empty when none match.
    pub fn kv_keys(&self, prefix: &str) -> Vec<String> {
        let path = format!("/v1/kv/{}?keys", encode_path(prefix));
        let (status, body) =
            get(self.agent_addr(0), &path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        match status {
            200 => {
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e} in {body}"))
            }
            404 => Vec::new(),
            _ => panic!("GET {path}: {status} {body}"),
        }
    }

    /// Every KV entry whose key starts with `prefix` (`GET /v1/kv/<prefix>?recurse`), in key order, with the
    /// `Flags` and `ModifyIndex` that show who wrote it and whether it was written again. Empty when none match.
    pub fn kv_entries(&self, prefix: &str) -> Vec<KvEntry> {
        let path = format!("/v1/kv/{}?recurse", encode_path(prefix));
        let (status, body) =
            get(self.agent_addr(0), &path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let entries: Vec<Value> = match status {
            200 => {
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e} in {body}"))
            }
            404 => Vec::new(),
            _ => panic!("GET {path}: {status} {body}"),
        };
        entries
            .iter()
            .map(|e| KvEntry {
                key: e["Key"].as_str().expect("a KV entry has a Key").to_string(),
                flags: e["Flags"].as_u64().expect("a KV entry has Flags"),
                value: e["Value"].as_str().map(String::from),
                modify_index: e["ModifyIndex"]
                    .as_u64()
                    .expect("a KV entry has a ModifyIndex"),
            })
            .collect()
    }

    /// Whether agent `i` is running (not stopped with [`stop_agent`](Self::stop_agent)).
    pub fn is_running(&self, i: usize) -> bool {
        self.agent(i).child.is_some()
    }

    /// Adds a node the catalog lists but no agent runs for (`PUT /v1/catalog/register` on the server), as an
    /// external service's node would be: it has no `serfHealth` check, so nothing marks it failed.
    pub fn catalog_register_node(&self, node: &str, address: &str) {
        let body = serde_json::json!({"Node": node, "Address": address}).to_string();
        let (status, text) = put(self.agent_addr(0), "/v1/catalog/register", body)
            .unwrap_or_else(|e| panic!("PUT /v1/catalog/register: {e}"));
        assert_eq!(
            (status, text.trim()),
            (200, "true"),
            "PUT /v1/catalog/register {node}"
        );
    }

    /// What the cluster holds now, for "nothing changed" checks: the catalog's nodes, every running agent's
    /// services, and the whole KV store with flags and modify indexes (so a rewrite of an equal value shows too).
    pub fn snapshot(&self) -> ConsulSnapshot {
        ConsulSnapshot {
            nodes: self.catalog_nodes(),
            services: (0..self.agents.len())
                .filter(|&i| self.is_running(i))
                .map(|i| {
                    (
                        self.node_name(i).to_string(),
                        agent_services(self.agent_addr(i)),
                    )
                })
                .collect(),
            kv: self.kv_entries(""),
        }
    }

    fn agent(&self, i: usize) -> &Agent {
        self.agents.get(i).unwrap_or_else(|| {
            panic!(
                "no agent {i}: this cluster has agents 0..{} (0 is the server)",
                self.agents.len()
            )
        })
    }

    fn assert_client(&self, i: usize) {
        // The dev server keeps its state in memory, so a restarted one would be a different, empty cluster.
        assert!(
            i >= 1 && i < self.agents.len(),
            "stop_agent/start_agent take a client agent, 1..{}; agent 0 is the dev server",
            self.agents.len()
        );
    }

    fn spawn(&mut self, i: usize) -> Result<(), StartError> {
        let fatal =
            |what: &str, e: io::Error| StartError::Fatal(format!("consul cluster: {what}: {e}"));
        let agent = &mut self.agents[i];
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&agent.log)
            .map_err(|e| fatal(&format!("opening {}", agent.log.display()), e))?;
        // A marker, so the log of a restarted agent shows where each run begins.
        let _ = writeln!(log, "=== consul {}", agent.args.join(" "));
        let stderr = log
            .try_clone()
            .map_err(|e| fatal("cloning the log handle", e))?;
        let child = Command::new(&self.bin)
            .args(&agent.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| fatal(&format!("spawning {}", self.bin.display()), e))?;
        agent.child = Some(child);
        Ok(())
    }

    /// Polls `ready` until it holds. Fails early if one of `watch`ed agents exits (a port clash, if its log says so),
    /// or after [`START_DEADLINE`]; either way the error carries every agent's log tail.
    fn wait_for(
        &mut self,
        what: &str,
        watch: &[usize],
        mut ready: impl FnMut(&Self) -> bool,
    ) -> Result<(), StartError> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            for &i in watch {
                let agent = &mut self.agents[i];
                let Some(child) = agent.child.as_mut() else {
                    continue;
                };
                let exited = child.try_wait().ok().flatten();
                // Consul 1.8.7 logs "Error starting agent" and keeps running when it cannot bind its HTTP port, so
                // the log is watched as well as the process.
                let log = current_run_log(&agent.log);
                if exited.is_none() && !log.contains("Error starting agent") {
                    continue;
                }
                if exited.is_some() {
                    agent.child = None;
                }
                let how = exited.map_or("failed to start".to_string(), |s| format!("exited ({s})"));
                let node = agent.node.clone();
                let why = format!(
                    "consul cluster: {node} {how} while waiting for {what}\n{}",
                    self.log_tails()
                );
                return Err(if log.contains("address already in use") {
                    StartError::PortClash(why)
                } else {
                    self.keep_dir = true;
                    StartError::Fatal(why)
                });
            }
            if ready(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.keep_dir = true;
                return Err(StartError::Fatal(format!(
                    "consul cluster: timed out after {START_DEADLINE:?} waiting for {what}\n{}",
                    self.log_tails()
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// The last lines of each agent's log, for failure messages.
    fn log_tails(&self) -> String {
        let mut out = format!("agent logs are in {}\n", self.dir.display());
        for agent in &self.agents {
            let text =
                fs::read_to_string(&agent.log).unwrap_or_else(|e| format!("(unreadable: {e})"));
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            out.push_str(&format!("--- {} ({}):\n", agent.node, agent.log.display()));
            for line in tail {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for ConsulCluster {
    fn drop(&mut self) {
        // Kill them all before waiting on any, so they go down together.
        let mut children: Vec<Child> = self
            .agents
            .iter_mut()
            .filter_map(|a| a.child.take())
            .collect();
        for child in &mut children {
            let _ = child.kill();
        }
        for child in &mut children {
            let _ = child.wait();
        }
        if self.keep_dir || thread::panicking() {
            eprintln!("consul cluster: agent logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The part of an agent's log written by its latest run (each run starts with a `=== consul` marker line).
fn current_run_log(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    match text.rfind("=== consul ") {
        Some(at) => text[at..].to_string(),
        None => text,
    }
}

fn agent_ip(i: usize) -> Ipv4Addr {
    let last = u8::try_from(i + 1).expect("agent index fits in the last octet");
    Ipv4Addr::new(127, 0, 0, last)
}

fn server_args(p: Ports) -> Vec<String> {
    let args = format!(
        "agent -dev -node consul-server -bind 127.0.0.1 -client 127.0.0.1 -http-port {} -dns-port -1 \
         -grpc-port -1 -serf-lan-port {} -serf-wan-port {} -server-port {} -log-level warn",
        p.http, p.serf_lan, p.serf_wan, p.server
    );
    args.split_whitespace().map(String::from).collect()
}

fn client_args(p: Ports, ip: Ipv4Addr, node: &str, data_dir: &Path) -> Vec<String> {
    // -retry-interval 1s: the default 30 s would stall a restarted agent that tried to join too early.
    let args = format!(
        "agent -node {node} -bind {ip} -advertise {ip} -client {ip} -http-port {} -dns-port -1 -grpc-port -1 \
         -serf-lan-port {} -retry-join 127.0.0.1:{} -retry-interval 1s -log-level warn -data-dir",
        p.http, p.serf_lan, p.serf_lan
    );
    let mut args: Vec<String> = args.split_whitespace().map(String::from).collect();
    // Last and separate, so a temp path with spaces stays one argument.
    args.push(data_dir.display().to_string());
    args
}

/// A fresh, empty temp dir unique to this process and call.
fn new_temp_dir() -> PathBuf {
    let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("consular-consul-{}-{n}", std::process::id()));
    // A leftover from an earlier process with the same pid would mix old logs and data in.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Four distinct ports, each bindable where the agents will bind it: HTTP (TCP) on every agent's address, serf LAN
/// (TCP and UDP) on every agent's address, serf WAN (TCP and UDP) and server RPC (TCP) on 127.0.0.1; and with
/// `https`, a fifth for HTTPS (TCP) on every agent's address.
fn pick_ports(n_agents: usize, https: bool) -> Ports {
    let ips: Vec<Ipv4Addr> = (0..n_agents).map(agent_ip).collect();
    let server = [Ipv4Addr::LOCALHOST];
    let mut taken = TAKEN_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = seed();
    let mut draw = |ips: &[Ipv4Addr], udp: bool| -> u16 {
        for _ in 0..10_000 {
            let port = PORT_RANGE.start
                + (next(&mut rng) % u64::from(PORT_RANGE.end - PORT_RANGE.start)) as u16;
            if !taken.contains(&port) && ips.iter().all(|&ip| port_free(ip, port, udp)) {
                taken.push(port);
                return port;
            }
        }
        panic!("consul cluster: found no free port in {PORT_RANGE:?}");
    };
    Ports {
        http: draw(&ips, false),
        serf_lan: draw(&ips, true),
        serf_wan: draw(&server, true),
        server: draw(&server, false),
        https: https.then(|| draw(&ips, false)),
    }
}

/// Whether `port` can be bound on `ip` right now (TCP, and UDP too when asked). Racy by nature: the start retries.
fn port_free(ip: Ipv4Addr, port: u16, udp: bool) -> bool {
    TcpListener::bind((ip, port)).is_ok() && (!udp || UdpSocket::bind((ip, port)).is_ok())
}

/// A per-call seed, so parallel threads and processes draw different ports.
fn seed() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let s = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ CALLS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    s | 1
}

/// xorshift64: good enough to scatter port numbers, and no extra crate.
fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// A readiness poll: the body of `GET path` if it answers 200 within [`PROBE_TIMEOUT`].
fn probe(addr: SocketAddr, path: &str) -> Option<String> {
    match text(request_with_timeout(addr, "GET", path, b"", PROBE_TIMEOUT)) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

fn has_leader(addr: SocketAddr) -> bool {
    // The body is a JSON string: `"127.0.0.1:<server port>"` once there is a leader, `""` before.
    probe(addr, "/v1/status/leader").is_some_and(|body| body.trim().len() > 2)
}

fn try_catalog_nodes(addr: SocketAddr) -> Option<Vec<(String, String)>> {
    let nodes: Vec<Value> = serde_json::from_str(&probe(addr, "/v1/catalog/nodes")?).ok()?;
    nodes
        .iter()
        .map(|n| {
            Some((
                n["Node"].as_str()?.to_string(),
                n["Address"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The status (`passing`, `critical`, …) of `node`'s `serfHealth` check as the server sees it; `None` if the server
/// did not answer or lists no such check.
fn serf_health(server: SocketAddr, node: &str) -> Option<String> {
    let body = probe(server, &format!("/v1/health/node/{}", encode_path(node)))?;
    let checks: Vec<Value> = serde_json::from_str(&body).ok()?;
    let check = checks.iter().find(|c| c["CheckID"] == "serfHealth")?;
    Some(check["Status"].as_str()?.to_string())
}

/// Polls `ready` every 50 ms until it returns true; panics with `what` after `timeout`. For waiting on
/// eventually-consistent state, such as the catalog catching up with an agent.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(POLL);
    }
}

/// `GET addr path` → (status, body as text).
pub fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    text(request(addr, "GET", path, b""))
}

/// `PUT addr path` with `body` → (status, body as text).
pub fn put(addr: SocketAddr, path: &str, body: impl AsRef<[u8]>) -> io::Result<(u16, String)> {
    text(request(addr, "PUT", path, body.as_ref()))
}

/// `DELETE addr path` → (status, body as text).
pub fn delete(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    text(request(addr, "DELETE", path, b""))
}

fn text(response: io::Result<(u16, Vec<u8>)>) -> io::Result<(u16, String)> {
    response.map(|(status, body)| (status, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET addr path`, expecting 200 and a JSON body; panics otherwise.
pub fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path).unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
    assert_eq!(status, 200, "GET {addr}{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {addr}{path}: {e} in {body}"))
}

/// `GET /v1/agent/services` on the agent at `addr`: a JSON object keyed by service ID.
pub fn agent_services(addr: SocketAddr) -> Value {
    get_json(addr, "/v1/agent/services")
}

/// One HTTP/1.1 request with `Connection: close`, the response read to EOF → (status, decoded body bytes).
/// Connection errors (refused, timed out) come back as `Err`, so tests can assert an agent is down.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    request_with_timeout(addr, method, path, body, IO_TIMEOUT)
}

/// [`request`] with a chosen read/write timeout.
pub fn request_with_timeout(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(timeout))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let host = addr.to_string();
    stream.write_all(&http1::request_bytes(
        method,
        path,
        &host,
        &[("Connection", "close")],
        body,
    ))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Splits a whole HTTP/1.1 response into (status, body), decoding `Transfer-Encoding: chunked` and honouring
/// `Content-Length`. Public so the tests can check it on hand-made responses.
pub fn parse_response(raw: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    http1::parse_response(raw)
        .map(|response| (response.status, response.body))
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad HTTP response: {e}"),
            )
        })
}

/// Percent-encodes everything but unreserved characters and `/`, so keys and names with spaces or `?` stay
/// one path.
pub fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
