//! `consular demo` as a user runs it: the built binary starts its stand-ins, prints where to look,
//! registers the scenario's services on the stand-in Consul's agents, and exits 0 on SIGTERM.
//! Loopback only; the demo's ports are chosen here so the test knows where to look.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use consular_adapters::simulator::http1;

/// How long the demo may take to register its first service (its first tasks run at step 4).
const PATIENCE: Duration = Duration::from_secs(20);

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The body of `GET path` on `host:port`, or `None` if nothing answers yet.
fn get(host: &str, port: u16, path: &str) -> Option<String> {
    let mut connection = TcpStream::connect((host, port)).ok()?;
    connection
        .set_read_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    let authority = format!("{host}:{port}");
    let request = http1::request_bytes("GET", path, &authority, &[("Connection", "close")], b"");
    connection.write_all(&request).ok()?;
    let mut response = Vec::new();
    connection.read_to_end(&mut response).ok()?;
    let response = http1::parse_response(&response).ok()?;
    String::from_utf8(response.body).ok()
}

#[test]
fn the_demo_registers_services_on_its_stand_in_agents_and_stops_cleanly_on_sigterm() {
    let consul_port = free_port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_consular"))
        .args(["demo", "--step-seconds", "1"])
        .args(["--consul-port", &consul_port.to_string()])
        .args(["--port", &free_port().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    let give_up = Instant::now() + PATIENCE;
    let registered = loop {
        let services = ["127.0.0.2", "127.0.0.3", "127.0.0.1"]
            .iter()
            .filter_map(|agent| get(agent, consul_port, "/v1/agent/services"))
            .find(|services| services.contains("consular-reg-id=consular-demo"));
        if let Some(services) = services {
            break services;
        }
        if Instant::now() > give_up || demo.try_wait().unwrap().is_some() {
            let _ = demo.kill();
            panic!("no demo service registered within {PATIENCE:?}");
        }
        sleep(Duration::from_millis(100));
    };
    assert!(registered.contains(r#""Service":"demo-"#), "{registered}");

    let signalled = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let give_up = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > give_up {
            let _ = demo.kill();
            panic!("the demo did not stop within 10 s of SIGTERM");
        }
        sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));

    let mut output = String::new();
    demo.stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    let consul = format!("http://127.0.0.1:{consul_port}");
    assert!(
        output.contains(&format!("curl {consul}/v1/agent/services")),
        "{output}"
    );
    assert!(
        output.contains(&format!("curl '{consul}/v1/kv/consular/?recurse'")),
        "{output}"
    );
    assert!(output.contains(r#""msg":"demo: "#), "{output}");
    assert!(output.contains("received Term, shutting down"), "{output}");
}
