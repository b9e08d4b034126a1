//! End-to-end over TLS: the real binary against a real Consul 1.8.7 cluster (a server on 127.0.0.1, a client
//! agent on 127.0.0.2) serving HTTPS with `verify_incoming`, with certificates made in the test (a CA, one agent
//! certificate naming both IPs and `consul.test`, a client certificate for the bridge).
//!
//! With the CA (as a file or a directory) and the client certificate, a task becomes a service on its host's
//! agent, reached over HTTPS as the main Consul is, its labels land in KV, and its stop deregisters it. What an
//! attacker or a misconfiguration tries is refused, with a log line saying why, and the bridge keeps running: no
//! client certificate, a CA that did not sign Consul's certificate, a URL host the certificate does not name. A
//! `--consul-tls-server-name` the certificate carries makes that URL work, for the agents too.
//!
//! Needs the Consul binary: `.ci/fetch-consul` (which `.ci/test` runs) or `CONSUL_BIN`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use consular_sim::MarathonVersion;
use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
use support::bridge::Consular;
use support::consul::{self, wait_until, ClusterConfig, ClusterTls};
use support::pki::{Ca, Leaf};
use support::world::{run_task, Peers, World, AGENT_2, DEADLINE};

/// The files of one test's TLS, in a directory of its own.
struct Certs {
    dir: PathBuf,
    ca: Ca,
    /// Every agent's certificate.
    agents: Leaf,
    /// The bridge's client certificate.
    bridge: Leaf,
}

fn certs(name: &str) -> Certs {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new(&dir, "consul");
    // Agents present it to each other as well, so it serves for client auth too.
    let agents = ca.leaf(
        "agents",
        &["127.0.0.1", "127.0.0.2", "consul.test"],
        &[ServerAuth, ClientAuth],
    );
    let bridge = ca.leaf("bridge", &["consular"], &[ClientAuth]);
    Certs {
        dir,
        ca,
        agents,
        bridge,
    }
}

/// A cluster of a server and one client agent, both serving HTTPS with `certs`, and a Marathon 1.10 running
/// `/web` (label `v=1`) on 127.0.0.2.
fn peers(certs: &Certs, task: &mut String) -> Peers {
    let config = ClusterConfig {
        tls: Some(ClusterTls {
            ca_file: certs.ca.file.clone(),
            cert_file: certs.agents.cert.clone(),
            key_file: certs.agents.key.clone(),
        }),
        acl_master: None,
    };
    Peers::start_with(1, &config, MarathonVersion::V1_10, |m| {
        m.put_app("/web", &[("v", "1")]);
        *task = run_task(m, "/web", "127.0.0.2", &[31000]);
    })
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn over_https_with_a_client_certificate_tasks_register_on_their_agent_and_stops_deregister() {
    let certs = certs("works");
    let mut task = String::new();
    let peers = peers(&certs, &mut task);
    let https = peers.cluster.https_url();
    // The CA as a directory, as Consul's CONSUL_CAPATH.
    let ca_dir = certs.dir.join("ca.d");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(&certs.ca.file, ca_dir.join("consul.crt")).unwrap();
    let world = peers.launch_at(
        &https,
        &[
            "--events",
            "sse",
            "--sync-interval",
            "1",
            "--consul-ca-path",
            path(&ca_dir),
            "--consul-client-cert",
            path(&certs.bridge.cert),
            "--consul-client-key",
            path(&certs.bridge.key),
        ],
    );
    let service = world.wait_registered(AGENT_2, &task);
    assert_eq!(service["Service"], "web");
    world.wait_kv("consular/", &[("consular/web/v", r#""1""#)]);
    // A task started now comes over the event stream; its stop deregisters it.
    world.start_and_kill_task(AGENT_2, "/web", &[31001]);
    assert!(world.service(AGENT_2, &task).is_some());
    assert_eq!(world.consular.log_lines_with("TLS handshake"), 0);
}

/// The flags of `parts`, one after the other.
fn with<'a>(parts: &[&[&'a str]]) -> Vec<&'a str> {
    parts.concat()
}

/// Starts a bridge for `world`'s Marathon against `consul` with `flags`, and waits until its log has a line with
/// each of `needles`; then checks it still runs and answers `/health`.
fn refused(world: &World, consul: &str, flags: &[&str], needles: &[&str]) {
    let mut flags = flags.to_vec();
    flags.extend(["--events", "sse", "--sync-interval", "1"]);
    let mut bridge = Consular::start(&world.marathon.url(), consul, &flags);
    for needle in needles {
        wait_until(&format!("a log line with {needle:?}"), DEADLINE, || {
            bridge.log_lines_with(needle) > 0
        });
    }
    bridge.assert_running();
    let (status, _) = consul::get(bridge.addr(), "/health").expect("GET /health");
    assert_eq!(status, 200, "{}", bridge.log_tail(20));
}

