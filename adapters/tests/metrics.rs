//! The Prometheus text renderer on a real bridge's metrics, without IO: every family has one
//! `# HELP` and one `# TYPE` before its samples, counters end in `_total`, histogram buckets are
//! cumulative up to `+Inf` = `_count`, the last complete sync is a unix timestamp from the
//! driver's start, and a thousand events with hostile ids and hosts change values only: the set
//! of series stays exactly that of a fresh bridge.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use consular_adapters::metrics::render;
use consular_core::{Bridge, Config, InboundId, Output, Response};

/// Handles every output of `bridge`: each request is answered 200 with `body_for` its path.
fn settle(bridge: &mut Bridge, now: Duration, body_for: impl Fn(&str) -> &'static str) {
    loop {
        match bridge.poll_output() {
            Output::Request(r) => {
                let response = Response {
                    status: 200,
                    body: body_for(&r.path_and_query).as_bytes().to_vec(),
                };
                bridge.handle_response(now, r.id, Ok(response));
            }
            Output::Timeout(_) => return,
            _ => {}
        }
    }
}

/// The series of a scrape (name and labels) with their values.
fn series(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("a sample is `series value`");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// The family a sample belongs to, given the declared families.
fn family_of<'a>(sample: &str, families: &'a BTreeMap<String, String>) -> &'a str {
    let name = sample.split(['{', ' ']).next().unwrap();
    for suffix in ["", "_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some((family, kind)) = families.get_key_value(base) {
                if suffix.is_empty() || kind == "histogram" {
                    return family;
                }
            }
        }
    }
    panic!("{sample} belongs to no declared family");
}

#[test]
fn the_text_is_well_formed_exposition_0_0_4() {
    let config = Config {
        sync_interval: Duration::from_secs(60),
        ..Config::default()
    };
    let mut bridge = Bridge::new(config, Duration::ZERO);
    settle(
        &mut bridge,
        Duration::from_millis(1_500),
        |path| match path {
            "/v2/apps?embed=apps.tasks" => r#"{"apps":[]}"#,
            "/v1/catalog/nodes" | "/v1/health/state/critical" | "/v1/kv/consular/?recurse" => "[]",
            _ => "{}",
        },
    );
    assert_eq!(bridge.metrics().syncs_completed(), 1);
    let started = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let text = render(bridge.metrics(), started);
    assert!(text.ends_with('\n'));

    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(helped.insert(name.clone()), "second HELP for {name}");
            current = Some(name);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(Some(name), current.as_deref(), "TYPE right after its HELP");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(families.insert(name.to_owned(), kind.to_owned()).is_none());
        } else {
            assert!(!line.is_empty() && !line.starts_with('#'), "{line:?}");
            let family = family_of(line, &families);
            assert_eq!(
                Some(family),
                current.as_deref(),
                "{line} outside its family"
            );
            assert!(
                line.chars().all(|c| c.is_ascii_graphic() || c == ' '),
                "{line}"
            );
        }
    }

    let samples = series(&text);
    for (key, value) in &samples {
        assert!(
            value == "+Inf" || value.parse::<f64>().is_ok_and(|v| v >= 0.0),
            "{key} {value}"
        );
    }
    // Each histogram: buckets never fall, end in +Inf, and +Inf is the count.
    for (name, kind) in &families {
        if kind != "histogram" {
            continue;
        }
        let counts: Vec<(&String, &String)> = samples
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}_count")))
            .collect();
        assert!(!counts.is_empty(), "{name} has no series");
        for (count_key, count) in counts {
            let labels = count_key.trim_start_matches(&format!("{name}_count"));
            let inf = match labels {
                "" => format!("{name}_bucket{{le=\"+Inf\"}}"),
                l => format!("{name}_bucket{},le=\"+Inf\"}}", &l[..l.len() - 1]),
            };
            assert_eq!(samples.get(&inf), Some(count), "{inf}");
            let prefix = inf.trim_end_matches("le=\"+Inf\"}");
            let mut in_order: Vec<(f64, f64)> = samples
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && !k.ends_with("le=\"+Inf\"}"))
                .map(|(k, v)| {
                    let le = k[prefix.len()..].trim_start_matches("le=\"");
                    let le: f64 = le.trim_end_matches("\"}").parse().unwrap();
                    (le, v.parse().unwrap())
                })
                .collect();
            in_order.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(in_order.len() >= 10, "{prefix}");
            assert!(
                in_order.windows(2).all(|w| w[0].1 <= w[1].1),
                "{prefix}: {in_order:?}"
            );
            assert!(in_order.last().unwrap().1 <= count.parse().unwrap());
        }
    }

    // The numbers this run implies.
    assert_eq!(samples["consular_syncs_total{result=\"complete\"}"], "1");
    assert_eq!(samples["consular_sync_duration_seconds_sum"], "1.5");
    assert_eq!(
        samples["consular_sync_duration_seconds_bucket{le=\"2.5\"}"],
        "1"
    );
    assert_eq!(
        samples["consular_sync_duration_seconds_bucket{le=\"1\"}"],
        "0"
    );
    assert_eq!(
        samples["consular_last_complete_sync_timestamp_seconds"],
        "1800000001.5"
    );
    assert_eq!(
        samples["consular_requests_total{target=\"consul\",method=\"GET\",class=\"2xx\"}"],
        "3"
    );
    assert_eq!(
        samples["consular_request_duration_seconds_count{target=\"marathon\"}"],
        "1"
    );
    assert_eq!(samples["consular_leader"], "1");
    // Callbacks only: the stream is off.
    assert_eq!(samples["consular_event_stream_state{state=\"off\"}"], "1");
    assert_eq!(samples["consular_event_stream_state{state=\"open\"}"], "0");
}

#[test]
fn hostile_ids_and_hosts_never_become_series() {
    let started = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let fresh = Bridge::new(Config::default(), Duration::ZERO);
    let fresh_series: BTreeSet<String> = series(&render(fresh.metrics(), started))
        .into_keys()
        .collect();

    let mut bridge = Bridge::new(Config::default(), Duration::ZERO);
    let hostile = [
        "t\"} 1\nconsular_leader 0",
        "{le=\"+Inf\"}",
        "h\\",
        "émoji-🦀",
        "../../etc",
        "a b",
    ];
    for i in 0..1_000u64 {
        let odd = hostile[i as usize % hostile.len()];
        let task = serde_json::to_string(&format!("{odd}.{i}")).unwrap();
        let host = serde_json::to_string(&format!("{odd}-{i}.example")).unwrap();
        let state = ["TASK_RUNNING", "TASK_KILLED", "TASK_WEIRD"][i as usize % 3];
        let body = format!(
            r#"{{"eventType":"status_update_event","taskStatus":"{state}","taskId":{task},"appId":"/a{i}","host":{host},"ports":[1]}}"#
        );
        bridge
            .handle_inbound(Duration::ZERO, InboundId(i), "/events", body.as_bytes())
            .unwrap();
        settle(&mut bridge, Duration::ZERO, |_| "{}");
    }
    assert_eq!(
        bridge
            .metrics()
            .events_received(consular_core::bridge::metrics::EventKind::Invalid)
            + bridge.metrics().events(),
        1_000
    );
    let text = render(bridge.metrics(), started);
    let after: BTreeSet<String> = series(&text).into_keys().collect();
    assert_eq!(after, fresh_series);
    for odd in ["émoji", "etc", "example", "a b"] {
        assert!(!text.contains(odd), "{odd} leaked into the scrape");
    }
}
