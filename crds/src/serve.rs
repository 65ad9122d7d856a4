//! The one small HTTP server behind every SeedSweep `/metrics` endpoint (the trainer's and the operator's), so both
//! answer scrapers the same way: the Prometheus text format with its content type, `/healthz`, `/readyz`, query
//! strings ignored, 404 elsewhere.
//!
//! tiny_http rather than hyper: a few GET routes scraped every few seconds need no async runtime, and a blocking
//! server on its own thread keeps answering while the process trains or reconciles.

use prometheus::{Encoder, Registry, TextEncoder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The Prometheus text exposition's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("the text encoder writes to a Vec");
    String::from_utf8(buf).expect("the text format is UTF-8")
}

/// What the server answers: the registry at `/metrics`, and `/readyz` from `ready` (always ready when `None`).
pub struct Endpoints {
    pub registry: Registry,
    pub ready: Option<Arc<AtomicBool>>,
}

/// Serves `endpoints` on `addr` from a thread named `thread`; returns the bound address (`:0` picks a port). The
/// error says why it cannot listen; callers prefix their flag's name.
pub fn serve(addr: &str, thread: &str, endpoints: Endpoints) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(addr).map_err(|e| format!("cannot listen: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| "not an IP address".to_string())?;
    let header: tiny_http::Header = format!("Content-Type: {CONTENT_TYPE}")
        .parse()
        .expect("a valid header");
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let path = request.url().split('?').next().unwrap_or_default();
                let ready = endpoints
                    .ready
                    .as_ref()
                    .is_none_or(|r| r.load(Ordering::Relaxed));
                let response = match path {
                    "/metrics" => tiny_http::Response::from_string(render(&endpoints.registry))
                        .with_header(header.clone()),
                    "/healthz" => tiny_http::Response::from_string("ok\n"),
                    "/readyz" if ready => tiny_http::Response::from_string("ok\n"),
                    "/readyz" => {
                        tiny_http::Response::from_string("not ready\n").with_status_code(503)
                    }
                    _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
                };
                // A scraper that hung up is its own problem; keep serving the others.
                let _ = request.respond(response);
            }
        })
        .map_err(|e| format!("cannot start the {thread} thread: {e}"))?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The status code and the whole response. tiny_http answers an HTTP/1.0 request in 1.0, so only the code
    /// is compared, never the version.
    fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {out:?}"));
        (code, out)
    }

    #[test]
    fn routes_content_type_and_readiness() {
        let registry = Registry::new();
        let gauge = prometheus::IntGauge::new("answer", "a test gauge").unwrap();
        gauge.set(42);
        registry.register(Box::new(gauge)).unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let endpoints = Endpoints {
            registry,
            ready: Some(ready.clone()),
        };
        let addr = serve("127.0.0.1:0", "test-http", endpoints).unwrap();
        let (code, metrics) = get(addr, "/metrics?x=1");
        assert_eq!(code, 200, "{metrics}");
        assert!(metrics.contains(CONTENT_TYPE), "{metrics}");
        assert!(metrics.contains("answer 42"), "{metrics}");
        assert_eq!(get(addr, "/healthz").0, 200);
        assert_eq!(get(addr, "/readyz").0, 503);
        ready.store(true, Ordering::Relaxed);
        assert_eq!(get(addr, "/readyz").0, 200);
        assert_eq!(get(addr, "/nope").0, 404);
        assert!(
            serve(
                "not an address",
                "t",
                Endpoints {
                    registry: Registry::new(),
                    ready: None
                }
            )
            .is_err()
        );
    }
}
