//! Prometheus metrics in the text format, kept by hand (a few counters and histograms): requests
//! by route and status, latency, requests in flight, shed requests, inference time per model
//! and flagged objects by label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 17] = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.5, 10.0];

/// One histogram: counts per bucket, sum and count.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {}", self.buckets[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    inference: Mutex<BTreeMap<String, Histogram>>,
    flagged: Mutex<BTreeMap<String, u64>>,
    in_flight: AtomicI64,
    shed: AtomicU64,
}

impl Metrics {
    /// A finished request.
    pub fn request(&self, route: &str, status: u16, secs: f64) {
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()).entry((route.to_string(), status)).or_default() += 1;
        let class = match status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.latency.lock().unwrap_or_else(|e| e.into_inner()).entry((route.to_string(), class)).or_default().observe(secs);
    }

    /// Time spent running the models on one request's object.
    pub fn inference(&self, model: &str, secs: f64) {
        self.inference.lock().unwrap_or_else(|e| e.into_inner()).entry(model.to_string()).or_default().observe(secs);
    }

    /// An object flagged with `label`.
    pub fn flagged(&self, label: &str) {
        *self.flagged.lock().unwrap_or_else(|e| e.into_inner()).entry(label.to_string()).or_default() += 1;
    }

    /// A request started (+1) or ended (-1) its work.
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// A request refused with 503 because the server was full.
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP tusk_http_requests_total Requests by route and status.\n# TYPE tusk_http_requests_total counter\n");
        for ((route, status), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "tusk_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP tusk_http_request_duration_seconds Request latency by route and status class.\n# TYPE tusk_http_request_duration_seconds histogram\n");
        for ((route, class), h) in self.latency.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            h.render(&mut out, "tusk_http_request_duration_seconds", &format!("route=\"{route}\",status=\"{class}\""));
        }
        out.push_str("# HELP tusk_inference_seconds Decode, hash and inference time per object by model set.\n# TYPE tusk_inference_seconds histogram\n");
        for (model, h) in self.inference.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            h.render(&mut out, "tusk_inference_seconds", &format!("model=\"{model}\""));
        }
        out.push_str("# HELP tusk_flagged_total Objects flagged, by label.\n# TYPE tusk_flagged_total counter\n");
        for (label, n) in self.flagged.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "tusk_flagged_total{{label=\"{label}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP tusk_http_in_flight Requests being worked on.\n# TYPE tusk_http_in_flight gauge\ntusk_http_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP tusk_http_shed_total Requests refused with 503 because the server was full.\n# TYPE tusk_http_shed_total counter\ntusk_http_shed_total {}", self.shed.load(Ordering::Relaxed));
        out
    }
}
