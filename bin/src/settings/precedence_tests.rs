//! Tests of where settings come from: the precedence table (a flag, then `CONSULAR_*`, then
//! Consul's variable, then the config file, then the default; each combination), the config
//! file's and the variables' errors, secret files, TLS and log settings, and what
//! `consular config` shows (never a secret).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use consular_core::Target;

use super::file::MAX_CONFIG_BYTES;
use super::secrets::MAX_SECRET_BYTES;
use super::show::{Effective, Shown};
use super::sources::Source;
use super::tests::temp_file;
use super::*;

/// A command line, variables and a terminal, as `main` would pass them.
struct Invocation<'a> {
    args: Vec<String>,
    vars: Vec<(&'a str, &'a str)>,
    stdout: Output,
}

impl<'a> Invocation<'a> {
    fn new(args: &[&str]) -> Self {
        Invocation {
            args: args.iter().map(|a| a.to_string()).collect(),
            vars: Vec::new(),
            stdout: Output::NotTerminal,
        }
    }

    fn var(mut self, name: &'a str, value: &'a str) -> Self {
        self.vars.push((name, value));
        self
    }

    fn config(mut self, path: &Path) -> Self {
        self.args.push(format!("--config={}", path.display()));
        self
    }

    fn environment(&self) -> Environment {
        Environment {
            vars: self
                .vars
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
            stdout: self.stdout,
        }
    }

    fn parse(&self, word: Option<&str>) -> Result<Command, CliError> {
        let args = word
            .into_iter()
            .map(str::to_owned)
            .chain(self.args.iter().cloned())
            .map(OsString::from)
            .collect();
        parse(args, &self.environment())
    }

    fn run(&self) -> RunArgs {
        match self.parse(None) {
            Ok(Command::Run(run)) => *run,
            other => panic!(
                "{:?} {:?}: expected a run, got {other:?}",
                self.args, self.vars
            ),
        }
    }

    fn listing(&self) -> Listing {
        match self.parse(Some("config")) {
            Ok(Command::Config(listing)) => *listing,
            other => panic!(
                "{:?} {:?}: expected a listing, got {other:?}",
                self.args, self.vars
            ),
        }
    }

    fn error(&self) -> String {
        let run = self.parse(None);
        // `consular config` resolves the same way, so it fails the same way.
        let config = self.parse(Some("config"));
        match (run, config) {
            (Err(run), Err(config)) => {
                assert_eq!(run, config);
                let message = run.to_string();
                assert!(!message.contains('\n'), "more than one line: {message}");
                message
            }
            other => panic!(
                "{:?} {:?}: expected an error, got {other:?}",
                self.args, self.vars
            ),
        }
    }
}

fn effective<'a>(listing: &'a Listing, name: &str) -> &'a Effective {
    listing
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not listed:\n{listing}"))
}

/// A config file holding `json`, in this test process's temp directory.
fn config_file(name: &str, json: &str) -> PathBuf {
    temp_file(&format!("{name}.json"), json.as_bytes())
}

/// One row of the precedence table: a setting, and the value each source gives it (as a flag's
/// arguments, a variable, a config-file JSON value) with what `consular config` then shows.
struct Row {
    name: &'static str,
    flag: &'static [&'static str],
    flag_shows: &'static str,
    var: (&'static str, &'static str),
    var_shows: &'static str,
    file_json: &'static str,
    file_shows: &'static str,
    default_shows: &'static str,
}

