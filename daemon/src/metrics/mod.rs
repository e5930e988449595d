//! `--metrics ADDR`: the server's counters in the Prometheus text format (version 0.0.4) at
//! `/metrics`, and a liveness check at `/health`, from a small HTTP server on threads of
//! its own (see [`http`] for its limits).
//!
//! The reactor never waits for these threads: a scrape reads the library's
//! [`ServerStats`] atomics (a prometheus-client collector that reads them at encode time),
//! and `/health` reads the time of each reactor's last loop turn from one more atomic per
//! reactor ([`Health`]). httparse parses the HTTP; prometheus-client writes the exposition.
//!
//! | path | answer |
//! | --- | --- |
//! | `GET /metrics` | 200, `text/plain; version=0.0.4`, every metric listed in docs/deploy.md |
//! | `GET /health` | 200 `OK` while every reactor turns; 503 once one has not turned for [`STALE`] (stuck, or stopped by a panic), or while the server shuts down |
//! | other paths | 404 |
//! | other methods on the two paths | 405 |

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpdlib::stats::{Conn, DataConnFailure, Refusal};
use ftpdlib::ServerStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

mod http;

/// How often each reactor turns at least, with metrics on: its poll never sleeps longer.
pub(crate) const BEAT: Duration = Duration::from_secs(1);
/// A reactor whose last turn is older than this is reported stalled by `/health`.
pub(crate) const STALE: Duration = Duration::from_secs(10);

/// What `/health` knows of the reactors: when each last turned, and whether the server is
/// stopping.
#[derive(Debug)]
pub(crate) struct Health {
    start: Instant,
    /// Milliseconds from `start` to each reactor's last loop turn.
    beat_ms: Vec<AtomicU64>,
    stopping: AtomicBool,
}

impl Health {
    /// Health of `reactors` reactors, each counted as having turned now.
    pub(crate) fn new(reactors: usize) -> Health {
        Health {
            start: Instant::now(),
            beat_ms: (0..reactors.max(1)).map(|_| AtomicU64::new(0)).collect(),
            stopping: AtomicBool::new(false),
        }
    }

    /// Reactor `i` turned at `now`.
    pub(crate) fn beat(&self, i: usize, now: Instant) {
        let ms = now.saturating_duration_since(self.start).as_millis();
        if let Some(b) = self.beat_ms.get(i) {
            b.store(u64::try_from(ms).unwrap_or(u64::MAX), Relaxed);
        }
    }

    /// The reactor has begun its graceful shutdown.
    pub(crate) fn stopping(&self) {
        self.stopping.store(true, Relaxed);
    }

    /// The status and text `/health` answers at `now`.
    fn verdict(&self, now: Instant) -> (u16, &'static str) {
        if self.stopping.load(Relaxed) {
            return (503, "shutting down\n");
        }
        let oldest = self
            .beat_ms
            .iter()
            .map(|b| b.load(Relaxed))
            .min()
            .unwrap_or(0);
        let beat = self.start + Duration::from_millis(oldest);
        if now.saturating_duration_since(beat) > STALE {
            return (503, "reactor stalled\n");
        }
        (200, "OK\n")
    }
}

/// Reads [`ServerStats`] on every scrape.
#[derive(Debug)]
struct StatsCollector(Arc<ServerStats>);

