//! The static build (`.ci/build-static`) in an otherwise empty root directory: only the binary and an
//! `/etc/hosts`, under `chroot`. Every peer is named by a host name that only that `/etc/hosts` knows
//! (Consul, Marathon, and the task's host, which is a Consul node's name), so the test shows the binary
//! resolves names with no libc, NSS modules or resolver configuration beside it, reaches Consul and
//! Marathon, registers a task on its host's agent, and answers `/ready`.
//!
//! The binary is `$CONSULAR_STATIC_BIN` (`.ci/test` builds it first); without that variable the test runs
//! `.ci/build-static` itself. `chroot` needs root; as another user it runs under `unshare --map-root-user`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use consular_sim::MarathonVersion;
use support::bridge::Consular;
use support::consul::{get, wait_until};
use support::world::{run_task, Peers, World, AGENT_2, DEADLINE};

/// Names only the empty root's `/etc/hosts` resolves.
const CONSUL_NAME: &str = "consul.static.test";
const MARATHON_NAME: &str = "marathon.static.test";

#[test]
fn the_static_binary_runs_in_an_empty_root_resolving_names_from_etc_hosts() {
    let binary = static_binary();
    let mut task = String::new();
    let peers = Peers::start(1, MarathonVersion::V1_10, |_| {});
    // The task runs on the client agent's node, named by its node name as Mesos would name a host.
    let host = peers.cluster.node_name(AGENT_2).to_owned();
    peers.marathon.with(|m| {
        m.put_app("/web", &[("team", "payments")]);
        task = run_task(m, "/web", &host, &[31000]);
    });

    let root = empty_root(
        &binary,
        &[
            ("127.0.0.1", CONSUL_NAME),
            ("127.0.0.1", MARATHON_NAME),
            (&peers.cluster.agent_ip(AGENT_2).to_string(), &host),
        ],
    );
    let consul = format!("http://{CONSUL_NAME}:{}", peers.cluster.http_port());
    let marathon = format!("http://{MARATHON_NAME}:{}", peers.marathon.addr().port());
    let consular = Consular::start_with(
        || chroot(&root),
        &marathon,
        &consul,
        &["--events", "sse", "--sync-interval", "2"],
    );
    let world = World {
        consular,
        marathon: peers.marathon,
        cluster: peers.cluster,
    };

    world.wait_registered(AGENT_2, &task);
    world.wait_kv("consular/web/", &[("consular/web/team", r#""payments""#)]);
    let at = world.consular.addr();
    wait_until("/ready to answer 200", DEADLINE, || {
        get(at, "/ready").is_ok_and(|(status, _)| status == 200)
    });
    assert!(
        world.consular.log_lines_with("sync done") > 0,
        "{}",
        world.consular.log_tail(20)
    );
}

/// The static binary: `$CONSULAR_STATIC_BIN`, else what `.ci/build-static` builds (its last stdout line).
fn static_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CONSULAR_STATIC_BIN") {
        return PathBuf::from(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/build-static");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("the script prints a path");
    PathBuf::from(stdout.lines().last().expect("the script prints a path"))
}

/// A fresh directory holding only `/consular` and `/etc/hosts` with `hosts` (address, name).
fn empty_root(binary: &Path, hosts: &[(&str, &str)]) -> PathBuf {
    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("empty-root-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("etc")).expect("creating the root's /etc");
    fs::copy(binary, root.join("consular")).expect("copying the static binary into the root");
    let lines: String = hosts
        .iter()
        .map(|(address, name)| format!("{address} {name}\n"))
        .collect();
    fs::write(root.join("etc/hosts"), lines).expect("writing the root's /etc/hosts");
    let entries: Vec<_> = walk(&root);
    assert_eq!(
        entries,
        ["consular", "etc", "etc/hosts"],
        "the root holds more"
    );
    root
}

/// The paths under `root`, relative and sorted.
fn walk(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("reading the root") {
            let path = entry.expect("a directory entry").path();
            let relative = path.strip_prefix(root).expect("under the root");
            found.push(relative.to_string_lossy().into_owned());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

/// `chroot ROOT /consular`, under `unshare --map-root-user` unless this process is root.
fn chroot(root: &Path) -> Command {
    let root_user = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            uid.split_whitespace().next().map(|euid| euid == "0")
        })
        .unwrap_or(false);
    let mut command = if root_user {
        Command::new("chroot")
    } else {
        let mut unshare = Command::new("unshare");
        unshare.args(["--map-root-user", "chroot"]);
        unshare
    };
    command.arg(root).arg("/consular");
    command
}