const TABLE: &[Row] = &[
    Row {
        name: "port",
        flag: &["--port", "7001"],
        flag_shows: "7001",
        var: ("CONSULAR_PORT", "7002"),
        var_shows: "7002",
        file_json: "7003",
        file_shows: "7003",
        default_shows: "7000",
    },
    Row {
        name: "purge",
        flag: &["--no-purge"],
        flag_shows: "false",
        var: ("CONSULAR_PURGE", "true"),
        var_shows: "true",
        file_json: "false",
        file_shows: "false",
        default_shows: "false",
    },
    Row {
        name: "debug",
        flag: &["--debug"],
        flag_shows: "true",
        var: ("CONSULAR_DEBUG", "false"),
        var_shows: "false",
        file_json: "true",
        file_shows: "true",
        default_shows: "false",
    },
    Row {
        name: "consul",
        flag: &["--consul", "http://flag:1"],
        flag_shows: "http://flag:1",
        var: ("CONSUL_HTTP_ADDR", "env:2"),
        var_shows: "http://env:2",
        file_json: r#""https://alice:pw@file:3""#,
        file_shows: "https://***@file:3",
        default_shows: "http://localhost:8500",
    },
    Row {
        name: "registration-id",
        flag: &["--registration-id=from-flag"],
        flag_shows: "from-flag",
        var: ("CONSULAR_REGISTRATION_ID", "from-env"),
        var_shows: "from-env",
        file_json: r#""from-file""#,
        file_shows: "from-file",
        default_shows: "consular",
    },
    Row {
        name: "sync-interval",
        flag: &["--sync-interval", "10"],
        flag_shows: "10",
        var: ("CONSULAR_SYNC_INTERVAL", "20"),
        var_shows: "20",
        file_json: "30",
        file_shows: "30",
        default_shows: "0",
    },
    Row {
        name: "events",
        flag: &["--events", "sse"],
        flag_shows: "sse",
        var: ("CONSULAR_EVENTS", "callback"),
        var_shows: "callback",
        file_json: r#""sse""#,
        file_shows: "sse",
        default_shows: "auto",
    },
    Row {
        name: "consul-tls-server-name",
        flag: &["--consul-tls-server-name", "flag.consul"],
        flag_shows: "flag.consul",
        var: ("CONSUL_TLS_SERVER_NAME", "env.consul"),
        var_shows: "env.consul",
        file_json: r#""file.consul""#,
        file_shows: "file.consul",
        default_shows: "(not set)",
    },
    Row {
        name: "consul-token",
        flag: &["--consul-token", "flag-token"],
        flag_shows: "(redacted)",
        var: ("CONSUL_HTTP_TOKEN", "env-token"),
        var_shows: "(redacted)",
        file_json: r#""file-token""#,
        file_shows: "(redacted)",
        default_shows: "(not set)",
    },
];

fn shown(effective: &Effective) -> String {
    match &effective.value {
        Shown::Value(value) => value.clone(),
        Shown::NotSet => "(not set)".to_owned(),
        Shown::Redacted => "(redacted)".to_owned(),
        Shown::Outranked => "(not used)".to_owned(),
    }
}

#[test]
fn each_combination_of_flag_variable_and_file_gives_the_highest_ranked_value_and_its_source() {
    for row in TABLE {
        let file = config_file(
            &format!("table-{}", row.name),
            &format!("{{\"{}\": {}}}", row.name, row.file_json),
        );
        for mask in 0..8 {
            let (with_flag, with_var, with_file) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0);
            let mut invocation = Invocation::new(if with_flag { row.flag } else { &[] });
            if with_var {
                invocation = invocation.var(row.var.0, row.var.1);
            }
            if with_file {
                invocation = invocation.config(&file);
            }
            let (shows, source) = if with_flag {
                (row.flag_shows, Source::Flag)
            } else if with_var {
                (row.var_shows, Source::Env(row.var.0.to_owned()))
            } else if with_file {
                (row.file_shows, Source::File(file.clone()))
            } else {
                (row.default_shows, Source::Default)
            };
            let listing = invocation.listing();
            let got = effective(&listing, row.name);
            let case = format!(
                "{} flag={with_flag} var={with_var} file={with_file}",
                row.name
            );
            assert_eq!(
                (shown(got).as_str(), &got.source),
                (shows, &source),
                "{case}"
            );
            // A run resolves the same way.
            invocation.run();
        }
    }
}