#[test]
fn no_client_certificate_a_wrong_ca_or_a_wrong_name_is_refused_and_the_bridge_keeps_running() {
    let certs = certs("attacks");
    let mut task = String::new();
    let peers = peers(&certs, &mut task);
    let https = peers.cluster.https_url();
    let port = https.rsplit(':').next().expect("a port").to_owned();
    let by_name = format!("https://localhost:{port}");
    let ca = ["--consul-ca-file", path(&certs.ca.file)];
    let client = [
        "--consul-client-cert",
        path(&certs.bridge.cert),
        "--consul-client-key",
        path(&certs.bridge.key),
    ];
    // A bridge that works, so the refusals below are the certificates' doing, not the cluster's.
    let world = peers.launch_at(&https, &with(&[&ca, &client, &["--events", "sse"]]));

    // Without a client certificate Consul ends the handshake.
    refused(
        &world,
        &https,
        &ca,
        &[
            "GET consul /v1/catalog/nodes",
            "it wants a client certificate, and none is configured for it",
        ],
    );
    // A CA that did not sign Consul's certificate.
    let stranger = Ca::new(&certs.dir, "stranger");
    refused(
        &world,
        &https,
        &with(&[&["--consul-ca-file", path(&stranger.file)], &client]),
        &["TLS handshake with 127.0.0.1", "UnknownIssuer"],
    );
    // A client certificate from another CA is refused by Consul as none is.
    let forged = stranger.leaf("forged", &["consular"], &[ClientAuth]);
    refused(
        &world,
        &https,
        &with(&[
            &ca,
            &[
                "--consul-client-cert",
                path(&forged.cert),
                "--consul-client-key",
                path(&forged.key),
            ],
        ]),
        &[
            "GET consul /v1/catalog/nodes",
            "refused the client certificate",
        ],
    );
    // The URL's host is not in the certificate, nor is the server name given.
    refused(
        &world,
        &by_name,
        &with(&[&ca, &client]),
        // The log is JSON lines: the name's quotes are escaped.
        &[
            "TLS handshake with localhost",
            r#"certificate not valid for name \"localhost\""#,
        ],
    );
    refused(
        &world,
        &by_name,
        &with(&[&ca, &client, &["--consul-tls-server-name", "wrong.test"]]),
        &[
            "TLS handshake with localhost",
            r#"certificate not valid for name \"wrong.test\""#,
        ],
    );
    // All that time the working bridge kept its service.
    world.wait_registered(AGENT_2, &task);
}

#[test]
fn a_server_name_the_certificate_carries_verifies_the_main_consul_and_the_agents() {
    let certs = certs("server-name");
    let mut task = String::new();
    let peers = peers(&certs, &mut task);
    let https = peers.cluster.https_url();
    let port = https.rsplit(':').next().expect("a port");
    // `localhost` is not in the certificate and the agent is reached at 127.0.0.2: both are verified as
    // `consul.test` instead.
    let world = peers.launch_at(
        &format!("https://localhost:{port}"),
        &[
            "--events",
            "sse",
            "--sync-interval",
            "1",
            "--consul-tls-server-name",
            "consul.test",
            "--consul-ca-file",
            path(&certs.ca.file),
            "--consul-client-cert",
            path(&certs.bridge.cert),
            "--consul-client-key",
            path(&certs.bridge.key),
        ],
    );
    world.wait_registered(AGENT_2, &task);
    world.wait_kv("consular/", &[("consular/web/v", r#""1""#)]);
    let streamed = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31001]));
    world.wait_registered(AGENT_2, &streamed);
    assert_eq!(world.consular.log_lines_with("TLS handshake"), 0);
}

#[test]
fn a_client_certificate_whose_key_does_not_match_stops_the_start_naming_both_files() {
    let certs = certs("mismatch");
    let other = certs.ca.leaf("other", &["consular"], &[ClientAuth]);
    let port = support::bridge::free_port().to_string();
    let exited = support::bridge::run_to_exit(
        &[
            "--port",
            &port,
            "--consul",
            "https://127.0.0.1:1",
            "--consul-client-cert",
            path(&certs.bridge.cert),
            "--consul-client-key",
            path(&other.key),
        ],
        &[] as &[(&str, &str)],
        Duration::from_secs(20),
    );
    assert_eq!(exited.status.code(), Some(1), "{exited:?}");
    let said = &exited.stderr;
    assert!(
        said.contains("TLS towards Consul: client certificate"),
        "{said}"
    );
    assert!(
        said.contains("bridge-cert.pem") && said.contains("other-key.pem"),
        "{said}"
    );
}
