//! End-to-end `/metrics` of the real binary, against a real Consul 1.8.7 and the Marathon simulator (event stream,
//! Marathon 1.10): every scrape passes `promtool check metrics` (Debian's prometheus 2.42: format and lint, with
//! no problem reported), and the counters move by exactly what a scripted scenario implies: a task starts (its
//! registration), is killed (its deregistration), then the stream is cut and the sync after the reconnect writes
//! the app's changed label. A client hammering `/metrics` then changes neither the series nor the memory.
//!
//! Needs Consul (`.ci/fetch-consul` or `CONSUL_BIN`) and promtool (`.ci/fetch-promtool` or `PROMTOOL`); `.ci/test`
//! fetches both.
//!
//! ```sh
//! CONSUL_BIN=$(.ci/fetch-consul) PROMTOOL=$(.ci/fetch-promtool) cargo test -p consular --test metrics
//! ```

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use consular_sim::MarathonVersion;
use support::consul::{fetched_tool, get, wait_until};
use support::world::{run_task, World, AGENT_2, DEADLINE};

/// Its peak resident memory must stay under this, as in `hostile.rs`.
const RSS_LIMIT: u64 = 64 * 1024 * 1024;

/// The promtool to run: `$PROMTOOL`, else `<repo>/.cache/prometheus-2.42.0/promtool`.
fn promtool() -> PathBuf {
    fetched_tool(
        "PROMTOOL",
        "prometheus-2.42.0/promtool",
        "promtool not found: run .ci/fetch-promtool (or set PROMTOOL)",
    )
}

/// Runs `promtool check metrics` on `text`; panics with what it said unless it passes without a word.
fn assert_promtool_passes(text: &str) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("writing the scrape to promtool");
    let out = child.wait_with_output().expect("promtool's result");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {} {said}\n--- scrape ---\n{text}",
        out.status
    );
}

/// One scrape: its text and each series' value.
struct Scrape {
    text: String,
    values: BTreeMap<String, f64>,
}