#[test]
fn the_value_a_run_uses_is_the_one_the_listing_shows() {
    let file = config_file(
        "run-and-listing",
        r#"{"port": 7003, "purge": true, "sync-interval": 30, "consul-token": "file-token",
            "host": "file.example", "log-level": "warn"}"#,
    );
    let invocation = Invocation::new(&["--sync-interval", "10"])
        .var("CONSULAR_PORT", "7002")
        .var("CONSUL_HTTP_TOKEN", "env-token")
        .config(&file);
    let run = invocation.run();
    assert_eq!(run.port, 7002);
    assert!(run.purge);
    assert_eq!(run.sync_interval, Duration::from_secs(10));
    assert_eq!(run.consul_token.as_deref(), Some("env-token"));
    assert_eq!(run.host, "file.example");
    assert_eq!(run.log_level, LogLevel::Warn);
    assert!(!run.config().debug);

    let listing = invocation.listing();
    let line = |name: &str| effective(&listing, name).to_string();
    assert_eq!(
        line("port"),
        format!("{:<24} 7002 (from env CONSULAR_PORT)", "port")
    );
    assert_eq!(
        line("purge"),
        format!("{:<24} true (from file {})", "purge", file.display())
    );
    assert_eq!(
        line("sync-interval"),
        format!("{:<24} 10 (from flag)", "sync-interval")
    );
    assert_eq!(
        line("consul-token"),
        format!(
            "{:<24} (redacted, from env CONSUL_HTTP_TOKEN)",
            "consul-token"
        )
    );
    assert_eq!(
        line("timeout"),
        format!("{:<24} 5 (from default)", "timeout")
    );
    assert_eq!(
        line("instance-id"),
        format!("{:<24} file.example:7002 (from default)", "instance-id")
    );
    let text = listing.to_string();
    assert!(
        !text.contains("env-token") && !text.contains("file-token"),
        "{text}"
    );
}

#[test]
fn every_setting_is_listed_once_in_order_and_is_in_the_help() {
    let listing = Invocation::new(&[]).listing();
    let names: Vec<&str> = listing.0.iter().map(|e| e.name).collect();
    let catalog: Vec<&str> = catalog::SETTINGS.iter().map(|s| s.name()).collect();
    assert_eq!(names, catalog);
    assert_eq!(listing.to_string().lines().count(), catalog.len());
    for setting in catalog::SETTINGS {
        assert!(
            USAGE.contains(setting.flag),
            "{} is not in the help",
            setting.flag
        );
        if let Some(negation) = setting.negation {
            assert!(USAGE.contains(negation), "{negation} is not in the help");
        }
        if let Some(var) = setting.consul_var {
            assert!(USAGE.contains(var), "{var} is not in the help");
        }
    }
}

#[test]
fn consulars_own_variable_beats_consuls_for_the_same_setting() {
    let listing = Invocation::new(&[])
        .var("CONSUL_HTTP_ADDR", "consul-var:8500")
        .var("CONSULAR_CONSUL", "http://consular-var:8500")
        .var("CONSUL_CACERT", "/consul/ca.pem")
        .var("CONSULAR_CONSUL_CA_FILE", "/consular/ca.pem")
        .listing();
    let consul = effective(&listing, "consul");
    assert_eq!(
        (shown(consul).as_str(), &consul.source),
        (
            "http://consular-var:8500",
            &Source::Env("CONSULAR_CONSUL".to_owned())
        )
    );
    let ca = effective(&listing, "consul-ca-file");
    assert_eq!(
        (shown(ca).as_str(), &ca.source),
        (
            "/consular/ca.pem",
            &Source::Env("CONSULAR_CONSUL_CA_FILE".to_owned())
        )
    );
}

#[test]
fn consul_http_addr_takes_host_port_or_a_url_and_consul_http_ssl_picks_the_scheme() {
    let consul = |vars: &[(&'static str, &'static str)]| {
        let mut invocation = Invocation::new(&[]);
        for (k, v) in vars {
            invocation = invocation.var(k, v);
        }
        invocation.run().consul.to_redacted_string()
    };
    assert_eq!(
        consul(&[("CONSUL_HTTP_ADDR", "10.0.0.1:8500")]),
        "http://10.0.0.1:8500"
    );
    for ssl in ["true", "1", "TRUE"] {
        assert_eq!(
            consul(&[
                ("CONSUL_HTTP_ADDR", "10.0.0.1:8501"),
                ("CONSUL_HTTP_SSL", ssl)
            ]),
            "https://10.0.0.1:8501",
            "{ssl}"
        );
    }
    assert_eq!(
        consul(&[
            ("CONSUL_HTTP_ADDR", "10.0.0.1:8500"),
            ("CONSUL_HTTP_SSL", "false")
        ]),
        "http://10.0.0.1:8500"
    );
    // A scheme in the address is what it says.
    assert_eq!(
        consul(&[
            ("CONSUL_HTTP_ADDR", "https://c.example"),
            ("CONSUL_HTTP_SSL", "0")
        ]),
        "https://c.example"
    );
    // Empty is unset, for every variable.
    assert_eq!(
        consul(&[("CONSUL_HTTP_ADDR", ""), ("CONSULAR_CONSUL", "")]),
        "http://localhost:8500"
    );
}

