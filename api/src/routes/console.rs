//! The web console at `/console`: plain HTML, CSS and JavaScript modules from `api/console/`,
//! embedded in the binary at build time (no Node toolchain). The console is a client of the
//! public API with the caller's own bearer token, so it can show nothing the caller may not
//! read; these routes only hand out its files, to anyone, with a strict Content-Security-Policy
//! (scripts, styles, images and API calls from this origin only; no inline script or style, no
//! framing) and `Cache-Control: no-cache` with an `ETag`, so a new binary's console is picked
//! up at once and an unchanged file costs a 304.

use super::{finish, Ctx};
use crate::ApiError;
use sha2::{Digest, Sha256};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page every console URL loads (`/console`).
const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// The files under `/console/assets/`.
const ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("chart.js", JS),
    asset!("auditor.js", JS),
    asset!("support.js", JS),
    asset!("member.js", JS),
    asset!("operator.js", JS),
];

/// Everything from this origin only, nothing inline, never framed, forms never submitted by
/// the browser itself (the scripts send them to the API).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let if_none_match = warp::header::optional::<String>("if-none-match");
    let index = warp::path("console")
        .and(warp::path::end())
        .and(warp::get())
        .and(ctx.clone())
        .and(if_none_match)
        .map(|ctx: Ctx, tag: Option<String>| finish(&ctx.request_id, Ok(serve(&INDEX, tag.as_deref()))));
    let asset = warp::path!("console" / "assets" / String)
        .and(warp::get())
        .and(ctx)
        .and(if_none_match)
        .map(|name: String, ctx: Ctx, tag: Option<String>| {
            let result = ASSETS
                .iter()
                .find(|a| a.name == name)
                .map(|a| serve(a, tag.as_deref()))
                .ok_or_else(|| ApiError::NotFound("there is no such console file".into()));
            finish(&ctx.request_id, result)
        });
    index.or(asset).unify()
}

/// The file, or 304 when the client holds this very version.
fn serve(asset: &Asset, if_none_match: Option<&str>) -> Response {
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(asset.body))[..32]);
    let fresh = if_none_match.is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        let mut response = Response::new(Vec::new().into());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(asset.body.into());
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static(asset.content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert("etag", value);
    }
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    response
}
