//! The command line's own tests, from before there were other sources: every flag, its default,
//! its error wording. Precedence between flags, variables and the config file is
//! `precedence_tests.rs`.

use std::path::PathBuf;

use super::*;

fn parse_args(args: &[&str]) -> Result<Command, CliError> {
    parse(
        args.iter().map(OsString::from).collect(),
        &Environment::empty(),
    )
}

fn run_args(args: &[&str]) -> RunArgs {
    match parse_args(args) {
        Ok(Command::Run(run)) => *run,
        other => panic!("{args:?}: expected a run, got {other:?}"),
    }
}

fn error(args: &[&str]) -> String {
    match parse_args(args) {
        Err(e) => e.to_string(),
        other => panic!("{args:?}: expected an error, got {other:?}"),
    }
}

#[test]
fn defaults_are_consular_1_3_0s() {
    let run = run_args(&[]);
    assert_eq!(run.scheme, "http");
    assert_eq!(run.host, "localhost");
    assert_eq!(run.port, 7000);
    assert_eq!(run.consul.to_string(), "http://localhost:8500");
    assert_eq!(run.marathon.to_string(), "http://localhost:8080");
    assert_eq!(run.registration_id, "consular");
    assert_eq!(run.sync_interval, Duration::ZERO);
    assert!(!run.purge);
    assert_eq!(run.logfile, None);
    assert!(!run.debug);
    assert_eq!(run.timeout, Duration::from_secs(5));
    assert!(!run.fallback);
    assert_eq!(run.fallback_timeout, Duration::from_secs(2));
    assert_eq!(run.events, EventSource::Auto);
    assert_eq!(run.consul_token, None);
    assert_eq!(run.consul_tls, TlsOptions::default());
    assert_eq!(run.marathon_tls, TlsOptions::default());
    assert_eq!(run.events_secret, None);
    assert_eq!(run.events_endpoint, EventsEndpoint::WhileCallbacks);
    assert_eq!(run.max_listing_bytes, 67_108_864);
    assert_eq!(run.marathon_consul, MarathonConsulLeftovers::Keep);

    let config = run.config();
    assert_eq!(
        config.callback_url.as_deref(),
        Some("http://localhost:7000/events?registration=consular")
    );
    assert_eq!(
        config,
        Config {
            callback_url: config.callback_url.clone(),
            // The one default that differs from 1.3.0: the event stream where Marathon has one.
            events: EventSource::Auto,
            ..Config::default()
        }
    );
    let settings = run.driver_settings();
    assert_eq!(
        (settings.listen_host.as_str(), settings.listen_port),
        ("localhost", 7000)
    );
    assert_eq!(settings.server.max_body_bytes, 1024 * 1024);
}