#[test]
fn bad_variables_name_the_variable_and_the_problem() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "CONSULAR_PORT",
            "abc",
            r#"CONSULAR_PORT: expected an integer from 1 to 65535, got "abc""#,
        ),
        ("CONSULAR_PURGE", "yes", r#"CONSULAR_PURGE: expected true or false, got "yes""#),
        ("CONSULAR_HA", "1", r#"CONSULAR_HA: expected true or false, got "1""#),
        ("CONSULAR_PROT", "7000", "CONSULAR_PROT: no such setting (see --help)"),
        ("CONSULAR_NO_PURGE", "true", "CONSULAR_NO_PURGE: no such setting (see --help)"),
        (
            "CONSUL_HTTP_ADDR",
            "unix:///var/run/consul.sock",
            r#"CONSUL_HTTP_ADDR: expected an http or https URL, got "unix:///var/run/consul.sock" (scheme "unix" is not supported)"#,
        ),
        (
            "CONSULAR_MARATHON",
            "http://alice:hunter2@[bad",
            r#"CONSULAR_MARATHON: expected an http or https URL, got "http://***@[bad" (invalid IPv6 address)"#,
        ),
        (
            "CONSULAR_EVENTS",
            "stream",
            r#"CONSULAR_EVENTS: expected sse, callback or auto, got "stream""#,
        ),
        (
            "CONSUL_HTTP_TOKEN",
            "t0ken with space",
            "CONSUL_HTTP_TOKEN: the token has a character that is not visible ASCII (0x21-0x7e) at position 6",
        ),
        (
            "CONSULAR_MARATHON_TOKEN",
            "t0ken\nX-Evil: 1",
            "CONSULAR_MARATHON_TOKEN: the token has a character that is not visible ASCII (0x21-0x7e) at position 6",
        ),
        (
            "CONSULAR_LOG_LEVEL",
            "trace",
            r#"CONSULAR_LOG_LEVEL: expected error, warn, info or debug, got "trace""#,
        ),
    ];
    for (var, value, expected) in cases {
        let message = Invocation::new(&[]).var(var, value).error();
        assert_eq!(&message, expected, "{var}={value:?}");
        assert!(
            !message.contains("t0ken") && !message.contains("hunter2"),
            "{message}"
        );
    }
    assert_eq!(
        Invocation::new(&[])
            .var("CONSUL_HTTP_ADDR", "c:8500")
            .var("CONSUL_HTTP_SSL", "maybe")
            .error(),
        r#"CONSUL_HTTP_SSL: expected true, false, 1 or 0, got "maybe""#
    );
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let not_text = OsString::from_vec(vec![b'h', 0xff]);
        let vars = vec![(OsString::from("CONSULAR_HOST"), not_text)];
        assert_eq!(
            tests::parse_environment(vars).unwrap_err().to_string(),
            "CONSULAR_HOST: expected UTF-8 text"
        );
    }
    // Variables of other programs are not ours to judge.
    Invocation::new(&[])
        .var("CONSULX", "1")
        .var("CONSUL_FOO", "x")
        .run();
}

