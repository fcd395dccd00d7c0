//! The web console: one page at `/ui` (and `/` redirects there) that shows this member's view
//! of the cluster as it changes, fed by `/cluster/status` and the `/cluster/events` stream.
//!
//! The assets are plain HTML, CSS and JavaScript compiled into the binary (`include_str!`):
//! no build step, no CDN, so the console works offline, behind TLS (same origin) and on an
//! air-gapped host. A strict Content-Security-Policy keeps it to its own origin. The page is
//! read-only; with the admin token typed in (kept in the tab's session storage, sent only as
//! a bearer header to this origin) it offers the admin actions the API already guards.
//!
//! Each member row carries `data-member-id` and `data-status` (the status as in
//! `/cluster/status`) so tests and scripts can read the page; the banner shown without quorum
//! has the id `no-quorum`.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

/// Only this origin, no inline script or style, no framing.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// The console's routes, merged into every member's API.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui") }))
        .route(
            "/ui",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // the assets change with the binary only
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        routes::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_root_leads_to_the_console_and_its_assets_are_served_with_a_strict_policy() {
        let root = get("/").await;
        assert_eq!(root.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(root.headers()[header::LOCATION], "/ui");
        for (path, kind) in [
            ("/ui", "text/html"),
            ("/ui/app.js", "text/javascript"),
            ("/ui/app.css", "text/css"),
        ] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let ct = r.headers()[header::CONTENT_TYPE].to_str().unwrap();
            assert!(ct.starts_with(kind), "{path}: {ct}");
            let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("default-src 'self'"), "{path}");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        // no CDN, no inline script: everything the page needs comes from /ui/
        for url in ["http://", "https://", "//cdn"] {
            assert!(!INDEX.contains(url), "index.html refers to {url}");
        }
        assert!(INDEX.contains("src=\"/ui/app.js\""));
        assert!(!INDEX.contains("<script>"), "inline script");
    }
}