#[test]
fn every_flag_is_read_and_reaches_the_config() {
    let run = run_args(&[
        "--scheme",
        "https",
        "--host",
        "Consular.Example",
        "--port",
        "7001",
        "--consul",
        "https://consul.example:8501/ignored",
        "--marathon",
        "http://u:p@marathon.example:8080/marathon",
        "--registration-id",
        "host-1",
        "--sync-interval",
        "300",
        "--purge",
        "--logfile",
        "/var/log/consular.log",
        "--debug",
        "--timeout",
        "7",
        "--fallback",
        "--fallback-timeout",
        "3",
        "--events",
        "auto",
        "--consul-token",
        "secret",
        "--marathon-token",
        "dcos-jwt",
        "--ca-file",
        "/etc/ssl/ca.pem",
        "--events-secret",
        "cb-s3cret",
        "--accept-callbacks",
        "--max-listing-bytes",
        "1048576",
        "--migrate-marathon-consul",
    ]);
    assert_eq!(run.marathon_token.as_deref(), Some("dcos-jwt"));
    assert_eq!(run.logfile, Some(PathBuf::from("/var/log/consular.log")));
    assert_eq!(run.consul_tls.ca_files, [PathBuf::from("/etc/ssl/ca.pem")]);
    assert_eq!(run.consul_token.as_deref(), Some("secret"));
    assert_eq!(run.consul.to_string(), "https://consul.example:8501");
    assert_eq!(run.marathon.to_string(), "http://marathon.example:8080");

    let config = run.config();
    assert_eq!(config.registration_id, "host-1");
    assert_eq!(
        config.callback_url.as_deref(),
        Some("https://consular.example:7001/events?registration=host-1&secret=cb-s3cret")
    );
    assert_eq!(config.events_secret.as_deref(), Some("cb-s3cret"));
    assert_eq!(config.events_endpoint, EventsEndpoint::Always);
    assert_eq!(config.max_listing_bytes, 1 << 20);
    assert_eq!(config.sync_interval, Duration::from_secs(300));
    assert!(config.purge);
    assert!(config.debug);
    assert_eq!(config.request_timeout, Duration::from_secs(7));
    assert!(config.fallback);
    assert_eq!(config.fallback_timeout, Duration::from_secs(3));
    assert_eq!(config.events, EventSource::Auto);
    assert_eq!(config.marathon_consul, MarathonConsulLeftovers::RemoveOnce);

    let settings = run.driver_settings();
    assert_eq!(settings.listen_host, "Consular.Example");
    assert_eq!(settings.listen_port, 7001);
    let ca_files = vec![PathBuf::from("/etc/ssl/ca.pem")];
    assert_eq!(settings.consul_tls.ca_files, ca_files);
    assert_eq!(settings.marathon_tls.ca_files, ca_files);
    assert_eq!(
        settings.endpoints.marathon().to_string(),
        "http://marathon.example:8080"
    );
}

#[test]
fn equals_form_works_for_every_value_flag() {
    let run = run_args(&[
        "--scheme=https",
        "--host=0.0.0.0",
        "--port=8000",
        "--consul=http://c:1",
        "--marathon=http://m:2",
        "--registration-id=a=b",
        "--sync-interval=10",
        "--logfile=log.txt",
        "--timeout=9",
        "--fallback-timeout=4",
        "--events=sse",
        "--consul-token=t",
        "--ca-file=ca.pem",
        "--events-secret=s",
        "--max-listing-bytes=65536",
        "--marathon-token=m",
    ]);
    assert_eq!(run.scheme, "https");
    assert_eq!(run.host, "0.0.0.0");
    assert_eq!(run.port, 8000);
    assert_eq!(run.consul.to_string(), "http://c:1");
    assert_eq!(run.marathon.to_string(), "http://m:2");
    assert_eq!(run.registration_id, "a=b");
    assert_eq!(run.sync_interval, Duration::from_secs(10));
    assert_eq!(run.logfile, Some(PathBuf::from("log.txt")));
    assert_eq!(run.timeout, Duration::from_secs(9));
    assert_eq!(run.fallback_timeout, Duration::from_secs(4));
    assert_eq!(run.events, EventSource::Stream);
    assert_eq!(run.consul_token.as_deref(), Some("t"));
    assert_eq!(run.marathon_tls.ca_files, [PathBuf::from("ca.pem")]);
    assert_eq!(run.events_secret.as_deref(), Some("s"));
    assert_eq!(run.max_listing_bytes, 65536);
    assert_eq!(run.marathon_token.as_deref(), Some("m"));
}

#[test]
fn the_last_of_a_switch_pair_wins() {
    let run = run_args(&["--purge", "--no-purge", "--no-debug", "--debug"]);
    assert!(!run.purge);
    assert!(run.debug);
    let run = run_args(&["--no-fallback", "--fallback", "--sync-interval", "0"]);
    assert!(run.fallback);
    assert_eq!(run.sync_interval, Duration::ZERO);
}

/// `parse` of no arguments with exactly the variables `vars`.
pub(super) fn parse_environment(vars: Vec<(OsString, OsString)>) -> Result<Command, CliError> {
    let environment = Environment {
        vars,
        ..Environment::empty()
    };
    parse(Vec::new(), &environment)
}