/// One unlabelled metric.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter family: one series per label set.
fn counters<'a, L>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet + 'a,
{
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Converts a gauge's count to the i64 Prometheus gauges carry.
fn gauge(n: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Collector for StatsCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        // The encoder adds `_total` to counter names.
        single(
            &mut e,
            "ftpdlib_sessions_open",
            "Sessions (control connections) open now",
            &gauge(s.sessions_open()),
        )?;
        single(
            &mut e,
            "ftpdlib_sessions",
            "Sessions accepted",
            &ConstCounter::new(s.sessions_total()),
        )?;
        counters(
            &mut e,
            "ftpdlib_connections_refused",
            "Connections answered 421 at accept, by reason",
            Refusal::ALL
                .iter()
                .map(|r| ([("reason", r.name())], s.connections_refused(*r))),
        )?;
        counters(
            &mut e,
            "ftpdlib_logins",
            "Logins (PASS) by result",
            [
                ([("result", "ok")], s.logins_succeeded()),
                ([("result", "failed")], s.logins_failed()),
            ],
        )?;
        single(
            &mut e,
            "ftpdlib_login_bans",
            "Addresses banned for failed logins (--max-login-failures)",
            &ConstCounter::new(s.login_bans()),
        )?;
        single(
            &mut e,
            "ftpdlib_command_flood_closes",
            "Sessions closed for sending too many commands per second (--max-cmds-per-sec)",
            &ConstCounter::new(s.command_flood_closes()),
        )?;
        counters(
            &mut e,
            "ftpdlib_commands",
            "Commands taken, by verb (unknown verbs and over-long lines as \"other\")",
            s.commands_by_verb().map(|(v, n)| ([("verb", v)], n)),
        )?;
        counters(
            &mut e,
            "ftpdlib_replies",
            "Replies sent, by code",
            s.replies_by_code()
                .map(|(c, n)| ([("code", c.to_string())], n)),
        )?;
        for (name, help, value) in [
            (
                "ftpdlib_bytes_sent",
                "Payload bytes sent on data connections (downloads and listings)",
                s.bytes_sent(),
            ),
            (
                "ftpdlib_bytes_received",
                "Payload bytes received on data connections (uploads)",
                s.bytes_received(),
            ),
            (
                "ftpdlib_files_sent",
                "Files sent whole (RETR answered 226)",
                s.files_sent(),
            ),
            (
                "ftpdlib_files_received",
                "Files received whole (STOR, APPE, STOU answered 226)",
                s.files_received(),
            ),
        ] {
            single(&mut e, name, help, &ConstCounter::new(value))?;
        }
        single(
            &mut e,
            "ftpdlib_transfers_running",
            "Transfers (files and listings) running now",
            &gauge(s.transfers_running()),
        )?;
        single(
            &mut e,
            "ftpdlib_lock_waits",
            "Times a reactor waited for a lock on the limits the reactors share (--workers)",
            &ConstCounter::new(s.lock_waits()),
        )?;
        single(
            &mut e,
            "ftpdlib_reactor_panics",
            "Reactor threads that panicked; each closed its sessions, the others went on",
            &ConstCounter::new(s.reactor_panics()),
        )?;
        single(
            &mut e,
            "ftpdlib_transfers_throttled",
            "Transfers that waited for a bandwidth limit at least once",
            &ConstCounter::new(s.transfers_throttled()),
        )?;
        counters(
            &mut e,
            "ftpdlib_data_connection_failures",
            "Data connections that failed, by reason",
            DataConnFailure::ALL
                .iter()
                .map(|f| ([("reason", f.name())], s.data_failures(*f))),
        )?;
        counters(
            &mut e,
            "ftpdlib_tls_handshakes",
            "TLS handshakes by connection (control, data) and result (ok, failed)",
            Conn::ALL.iter().flat_map(|c| {
                [(true, "ok"), (false, "failed")].map(|(ok, result)| {
                    (
                        [("connection", c.name()), ("result", result)],
                        s.tls_handshakes(*c, ok),
                    )
                })
            }),
        )?;
        Ok(())
    }
}

/// The metrics server, stopped and joined when dropped.
pub(crate) struct MetricsServer {
    _http: http::HttpServer,
}

/// Binds `addr` and serves `/metrics` and `/health` from threads of their own.
///
/// # Errors
/// When the address can't be bound or a thread can't be started: one line to show.
pub(crate) fn start(
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    health: Arc<Health>,
) -> Result<MetricsServer, String> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StatsCollector(stats)));
    let handler: Arc<http::Handler> =
        Arc::new(move |r: &http::Request<'_>| answer(r, &registry, &health));
    let (server, bound) =
        http::serve(addr, handler).map_err(|e| format!("can't serve metrics on {addr}: {e}"))?;
    log::info!(
        target: ftpdlib::logger::LOG,
        "metrics on http://{bound}/metrics, health on http://{bound}/health"
    );
    Ok(MetricsServer { _http: server })
}

fn text(status: u16, body: &str) -> http::Answer {
    http::Answer {
        status,
        content_type: "text/plain",
        body: body.to_string(),
        allow: None,
    }
}

/// Answers one request.
fn answer(request: &http::Request<'_>, registry: &Registry, health: &Health) -> http::Answer {
    let readable = matches!(request.method, "GET" | "HEAD");
    match (request.path, readable) {
        ("/metrics", true) => {
            let mut body = String::new();
            match prometheus_client::encoding::prometheus_text::encode(&mut body, registry) {
                Ok(()) => http::Answer {
                    status: 200,
                    content_type: prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    body,
                    allow: None,
                },
                Err(e) => text(500, &format!("encoding failed: {e}\n")),
            }
        }
        ("/health", true) => {
            let (status, body) = health.verdict(Instant::now());
            text(status, body)
        }
        ("/metrics" | "/health", false) => http::Answer {
            allow: Some("GET, HEAD"),
            ..text(405, "method not allowed\n")
        },
        _ => text(404, "not found\n"),
    }
}
