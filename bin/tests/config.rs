//! End to end, the real binary's settings: `consular config` with a config file, variables and flags together
//! (each setting from the source that wins, secrets never printed), exit status 2 with one line for bad input from
//! each source, and a run whose Consul token comes from `CONSUL_HTTP_TOKEN_FILE` and reaches Consul.
//!
//! The token's run is a `--dry-run` against the Marathon simulator and a recorder posing as Consul: a real Consul 1.8.7
//! dev agent has no ACLs and would accept any token, so only a recorder can show which token was sent.

mod support;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use consular_adapters::simulator::MarathonServer;
use consular_sim::{MarathonVersion, SimMarathon};
use support::bridge::{run_to_exit, Exited};
use support::raw::{response, Answer, FakePeer};

const SECRETS: [&str; 3] = ["env-t0ken-5e1f", "file-s3cret-77a0", "hunter2"];

/// A file in a directory of this test process under the system temp directory.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("consular-config-e2e-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    path
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Exited {
    run_to_exit(args, env, Duration::from_secs(10))
}

/// The line of `stdout` listing `name`, without the padding after the name.
fn line_of(stdout: &str, name: &str) -> String {
    let line = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{stdout}"));
    let (_, rest) = line.split_at(name.len());
    format!("{name} {}", rest.trim_start())
}

#[test]
fn consular_config_shows_each_setting_from_the_source_that_wins_and_no_secret() {
    let file = temp_file(
        "settings.json",
        r#"{
            "port": 7003,
            "purge": true,
            "registration-id": "from-file",
            "sync-interval": 300,
            "events-secret": "file-s3cret-77a0",
            "marathon": "http://alice:hunter2@marathon.example:8080/marathon"
        }"#,
    );
    let file_arg = file.to_str().unwrap();
    let exited = run(
        &["config", "--config", file_arg, "--port", "7001", "--debug"],
        &[
            ("CONSULAR_SYNC_INTERVAL", "30"),
            ("CONSULAR_PORT", "7002"),
            ("CONSUL_HTTP_ADDR", "127.0.0.1:8501"),
            ("CONSUL_HTTP_SSL", "true"),
            ("CONSUL_HTTP_TOKEN", "env-t0ken-5e1f"),
        ],
    );
    assert_eq!(exited.status.code(), Some(0), "{exited:?}");
    assert_eq!(exited.stderr, "");
    let stdout = &exited.stdout;
    let file_source = format!("(from file {})", file.display());
    for (name, expected) in [
        ("config", format!("{file_arg} (from flag)")),
        ("port", "7001 (from flag)".to_owned()),
        (
            "sync-interval",
            "30 (from env CONSULAR_SYNC_INTERVAL)".to_owned(),
        ),
        ("purge", format!("true {file_source}")),
        ("registration-id", format!("from-file {file_source}")),
        (
            "consul",
            "https://127.0.0.1:8501 (from env CONSUL_HTTP_ADDR)".to_owned(),
        ),
        (
            "marathon",
            format!("http://***@marathon.example:8080/marathon {file_source}"),
        ),
        (
            "consul-token",
            "(redacted, from env CONSUL_HTTP_TOKEN)".to_owned(),
        ),
        (
            "events-secret",
            format!("(redacted, from file {})", file.display()),
        ),
        ("debug", "true (from flag)".to_owned()),
        ("log-level", "debug (from flag)".to_owned()),
        ("log-format", "json (from default)".to_owned()),
        ("timeout", "5 (from default)".to_owned()),
        ("instance-id", "localhost:7001 (from default)".to_owned()),
    ] {
        assert_eq!(
            line_of(stdout, name),
            format!("{name} {expected}"),
            "{stdout}"
        );
    }
    for secret in SECRETS.iter().chain(&["alice"]) {
        assert!(!stdout.contains(secret), "{secret} shown:\n{stdout}");
    }
}

