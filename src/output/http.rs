//! `--http-listen ADDR:PORT`: the live map. Serves the page (Leaflet,
//! vendored and built into the binary: `assets/`) and the JSON the page
//! polls, in dump1090-fa's paths (`/data/aircraft.json`,
//! `/data/receiver.json`, `/data/stats.json`), so tar1090 or SkyAware can
//! be pointed at it too. HTTP/1.1 by hyper; nothing here parses HTTP.
//!
//! Safe by construction:
//! - GET and HEAD only (anything else: 405 with `Allow`);
//! - a fixed table of assets compiled in: no path from a request reaches
//!   the filesystem, so there is nothing to traverse;
//! - at most [`MAX_CONNECTIONS`] connections (more are closed at once,
//!   counted, logged at most once a minute); request heads over 16 KiB are
//!   refused by hyper; a client has [`HEADER_TIMEOUT`] to send a request
//!   head (slowloris) and a connection lives at most [`CONNECTION_LIFETIME`]
//!   (a browser reconnects; a client that stops reading is cut off);
//! - the responses hold only what the map shows; no secret is in reach.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::json::Snapshots;
use super::server::{AcceptFailures, RepeatLog};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 128;

/// Time a client has to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest life of one connection.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Largest request head accepted (hyper's minimum buffer is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;

/// Counters of the map server.
#[derive(Debug, Default)]
pub struct HttpTelemetry {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Connections closed at once because [`MAX_CONNECTIONS`] were open.
    pub refused: AtomicU64,
}

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Everything the page needs, compiled in.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../assets/map/index.html"),
    },
    Asset {
        path: "/map.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/map/map.js"),
    },
    Asset {
        path: "/map.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/map/map.css"),
    },
    Asset {
        path: "/leaflet/leaflet.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/leaflet/leaflet.js"),
    },
    Asset {
        path: "/leaflet/leaflet.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/leaflet/leaflet.css"),
    },
    Asset {
        path: "/leaflet/LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../assets/leaflet/LICENSE"),
    },
];

/// The page may load map tiles from any https server (OpenStreetMap by
/// default); scripts, styles and data only from here.
const CSP: &str =
    "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'";

fn response(
    status: StatusCode,
    content_type: &str,
    body: Bytes,
    head: bool,
) -> Response<Full<Bytes>> {
    let len = body.len();
    let mut r = Response::new(Full::new(if head { Bytes::new() } else { body }));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The answer to `method` `path` (the query ignored) from the compiled-in
/// assets and the latest snapshot. Pure: no I/O.
pub fn respond(method: &Method, path: &str, snapshots: &Snapshots) -> Response<Full<Bytes>> {
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        let mut r = response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"GET or HEAD only\n"),
            false,
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = if path == "/index.html" { "/" } else { path };
    if let Some(a) = ASSETS.iter().find(|a| a.path == path) {
        let mut r = response(
            StatusCode::OK,
            a.content_type,
            Bytes::from_static(a.body),
            head,
        );
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=300"),
        );
        return r;
    }
    let snap = snapshots.borrow().clone();
    let data = match path {
        "/data/aircraft.json" => Some(&snap.aircraft),
        "/data/receiver.json" => Some(&snap.receiver),
        "/data/stats.json" => Some(&snap.stats),
        _ => None,
    };
    match data {
        Some(body) => {
            let mut r = response(StatusCode::OK, "application/json", body.clone(), head);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"not found\n"),
            head,
        ),
    }
}

/// Binds `addr`; the task serving the map until `token` is cancelled.
pub async fn start(
    addr: &str,
    snapshots: Snapshots,
    token: CancellationToken,
    tel: Arc<HttpTelemetry>,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = TcpListener::bind(addr).await?;
    info!(addr = ?listener.local_addr().ok(), "http-listen: serving the map");
    Ok(serve(listener, snapshots, token, tel))
}

async fn serve(
    listener: TcpListener,
    snapshots: Snapshots,
    token: CancellationToken,
    tel: Arc<HttpTelemetry>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut accept_failures = AcceptFailures::new("http-listen");
    let mut refusals = RepeatLog::default();
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            a = listener.accept() => a,
        };
        let (sock, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                let pause = accept_failures.failed(&e);
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        };
        accept_failures.succeeded();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tel.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = refusals.hit() {
                warn!(peer = %peer, max = MAX_CONNECTIONS, refused = n,
                    "http-listen: too many connections, closing new ones (logged at most once a minute)");
            }
            drop(sock);
            continue;
        };
        let snapshots = snapshots.clone();
        let tel = tel.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                tel.requests.fetch_add(1, Ordering::Relaxed);
                let r = respond(req.method(), req.uri().path(), &snapshots);
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(sock), service);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_LIFETIME, conn) => {}
                () = token.cancelled() => {}
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::json::Snapshot;
    use http_body_util::BodyExt;

    fn snaps() -> Snapshots {
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(Snapshot {
            aircraft: Bytes::from_static(br#"{"now":1,"messages":2,"aircraft":[]}"#),
            receiver: Bytes::from_static(br#"{"refresh":1000}"#),
            stats: Bytes::from_static(br#"{"total":{}}"#),
        }));
        rx
    }

    async fn body(r: Response<Full<Bytes>>) -> Bytes {
        r.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn only_the_compiled_in_table_is_served() {
        let s = snaps();
        let page = respond(&Method::GET, "/", &s);
        assert_eq!(page.status(), 200);
        assert!(body(page).await.starts_with(b"<!DOCTYPE html>"));
        let data = respond(&Method::GET, "/data/aircraft.json", &s);
        assert_eq!(data.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            &body(data).await[..],
            br#"{"now":1,"messages":2,"aircraft":[]}"#
        );
        for p in [
            "/../Cargo.toml",
            "/leaflet/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "//etc/passwd",
            "/data/",
            "/src/main.rs",
            "",
        ] {
            assert_eq!(respond(&Method::GET, p, &s).status(), 404, "{p}");
        }
    }

    #[tokio::test]
    async fn head_has_the_length_and_no_body_and_other_methods_get_405() {
        let s = snaps();
        let h = respond(&Method::HEAD, "/map.js", &s);
        assert_eq!(h.status(), 200);
        let len: usize = h.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, include_bytes!("../../assets/map/map.js").len());
        assert!(body(h).await.is_empty());
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let r = respond(&m, "/", &s);
            assert_eq!(r.status(), 405);
            assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        }
    }

    #[tokio::test]
    async fn the_data_files_are_the_latest_snapshot() {
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
        tx.send(Arc::new(Snapshot {
            stats: Bytes::from_static(br#"{"total":{"messages":7}}"#),
            ..Snapshot::default()
        }))
        .unwrap();
        let r = respond(&Method::GET, "/data/stats.json", &rx);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(&body(r).await[..], br#"{"total":{"messages":7}}"#);
    }
}
