//! `/docs`: the interactive API documentation (Swagger UI) over the
//! gateway's own `/openapi.json`, and `/`, which points to it. Every file of
//! the page is compiled into the binary, and the page asks nothing of any
//! other host (no spec validator), so it works on a network with no
//! internet.

use std::sync::{Arc, LazyLock};

use axum::{
    Json, Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use serde_json::json;
use utoipa_swagger_ui::Config;

/// Where the page lives.
pub const DOCS_PATH: &str = "/docs/";

/// The page's settings: the gateway's document, "Try it out" open, no
/// validator (it would call another host). A pasted token is kept in the
/// page only, never in the browser's storage.
static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::new(["/openapi.json"])
            .validator_url("none")
            .try_it_out_enabled(true)
            .display_operation_id(true)
            .deep_linking(true)
            // No top bar: its box invites loading other documents, from
            // other hosts.
            .use_base_layout(),
    )
});

/// The routes of the page and of `/`.
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/docs", get(|| async { Redirect::permanent(DOCS_PATH) }))
        .route("/docs/", get(|| file(String::new())))
        .route("/docs/{*file}", get(|Path(name): Path<String>| file(name)))
}

/// `/`: what the gateway serves, and where.
async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "name": "backup-gateway",
        "version": env!("CARGO_PKG_VERSION"),
        "links": {
            "docs": DOCS_PATH,
            "openapi": "/openapi.json",
            "health": "/healthz",
            "ready": "/readyz",
        },
    }))
}

/// The page itself: Swagger UI's, titled with the API's name.
const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>backup-gateway API</title>
    <link rel="stylesheet" type="text/css" href="./swagger-ui.css" />
    <link rel="stylesheet" type="text/css" href="./index.css" />
    <link rel="icon" type="image/png" href="./favicon-32x32.png" sizes="32x32" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="./swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"#;

/// One file of the page (`index.html` for the folder itself).
async fn file(name: String) -> Response {
    if name.is_empty() || name == "index.html" {
        return (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            INDEX_HTML,
        )
            .into_response();
    }
    match utoipa_swagger_ui::serve(&name, CONFIG.clone()) {
        Ok(Some(file)) => {
            let content_type = HeaderValue::from_str(&file.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            // The page's files change only with the binary: a browser may
            // keep them a while (the API's answers are never cached).
            let mut response = (
                [
                    (header::CONTENT_TYPE, content_type),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=3600"),
                    ),
                ],
                file.bytes.into_owned(),
            )
                .into_response();
            if file.gzpipped {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the docs page could not be served");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