#[test]
fn config_file_errors_name_the_file_the_key_and_the_problem() {
    let cases: &[(&str, &str, &str)] = &[
        ("unknown", r#"{"prot": 7000}"#, r#"unknown key "prot" (see --help for the settings)"#),
        ("negation", r#"{"no-purge": true}"#, r#"unknown key "no-purge" (use "purge": false)"#),
        (
            "dashes",
            r#"{"--port": 7000}"#,
            r#"unknown key "--port" (keys are the flag names without --)"#,
        ),
        ("itself", r#"{"config": "/etc/other.json"}"#, "config: cannot be set in the config file itself"),
        ("string-port", r#"{"port": "7000"}"#, "port: expected a number, got a string"),
        ("string-switch", r#"{"purge": "yes"}"#, "purge: expected true or false, got a string"),
        ("number-text", r#"{"host": 10}"#, "host: expected a string, got a number"),
        ("null", r#"{"host": null}"#, "host: expected a string, got null"),
        ("array", r#"{"consul": ["http://c"]}"#, "consul: expected a string, got an array"),
        ("port-zero", r#"{"port": 0}"#, r#"port: expected an integer from 1 to 65535, got "0""#),
        (
            "negative",
            r#"{"sync-interval": -1}"#,
            r#"sync-interval: expected a whole number of seconds from 0 to 31536000, got "-1""#,
        ),
        (
            "fraction",
            r#"{"timeout": 1.5}"#,
            r#"timeout: expected a whole number of seconds from 1 to 31536000, got "1.5""#,
        ),
        ("scheme", r#"{"scheme": "ftp"}"#, r#"scheme: expected http or https, got "ftp""#),
        ("duplicate", r#"{"port": 7001, "port": 7002}"#, "port: given more than once"),
        (
            "secret",
            r#"{"consul-token": "s3cr3t t0ken"}"#,
            "consul-token: the token has a character that is not visible ASCII (0x21-0x7e) at position 7",
        ),
    ];
    for (name, json, problem) in cases {
        let file = config_file(&format!("bad-{name}"), json);
        let message = Invocation::new(&[]).config(&file).error();
        assert_eq!(message, format!("{}: {problem}", file.display()), "{name}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }
    for (name, json) in [
        ("array-top", "[1, 2]"),
        ("trailing", r#"{"port": 7001} {"#),
        ("syntax", r#"{"port": 7001,}"#),
        ("empty", ""),
        (
            "deep",
            &format!("{{\"host\": {}1{}}}", "[".repeat(200), "]".repeat(200)),
        ),
    ] {
        let file = config_file(&format!("bad-{name}"), json);
        let message = Invocation::new(&[]).config(&file).error();
        let prefix = format!("{}: not a JSON object of settings: ", file.display());
        assert!(message.starts_with(&prefix), "{name}: {message}");
    }
    // An attacker's key: long, with a newline and an escape. One short line, escaped.
    let key = format!("x\\n\\u001b[2J{}", "k".repeat(10_000));
    let file = config_file("bad-long-key", &format!("{{\"{key}\": 1}}"));
    let message = Invocation::new(&[]).config(&file).error();
    assert!(message.len() < 200, "{message}");
    assert!(
        message.contains(r#"unknown key "x\n\u{1b}[2Jkkk"#),
        "{message}"
    );
    let not_utf8 = temp_file("bad-utf8.json", b"{\"host\": \"\xff\"}");
    assert!(Invocation::new(&[])
        .config(&not_utf8)
        .error()
        .contains("not a JSON object"));

    let missing = std::env::temp_dir().join("consular-no-such-config.json");
    let message = Invocation::new(&[]).config(&missing).error();
    assert!(
        message.starts_with(&format!("--config: cannot read {missing:?}: ")),
        "{message}"
    );
    let message = Invocation::new(&[])
        .var("CONSULAR_CONFIG", missing.to_str().unwrap())
        .error();
    assert!(
        message.starts_with(&format!("CONSULAR_CONFIG: cannot read {missing:?}: ")),
        "{message}"
    );

    let mut big = b"{\"host\": \"h\"".to_vec();
    big.resize(MAX_CONFIG_BYTES as usize, b' ');
    big.push(b'}');
    let big = temp_file("big.json", &big);
    assert_eq!(
        Invocation::new(&[]).config(&big).error(),
        format!("{}: is larger than 1024 KiB", big.display())
    );
    let mut fits = b"{\"host\": \"h\"".to_vec();
    fits.resize(MAX_CONFIG_BYTES as usize - 1, b' ');
    fits.push(b'}');
    let fits = temp_file("fits.json", &fits);
    assert_eq!(Invocation::new(&[]).config(&fits).run().host, "h");
}

#[test]
fn a_bad_file_value_that_a_flag_overrides_is_not_used_and_not_checked() {
    let file = config_file("overridden", r#"{"port": 0, "purge": true}"#);
    let run = Invocation::new(&["--port", "7001", "--no-purge"])
        .config(&file)
        .run();
    assert_eq!((run.port, run.purge), (7001, false));
    // The types are checked whatever overrides them: the file itself is wrong.
    let file = config_file("overridden-type", r#"{"port": "7000"}"#);
    assert!(Invocation::new(&["--port", "7001"])
        .config(&file)
        .error()
        .contains("port"));
}

#[test]
fn tokens_come_from_values_at_files_and_token_files_and_are_never_shown() {
    let lf = temp_file("token-lf", b"file-t0ken\n");
    let crlf = temp_file("token-crlf", b"file-t0ken\r\n");
    let bare = temp_file("token-bare", b"file-t0ken");
    for path in [&lf, &crlf, &bare] {
        let path = path.to_str().unwrap();
        for invocation in [
            Invocation::new(&["--consul-token-file", path]),
            Invocation::new(&[&format!("--consul-token=@{path}")]),
            Invocation::new(&[]).var("CONSUL_HTTP_TOKEN_FILE", path),
            Invocation::new(&[]).var("CONSULAR_CONSUL_TOKEN", &format!("@{path}")),
        ] {
            let run = invocation.run();
            assert_eq!(run.consul_token.as_deref(), Some("file-t0ken"), "{path}");
            let listing = invocation.listing().to_string();
            assert!(!listing.contains("t0ken"), "{listing}");
            assert!(listing.contains("(redacted, from "), "{listing}");
        }
        let run = Invocation::new(&["--marathon-token", &format!("@{path}")]).run();
        assert_eq!(run.marathon_token.as_deref(), Some("file-t0ken"));
    }
    // Consul's own variable means what it means to Consul: the value, `@` and all.
    let run = Invocation::new(&[])
        .var("CONSUL_HTTP_TOKEN", "@not-a-file")
        .run();
    assert_eq!(run.consul_token.as_deref(), Some("@not-a-file"));

    // A token file on the command line beats the token in the environment, and the other way.
    let lf_path = lf.to_str().unwrap();
    let invocation =
        Invocation::new(&["--consul-token-file", lf_path]).var("CONSUL_HTTP_TOKEN", "env-t0ken");
    assert_eq!(invocation.run().consul_token.as_deref(), Some("file-t0ken"));
    let listing = invocation.listing();
    assert_eq!(effective(&listing, "consul-token").source, Source::Flag);
    let invocation =
        Invocation::new(&["--consul-token", "flag-t0ken"]).var("CONSUL_HTTP_TOKEN_FILE", lf_path);
    assert_eq!(invocation.run().consul_token.as_deref(), Some("flag-t0ken"));
    let listing = invocation.listing();
    assert_eq!(
        effective(&listing, "consul-token-file").value,
        Shown::Outranked
    );
    assert!(listing
        .to_string()
        .contains("(not used, from env CONSUL_HTTP_TOKEN_FILE)"));
}

#[test]
fn a_token_given_twice_by_one_source_or_from_a_bad_file_is_refused_naming_the_file() {
    let lf = temp_file("token-twice", b"file-t0ken\n");
    let lf_path = lf.to_str().unwrap();
    assert_eq!(
        Invocation::new(&["--consul-token", "t", "--consul-token-file", lf_path]).error(),
        "--consul-token and --consul-token-file: give the token one way, not both"
    );
    assert_eq!(
        Invocation::new(&[])
            .var("CONSUL_HTTP_TOKEN", "t")
            .var("CONSUL_HTTP_TOKEN_FILE", lf_path)
            .error(),
        "CONSUL_HTTP_TOKEN and CONSUL_HTTP_TOKEN_FILE: give the token one way, not both"
    );

    let missing = std::env::temp_dir().join("consular-no-such-token");
    let message = Invocation::new(&["--consul-token-file", missing.to_str().unwrap()]).error();
    assert!(
        message.starts_with(&format!("--consul-token-file: cannot read {missing:?}: ")),
        "{message}"
    );
    let message = Invocation::new(&[])
        .var("CONSUL_HTTP_TOKEN_FILE", missing.to_str().unwrap())
        .error();
    assert!(
        message.starts_with(&format!(
            "CONSUL_HTTP_TOKEN_FILE: cannot read {missing:?}: "
        )),
        "{message}"
    );
    let two_lines = temp_file("token-two-lines", b"hidden-1\nhidden-2\n");
    assert_eq!(
        Invocation::new(&["--marathon-token", &format!("@{}", two_lines.display())]).error(),
        format!("--marathon-token: the token in {two_lines:?} has a character that is not visible ASCII (0x21-0x7e) at position 9")
    );
    let empty = temp_file("token-empty", b"\n");
    assert_eq!(
        Invocation::new(&["--consul-token-file", empty.to_str().unwrap()]).error(),
        format!("--consul-token-file: the token in {empty:?} is empty")
    );
    let mut big = vec![b'a'; MAX_SECRET_BYTES as usize + 1];
    big.push(b'\n');
    let big = temp_file("token-big", &big);
    assert_eq!(
        Invocation::new(&["--consul-token-file", big.to_str().unwrap()]).error(),
        format!("--consul-token-file: {big:?} is larger than 64 KiB")
    );
    let binary = temp_file("token-binary", b"\xff\xfe");
    assert_eq!(
        Invocation::new(&["--consul-token-file", binary.to_str().unwrap()]).error(),
        format!("--consul-token-file: the token in {binary:?} is not UTF-8 text")
    );
}

#[test]
fn the_marathon_password_file_gives_the_user_in_the_url_its_password() {
    let password = temp_file("marathon-password", b"pa ss:w0rd\n");
    let path = password.to_str().unwrap();
    let invocation = Invocation::new(&[
        "--marathon",
        "http://alice@marathon.example:8080",
        "--marathon-password-file",
        path,
    ]);
    let run = invocation.run();
    let destination = run
        .driver_settings()
        .endpoints
        .destination(&Target::Marathon, "/v2/apps")
        .unwrap();
    // base64("alice:pa ss:w0rd")
    assert_eq!(
        destination.headers,
        vec![("Authorization", "Basic YWxpY2U6cGEgc3M6dzByZA==".to_owned())]
    );
    let listing = invocation.listing().to_string();
    assert!(
        !listing.contains("w0rd") && !listing.contains("alice"),
        "{listing}"
    );
    assert!(
        listing.contains("http://***@marathon.example:8080 (from flag)"),
        "{listing}"
    );

    for (url, why) in [
        (
            "http://marathon.example:8080",
            "the URL names no user (give it as http://user@host:port)",
        ),
        (
            "http://alice:old@marathon.example:8080",
            "the URL already has a password",
        ),
    ] {
        let message =
            Invocation::new(&["--marathon", url, "--marathon-password-file", path]).error();
        assert_eq!(
            message,
            format!("--marathon-password-file: --marathon: {why}")
        );
    }
    let control = temp_file("marathon-password-control", b"pass\x07word\n");
    let message = Invocation::new(&[
        "--marathon",
        "http://alice@m:8080",
        "--marathon-password-file",
        control.to_str().unwrap(),
    ])
    .error();
    assert_eq!(
        message,
        format!("--marathon-password-file: the password in {control:?} has a control character at position 5")
    );
}

#[test]
fn tls_settings_reach_the_options_of_their_peer_only() {
    let run = Invocation::new(&[
        "--ca-file",
        "/both.pem",
        "--consul-ca-file",
        "/consul.pem",
        "--consul-ca-path",
        "/consul.d",
        "--consul-client-cert",
        "/consul-cert.pem",
        "--consul-client-key",
        "/consul-key.pem",
        "--consul-tls-server-name",
        "consul.internal",
        "--marathon-ca-file",
        "/marathon.pem",
        "--marathon-ca-path",
        "/marathon.d",
        "--marathon-client-cert",
        "/marathon-cert.pem",
        "--marathon-client-key",
        "/marathon-key.pem",
    ])
    .run();
    let path = PathBuf::from;
    let settings = run.driver_settings();
    assert_eq!(
        settings.consul_tls,
        TlsOptions {
            ca_files: vec![path("/both.pem"), path("/consul.pem")],
            ca_dirs: vec![path("/consul.d")],
            client_cert: Some(path("/consul-cert.pem")),
            client_key: Some(path("/consul-key.pem")),
            server_name: Some("consul.internal".to_owned()),
        }
    );
    assert_eq!(
        settings.marathon_tls,
        TlsOptions {
            ca_files: vec![path("/both.pem"), path("/marathon.pem")],
            ca_dirs: vec![path("/marathon.d")],
            client_cert: Some(path("/marathon-cert.pem")),
            client_key: Some(path("/marathon-key.pem")),
            server_name: None,
        }
    );
    let from_env = Invocation::new(&[])
        .var("CONSUL_CACERT", "/env-ca.pem")
        .var("CONSUL_CAPATH", "/env-ca.d")
        .var("CONSUL_CLIENT_CERT", "/env-cert.pem")
        .var("CONSUL_CLIENT_KEY", "/env-key.pem")
        .var("CONSUL_TLS_SERVER_NAME", "10.0.0.1")
        .run();
    assert_eq!(
        from_env.consul_tls,
        TlsOptions {
            ca_files: vec![path("/env-ca.pem")],
            ca_dirs: vec![path("/env-ca.d")],
            client_cert: Some(path("/env-cert.pem")),
            client_key: Some(path("/env-key.pem")),
            server_name: Some("10.0.0.1".to_owned()),
        }
    );
    assert_eq!(from_env.marathon_tls, TlsOptions::default());

    assert_eq!(
        Invocation::new(&["--consul-client-cert", "/c.pem"]).error(),
        "--consul-client-cert: a client certificate needs its key (--consul-client-key)"
    );
    assert_eq!(
        Invocation::new(&[])
            .var("CONSUL_CLIENT_KEY", "/k.pem")
            .error(),
        "CONSUL_CLIENT_KEY: a client key needs its certificate (--consul-client-cert)"
    );
    assert_eq!(
        Invocation::new(&["--marathon-client-key", "/k.pem"]).error(),
        "--marathon-client-key: a client key needs its certificate (--marathon-client-cert)"
    );
    assert_eq!(
        Invocation::new(&["--consul-tls-server-name", "a b"]).error(),
        r#"--consul-tls-server-name: expected a DNS name or an IP address, got "a b""#
    );
    assert_eq!(
        Invocation::new(&["--consul-ca-file="]).error(),
        "--consul-ca-file: expected a value"
    );
}

#[test]
fn the_log_is_text_on_a_terminal_json_elsewhere_and_debug_raises_its_level() {
    let mut terminal = Invocation::new(&[]);
    terminal.stdout = Output::Terminal;
    assert_eq!(terminal.run().log_format, LogFormat::Text);
    assert_eq!(Invocation::new(&[]).run().log_format, LogFormat::Json);
    let mut to_file = Invocation::new(&["--logfile", "/var/log/consular.log"]);
    to_file.stdout = Output::Terminal;
    assert_eq!(to_file.run().log_format, LogFormat::Json);
    let mut chosen = Invocation::new(&["--log-format", "json"]);
    chosen.stdout = Output::Terminal;
    assert_eq!(chosen.run().log_format, LogFormat::Json);
    assert_eq!(
        Invocation::new(&["--log-format", "text"]).run().log_format,
        LogFormat::Text
    );
    assert_eq!(
        Invocation::new(&["--log-format", "pretty"]).error(),
        r#"--log-format: expected text or json, got "pretty""#
    );

    let level = |invocation: Invocation| {
        let run = invocation.run();
        (run.log_level, run.debug, run.config().debug)
    };
    assert_eq!(level(Invocation::new(&[])), (LogLevel::Info, false, false));
    assert_eq!(
        level(Invocation::new(&["--log-level", "warn"])),
        (LogLevel::Warn, false, false)
    );
    assert_eq!(
        level(Invocation::new(&["--log-level", "error"])),
        (LogLevel::Error, false, false)
    );
    // `--log-level debug` is `--debug`: the core's debug records are its requests.
    assert_eq!(
        level(Invocation::new(&["--log-level", "debug"])),
        (LogLevel::Debug, true, true)
    );
    assert_eq!(
        level(Invocation::new(&["--debug"])),
        (LogLevel::Debug, true, true)
    );
    assert_eq!(
        level(Invocation::new(&["--debug", "--log-level", "warn"])),
        (LogLevel::Debug, true, true)
    );
    let invocation = Invocation::new(&["--log-level", "warn"]).var("CONSULAR_DEBUG", "true");
    let listing = invocation.listing();
    let line = effective(&listing, "log-level");
    assert_eq!(
        (shown(line).as_str(), &line.source),
        ("debug", &Source::Env("CONSULAR_DEBUG".to_owned()))
    );
}

#[test]
fn new_flags_take_the_equals_form_and_refuse_a_second_value() {
    let run = Invocation::new(&[
        "--log-level=warn",
        "--log-format=text",
        "--consul-tls-server-name=c",
    ])
    .run();
    assert_eq!(
        (run.log_level, run.log_format),
        (LogLevel::Warn, LogFormat::Text)
    );
    assert_eq!(
        Invocation::new(&["--config", "a.json", "--config", "b.json"]).error(),
        "--config: given more than once"
    );
    assert_eq!(
        Invocation::new(&["--ha=true"]).error(),
        r#"--ha: takes no value, got "--ha=true""#
    );
}
