//! The agent's read-only HTTP API (docs/agent.md). `/metrics`, `/healthz` and `/readyz` are
//! open, as node_exporter's are; the report, record and findings endpoints reveal every pod's
//! flows and take a bearer token when `--api-token-file` is given.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use super::{Shared, WindowError};
use crate::{cli::ReportFormat, duration, record::file::Writer, report::BuildError};

/// The default window of the report, record and findings endpoints.
const DEFAULT_WINDOW: &str = "5m";
/// A window recording larger than this is refused rather than built in memory.
const MAX_RECORDING: u64 = 256 << 20;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/report", get(report))
        .route("/api/v1/record", get(record))
        .with_state(shared)
}

#[derive(serde::Deserialize)]
struct Params {
    window: Option<String>,
    pod: Option<String>,
    format: Option<String>,
}

/// A refusal with a message saying what to do.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, format!("netprobe agent: {}\n", self.1)).into_response()
    }
}

fn refuse(status: StatusCode, message: impl std::fmt::Display) -> Refusal {
    Refusal(status, message.to_string())
}

impl Params {
    fn window(&self) -> Result<Duration, Refusal> {
        let text = self.window.as_deref().unwrap_or(DEFAULT_WINDOW);
        duration::parse(text).map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("window: {e}")))
    }
}

fn window_error(e: WindowError) -> Refusal {
    match e {
        WindowError::NotYet => refuse(StatusCode::SERVICE_UNAVAILABLE, e),
        WindowError::Build(BuildError::UnknownPod { .. }) => refuse(StatusCode::NOT_FOUND, e),
        other => refuse(StatusCode::BAD_REQUEST, other),
    }
}

/// The token check, then at most `Shared::reports` builds at once, off the collection thread.
async fn guarded<T: Send + 'static>(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    build: impl FnOnce(&Shared) -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    if let Some(token) = &shared.token {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if given != Some(&format!("Bearer {token}")) {
            return Err(refuse(StatusCode::UNAUTHORIZED, "this endpoint needs the bearer token"));
        }
    }
    let Ok(_permit) = shared.reports.try_acquire() else {
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "busy building other reports"));
    };
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || build(&shared))
        .await
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e))?
}

/// A built body as `kind`, or the refusal.
fn reply(built: Result<impl IntoResponse, Refusal>, kind: &'static str) -> Response {
    match built {
        Ok(body) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let built = tokio::task::spawn_blocking(move || shared.metrics()).await;
    match built {
        Ok(Ok(text)) => {
            let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            ([(header::CONTENT_TYPE, kind)], text).into_response()
        }
        Ok(Err(e)) => refuse(StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready() {
        "ready\n".into_response()
    } else {
        refuse(StatusCode::SERVICE_UNAVAILABLE, "attaching programs and resolving pods")
            .into_response()
    }
}

/// `/api/v1/findings` (docs/agent.md).
#[derive(serde::Serialize)]
struct FindingsOut {
    version: u32,
    window_s: f64,
    from: String,
    to: String,
    findings: Vec<crate::report::findings::Finding>,
}

async fn findings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let window = match p.window() {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let built = guarded(&shared, &headers, move |s| {
        let r = s.report(window, p.pod.as_deref()).map_err(window_error)?;
        let body = FindingsOut {
            version: 1,
            window_s: window.as_secs_f64(),
            from: r.from,
            to: r.to,
            findings: r.findings,
        };
        serde_json::to_string_pretty(&body)
            .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e))
    });
    reply(built.await.map(|b| b + "\n"), "application/json")
}

async fn report(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let window = match p.window() {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let (format, kind) = match p.format.as_deref().unwrap_or("json") {
        "json" => (ReportFormat::Json, "application/json"),
        "html" => (ReportFormat::Html, "text/html; charset=utf-8"),
        "text" => (ReportFormat::Text, "text/plain; charset=utf-8"),
        other => {
            let why = format!("format `{other}`: expected json, html or text");
            return refuse(StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let built = guarded(&shared, &headers, move |s| {
        let r = s.report(window, p.pod.as_deref()).map_err(window_error)?;
        r.render(format).map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e))
    });
    reply(built.await, kind)
}

async fn record(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let window = match p.window() {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let built = guarded(&shared, &headers, move |s| {
        let frames = s.frames(window).map_err(window_error)?;
        let fail = |e: std::io::Error| refuse(StatusCode::INTERNAL_SERVER_ERROR, e);
        let mut w = Writer::new(Vec::new(), MAX_RECORDING).map_err(fail)?;
        for f in &frames {
            crate::frames::Frames::frame(&mut w, f);
        }
        if w.capped() {
            let why = format!("the window's recording is over {MAX_RECORDING} bytes; ask less");
            return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, why));
        }
        w.into_bytes().map_err(fail)
    });
    reply(built.await, "application/octet-stream")
}