impl Scrape {
    fn of(world: &World) -> Scrape {
        let (status, text) = get(world.consular.addr(), "/metrics").expect("GET /metrics");
        assert_eq!(status, 200, "{text}");
        let values = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("`series value`");
                (series.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Scrape { text, values }
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .values
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in\n{}", self.text))
    }

    /// How much each series grew since `before`, leaving out those that did not move and the durations.
    fn moved_since(&self, before: &Scrape) -> BTreeMap<String, f64> {
        self.values
            .iter()
            .filter(|(series, _)| {
                // Durations and times differ from run to run; counts do not.
                let name = series.split('{').next().unwrap_or(series);
                !(name.ends_with("_bucket")
                    || name.ends_with("_sum")
                    || name == "consular_last_complete_sync_timestamp_seconds")
            })
            .filter_map(|(series, value)| {
                let delta = value - before.get(series);
                (delta != 0.0).then(|| (series.clone(), delta))
            })
            .collect()
    }
}

/// The first scrape in which `series` grew by `by` since `before` and no request is in flight or queued: the
/// bridge has seen the answers to what the step made it send (Consul shows a write before its answer is in).
fn settled(world: &World, before: &Scrape, series: &str, by: f64) -> Scrape {
    let mut last = None;
    wait_until(&format!("{series} to grow by {by}"), DEADLINE, || {
        let scrape = Scrape::of(world);
        let done = scrape.get(series) - before.get(series) == by
            && scrape.get("consular_requests_in_flight") == 0.0
            && scrape.get("consular_requests_queued") == 0.0;
        last = Some(scrape);
        done
    });
    last.expect("scraped at least once")
}

fn expect_moved(after: &Scrape, before: &Scrape, want: &[(&str, f64)]) {
    let want: BTreeMap<String, f64> = want.iter().map(|(s, d)| (s.to_string(), *d)).collect();
    assert_eq!(
        after.moved_since(before),
        want,
        "\n--- scrape ---\n{}",
        after.text
    );
}

#[test]
fn scrapes_pass_promtool_and_counters_move_as_the_scenario_says() {
    let world = World::start(
        1,
        MarathonVersion::V1_10,
        |m| m.put_app("/web", &[("domain", "web.example")]),
        &["--events", "sse", "--sync-interval", "3600", "--purge"],
    );
    wait_until("the first sync", DEADLINE, || {
        world.consular.log_lines_with("sync done") == 1
    });
    let start = Scrape::of(&world);
    assert_promtool_passes(&start.text);
    assert_eq!(start.get("consular_syncs_total{result=\"complete\"}"), 1.0);
    assert_eq!(
        start.get("consular_event_stream_state{state=\"open\"}"),
        1.0
    );
    assert_eq!(start.get("consular_event_stream_connects_total"), 1.0);
    assert_eq!(start.get("consular_leader"), 1.0);
    assert_eq!(start.get("consular_requests_in_flight"), 0.0);
    assert_eq!(start.get("consular_last_sync_writes{kind=\"kv\"}"), 1.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        start.get(&format!("consular_build_info{{version=\"{version}\"}}")),
        1.0
    );
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last_sync = start.get("consular_last_complete_sync_timestamp_seconds");
    assert!(
        (wall - 60.0..=wall).contains(&last_sync),
        "{last_sync} against now {wall}"
    );

    // A task starts: STAGING then RUNNING on the stream, one registration, then, as for the first task of an app
    // version an event brings, a read of the app and of its KV (unchanged: nothing written).
    let task = world
        .marathon
        .with(|m| run_task(m, "/web", "127.0.0.2", &[31000]));
    world.wait_registered(AGENT_2, &task);
    let started = settled(
        &world,
        &start,
        "consular_registrations_total{result=\"ok\"}",
        1.0,
    );
    expect_moved(
        &started,
        &start,
        &[
            (
                "consular_events_received_total{type=\"status_update\"}",
                2.0,
            ),
            ("consular_status_updates_total{state=\"TASK_STAGING\"}", 1.0),
            ("consular_status_updates_total{state=\"TASK_RUNNING\"}", 1.0),
            ("consular_registrations_total{result=\"ok\"}", 1.0),
            (
                "consular_requests_total{target=\"agent\",method=\"PUT\",class=\"2xx\"}",
                1.0,
            ),
            (
                "consular_requests_total{target=\"marathon\",method=\"GET\",class=\"2xx\"}",
                1.0,
            ),
            (
                "consular_requests_total{target=\"consul\",method=\"GET\",class=\"2xx\"}",
                1.0,
            ),
            (
                "consular_request_duration_seconds_count{target=\"agent\"}",
                1.0,
            ),
            (
                "consular_request_duration_seconds_count{target=\"marathon\"}",
                1.0,
            ),
            (
                "consular_request_duration_seconds_count{target=\"consul\"}",
                1.0,
            ),
        ],
    );

    // It is killed: the agent's services are listed, then it is deregistered.
    world
        .marathon
        .with(|m| m.set_task_state(&task, "TASK_KILLED"));
    world.wait_deregistered(AGENT_2, &task);
    let killed = settled(
        &world,
        &started,
        "consular_deregistrations_total{result=\"ok\"}",
        1.0,
    );
    expect_moved(
        &killed,
        &started,
        &[
            (
                "consular_events_received_total{type=\"status_update\"}",
                1.0,
            ),
            ("consular_status_updates_total{state=\"TASK_KILLED\"}", 1.0),
            ("consular_deregistrations_total{result=\"ok\"}", 1.0),
            (
                "consular_requests_total{target=\"agent\",method=\"GET\",class=\"2xx\"}",
                1.0,
            ),
            (
                "consular_requests_total{target=\"agent\",method=\"PUT\",class=\"2xx\"}",
                1.0,
            ),
            (
                "consular_request_duration_seconds_count{target=\"agent\"}",
                2.0,
            ),
        ],
    );

    // The app's label changes, then the stream is cut: the reconnect runs a sync, which reads Marathon, the KV
    // tree, the nodes and their health and both agents' services, and writes the one changed key.
    world
        .marathon
        .with(|m| m.put_app("/web", &[("domain", "shop.example")]));
    world.marathon.drop_streams();
    world.wait_kv(
        "consular/web/",
        &[("consular/web/domain", "\"shop.example\"")],
    );
    let synced = settled(
        &world,
        &killed,
        "consular_syncs_total{result=\"complete\"}",
        1.0,
    );
    assert_promtool_passes(&synced.text);
    expect_moved(
        &synced,
        &killed,
        &[
            ("consular_event_stream_connects_total", 1.0),
            ("consular_syncs_total{result=\"complete\"}", 1.0),
            ("consular_sync_duration_seconds_count", 1.0),
            ("consular_sync_writes_total{kind=\"kv\"}", 1.0),
            ("consular_kv_operations_total{result=\"ok\"}", 1.0),
            (
                "consular_requests_total{target=\"marathon\",method=\"GET\",class=\"2xx\"}",
                1.0,
            ),
            (
                "consular_requests_total{target=\"consul\",method=\"GET\",class=\"2xx\"}",
                3.0,
            ),
            (
                "consular_requests_total{target=\"consul\",method=\"PUT\",class=\"2xx\"}",
                1.0,
            ),
            (
                "consular_requests_total{target=\"agent\",method=\"GET\",class=\"2xx\"}",
                2.0,
            ),
            (
                "consular_request_duration_seconds_count{target=\"marathon\"}",
                1.0,
            ),
            (
                "consular_request_duration_seconds_count{target=\"consul\"}",
                4.0,
            ),
            (
                "consular_request_duration_seconds_count{target=\"agent\"}",
                2.0,
            ),
        ],
    );
    assert_eq!(synced.get("consular_last_sync_writes{kind=\"kv\"}"), 1.0);
    assert!(
        synced.get("consular_last_complete_sync_timestamp_seconds") > last_sync,
        "the reconnect's sync is the last complete one"
    );

    // A client hammering /metrics: the series stay the same and memory stays bounded.
    for _ in 0..2_000 {
        let (status, _) = get(world.consular.addr(), "/metrics").expect("GET /metrics");
        assert_eq!(status, 200);
    }
    let hammered = Scrape::of(&world);
    assert_eq!(
        hammered.values.keys().collect::<Vec<_>>(),
        synced.values.keys().collect::<Vec<_>>()
    );
    expect_moved(&hammered, &synced, &[]);
    let peak = world.consular.peak_rss_bytes();
    assert!(peak < RSS_LIMIT, "peak RSS {peak} bytes");
}
