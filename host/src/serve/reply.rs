//! The responses the host makes itself, under the edge app's header policy.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use wasmtime_wasi_http::WasiBody;

/// A response the host makes itself: a JSON error (the API's form) under the app's header
/// policy. No detail of a failure leaves the server.
pub(super) fn host_error(status: u16, code: &str, message: &str) -> hyper::Response<WasiBody> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut r = hyper::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|_| unreachable!())
            .boxed_unsync(),
    );
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = r.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    edge_core::policy::apply(
        headers,
        edge_core::policy::Kind::Resource,
        &edge_core::config::Config::default(),
    );
    r
}
