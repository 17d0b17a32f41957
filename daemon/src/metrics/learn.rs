//! `/learn`, the one endpoint that changes something: `POST
//! /learn?device=NAME&seconds=N` starts learning a device, `GET
//! /learn?device=NAME` shows what its session saw so far, `DELETE
//! /learn?device=NAME` ends it (if it runs) and hands over the report.
//! Every request carries the control token (`learn::token`) as a bearer
//! token; the serve loop does the work (it alone writes the kernel maps).

use http_body_util::Full;
use hyper::{body::Bytes, header::AUTHORIZATION, Method, Request, Response, StatusCode};

use super::Shared;
use crate::learn::{control::Request as Ask, sessions::Refusal};

const TEXT: &str = "text/plain; charset=utf-8";

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

fn text(status: StatusCode, s: impl std::fmt::Display) -> Response<Full<Bytes>> {
    reply(status, TEXT, format!("{s}\n").into_bytes())
}

/// `%XX` and `+` decoded (a device name may hold anything).
fn decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let pair = (
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        );
        match (b[i], pair) {
            (b'+', _) => out.push(b' '),
            (b'%', (Some(h), Some(l))) => {
                out.push(h << 4 | l);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

fn refused(r: Refusal) -> Response<Full<Bytes>> {
    match r {
        Refusal::Busy(s) => text(StatusCode::CONFLICT, s),
        Refusal::Unknown(s) => text(StatusCode::NOT_FOUND, s),
        Refusal::Invalid(s) => text(StatusCode::BAD_REQUEST, s),
    }
}

pub async fn handle<B>(shared: &Shared, req: &Request<B>) -> Response<Full<Bytes>> {
    let Some(control) = shared.learn.get() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "learn mode is unavailable: the daemon could not write its control token (see its log)",
        );
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !crate::learn::token::matches(&control.token, given) {
        return text(
            StatusCode::UNAUTHORIZED,
            "the control token (state_dir/control.token) is missing or wrong",
        );
    }
    let query = req.uri().query();
    let Some(device) = param(query, "device") else {
        return text(StatusCode::BAD_REQUEST, "which device? (?device=NAME)");
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let ask = match *req.method() {
        Method::GET => {
            let now = crate::clock::mono_ns();
            return match control
                .sessions
                .find(&device)
                .and_then(|id| control.sessions.report(id, now))
            {
                Some(r) => json(&r),
                None => text(
                    StatusCode::NOT_FOUND,
                    format!("{device} has no learning session"),
                ),
            };
        }
        Method::POST => {
            let seconds = match param(query, "seconds").map(|s| s.parse()) {
                None => 60,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "seconds=N: a whole number of seconds",
                    )
                }
            };
            Ask::Start {
                device,
                seconds,
                reply: tx,
            }
        }
        Method::DELETE => Ask::Stop { device, reply: tx },
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "GET, POST or DELETE"),
    };
    if control.requests.send(ask).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
    }
    match rx.await {
        Ok(Ok(r)) => json(&r),
        Ok(Err(r)) => refused(r),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the daemon dropped the request",
        ),
    }
}

fn json(r: &crate::learn::report::Report) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(r) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_parameters_are_decoded() {
        let q = Some("device=kis%20box+1&seconds=60&x=%zz%4");
        assert_eq!(super::param(q, "device").as_deref(), Some("kis box 1"));
        assert_eq!(super::param(q, "seconds").as_deref(), Some("60"));
        assert_eq!(super::param(q, "x").as_deref(), Some("%zz%4"));
        assert_eq!(super::param(q, "y"), None);
    }
}
