//! A metrics endpoint that goes away for a while (`--standin-metrics-outage FROM:TO`): the fault tests' "trial pod
//! unreachable". The metrics server itself is the trainer's (seedsweep_crds::serve) on a private loopback port; the
//! address the operator scrapes is a TCP forwarder in front of it, which for the window closes its listener and
//! every connection it carries (so a scraper's kept-alive connection cannot outlive the outage either), then binds
//! the same address again. A scrape in the window is refused, as for a pod whose network is gone. The outage waits
//! for the endpoint's first answer: it is a reachable endpoint going away, not one that never came (which the
//! operator rightly gives a grace period of its own).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::replay::EventLog;

/// Part of a trial's run, as fractions of `--standin-seconds` from its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutageWindow {
    pub from: f64,
    pub to: f64,
}

impl std::str::FromStr for OutageWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not FROM:TO with 0 <= FROM < TO (fractions of the run, e.g. 0.1:0.6) for --standin-metrics-outage or ${}",
                super::cli::OUTAGE_ENV
            )
        };
        let (from, to) = s.split_once(':').ok_or_else(bad)?;
        let (from, to): (f64, f64) = (
            from.trim().parse().map_err(|_| bad())?,
            to.trim().parse().map_err(|_| bad())?,
        );
        if !(from.is_finite() && to.is_finite() && from >= 0.0 && from < to) {
            return Err(bad());
        }
        Ok(OutageWindow { from, to })
    }
}

/// Live proxied connections, so the outage can cut them.
type Connections = Arc<Mutex<Vec<TcpStream>>>;

/// Set once the server has sent a scraper bytes through the forwarder.
type Answered = Arc<std::sync::atomic::AtomicBool>;

/// Listens on `public` and forwards to `inner`, except from `origin + from` (or the first answer, if later) to
/// `origin + to`. Returns the bound public address. Runs on its own threads for the life of the process.
pub fn serve_with_outage(
    public: &str,
    inner: SocketAddr,
    origin: Instant,
    window: (Duration, Duration),
    events: EventLog,
) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(public)
        .map_err(|e| format!("--metrics-addr {public}: cannot listen: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--metrics-addr {public}: {e}"))?;
    let connections: Connections = Arc::default();
    std::thread::Builder::new()
        .name("metrics-outage".into())
        .spawn(move || {
            run(
                listener,
                bound,
                inner,
                (origin, window),
                events,
                connections,
                Answered::default(),
            )
        })
        .map_err(|e| format!("cannot start the metrics forwarder: {e}"))?;
    Ok(bound)
}

