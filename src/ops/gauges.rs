//! The status values other parts of the process keep: scripts running, spooled body bytes, the accept queue, `fcgi:` backends.

use std::fmt::Write as _;

use crate::apps::fcgi::backend::BackendStats;

/// Values read from the runner, the spool, the listener and the backends at one moment.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Scripts running now (every `cgi:DIR` app).
    pub scripts_running: usize,
    /// The scripts' limit (sum of every `cgi:DIR` app's `max_concurrent`; 0: no such app).
    pub scripts_max: usize,
    /// Request-body bytes held ahead of apps in memory.
    pub spool_memory: u64,
    /// Request-body bytes held ahead of apps in temporary files.
    pub spool_file: u64,
    /// TCP accept queue: (waiting now, bound); `None` on a Unix socket.
    pub accept_queue: Option<(u32, u32)>,
    /// Every `fcgi:` backend.
    pub backends: Vec<BackendStats>,
}

impl Gauges {
    /// Reads the current values.
    pub fn gather() -> Gauges {
        let (scripts_running, scripts_max) = crate::apps::cgi::scripts();
        let (spool_memory, spool_file) = crate::fastcgi::server::spool::held();
        Gauges {
            scripts_running,
            scripts_max,
            spool_memory,
            spool_file,
            accept_queue: super::metrics::accept_queue(),
            backends: crate::apps::fcgi::stats::all(),
        }
    }

    /// The JSON members: `scripts`, `spool_bytes`, `accept_queue` (null on Unix sockets).
    pub fn current_json(&self) -> serde_json::Value {
        let queue = self
            .accept_queue
            .map(|(queued, max)| serde_json::json!({ "queued": queued, "max": max }));
        serde_json::json!({
            "scripts": { "running": self.scripts_running, "max": self.scripts_max },
            "spool_bytes": { "memory": self.spool_memory, "file": self.spool_file },
            "accept_queue": queue,
        })
    }

    /// The `backends` array.
    pub fn backends_json(&self) -> serde_json::Value {
        self.backends
            .iter()
            .map(|b| {
                serde_json::json!({
                    "address": b.addr,
                    "state": if b.ejected { "ejected" } else { "up" },
                    "requests": b.requests, "errors": b.errors, "retries": b.retries,
                    "in_flight": b.in_flight, "ejections": b.ejections,
                    "connections": b.open, "connections_max": b.limit,
                })
            })
            .collect()
    }

    /// The OpenMetrics families of these values (without `# EOF`).
    pub fn openmetrics(&self, o: &mut String) {
        let mut one = |name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        one(
            "cgate_scripts_running",
            "CGI scripts running now.",
            self.scripts_running as u64,
        );
        one(
            "cgate_scripts_max",
            "CGI scripts allowed at once (cgi max scripts; 0: no cgi app).",
            self.scripts_max as u64,
        );
        if let Some((queued, max)) = self.accept_queue {
            one(
                "cgate_accept_queue",
                "Connections waiting in the listen queue.",
                u64::from(queued),
            );
            one(
                "cgate_accept_queue_max",
                "Bound of the listen queue (backlog).",
                u64::from(max),
            );
        }
        let _ = writeln!(
            o,
            "# HELP cgate_spool_bytes Request-body bytes held ahead of apps.\n\
             # TYPE cgate_spool_bytes gauge\n\
             cgate_spool_bytes{{where=\"memory\"}} {}\n\
             cgate_spool_bytes{{where=\"file\"}} {}",
            self.spool_memory, self.spool_file
        );
        self.backends_openmetrics(o);
    }

    fn backends_openmetrics(&self, o: &mut String) {
        if self.backends.is_empty() {
            return;
        }
        type Get = fn(&BackendStats) -> u64;
        let families: [(&str, &str, &str, Get); 6] = [
            (
                "cgate_backend_up",
                "gauge",
                "1 while the backend is in rotation.",
                |b| u64::from(!b.ejected),
            ),
            (
                "cgate_backend_in_flight",
                "gauge",
                "Requests at the backend now.",
                |b| b.in_flight,
            ),
            (
                "cgate_backend_requests_total",
                "counter",
                "Tries sent to the backend.",
                |b| b.requests,
            ),
            (
                "cgate_backend_errors_total",
                "counter",
                "Tries that failed at the backend.",
                |b| b.errors,
            ),
            (
                "cgate_backend_retries_total",
                "counter",
                "Failed tries sent again.",
                |b| b.retries,
            ),
            (
                "cgate_backend_ejections_total",
                "counter",
                "Times the backend was taken out of rotation.",
                |b| b.ejections,
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            // The index keeps series apart when two apps forward to the same address.
            for (i, b) in self.backends.iter().enumerate() {
                let addr = label(&b.addr);
                let _ = writeln!(o, "{name}{{backend=\"{addr}\",index=\"{i}\"}} {}", get(b));
            }
        }
    }
}

/// Escapes a label value (backslash, quote, newline).
pub(super) fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            scripts_running: 2,
            scripts_max: 64,
            spool_memory: 1000,
            spool_file: 5,
            accept_queue: Some((1, 4096)),
            backends: vec![BackendStats {
                addr: "unix:/run/php\"x.sock".into(),
                requests: 7,
                errors: 2,
                retries: 1,
                in_flight: 3,
                ejections: 1,
                ejected: true,
                open: 4,
                limit: 8,
            }],
        }
    }

    #[test]
    fn openmetrics_families() {
        let mut o = String::new();
        gauges().openmetrics(&mut o);
        assert!(o.starts_with(
            "# HELP cgate_scripts_running CGI scripts running now.\n\
             # TYPE cgate_scripts_running gauge\ncgate_scripts_running 2\n"
        ));
        assert!(o.contains("\ncgate_scripts_max 64\n"));
        assert!(o.contains("\ncgate_accept_queue 1\n"));
        assert!(o.contains("\ncgate_accept_queue_max 4096\n"));
        assert!(o.contains(
            "\ncgate_spool_bytes{where=\"memory\"} 1000\ncgate_spool_bytes{where=\"file\"} 5\n"
        ));
        let l = "{backend=\"unix:/run/php\\\"x.sock\",index=\"0\"}";
        assert!(o.contains(&format!("\ncgate_backend_up{l} 0\n")), "{o}");
        assert!(o.contains(&format!("\ncgate_backend_in_flight{l} 3\n")));
        assert!(o.contains(&format!(
            "# TYPE cgate_backend_requests_total counter\ncgate_backend_requests_total{l} 7\n"
        )));
        assert!(o.contains(&format!("\ncgate_backend_ejections_total{l} 1\n")));
        let mut unix = gauges();
        unix.accept_queue = None;
        unix.backends.clear();
        let mut o = String::new();
        unix.openmetrics(&mut o);
        assert!(!o.contains("accept_queue") && !o.contains("backend"), "{o}");
    }

    #[test]
    fn json_members() {
        let g = gauges();
        assert_eq!(
            g.current_json(),
            serde_json::json!({
                "scripts": {"running": 2, "max": 64},
                "spool_bytes": {"memory": 1000, "file": 5},
                "accept_queue": {"queued": 1, "max": 4096},
            })
        );
        let b = &g.backends_json()[0];
        assert_eq!(b["state"], "ejected");
        assert_eq!(b["connections"], 4);
        assert_eq!(b["connections_max"], 8);
    }
}
