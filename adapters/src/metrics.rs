//! `/metrics` in the Prometheus text exposition format 0.0.4: [`render`] writes a bridge's
//! [`Metrics`] as metric families (`# HELP`, `# TYPE`, then the samples), counters ending in
//! `_total`, histograms as cumulative `_bucket{le=…}` lines up to `+Inf` with `_sum` and `_count`,
//! durations in seconds.
//!
//! What is counted, and every label value, comes from the core (`consular_core::bridge::metrics`),
//! whose labels are enums: a family's series are fixed, so a scrape is a few kilobytes whatever
//! the bridge has seen, and nothing a peer or client sent appears in it. Only time is added here:
//! the core's clock starts at zero when the driver starts, so the driver passes the wall time of
//! that moment and the last complete sync becomes a unix timestamp. Routing `/metrics` is the
//! core's decision ([`consular_core::ReplyKind::Metrics`]); the server sends the text with
//! [`CONTENT_TYPE`].

use std::fmt::{Display, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consular_core::bridge::metrics::{
    EventKind, Histogram, StatusClass, StreamStatus, SyncResult, TargetKind, WriteKind,
    WriteResult, METHODS,
};
use consular_core::marathon::TaskState;
use consular_core::{Metrics, Role};

/// The `Content-Type` of a rendered scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The bridge's metrics as Prometheus text. `started` is the wall time at which the bridge's
/// clock (its `now`) was zero.
pub fn render(metrics: &Metrics, started: SystemTime) -> String {
    let mut out = Exposition(String::with_capacity(16 * 1024));
    let gauges = metrics.gauges();

    out.family(
        "consular_build_info",
        "gauge",
        "The running consular's version; always 1.",
    );
    out.sample(
        "consular_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );

    out.by_label(
        "consular_events_received_total",
        "counter",
        "Marathon event bodies received, from callbacks and the stream, by type.",
        "type",
        EventKind::ALL.map(|kind| (kind.name(), metrics.events_received(kind))),
    );
    out.by_label(
        "consular_status_updates_total",
        "counter",
        "Task status updates received, by Mesos task state.",
        "state",
        TaskState::ALL.map(|state| (state.name(), metrics.status_updates(state))),
    );
    out.counter(
        "consular_events_dropped_total",
        "Events dropped because too many updates of the same task, host or app were waiting.",
        metrics.dropped_events(),
    );
    out.counter(
        "consular_stream_events_oversize_total",
        "Stream events skipped for being larger than the event size limit.",
        metrics.oversize_events(),
    );
    out.counter(
        "consular_health_reads_total",
        "Health events that led to a read of their app's tasks.",
        metrics.health_events(),
    );

    let writes: [(&str, &str, WritesRead); 4] = [
        (
            "consular_registrations_total",
            "Service registrations, by events and syncs, by result.",
            Metrics::registrations,
        ),
        (
            "consular_deregistrations_total",
            "Service deregistrations (already gone counts as ok), by result.",
            Metrics::deregistrations,
        ),
        (
            "consular_check_writes_total",
            "Check statuses set and checks removed, by result.",
            Metrics::check_writes_with,
        ),
        (
            "consular_kv_operations_total",
            "KV sets and deletes in transactions, by result.",
            Metrics::kv_ops_with,
        ),
    ];
    for (name, help, read) in writes {
        let samples = WriteResult::ALL.map(|result| (result.name(), read(metrics, result)));
        out.by_label(name, "counter", help, "result", samples);
    }

    out.family(
        "consular_requests_total",
        "counter",
        "Requests to Marathon, the main Consul and the agents, answered or given up on, by target kind, method and status class (error: no HTTP answer).",
    );
    for kind in TargetKind::ALL {
        for method in METHODS {
            for class in StatusClass::ALL {
                let labels = [
                    ("target", kind.name()),
                    ("method", method.as_str()),
                    ("class", class.name()),
                ];
                let n = metrics.requests(kind, method, class);
                out.sample("consular_requests_total", &labels, n);
            }
        }
    }
    out.family(
        "consular_request_duration_seconds",
        "histogram",
        "Time from handing a request out to its answer, by target kind.",
    );
    for kind in TargetKind::ALL {
        out.histogram(
            "consular_request_duration_seconds",
            &[("target", kind.name())],
            metrics.request_latency(kind),
        );
    }
    out.counter(
        "consular_late_responses_total",
        "Answers to requests the bridge had already given up on.",
        metrics.late_responses(),
    );
    out.gauge(
        "consular_requests_in_flight",
        "Requests handed out and not yet answered.",
        gauges.in_flight,
    );
    out.gauge(
        "consular_requests_queued",
        "Requests waiting for an in-flight slot.",
        gauges.queued,
    );

    out.by_label(
        "consular_syncs_total",
        "counter",
        "Full syncs, by result (incomplete: a listing or a write failed; failed: Marathon could not be read).",
        "result",
        SyncResult::ALL.map(|result| (result.name(), metrics.syncs(result))),
    );
    out.family(
        "consular_sync_duration_seconds",
        "histogram",
        "How long full syncs took, whatever their result.",
    );
    out.histogram(
        "consular_sync_duration_seconds",
        &[],
        metrics.sync_duration(),
    );
    out.by_label(
        "consular_sync_writes_total",
        "counter",
        "Writes the syncs sent, by kind (kv: operations).",
        "kind",
        WriteKind::ALL.map(|kind| (kind.name(), metrics.sync_writes(kind))),
    );
    out.by_label(
        "consular_last_sync_writes",
        "gauge",
        "Writes the last finished sync sent, by kind (kv: operations).",
        "kind",
        WriteKind::ALL.map(|kind| (kind.name(), metrics.last_sync_writes(kind))),
    );
    let last_complete = metrics
        .last_complete_sync_at()
        .map_or(0.0, |at| unix_seconds(started, at));
    out.gauge(
        "consular_last_complete_sync_timestamp_seconds",
        "When the last complete sync ended, in unix time; 0 before the first.",
        last_complete,
    );
    out.gauge(
        "consular_syncing",
        "1 while a full sync runs.",
        u8::from(gauges.syncing),
    );

    out.by_label(
        "consular_event_stream_state",
        "gauge",
        "1 for the state Marathon's event stream is in (off: callbacks only).",
        "state",
        StreamStatus::ALL.map(|state| (state.name(), u8::from(gauges.stream == state))),
    );
    out.counter(
        "consular_event_stream_connects_total",
        "Times the event stream connected: the first connection and every reconnect.",
        metrics.stream_connects(),
    );

    out.gauge(
        "consular_leader",
        "1 while this instance acts: it holds the lock under --ha, and always without it; 0 as a standby.",
        u8::from(gauges.role == Role::Leader),
    );
    out.counter(
        "consular_leaderships_total",
        "Times this instance became the leader (--ha).",
        metrics.leaderships(),
    );
    out.0
}

/// Reads one write counter of [`Metrics`] by result.
type WritesRead = fn(&Metrics, WriteResult) -> u64;

/// The core's time `at` as unix seconds, given the wall time its clock started.
fn unix_seconds(started: SystemTime, at: Duration) -> f64 {
    let wall = started.checked_add(at).unwrap_or(started);
    wall.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Microseconds as the seconds Prometheus wants.
fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// The text being written. `fmt::Write` on a `String` cannot fail, so results are dropped.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// A family with one label, and a sample for each of its values.
    fn by_label<V: Display>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'static str, V)>,
    ) {
        self.family(name, kind, help);
        for (label_value, value) in samples {
            self.sample(name, &[(label, label_value)], value);
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, label_value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label_value(label_value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn histogram<const N: usize>(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        histogram: &Histogram<N>,
    ) {
        let bucket = format!("{name}_bucket");
        for (edge_us, count) in histogram.buckets() {
            let le = seconds(edge_us).to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, count);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, histogram.count());
        let sum = seconds(histogram.sum_micros());
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, histogram.count());
    }
}

/// A label value as the format wants it: backslash, double quote and line feed escaped.
fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_what_would_end_or_break_them() {
        assert_eq!(
            escape_label_value("a\\b\"c\nd}e,f=g"),
            "a\\\\b\\\"c\\nd}e,f=g"
        );
        assert_eq!(escape_help("one\\two\nthree"), "one\\\\two\\nthree");
    }

    #[test]
    fn a_core_time_becomes_unix_seconds_from_the_start() {
        let started = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = Duration::from_millis(2_500);
        assert_eq!(unix_seconds(started, at), 1_700_000_002.5);
    }

    #[test]
    fn bucket_edges_print_as_plain_decimal_seconds() {
        assert_eq!(seconds(1_000).to_string(), "0.001");
        assert_eq!(seconds(2_500).to_string(), "0.0025");
        assert_eq!(seconds(600_000_000).to_string(), "600");
    }
}