fn parse_with_env(args: &[&str], env: Option<&str>) -> Result<Command, CliError> {
    let environment = Environment {
        vars: env
            .map(|token| (OsString::from("CONSUL_HTTP_TOKEN"), OsString::from(token)))
            .into_iter()
            .collect(),
        ..Environment::empty()
    };
    parse(args.iter().map(OsString::from).collect(), &environment)
}

#[test]
fn the_token_flag_beats_the_environment_and_an_empty_variable_means_none() {
    let from_env = |args: &[&str], env: Option<&str>| match parse_with_env(args, env) {
        Ok(Command::Run(run)) => run.consul_token,
        other => panic!("{other:?}"),
    };
    assert_eq!(from_env(&[], Some("env")).as_deref(), Some("env"));
    assert_eq!(
        from_env(&["--consul-token", "flag"], Some("env")).as_deref(),
        Some("flag")
    );
    // Not even checked when the flag is given: it is not used.
    assert_eq!(
        from_env(&["--consul-token", "flag"], Some("bad\ntoken")).as_deref(),
        Some("flag")
    );
    assert_eq!(from_env(&[], Some("")), None);
    assert_eq!(from_env(&[], None), None);
}

#[test]
fn tokens_must_be_visible_ascii_and_are_never_shown() {
    let token_error = |args: &[&str], env: Option<&str>| match parse_with_env(args, env) {
        Err(e) => e.to_string(),
        other => panic!("{args:?}: expected an error, got {other:?}"),
    };
    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (
            &[],
            Some("t0ken\nX-Evil: yes"),
            "CONSUL_HTTP_TOKEN: the token has a character that is not visible ASCII (0x21-0x7e) at position 6",
        ),
        (
            &["--consul-token", "t0ken\r\nX-Evil: yes"],
            None,
            "--consul-token: the token has a character that is not visible ASCII (0x21-0x7e) at position 6",
        ),
        (&["--consul-token", ""], None, "--consul-token: the token is empty"),
        (
            &["--marathon-token", "t0ken with space"],
            None,
            "--marathon-token: the token has a character that is not visible ASCII (0x21-0x7e) at position 6",
        ),
        (&["--marathon-token", ""], None, "--marathon-token: the token is empty"),
        (
            &["--marathon-token=caf\u{e9}t0ken"],
            None,
            "--marathon-token: the token has a character that is not visible ASCII (0x21-0x7e) at position 4",
        ),
    ];
    for (args, env, expected) in cases {
        let message = token_error(args, *env);
        assert_eq!(&message, expected, "{args:?} {env:?}");
        assert!(!message.contains("t0ken"), "{message}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let not_text = OsString::from_vec(vec![b't', 0xff]);
        assert_eq!(
            parse_environment(vec![(OsString::from("CONSUL_HTTP_TOKEN"), not_text)])
                .unwrap_err()
                .to_string(),
            "CONSUL_HTTP_TOKEN: the token is not text (it must be visible ASCII)"
        );
    }
}

