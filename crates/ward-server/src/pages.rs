//! Health, readiness, metrics and the landing page.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::Json;
use ward_api::Health;

use crate::state::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        detail: None,
    })
}

/// Readiness: the store answers and every migration is applied.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ready().await {
        Ok(()) => {
            state.metrics.store_ready.set(1);
            (
                StatusCode::OK,
                Json(Health {
                    status: "ok".into(),
                    detail: None,
                }),
            )
        }
        Err(e) => {
            state.metrics.store_ready.set(0);
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable".into(),
                    detail: Some(e.to_string()),
                }),
            )
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

pub async fn landing() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'")],
        Html(concat!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Ward</title></head><body>",
            "<h1>Ward</h1><p>Secure access service, version ",
            env!("CARGO_PKG_VERSION"),
            ".</p><p>Administer it with <code>ward ctl</code>: ",
            "<code>ward ctl --server URL login --tenant TENANT --user USER --password-stdin</code>.</p>",
            "<p>The REST API is described at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>. ",
            "Health: <a href=\"/healthz\">/healthz</a>, <a href=\"/readyz\">/readyz</a>, <a href=\"/metrics\">/metrics</a>.</p>",
            "</body></html>"
        )),
    )
}
