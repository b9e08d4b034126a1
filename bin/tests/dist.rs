//! The systemd unit shipped in `bin/dist/`: `systemd-analyze verify` accepts it without a warning, with its
//! `ExecStart` binary pointed at the one cargo built, and that binary accepts the unit's command line
//! (`consular config` with a config file and the token credential in place).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the unit expects the binary.
const INSTALLED_BINARY: &str = "/usr/local/bin/consular";

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/consular.service");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("creating a scratch folder");
    dir
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let unit = unit_text();
    assert!(
        unit.contains(INSTALLED_BINARY),
        "the unit runs {INSTALLED_BINARY}"
    );
    let dir = scratch_dir("unit");
    let path = dir.join("consular.service");
    fs::write(
        &path,
        unit.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_consular")),
    )
    .expect("writing the unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("running systemd-analyze (Debian's systemd package)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{}: {said}", out.status);
    assert_eq!(said, "", "systemd-analyze warned");
}

#[test]
fn the_units_command_line_is_one_the_binary_accepts() {
    let unit = unit_text();
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart line");
    let dir = scratch_dir("unit-command");
    fs::write(
        dir.join("consular.json"),
        r#"{"consul": "http://127.0.0.1:8500", "purge": true}"#,
    )
    .expect("writing the config file");
    fs::write(dir.join("consul-token"), "unit-test-token\n").expect("writing the token");
    let dir_text = dir.to_str().expect("a UTF-8 scratch path");
    // What systemd would run: the credential folder it makes, the config file the operator wrote.
    let command_line = exec.replace("${CREDENTIALS_DIRECTORY}", dir_text).replace(
        "/etc/consular/consular.json",
        &format!("{dir_text}/consular.json"),
    );
    let mut words = command_line.split_whitespace();
    assert_eq!(words.next(), Some(INSTALLED_BINARY));
    let out = Command::new(env!("CARGO_BIN_EXE_consular"))
        .arg("config")
        .args(words)
        .env_clear()
        .output()
        .expect("running consular config");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains("consul-token             (redacted, from flag)"),
        "{shown}"
    );
    assert!(
        shown.contains("purge                    true (from file"),
        "{shown}"
    );
    assert!(
        !shown.contains("unit-test-token"),
        "the token was shown:\n{shown}"
    );
}
