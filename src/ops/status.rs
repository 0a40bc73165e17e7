//! The status page: limits, current values, counters and the requests running now, as JSON or OpenMetrics.

use std::fmt::Write as _;

use super::gauges::{Gauges, label};
use super::inflight::InFlight;
use super::metrics::{COUNTERS, Snapshot, configured};
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
    /// Scripts, spool, accept queue, backends.
    pub gauges: Gauges,
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
        super::arriving::each(|a| {
            running.push(Row {
                id: a.id.clone(),
                method: a.method.clone(),
                uri: a.uri.clone(),
                age_ms: a.since.elapsed().as_millis() as u64,
                thread: "-".to_owned(),
                waiting: super::waiting::Waiting::Body.as_str(),
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
            gauges: Gauges::gather(),
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
        let mut current = serde_json::json!({
            "connections": c.conns_open,
            "requests_in_flight": c.in_flight,
            "loop_threads": self.loop_threads,
            "at_capacity": self.at_capacity(),
        });
        if let (Some(cur), serde_json::Value::Object(more)) =
            (current.as_object_mut(), self.gauges.current_json())
        {
            cur.extend(more);
        }
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_seconds": self.uptime,
            "limits": {
                "max_conns": self.max_conns, "workers": self.workers,
                "scripts": self.gauges.scripts_max,
            },
            "current": current,
            "counters": {
                "requests": {
                    "1xx": class(1), "2xx": class(2), "3xx": class(3), "4xx": class(4),
                    "5xx": class(5), "none": class(0),
                },
                "cut": c.cut, "aborted": c.aborted, "client_gone": c.client_gone,
                "connections_rejected": c.conn_rejected, "slow": c.slow, "not_run": c.not_run,
                "access_log_dropped": c.log_dropped,
            },
            "requests": running,
            "backends": self.gauges.backends_json(),
        })
        .to_string()
            + "\n"
    }

    /// The single-valued metrics: name, type, help, value.
    fn scalars(&self) -> [(&'static str, &'static str, &'static str, u64); 14] {
        let c = &self.counters;
        let n = |v: usize| v as u64;
        [
            (
                "cgate_uptime_seconds",
                "gauge",
                "Seconds since start.",
                self.uptime,
            ),
            (
                "cgate_connections",
                "gauge",
                "Connections open now.",
                n(c.conns_open),
            ),
            (
                "cgate_connections_max",
                "gauge",
                "Most connections open at once (--max-conns).",
                n(self.max_conns),
            ),
            (
                "cgate_at_capacity",
                "gauge",
                "1 while the connection limit is reached.",
                u64::from(self.at_capacity()),
            ),
            (
                "cgate_requests_in_flight",
                "gauge",
                "Requests running now.",
                n(c.in_flight),
            ),
            (
                "cgate_workers",
                "gauge",
                "Event-loop threads configured (--workers).",
                n(self.workers),
            ),
            (
                "cgate_loop_threads",
                "gauge",
                "Pool threads alive now (loops and spares).",
                n(self.loop_threads),
            ),
            (
                "cgate_responses_cut",
                "counter",
                "Responses cut after they started.",
                c.cut,
            ),
            (
                "cgate_requests_aborted",
                "counter",
                "Requests aborted by the web server.",
                c.aborted,
            ),
            (
                "cgate_requests_client_gone",
                "counter",
                "Requests whose web-server connection went away.",
                c.client_gone,
            ),
            (
                "cgate_requests_not_run",
                "counter",
                "Requests not run: their web-server connection closed while they waited.",
                c.not_run,
            ),
            (
                "cgate_connections_rejected",
                "counter",
                "Connections refused at the connection limit.",
                c.conn_rejected,
            ),
            (
                "cgate_requests_slow",
                "counter",
                "Requests that got a slow-log line.",
                c.slow,
            ),
            (
                "cgate_access_log_dropped",
                "counter",
                "Access log lines dropped (writer behind).",
                c.log_dropped,
            ),
        ]
    }

    /// The OpenMetrics text (ends with `# EOF`).
    pub fn openmetrics(&self) -> String {
        let mut o = String::new();
        for (name, kind, help, v) in self.scalars() {
            let name = family(&mut o, name, kind, help);
            let _ = writeln!(o, "{name} {v}");
        }
        self.gauges.openmetrics(&mut o);
        let name = family(
            &mut o,
            "cgate_requests",
            "counter",
            "Requests ended, by status class.",
        );
        for (i, class) in ["none", "1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .enumerate()
        {
            let v = self.counters.by_class[i];
            let _ = writeln!(o, "{name}{{class=\"{class}\"}} {v}");
        }
        let name = family(
            &mut o,
            "cgate_request_age_seconds",
            "gauge",
            "Age of each request running now.",
        );
        for r in &self.running {
            let _ = writeln!(
                o,
                "{name}{{id=\"{}\",method=\"{}\",uri=\"{}\",waiting=\"{}\"}} {:.3}",
                label(&r.id),
                label(&r.method),
                label(&r.uri),
                r.waiting,
                r.age_ms as f64 / 1000.0
            );
        }
        o.push_str("# EOF\n");
        o
    }
}

/// Writes a family's HELP and TYPE lines; returns its sample name. Counters are declared
/// under their `_total` sample name: the form both the text format's linter (promtool check
/// metrics) and Prometheus' OpenMetrics parser take.
fn family(o: &mut String, name: &str, kind: &str, help: &str) -> String {
    let name = match kind {
        "counter" => format!("{name}_total"),
        _ => name.to_owned(),
    };
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut counters = Snapshot {
            conns_open: 2,
            in_flight: 1,
            ..Snapshot::default()
        };
        counters.by_class[2] = 5;
        Report {
            counters,
            max_conns: 2,
            workers: 1,
            loop_threads: 3,
            uptime: 7,
            running: vec![Row {
                id: "a\"b".into(),
                method: "GET".into(),
                uri: "/x\\y".into(),
                age_ms: 1500,
                thread: "cgate-loop".into(),
                waiting: "app",
            }],
            gauges: Gauges::default(),
        }
    }

    #[test]
    fn openmetrics_text() {
        let t = report().openmetrics();
        assert!(t.starts_with("# HELP cgate_uptime_seconds Seconds since start.\n# TYPE cgate_uptime_seconds gauge\ncgate_uptime_seconds 7\n"));
        assert!(t.contains("\ncgate_at_capacity 1\n"));
        assert!(t.contains("\n# TYPE cgate_requests_total counter\n"));
        assert!(t.contains("\ncgate_requests_total{class=\"2xx\"} 5\n"));
        assert!(t.contains(
            "\ncgate_request_age_seconds{id=\"a\\\"b\",method=\"GET\",uri=\"/x\\\\y\",waiting=\"app\"} 1.500\n"
        ));
        assert!(t.ends_with("\n# EOF\n"));
    }

    #[test]
    fn json_document() {
        let v: serde_json::Value = serde_json::from_str(&report().json()).unwrap();
        assert_eq!(v["current"]["at_capacity"], true);
        assert_eq!(v["current"]["connections"], 2);
        assert_eq!(v["counters"]["requests"]["2xx"], 5);
        assert_eq!(v["requests"][0]["uri"], "/x\\y");
        assert_eq!(v["requests"][0]["age_ms"], 1500);
    }
}