/// A file with `contents` in a directory of this test process under the system temp directory.
pub(super) fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("consular-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn the_events_secret_is_given_or_read_from_a_file_and_reaches_the_callback_url() {
    let run = run_args(&["--events-secret", "s3cr&t"]);
    assert_eq!(run.events_secret.as_deref(), Some("s3cr&t"));
    let config = run.config();
    assert_eq!(config.events_secret.as_deref(), Some("s3cr&t"));
    assert_eq!(
        config.callback_url.as_deref(),
        Some("http://localhost:7000/events?registration=consular&secret=s3cr%26t")
    );

    for (name, contents) in [
        ("lf", &b"from-file\n"[..]),
        ("crlf", b"from-file\r\n"),
        ("bare", b"from-file"),
    ] {
        let path = temp_file(&format!("secret-{name}"), contents);
        let run = run_args(&[&format!("--events-secret=@{}", path.display())]);
        assert_eq!(run.events_secret.as_deref(), Some("from-file"), "{name}");
    }

    let shown = format!(
        "{:?}",
        run_args(&[
            "--events-secret",
            "s3cr&t",
            "--consul-token",
            "c0nsul",
            "--marathon-token",
            "marath0n"
        ])
    );
    for secret in ["s3cr", "c0nsul", "marath0n"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains(r#"events_secret: Some("***")"#), "{shown}");
}

#[test]
fn a_bad_events_secret_names_the_problem_and_the_file_but_not_the_secret() {
    let missing = std::env::temp_dir().join("consular-no-such-secret");
    let message = error(&["--events-secret", &format!("@{}", missing.display())]);
    assert!(
        message.starts_with(&format!("--events-secret: cannot read {missing:?}: ")),
        "{message}"
    );
    let two_lines = temp_file("secret-two-lines", b"hidden-1\nhidden-2\n");
    let message = error(&["--events-secret", &format!("@{}", two_lines.display())]);
    assert_eq!(
        message,
        format!("--events-secret: the secret in {two_lines:?} has a character that is not visible ASCII (0x21-0x7e) at position 9")
    );
    let empty = temp_file("secret-empty", b"\n");
    assert_eq!(
        error(&["--events-secret", &format!("@{}", empty.display())]),
        format!("--events-secret: the secret in {empty:?} is empty")
    );
    assert_eq!(
        error(&["--events-secret", "@"]),
        "--events-secret: expected a file name after @"
    );
    assert_eq!(
        error(&["--events-secret", ""]),
        "--events-secret: the secret is empty"
    );
    let message = error(&["--events-secret", "hidden secret"]);
    assert_eq!(
        message,
        "--events-secret: the secret has a character that is not visible ASCII (0x21-0x7e) at position 7"
    );
}

#[test]
fn accept_callbacks_serves_events_always() {
    let run = run_args(&["--events", "sse", "--accept-callbacks"]);
    assert_eq!(run.events_endpoint, EventsEndpoint::Always);
    assert_eq!(run.config().events_endpoint, EventsEndpoint::Always);
    assert_eq!(
        error(&["--accept-callbacks=yes"]),
        r#"--accept-callbacks: takes no value, got "--accept-callbacks=yes""#
    );
}

#[test]
fn max_listing_bytes_is_at_least_64_kib() {
    assert_eq!(
        run_args(&["--max-listing-bytes", "65536"])
            .config()
            .max_listing_bytes,
        65536
    );
    assert_eq!(
        run_args(&["--max-listing-bytes=1073741824"]).max_listing_bytes,
        1 << 30
    );
    for bad in ["65535", "0", "-1", "1e6", "64MiB", ""] {
        assert_eq!(
            error(&["--max-listing-bytes", bad]),
            format!("--max-listing-bytes: expected an integer of at least 65536, got {bad:?}"),
        );
    }
}

#[test]
fn no_error_shows_the_userinfo_of_a_url() {
    let cases: &[&[&str]] = &[
        &["--marathon", "http://alice:hunter2@[bad"],
        &["--marathon=http://alice:hunter2@m:99999"],
        &["--consul", "alice:hunter2@c:8500"],
        &["--consul", "ftp://alice:hunter2@c"],
        &["--port", "http://alice:hunter2@m:1"],
        &["--scheme", "http://alice:hunter2@m"],
        &["--purge=http://alice:hunter2@m"],
        &["--debug", "http://alice:hunter2@m"],
        &["http://alice:hunter2@m"],
        &["--marathn=http://alice:hunter2@m"],
        &["--max-listing-bytes", "http://alice:hunter2@m"],
        &["demo", "--consul", "http://alice:hunter2@[bad"],
    ];
    for args in cases {
        let message = error(args);
        assert!(!message.contains("hunter2"), "{args:?}: {message}");
        assert!(!message.contains("alice"), "{args:?}: {message}");
    }
    assert_eq!(
        error(&["--marathon", "http://alice:hunter2@[bad"]),
        r#"--marathon: expected an http or https URL, got "http://***@[bad" (invalid IPv6 address)"#
    );
    assert_eq!(
        error(&["--marathn=http://alice:hunter2@m"]),
        "--marathn: unknown option (see --help)"
    );
}

#[test]
fn demo_takes_its_own_flags() {
    let demo = |args: &[&str]| match parse_args(args) {
        Ok(Command::Demo(demo)) => demo,
        other => panic!("{args:?}: expected a demo, got {other:?}"),
    };
    assert_eq!(
        demo(&["demo"]),
        DemoArgs {
            consul: None,
            consul_port: None,
            port: None,
            step: Duration::from_secs(2),
        }
    );
    let given = demo(&[
        "demo",
        "--consul-port=8600",
        "--port",
        "7001",
        "--step-seconds",
        "1",
    ]);
    assert_eq!(given.consul_port, Some(8600));
    assert_eq!(given.port, Some(7001));
    assert_eq!(given.step, Duration::from_secs(1));
    let real = demo(&["demo", "--consul", "http://127.0.0.1:8500"]);
    assert_eq!(real.consul.unwrap().to_string(), "http://127.0.0.1:8500");

    assert_eq!(parse_args(&["demo", "--help"]), Ok(Command::DemoHelp));
    for flag in [
        "--consul",
        "--consul-port",
        "--port",
        "--step-seconds",
        "--help",
    ] {
        assert!(DEMO_USAGE.contains(flag), "{flag} is not in the demo help");
    }
    let errors: &[(&[&str], &str)] = &[
        (
            &["demo", "--step-seconds", "0"],
            r#"--step-seconds: expected a whole number of seconds from 1 to 31536000, got "0""#,
        ),
        (
            &["demo", "--consul", "http://c:1", "--consul-port", "1"],
            "--consul-port: is for the stand-in Consul; --consul names a real one",
        ),
        (
            &["demo", "--marathon", "http://m:1"],
            "--marathon: unknown option (see --help)",
        ),
        (
            &["demo", "extra"],
            r#"unexpected argument "extra" (see --help)"#,
        ),
    ];
    for (args, expected) in errors {
        assert_eq!(&error(args), expected, "{args:?}");
    }
}

#[test]
fn help_and_version() {
    assert_eq!(parse_args(&["--help"]), Ok(Command::Help));
    assert_eq!(parse_args(&["--port", "abc", "--help"]), Ok(Command::Help));
    assert_eq!(parse_args(&["--version"]), Ok(Command::Version));
    for flag in [
        "--scheme",
        "--host",
        "--port",
        "--consul",
        "--marathon",
        "--registration-id",
        "--sync-interval",
        "--purge",
        "--logfile",
        "--debug",
        "--timeout",
        "--fallback",
        "--fallback-timeout",
        "--events",
        "--consul-token",
        "--marathon-token",
        "--ca-file",
        "--events-secret",
        "--accept-callbacks",
        "--max-listing-bytes",
        "--migrate-marathon-consul",
        "--version",
    ] {
        assert!(USAGE.contains(flag), "{flag} is not in the help");
    }
}

#[test]
fn require_label_and_address_shape_the_services() {
    let run = run_args(&["--require-label", "consul", "--address", "task-ip"]);
    let config = run.config();
    assert_eq!(config.require_label.as_deref(), Some("consul"));
    assert_eq!(config.address, AddressMode::TaskIp);
    let defaults = run_args(&[]).config();
    assert_eq!(
        (defaults.require_label, defaults.address),
        (None, AddressMode::Auto)
    );
    assert_eq!(run_args(&["--address", "host"]).address, AddressMode::Host);
    assert!(error(&["--address", "ip"]).contains("--address"));
    assert!(error(&["--require-label", "a b"]).contains("--require-label"));
    let health = run_args(&["--health-checks", "mirror", "--register-when-healthy"]);
    assert_eq!(health.config().health_checks, HealthChecks::Mirror);
    assert_eq!(health.config().register_when, RegisterWhen::Healthy);
    assert_eq!(run_args(&[]).config().health_checks, HealthChecks::None);
    assert_eq!(run_args(&[]).config().register_when, RegisterWhen::Running);
    assert!(error(&["--health-checks", "all"]).contains("--health-checks"));
    assert_eq!(run_args(&[]).config().ha, None);
    let ha = run_args(&["--ha", "--ha-ttl", "20", "--port", "7001"])
        .config()
        .ha
        .unwrap();
    assert_eq!(ha.ttl, Duration::from_secs(20));
    assert_eq!(ha.key, "service/consular/consular/leader");
    assert_eq!(ha.instance_id, "localhost:7001");
    assert!(error(&["--ha", "--ha-ttl", "5"]).contains("--ha-ttl"));
    assert!(error(&["--ha", "--ha-key", "consular/x"]).contains("--ha-key"));
    let catalog = run_args(&["--fallback-mode", "catalog"]).config();
    assert_eq!(
        (catalog.fallback, catalog.fallback_mode),
        (true, FallbackMode::Catalog)
    );
    assert_eq!(
        run_args(&["--agentless"]).config().placement,
        Placement::Agentless
    );
    assert!(error(&["--fallback-mode", "x"]).contains("--fallback-mode"));
    let dry = run_args(&["--dry-run", "--ha", "--events", "sse"]).config();
    assert_eq!(dry.writes, WriteMode::DryRun);
    assert_eq!(
        (dry.events, dry.ha, dry.callback_url),
        (EventSource::Callback, None, None)
    );
}

#[test]
fn bad_values_are_one_line_naming_the_flag_and_why() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--port", "abc"],
            r#"--port: expected an integer from 1 to 65535, got "abc""#,
        ),
        (
            &["--port=0"],
            r#"--port: expected an integer from 1 to 65535, got "0""#,
        ),
        (
            &["--port", "65536"],
            r#"--port: expected an integer from 1 to 65535, got "65536""#,
        ),
        (
            &["--port", "-1"],
            r#"--port: expected an integer from 1 to 65535, got "-1""#,
        ),
        (
            &["--timeout", "-5"],
            r#"--timeout: expected a whole number of seconds from 1 to 31536000, got "-5""#,
        ),
        (
            &["--timeout", "0"],
            r#"--timeout: expected a whole number of seconds from 1 to 31536000, got "0""#,
        ),
        (
            &["--fallback-timeout", "1.5"],
            r#"--fallback-timeout: expected a whole number of seconds from 1 to 31536000, got "1.5""#,
        ),
        (
            &["--sync-interval", "-1"],
            r#"--sync-interval: expected a whole number of seconds from 0 to 31536000, got "-1""#,
        ),
        (
            &["--sync-interval", "99999999999999999999"],
            r#"--sync-interval: expected a whole number of seconds from 0 to 31536000, got "99999999999999999999""#,
        ),
        (
            &["--consul", "localhost:8500"],
            r#"--consul: expected an http or https URL, got "localhost:8500" (scheme "localhost" is not supported)"#,
        ),
        (
            &["--marathon=not a url"],
            r#"--marathon: expected an http or https URL, got "not a url" (relative URL without a base)"#,
        ),
        (
            &["--scheme", "ftp"],
            r#"--scheme: expected http or https, got "ftp""#,
        ),
        (
            &["--events", "stream"],
            r#"--events: expected sse, callback or auto, got "stream""#,
        ),
        (
            &["--host", ""],
            r#"--host: expected a non-empty value, got """#,
        ),
        (
            &["--registration-id= "],
            r#"--registration-id: expected a non-empty value, got " ""#,
        ),
        (&["--port"], "--port: expected a value"),
        (&["--port="], "--port: expected a value"),
        (
            &["--port", "1", "--port", "2"],
            "--port: given more than once",
        ),
        (
            &["--frobnicate"],
            "--frobnicate: unknown option (see --help)",
        ),
        (
            &["--purge=yes"],
            r#"--purge: takes no value, got "--purge=yes""#,
        ),
        (
            &["--migrate-marathon-consul=1"],
            r#"--migrate-marathon-consul: takes no value, got "--migrate-marathon-consul=1""#,
        ),
        (
            &["--debug", "extra"],
            r#"unexpected argument "extra" (see --help)"#,
        ),
        (&["run"], r#"unexpected argument "run" (see --help)"#),
    ];
    for (args, expected) in cases {
        let message = error(args);
        assert_eq!(&message, expected, "{args:?}");
        assert!(!message.contains('\n'), "{args:?}: more than one line");
    }
}