#[test]
fn bad_settings_from_any_source_exit_2_with_one_line_naming_it() {
    let unknown = temp_file("unknown.json", r#"{"prot": 7000}"#);
    let wrong_type = temp_file("wrong-type.json", r#"{"purge": "yes"}"#);
    let bad_value = temp_file("bad-value.json", r#"{"consul-token": "hunter2 x"}"#);
    let missing = std::env::temp_dir().join("consular-config-e2e-missing.json");
    /// Arguments (after the optional `config`), variables, and the message expected after `consular: `.
    type BadCase<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<BadCase> = vec![
        (
            vec!["--config".into(), unknown.display().to_string()],
            vec![],
            format!(
                r#"{}: unknown key "prot" (see --help for the settings)"#,
                unknown.display()
            ),
        ),
        (
            vec!["--config".into(), wrong_type.display().to_string()],
            vec![],
            format!("{}: purge: expected true or false, got a string", wrong_type.display()),
        ),
        (
            vec![],
            vec![("CONSULAR_CONFIG", bad_value.to_str().unwrap())],
            format!(
                "{}: consul-token: the token has a character that is not visible ASCII (0x21-0x7e) at position 8",
                bad_value.display()
            ),
        ),
        (
            vec![],
            vec![("CONSULAR_PORT", "0")],
            r#"CONSULAR_PORT: expected an integer from 1 to 65535, got "0""#.to_owned(),
        ),
        (
            vec![],
            vec![("CONSUL_HTTP_ADDR", "unix:///var/run/consul.sock")],
            r#"CONSUL_HTTP_ADDR: expected an http or https URL, got "unix:///var/run/consul.sock" (scheme "unix" is not supported)"#
                .to_owned(),
        ),
        (
            vec!["--consul-token-file".into(), missing.display().to_string()],
            vec![],
            format!("--consul-token-file: cannot read {missing:?}: No such file or directory (os error 2)"),
        ),
    ];
    for (args, env, expected) in cases {
        for word in [None, Some("config")] {
            let args: Vec<&str> = word
                .into_iter()
                .chain(args.iter().map(String::as_str))
                .collect();
            let exited = run(&args, &env);
            assert_eq!(
                exited.status.code(),
                Some(2),
                "{args:?} {env:?}: {exited:?}"
            );
            assert_eq!(exited.stdout, "", "{args:?}");
            assert_eq!(
                exited.stderr,
                format!("consular: {expected}\n"),
                "{args:?} {env:?}"
            );
            for secret in SECRETS {
                assert!(!exited.stderr.contains(secret), "{}", exited.stderr);
            }
        }
    }
}

#[test]
fn a_run_reads_its_consul_token_from_consul_http_token_file_and_sends_it_to_consul() {
    let mut model = SimMarathon::new(MarathonVersion::V1_10);
    model.put_app("/web", &[]);
    let marathon = MarathonServer::start(model).expect("starting the Marathon simulator");
    // Every Consul read of a sync, answered as an empty cluster would.
    let consul = FakePeer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), |request| {
        let body: &[u8] = if request.target.starts_with("/v1/agent/") {
            b"{}"
        } else {
            b"[]"
        };
        Answer::Close(response(200, &[("Content-Type", "application/json")], body))
    });
    let token = temp_file("consul-token", "e2e-t0ken-from-file\n");
    let port = support::bridge::free_port().to_string();
    let (marathon_url, consul_url) = (marathon.url(), consul.url());
    let exited = run_to_exit(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--marathon",
            &marathon_url,
            "--dry-run",
        ],
        &[
            ("CONSUL_HTTP_ADDR", consul_url.trim_start_matches("http://")),
            ("CONSUL_HTTP_TOKEN_FILE", token.to_str().unwrap()),
        ],
        Duration::from_secs(30),
    );
    let log = format!("{}{}", exited.stdout, exited.stderr);
    assert!(exited.status.success(), "{:?}\n{log}", exited.status);
    let requests = consul.requests();
    assert!(!requests.is_empty(), "Consul got no request\n{log}");
    for request in &requests {
        assert_eq!(
            request.header("X-Consul-Token"),
            Some("e2e-t0ken-from-file"),
            "{} {}",
            request.method,
            request.target
        );
    }
    assert!(
        !log.contains("e2e-t0ken"),
        "the token is in the log:\n{log}"
    );
}
