//! # Keeping Consul in step with a JSON file, on the Consul engine alone
//!
//! Another source than Marathon, to show that the Consul side ([`ConsulEngine`]) stands on its
//! own: the services in a file become Consul services on their hosts' agents, its labels KV
//! entries under `consular/<service>/`, and what leaves the file leaves Consul, with the
//! bridge's rules (ownership tags, marks on KV keys, purge per node, bounded requests).
//!
//! ```json
//! {"services": [{"id": "web-1", "name": "web", "host": "127.0.0.2", "port": 8080}],
//!  "labels": {"web": {"owner": "team-a"}}}
//! ```
//!
//! ```text
//! CONSUL=127.0.0.1:8500 cargo run -p consular-core --example file_sync -- services.json
//! ```
//!
//! It syncs at start and whenever the file changes (checked every second). The driver is a plain
//! blocking loop with one `std::net` connection per request, `http://` only: the shape of a
//! driver, following the crate's driver contract (response limits, timeouts, one input at a
//! time); the `consular` binary is the real one. A name in the file must be a Marathon-style
//! app name (`a-z`, `0-9`, `-`), as it becomes the app id `/<name>` in the ownership tag.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use consular_core::consul::Registration;
use consular_core::plan::{DesiredService, DesiredState};
use consular_core::{Config, ConsulEngine, Output, Request, Response, Target, TransportError};
use serde_json::Value;

/// The registration id of the services this example writes.
pub const REGISTRATION_ID: &str = "file-sync";

fn main() {
    let path = std::env::args().nth(1).expect("usage: file_sync FILE");
    let consul = std::env::var("CONSUL").unwrap_or_else(|_| "127.0.0.1:8500".into());
    let mut bridge = FileBridge::new(&consul);
    let mut seen: Option<SystemTime> = None;
    loop {
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if modified != seen {
            seen = modified;
            match std::fs::read_to_string(&path).map_err(|e| e.to_string()) {
                Ok(text) => match bridge.sync(&text) {
                    Ok(()) => eprintln!("synced {path}"),
                    Err(e) => eprintln!("{path}: {e}"),
                },
                Err(e) => eprintln!("{path}: {e}"),
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The engine and where Consul is.
pub struct FileBridge {
    engine: ConsulEngine,
    /// `host:port` of the main Consul; agents are reached on the same port.
    consul: String,
    started: Instant,
}

impl FileBridge {
    /// A bridge writing to the Consul at `consul` (`host:port`).
    pub fn new(consul: &str) -> Self {
        let config = Config {
            registration_id: REGISTRATION_ID.into(),
            purge: true,
            ..Config::default()
        };
        FileBridge {
            engine: ConsulEngine::new(config, Duration::ZERO),
            consul: consul.into(),
            started: Instant::now(),
        }
    }

    /// Makes Consul hold the services and labels of `file` (its text), and returns when every
    /// request of the sync is answered.
    pub fn sync(&mut self, file: &str) -> Result<(), String> {
        let desired = desired_from_file(file)?;
        self.engine.sync(self.started.elapsed(), desired);
        let mut pending: Vec<Request> = Vec::new();
        loop {
            match self.engine.poll_output() {
                Output::Request(request) => pending.push(request),
                Output::Log(record) => eprintln!("{:?}: {}", record.level, record.message),
                Output::Timeout(_) if pending.is_empty() && !self.engine.is_syncing() => {
                    return Ok(())
                }
                // One request at a time: the engine's limits allow more, this loop keeps it plain.
                Output::Timeout(_) => match pending.pop() {
                    Some(request) => {
                        let result = self.send(&request);
                        self.engine
                            .handle_response(self.started.elapsed(), request.id, result);
                    }
                    None => self.engine.handle_timeout(self.started.elapsed()),
                },
                other => unreachable!("the engine asked for {other:?}"),
            }
        }
    }

    /// One request over a fresh connection, `HTTP/1.0` so no peer answers chunked, the body read
    /// to the end but never past `response_limit`, within the request's timeout.
    fn send(&self, request: &Request) -> Result<Response, TransportError> {
        let port = self.consul.rsplit_once(':').map_or("8500", |(_, p)| p);
        let address = match &request.target {
            Target::Agent(host) => format!("{host}:{port}"),
            Target::Consul | Target::Marathon => self.consul.clone(),
        };
        let io = |e: std::io::Error| TransportError::Io(e.to_string());
        let mut conn = TcpStream::connect(&address)
            .map_err(|e| TransportError::Connect(format!("{address}: {e}")))?;
        conn.set_read_timeout(Some(request.timeout)).map_err(io)?;
        let body = request.body.as_deref().unwrap_or_default();
        let head = format!(
            "{} {} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            request.method, request.path_and_query, body.len()
        );
        conn.write_all(head.as_bytes()).map_err(io)?;
        conn.write_all(body).map_err(io)?;
        let mut raw = Vec::new();
        let limit = request.response_limit as u64 + 16 * 1024;
        conn.take(limit + 1).read_to_end(&mut raw).map_err(io)?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
        let (Some(split), true) = (split, raw.len() as u64 <= limit) else {
            return Err(TransportError::TooLarge(request.response_limit));
        };
        let status = std::str::from_utf8(&raw[..split])
            .ok()
            .and_then(|head| head.split(' ').nth(1)?.parse().ok())
            .ok_or_else(|| TransportError::Io("not an HTTP response".into()))?;
        Ok(Response {
            status,
            body: raw[split + 4..].to_vec(),
        })
    }
}

/// The desired state of a file: `{"services": [{id, name, host, port?, tags?}], "labels":
/// {name: {label: value}}}`.
pub fn desired_from_file(text: &str) -> Result<DesiredState, String> {
    let file: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut desired = DesiredState::default();
    let field = |s: &Value, key: &str| s[key].as_str().map(String::from);
    for service in file["services"].as_array().into_iter().flatten() {
        let (Some(id), Some(name), Some(host)) = (
            field(service, "id"),
            field(service, "name"),
            field(service, "host"),
        ) else {
            return Err(format!(
                "a service needs an id, a name and a host: {service}"
            ));
        };
        let app_id = format!("/{name}");
        consular_core::marathon::ids::check_app_id(&app_id).map_err(|e| format!("{name}: {e}"))?;
        let ports: Vec<u16> = service["port"]
            .as_u64()
            .and_then(|p| p.try_into().ok())
            .into_iter()
            .collect();
        let mut registration = Registration::for_task(REGISTRATION_ID, &app_id, &id, &host, &ports);
        let tags = service["tags"].as_array().into_iter().flatten();
        registration
            .tags
            .extend(tags.filter_map(|t| t.as_str().map(String::from)));
        let agent = host.to_ascii_lowercase();
        desired.insert_service(DesiredService {
            agent,
            registration,
        });
    }
    for (name, labels) in file["labels"].as_object().into_iter().flatten() {
        for (label, value) in labels.as_object().into_iter().flatten() {
            desired.insert_label(name, label, value.as_str().unwrap_or_default());
        }
    }
    Ok(desired)
}