fn run(
    listener: TcpListener,
    bound: SocketAddr,
    inner: SocketAddr,
    (origin, (from, to)): (Instant, (Duration, Duration)),
    events: EventLog,
    connections: Connections,
    answered: Answered,
) {
    // Before the window: accept without blocking past its start.
    if listener.set_nonblocking(true).is_err() {
        eprintln!("warning: the metrics forwarder cannot poll; the outage starts at once");
    }
    let started = || answered.load(std::sync::atomic::Ordering::Relaxed);
    while Instant::now() < origin + from || (!started() && Instant::now() < origin + to) {
        match listener.accept() {
            Ok((client, _)) => forward(client, inner, &connections, &answered),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => eprintln!("warning: metrics forwarder accept: {e}"),
        }
    }
    if !started() {
        eprintln!(
            "warning: the metrics endpoint {bound} was never scraped before the outage's end: no outage"
        );
        events.log("metricsOutage", serde_json::json!({"skipped": true}));
        let _ = listener.set_nonblocking(false);
        serve(listener, inner, &connections, &answered);
        return;
    }
    drop(listener);
    if let Ok(mut live) = connections.lock() {
        for c in live.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
    events.log("metricsOutage", serde_json::json!({"reachable": false}));
    eprintln!("metrics endpoint {bound} unreachable (stand-in outage)");
    std::thread::sleep((origin + to).saturating_duration_since(Instant::now()));
    // The address was ours a moment ago; retry briefly in case the kernel has not released it yet.
    let mut listener = None;
    for _ in 0..100 {
        match TcpListener::bind(bound) {
            Ok(l) => {
                listener = Some(l);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let Some(listener) = listener else {
        eprintln!("error: cannot listen on {bound} again after the outage");
        return;
    };
    events.log("metricsOutage", serde_json::json!({"reachable": true}));
    eprintln!("metrics endpoint {bound} reachable again");
    serve(listener, inner, &connections, &answered);
}

/// Forwards every connection from here on.
fn serve(listener: TcpListener, inner: SocketAddr, connections: &Connections, answered: &Answered) {
    for client in listener.incoming() {
        match client {
            Ok(client) => forward(client, inner, connections, answered),
            Err(e) => eprintln!("warning: metrics forwarder accept: {e}"),
        }
    }
}

/// Copies bytes both ways between `client` and a new connection to `inner`, each way on its own thread.
fn forward(client: TcpStream, inner: SocketAddr, connections: &Connections, answered: &Answered) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(inner) else {
        // The metrics server is in this process; failing to reach it ends this one connection only.
        return;
    };
    let (Ok(c2), Ok(s2), Ok(kept)) = (client.try_clone(), server.try_clone(), client.try_clone())
    else {
        return;
    };
    if let Ok(mut live) = connections.lock() {
        live.retain(|c| c.peer_addr().is_ok());
        live.push(kept);
    }
    let _ = std::thread::Builder::new()
        .name("metrics-forward".into())
        .spawn(move || pipe(client, server, None));
    let answered = Arc::clone(answered);
    let _ = std::thread::Builder::new()
        .name("metrics-forward".into())
        .spawn(move || pipe(s2, c2, Some(answered)));
}

/// Copies `from` to `to` until either ends; `answered` is set once bytes have reached the client.
fn pipe(mut from: TcpStream, mut to: TcpStream, answered: Option<Answered>) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if let Some(a) = &answered {
                    a.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_bad_ones_name_the_flag() {
        assert_eq!(
            "0.1:0.6".parse::<OutageWindow>(),
            Ok(OutageWindow { from: 0.1, to: 0.6 })
        );
        for bad in ["0.6:0.1", "x:1", "0.5", "-1:2", "0.2:0.2"] {
            let e = bad.parse::<OutageWindow>().unwrap_err();
            assert!(e.contains("--standin-metrics-outage"), "{e}");
        }
    }

    /// A server that echoes what it reads, standing in for the metrics server.
    fn echo_server() -> SocketAddr {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let inner = server.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in server.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut c = c;
                    let mut buf = [0u8; 64];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        inner
    }

    /// An endpoint nobody scraped before the window ended was never reachable to begin with: no outage for it.
    #[test]
    fn an_endpoint_first_scraped_after_the_window_has_no_outage() {
        let origin = Instant::now();
        let public = serve_with_outage(
            "127.0.0.1:0",
            echo_server(),
            origin,
            (Duration::ZERO, Duration::from_millis(200)),
            EventLog::new(None, "t"),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let mut c = TcpStream::connect(public).unwrap();
        c.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
    }

    /// Before the window the forwarder answers as the server does; in it, connections are refused and an open
    /// one is cut; after it, it answers again on the same address.
    #[test]
    fn the_endpoint_answers_then_refuses_then_answers_again() {
        let inner = echo_server();
        let origin = Instant::now();
        let window = (Duration::from_millis(300), Duration::from_millis(1500));
        let public = serve_with_outage(
            "127.0.0.1:0",
            inner,
            origin,
            window,
            EventLog::new(None, "t"),
        )
        .unwrap();
        let echo = |c: &mut TcpStream| -> std::io::Result<Vec<u8>> {
            c.write_all(b"ping")?;
            let mut got = [0u8; 4];
            c.read_exact(&mut got)?;
            Ok(got.to_vec())
        };
        let mut open = TcpStream::connect(public).unwrap();
        assert_eq!(echo(&mut open).unwrap(), b"ping");
        let sleep_until =
            |t: Instant| std::thread::sleep(t.saturating_duration_since(Instant::now()));
        sleep_until(origin + Duration::from_millis(600));
        assert!(
            echo(&mut open).is_err(),
            "an open connection survived the outage"
        );
        assert!(
            TcpStream::connect(public).is_err(),
            "connected during the outage"
        );
        sleep_until(origin + window.1);
        // Listening again takes the forwarder a moment: retry for a generous while.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut again = loop {
            match TcpStream::connect(public) {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("not listening again: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        assert_eq!(echo(&mut again).unwrap(), b"ping");
    }
}
