//! End-to-end tests of `--ha` against a real Consul 1.8.7 cluster and the Marathon simulator:
//! three instances, exactly one leader (the holder of the lock key, the only one with Marathon's
//! event stream open, the only one that registers); standbys answer callbacks `standby`; SIGTERM
//! of the leader hands over within 2 s, SIGKILL within twice the TTL plus the lock delay plus
//! 2 s, and a change made in Marathon while nobody leads is in Consul once someone does.

mod support;

use std::time::{Duration, Instant};

use consular_sim::MarathonVersion;
use serde_json::Value;
use support::bridge::Consular;
use support::consul::wait_until;
use support::world::{run_task, Peers, AGENT_2, DEADLINE};

const KEY: &str = "service/consular/consular/leader";
const TTL_SECONDS: u64 = 10;

/// The `--instance-id` in the lock key's value, if a session holds it.
fn holder(peers: &Peers) -> Option<String> {
    let path = format!("/v1/kv/{KEY}");
    let (status, body) = support::consul::get(peers.cluster.agent_addr(0), &path).ok()?;
    if status != 200 {
        return None;
    }
    let entries: Value = serde_json::from_str(&body).ok()?;
    entries.get(0)?.get("Session").and_then(Value::as_str)?;
    let value: Value = serde_json::from_slice(&peers.cluster.kv_get_raw(KEY)?).ok()?;
    value["instance"].as_str().map(String::from)
}

/// The instance ids whose status key exists, with the role each says.
fn statuses(peers: &Peers) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = peers
        .cluster
        .kv_keys("service/consular/consular/instances/")
        .iter()
        .filter_map(|key| {
            let value: Value = serde_json::from_slice(&peers.cluster.kv_get_raw(key)?).ok()?;
            Some((
                value["instance"].as_str()?.to_string(),
                value["role"].as_str()?.to_string(),
            ))
        })
        .collect();
    found.sort();
    found
}

fn instance_id(c: &Consular) -> String {
    format!("127.0.0.1:{}", c.addr().port())
}

/// Waits until exactly one of `instances` holds the key; returns its index.
fn wait_leader(peers: &Peers, instances: &[Option<Consular>], within: Duration) -> usize {
    let mut found = None;
    wait_until("one leader", within, || {
        let held = holder(peers);
        found = instances
            .iter()
            .position(|c| held.is_some() && c.as_ref().map(instance_id) == held);
        found.is_some()
    });
    found.expect("just seen")
}

#[test]
fn three_instances_one_leader_and_handovers_on_sigterm_and_sigkill() {
    let peers = Peers::start(1, MarathonVersion::V1_10, |m| {
        m.put_app("/web", &[("a", "1")])
    });
    let ttl = TTL_SECONDS.to_string();
    let flags = [
        "--events",
        "sse",
        "--accept-callbacks",
        "--ha",
        "--ha-ttl",
        &ttl,
    ];
    let (marathon, consul) = (peers.marathon.url(), peers.cluster.server_url());
    let mut instances: Vec<Option<Consular>> = (0..3)
        .map(|_| Some(Consular::start(&marathon, &consul, &flags)))
        .collect();
    let leader = wait_leader(&peers, &instances, DEADLINE);
    // Only the leader reads Marathon's events.
    wait_until("the leader's stream", DEADLINE, || {
        peers.marathon.open_streams() == 1
    });
    let task = peers
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31000]));
    wait_until("the task registered", DEADLINE, || {
        support::consul::agent_services(peers.cluster.agent_addr(AGENT_2))
            .get(&task)
            .is_some()
    });
    // The "registered" line is written once the agent's 200 is read, a moment after the service shows.
    let registered_by = || -> Vec<usize> {
        instances
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.as_ref()
                    .is_some_and(|c| c.log_lines_with(&format!("registered {task}")) > 0)
            })
            .map(|(i, _)| i)
            .collect()
    };
    wait_until("the registration logged", DEADLINE, || {
        !registered_by().is_empty()
    });
    let registered_by = registered_by();
    assert_eq!(
        registered_by,
        [leader],
        "the event was handled once, by the leader"
    );
    let standby = (leader + 1) % 3;
    let posted = instances[standby]
        .as_ref()
        .expect("running")
        .post_event(br#"{"eventType":"status_update_event","taskStatus":"TASK_KILLED","taskId":"x.1","host":"h"}"#);
    assert_eq!(posted, (200, r#"{"status": "standby"}"#.to_string()));
    // Every instance says who it is in a status key, and registers itself as service `consular`
    // with a check on its `/` that passes.
    let mut expected: Vec<(String, String)> = instances
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let role = if i == leader { "leader" } else { "standby" };
            (instance_id(c.as_ref().expect("running")), role.to_string())
        })
        .collect();
    expected.sort();
    wait_until("three status keys", DEADLINE, || {
        statuses(&peers) == expected
    });
    wait_until("three passing consular services", DEADLINE, || {
        let passing = support::consul::get_json(
            peers.cluster.agent_addr(0),
            "/v1/health/service/consular?passing",
        );
        passing.as_array().is_some_and(|a| a.len() == 3)
    });

    // SIGTERM: the leader releases the key and a standby takes it at once.
    let mut old = instances[leader].take().expect("running");
    let sigterm = Instant::now();
    old.terminate(DEADLINE);
    let next = wait_leader(&peers, &instances, DEADLINE);
    let sigterm_handover = sigterm.elapsed();
    assert_ne!(next, leader);
    assert!(old.log_lines_with("standing down as leader: shutting down") > 0);
    assert!(
        sigterm_handover < Duration::from_secs(2),
        "SIGTERM handover took {sigterm_handover:?}"
    );
    eprintln!("SIGTERM handover: {sigterm_handover:?}");

    // SIGKILL: nobody releases anything; Consul ends the session within twice its TTL, then the
    // lock delay passes. Meanwhile Marathon changes, and the next leader's first sync sees it.
    let mut killed = instances[next].take().expect("running");
    let sigkill = Instant::now();
    killed.kill();
    let late = peers
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31001]));
    let bound = Duration::from_secs(2 * TTL_SECONDS + 1 + 2);
    let last = wait_leader(&peers, &instances, bound + Duration::from_secs(5));
    let sigkill_handover = sigkill.elapsed();
    assert!(
        sigkill_handover < bound,
        "SIGKILL handover took {sigkill_handover:?}"
    );
    eprintln!("SIGKILL handover: {sigkill_handover:?}");
    assert!(![leader, next].contains(&last));
    // The dead instances' status keys went with their sessions; the last one's says it leads.
    let last_id = instance_id(instances[last].as_ref().expect("running"));
    wait_until("one status key, the leader's", DEADLINE, || {
        statuses(&peers) == [(last_id.clone(), "leader".to_string())]
    });
    wait_until("the task started during the handover", DEADLINE, || {
        support::consul::agent_services(peers.cluster.agent_addr(AGENT_2))
            .get(&late)
            .is_some()
    });
}

