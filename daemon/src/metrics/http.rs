//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz`,
//! `/readyz` and `/status` (JSON for `iotfence status`), GET only, and
//! `/learn` (see `learn.rs`, token-protected). HTTP/1.1;
//! map reads run on the blocking pool so a scrape never stalls the serve
//! loop's event draining.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::{HeaderValue, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, Registry, TextEncoder};

use super::{render, status, Shared};

/// A connection that sends nothing for this long is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

struct Endpoint {
    shared: Arc<Shared>,
    kernel: crate::kernel::counters::Counters,
    registry: Registry,
}

/// Serves on `listener` (bound at start, so a busy port fails the start,
/// not a later scrape) until the runtime stops.
pub fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> anyhow::Result<SocketAddr> {
    let kernel = crate::kernel::counters::Counters::open(&shared.pin_dir)?;
    let registry = Registry::new();
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let endpoint = Arc::new(Endpoint {
        shared,
        kernel,
        registry,
    });
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(endpoint.clone(), req));
                let mut builder = http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn handle(
    endpoint: Arc<Endpoint>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/learn" {
        return Ok(super::learn::handle(&endpoint.shared, &req).await);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            b"GET only\n".to_vec(),
        ));
    }
    let path = req.uri().path().to_string();
    let r = match path.as_str() {
        "/healthz" => reply(StatusCode::OK, TEXT, b"ok\n".to_vec()),
        "/readyz" if endpoint.shared.ready() => reply(StatusCode::OK, TEXT, b"ready\n".to_vec()),
        "/readyz" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            b"not ready: no policy applied or nothing attached\n".to_vec(),
        ),
        "/metrics" | "/status" => {
            let e = endpoint.clone();
            let work = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<u8>, bool)> {
                if path == "/metrics" {
                    let mut families = e.registry.gather();
                    families.extend(render::families(&e.shared, &e.kernel)?);
                    families.sort_by(|a, b| a.name().cmp(b.name()));
                    let mut buf = Vec::new();
                    TextEncoder::new().encode(&families, &mut buf)?;
                    Ok((buf, true))
                } else {
                    let doc = status::build(&e.shared, &e.kernel)?;
                    Ok((serde_json::to_vec_pretty(&doc)?, false))
                }
            })
            .await;
            match work {
                Ok(Ok((body, true))) => reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    body,
                ),
                Ok(Ok((body, false))) => reply(StatusCode::OK, "application/json", body),
                Ok(Err(err)) => {
                    tracing::warn!(error = %format!("{err:#}"), "metrics: reading the maps failed");
                    reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        TEXT,
                        format!("{err:#}\n").into_bytes(),
                    )
                }
                Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, b"panic\n".to_vec()),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            b"try /metrics, /healthz, /readyz, /status or /learn\n".to_vec(),
        ),
    };
    Ok(r)
}
