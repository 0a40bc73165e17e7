//! The status page: limits, current values, counters and the requests running now, as JSON or OpenMetrics.

use std::fmt::Write as _;

use super::metrics::{COUNTERS, Snapshot, configured};
use super::observe::InFlight;
use crate::gateway::{AppError, Body, Response};

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One running request as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Request id.
    pub id: String,
    /// Method.
    pub method: String,
    /// URI.
    pub uri: String,
    /// Age in milliseconds.
    pub age_ms: u64,
    /// Thread name.
    pub thread: String,
    /// What it waits on.
    pub waiting: &'static str,
}

/// Everything the status reports, gathered once.
#[derive(Debug, Clone)]
pub struct Report {
    /// Counters and gauges.
    pub counters: Snapshot,
    /// `--max-conns`.
    pub max_conns: usize,
    /// `--workers`.
    pub workers: usize,
    /// Threads of the pool alive now.
    pub loop_threads: usize,
    /// Seconds since start.
    pub uptime: u64,
    /// The requests running now, oldest first.
    pub running: Vec<Row>,
}

/// Threads named `cgate-loop` in this process.
fn loop_threads() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end() == "cgate-loop")
        .count()
}

impl Report {
    /// Gathers the current values.
    pub fn gather(inflight: &InFlight) -> Report {
        let cfg = configured();
        let mut running = Vec::new();
        inflight.each(|r| {
            running.push(Row {
                id: r.id.clone(),
                method: r.method.clone(),
                uri: r.uri.clone(),
                age_ms: r.started.elapsed().as_millis() as u64,
                thread: r.thread.clone(),
                waiting: r.waiting().as_str(),
            })
        });
        running.sort_by(|a, b| b.age_ms.cmp(&a.age_ms).then_with(|| a.id.cmp(&b.id)));
        Report {
            counters: COUNTERS.snapshot(),
            max_conns: cfg.map_or(0, |c| c.max_conns),
            workers: cfg.map_or(0, |c| c.workers),
            loop_threads: loop_threads(),
            uptime: cfg.map_or(0, |c| c.started.elapsed().as_secs()),
            running,
        }
    }

    fn at_capacity(&self) -> bool {
        self.max_conns > 0 && self.counters.conns_open >= self.max_conns
    }

    /// The JSON document.
    pub fn json(&self) -> String {
        let c = &self.counters;
        let class = |i: usize| c.by_class[i];
        let running: Vec<serde_json::Value> = self
            .running
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "method": r.method, "uri": r.uri, "age_ms": r.age_ms,
                    "thread": r.thread, "waiting": r.waiting,
                })
            })
            .collect();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_seconds": self.uptime,
            "limits": { "max_conns": self.max_conns, "workers": self.workers },
            "current": {
                "connections": c.conns_open,
                "requests_in_flight": c.in_flight,
                "loop_threads": self.loop_threads,
                "at_capacity": self.at_capacity(),
            },
            "counters": {
                "requests": {
                    "1xx": class(1), "2xx": class(2), "3xx": class(3), "4xx": class(4),
                    "5xx": class(5), "none": class(0),
                },
                "cut": c.cut, "aborted": c.aborted, "client_gone": c.client_gone,
                "connections_rejected": c.conn_rejected, "slow": c.slow,
                "access_log_dropped": c.log_dropped,
            },
            "requests": running,
        })
        .to_string()
            + "\n"
    }

    /// The OpenMetrics text (ends with `# EOF`).
    pub fn openmetrics(&self) -> String {
        let c = &self.counters;
        let mut o = String::new();
        // Counters are declared under their `_total` sample name: the form both the text
        // format's linter (promtool check metrics) and Prometheus' OpenMetrics parser take.
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(o, "{name}{labels} {v}");
            }
        };
        let one = |v: String| vec![(String::new(), v)];
        metric(
            "cgate_uptime_seconds",
            "gauge",
            "Seconds since start.",
            &one(self.uptime.to_string()),
        );
        metric(
            "cgate_connections",
            "gauge",
            "Connections open now.",
            &one(c.conns_open.to_string()),
        );
        metric(
            "cgate_connections_max",
            "gauge",
            "Most connections open at once (--max-conns).",
            &one(self.max_conns.to_string()),
        );
        metric(
            "cgate_at_capacity",
            "gauge",
            "1 while the connection limit is reached.",
            &one(u8::from(self.at_capacity()).to_string()),
        );
        metric(
            "cgate_requests_in_flight",
            "gauge",
            "Requests running now.",
            &one(c.in_flight.to_string()),
        );
        metric(
            "cgate_workers",
            "gauge",
            "Event-loop threads configured (--workers).",
            &one(self.workers.to_string()),
        );
        metric(
            "cgate_loop_threads",
            "gauge",
            "Pool threads alive now (loops and spares).",
            &one(self.loop_threads.to_string()),
        );
        let classes = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];
        let by_class: Vec<_> = classes
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("{{class=\"{k}\"}}"), c.by_class[i].to_string()))
            .collect();
        metric(
            "cgate_requests",
            "counter",
            "Requests ended, by status class.",
            &by_class,
        );
        metric(
            "cgate_responses_cut",
            "counter",
            "Responses cut after they started.",
            &one(c.cut.to_string()),
        );
        metric(
            "cgate_requests_aborted",
            "counter",
            "Requests aborted by the web server.",
            &one(c.aborted.to_string()),
        );
        metric(
            "cgate_requests_client_gone",
            "counter",
            "Requests whose web-server connection went away.",
            &one(c.client_gone.to_string()),
        );
        metric(
            "cgate_connections_rejected",
            "counter",
            "Connections refused at the connection limit.",
            &one(c.conn_rejected.to_string()),
        );
        metric(
            "cgate_requests_slow",
            "counter",
            "Requests that got a slow-log line.",
            &one(c.slow.to_string()),
        );
        metric(
            "cgate_access_log_dropped",
            "counter",
            "Access log lines dropped (writer behind).",
            &one(c.log_dropped.to_string()),
        );
        let ages: Vec<_> = self
            .running
            .iter()
            .map(|r| {
                let labels = format!(
                    "{{id=\"{}\",method=\"{}\",uri=\"{}\",waiting=\"{}\"}}",
                    label(&r.id),
                    label(&r.method),
                    label(&r.uri),
                    r.waiting
                );
                (labels, format!("{:.3}", r.age_ms as f64 / 1000.0))
            })
            .collect();
        metric(
            "cgate_request_age_seconds",
            "gauge",
            "Age of each request running now.",
            &ages,
        );
        o.push_str("# EOF\n");
        o
    }
}

/// Escapes a label value (backslash, quote, newline).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Answers a status request: OpenMetrics when the query names `openmetrics`, else JSON.
pub fn answer<'a>(
    query: &str,
    inflight: &InFlight,
    resp: &mut Response<'_>,
) -> Result<Body<'a>, AppError> {
    let report = Report::gather(inflight);
    let om = query
        .split('&')
        .any(|k| k == "openmetrics" || k.starts_with("openmetrics="));
    let (ctype, body) = if om {
        (OPENMETRICS, report.openmetrics())
    } else {
        ("application/json", report.json())
    };
    resp.start(
        "200 OK",
        [("Content-Type", ctype), ("Cache-Control", "no-store")],
    )?;
    Ok(Body::from(body))
}