/// A TCP proxy in front of every agent of a cluster, on one port of its own (the bridge reaches
/// agents on `--consul`'s port): cutting it drops every connection and refuses new ones, as a
/// partition would.
struct Partition {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Partition {
    fn new(peers: &Peers, agents: usize) -> Partition {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let port = support::bridge::free_port();
        for i in 0..agents {
            let ip = peers.cluster.agent_ip(i);
            let upstream = peers.cluster.agent_addr(i);
            let listener = TcpListener::bind((ip, port)).expect("binding the proxy");
            let cut = cut.clone();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    if cut.load(Ordering::SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(upstream) else {
                        continue;
                    };
                    for (mut from, mut to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        let cut = cut.clone();
                        std::thread::spawn(move || {
                            let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                            let mut buffer = [0u8; 16 * 1024];
                            loop {
                                if cut.load(Ordering::SeqCst) {
                                    break;
                                }
                                match std::io::Read::read(&mut from, &mut buffer) {
                                    Ok(0) => break,
                                    Ok(n) => {
                                        if std::io::Write::write_all(&mut to, &buffer[..n]).is_err()
                                        {
                                            break;
                                        }
                                    }
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            std::io::ErrorKind::WouldBlock
                                                | std::io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => break,
                                }
                            }
                            let _ = from.shutdown(Shutdown::Both);
                            let _ = to.shutdown(Shutdown::Both);
                        });
                    }
                }
            });
        }
        Partition { port, cut }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The `time` (ms) of the log lines of `c` whose message contains `needle`.
fn times_of(c: &Consular, needle: &str) -> Vec<u64> {
    c.log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["msg"].as_str().is_some_and(|m| m.contains(needle)))
        .filter_map(|v| v["time"].as_u64())
        .collect()
}

#[test]
fn a_leader_cut_off_from_consul_stops_writing_before_a_standby_starts() {
    let peers = Peers::start(1, MarathonVersion::V1_10, |m| m.put_app("/web", &[]));
    let partition = Partition::new(&peers, 2);
    let ttl = TTL_SECONDS.to_string();
    let flags = ["--events", "sse", "--ha", "--ha-ttl", &ttl];
    let marathon = peers.marathon.url();
    let cut_off = Consular::start(&marathon, &partition.url(), &flags);
    let cut_off = [Some(cut_off)];
    wait_leader(&peers, &cut_off, DEADLINE);
    let [Some(cut_off)] = cut_off else {
        unreachable!()
    };
    let standby = Consular::start(&marathon, &peers.cluster.server_url(), &flags);
    let first = peers
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31000]));
    wait_until("the leader registers", DEADLINE, || {
        cut_off.log_lines_with(&format!("registered {first}")) > 0
    });
    partition.cut();
    // Tasks keep starting while the leader is cut off; whoever leads registers them.
    let started: Vec<String> = (0..3)
        .map(|i| {
            std::thread::sleep(Duration::from_secs(3));
            peers
                .marathon
                .with(|m| run_task(m, "/web", "127.0.0.2", &[31001 + i]))
        })
        .collect();
    wait_until(
        "the standby to lead",
        Duration::from_secs(2 * TTL_SECONDS + 10),
        || standby.log_lines_with("became the leader") > 0,
    );
    for task in &started {
        wait_until("the standby registers", DEADLINE, || {
            standby.log_lines_with(&format!("registered {task}")) > 0
        });
    }
    let stood_down = times_of(&cut_off, "standing down as leader");
    let took_over = times_of(&standby, "became the leader");
    let (Some(&stood_down), Some(&took_over)) = (stood_down.first(), took_over.first()) else {
        panic!("no stand-down or take-over in the logs");
    };
    let last_write = times_of(&cut_off, "registered ")
        .into_iter()
        .max()
        .unwrap_or(0);
    let first_write = times_of(&standby, "registered ")
        .into_iter()
        .min()
        .unwrap_or(u64::MAX);
    eprintln!(
        "cut-off leader: last write at {last_write}, stood down at {stood_down}; \
         standby: led at {took_over}, first write at {first_write} (ms)"
    );
    assert!(
        stood_down < took_over,
        "stood down {stood_down}, took over {took_over}"
    );
    assert!(
        last_write < first_write,
        "last {last_write}, first {first_write}"
    );
}
