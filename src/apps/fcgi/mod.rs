//! `fcgi:ADDR[,ADDR...][;OPTION=VALUE...]`: forwards each request to FastCGI backends (php-fpm,
//! other cgate hosts, any responder), balanced, pooled and retried only when safe.
//!
//! The environ goes out as PARAMS, the body as STDIN while it is read, and the backend's CGI
//! reply comes back through the driver chunk by chunk, so every response rule still holds.
//! Options: `max_conns=N` (kept connections per backend, lowered to the backend's
//! FCGI_MAX_CONNS; default 8), `idle=SECS` (idle lifetime of a kept connection; 2),
//! `hash=PARAM` (sticky by that param instead of least outstanding requests), `tries=N` (3),
//! `timeout=SECS` (longest wait for the backend's progress; 30), `connect_timeout=SECS` (2),
//! `eject_after=N` (consecutive failures that take a backend out of rotation; 2).

pub mod backend;
pub mod balance;
mod bridge;
mod forward;
pub mod stats;
mod tries;
mod wait;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::fastcgi::client::BackendAddr;
use crate::gateway::{App, AppError, Body, Request, Response};
use backend::Backend;

/// The options of an `fcgi:` app (defaults in the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct FcgiOptions {
    /// Kept connections per backend, at most (also lowered to its FCGI_MAX_CONNS).
    pub max_conns: usize,
    /// Idle lifetime of a kept connection.
    pub idle: Duration,
    /// Param whose value picks the backend (stickiness), instead of least outstanding.
    pub hash: Option<String>,
    /// Tries per request, the first included.
    pub tries: u32,
    /// Longest wait for any progress of the backend (and for a free pooled connection).
    pub timeout: Duration,
    /// Longest wait for a connection to be made.
    pub connect_timeout: Duration,
    /// Consecutive failures that take a backend out of rotation.
    pub eject_after: u32,
}

impl Default for FcgiOptions {
    fn default() -> Self {
        FcgiOptions {
            max_conns: 8,
            idle: Duration::from_secs(2),
            hash: None,
            tries: 3,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            eject_after: 2,
        }
    }
}

/// Most backends of one app.
pub const MAX_BACKENDS: usize = 64;

/// Parses what follows `fcgi:`: comma-separated addresses, then `;OPTION=VALUE` items.
pub fn parse_spec(rest: &str) -> Result<(Vec<BackendAddr>, FcgiOptions), String> {
    let mut items = rest.split(';');
    let addrs = items.next().unwrap_or_default();
    let addrs: Vec<BackendAddr> = addrs
        .split(',')
        .map(|a| {
            a.trim()
                .parse()
                .map_err(|e: crate::fastcgi::client::conn::BackendAddrError| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    if addrs.is_empty() || addrs.len() > MAX_BACKENDS {
        return Err(format!("between 1 and {MAX_BACKENDS} backends"));
    }
    let mut o = FcgiOptions::default();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("option {item:?}: expected NAME=VALUE"))?;
        let num = |max: u64| match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("option {k}: expected a number in 1..={max}")),
        };
        let secs = |max: u64| num(max).map(Duration::from_secs);
        match k {
            "max_conns" => o.max_conns = num(4096)? as usize,
            "idle" => o.idle = secs(3600)?,
            "hash" if !v.is_empty() => o.hash = Some(v.to_owned()),
            "tries" => o.tries = num(16)? as u32,
            "timeout" => o.timeout = secs(86400)?,
            "connect_timeout" => o.connect_timeout = secs(600)?,
            "eject_after" => o.eject_after = num(1000)? as u32,
            _ => return Err(format!("unknown option {k:?}")),
        }
    }
    Ok((addrs, o))
}

/// The forwarding app.
pub struct Fcgi {
    bal: Arc<Balancer>,
    reaper: std::sync::Once,
}

/// The backends, the options and the balancing state an app and its parked requests share.
pub(super) struct Balancer {
    backends: Vec<Arc<Backend>>,
    opts: FcgiOptions,
    rotation: AtomicUsize,
}

impl Fcgi {
    /// An app over these backends (the first [`MAX_BACKENDS`] of them).
    pub fn new(addrs: Vec<BackendAddr>, opts: FcgiOptions) -> Self {
        let backends: Vec<Arc<Backend>> = addrs
            .into_iter()
            .take(MAX_BACKENDS)
            .map(|a| Arc::new(Backend::new(a, opts.max_conns)))
            .collect();
        stats::register(&backends);
        Fcgi {
            bal: Arc::new(Balancer {
                backends,
                opts,
                rotation: AtomicUsize::new(0),
            }),
            reaper: std::sync::Once::new(),
        }
    }

    /// From the text after `fcgi:`.
    pub fn from_spec(rest: &str) -> Result<Self, String> {
        let (addrs, opts) = parse_spec(rest)?;
        Ok(Fcgi::new(addrs, opts))
    }

    /// The backends' counters.
    pub fn stats(&self) -> Vec<backend::BackendStats> {
        self.bal.backends.iter().map(|b| b.stats()).collect()
    }

    /// Starts, once, the thread that closes expired idle connections and probes ejected
    /// backends; it ends when the app is dropped.
    fn start_reaper(&self) {
        self.reaper.call_once(|| {
            let weak: Vec<_> = self.bal.backends.iter().map(Arc::downgrade).collect();
            let (idle, connect) = (self.bal.opts.idle, self.bal.opts.connect_timeout);
            let tick = (idle / 4).clamp(Duration::from_millis(100), Duration::from_millis(500));
            let spawned = std::thread::Builder::new()
                .name("cgate-fcgi-reaper".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(tick);
                        let mut alive = false;
                        for b in weak.iter().filter_map(|w| w.upgrade()) {
                            alive = true;
                            b.expire_idle(idle);
                            b.probe_if_due(connect);
                        }
                        if !alive {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                eprintln!("cgate: fcgi: cannot start the idle-connection reaper: {e}");
            }
        });
    }
}

impl Balancer {
    /// The backend for the next try; `tried` has bit `i` set for backend `i` tried already.
    fn choose(&self, tried: u64, key: Option<usize>) -> Option<usize> {
        let none = balance::View {
            ejected: false,
            tried: false,
            in_flight: 0,
        };
        let mut views = [none; MAX_BACKENDS];
        for (i, (b, v)) in self.backends.iter().zip(views.iter_mut()).enumerate() {
            *v = balance::View {
                ejected: b.is_ejected(),
                tried: tried & (1 << i) != 0,
                in_flight: b.in_flight(),
            };
        }
        let views = &views[..self.backends.len()];
        match key {
            Some(h) => balance::pick(views, h, true),
            None => balance::pick(views, self.rotation.fetch_add(1, Ordering::Relaxed), false),
        }
    }
}

impl App for Fcgi {
    fn call<'a>(
        &self,
        req: &'a mut Request<'_>,
        resp: &mut Response<'_>,
    ) -> Result<Body<'a>, AppError> {
        let pooled = !req.environ.gateway.run_once;
        if pooled {
            self.start_reaper();
        }
        forward::forward(&self.bal, pooled, req, resp)
    }
}
