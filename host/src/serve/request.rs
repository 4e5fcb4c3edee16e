//! One request: routed to its component, given an authority, run within the component's
//! bounds; a failure becomes the host's own reply (timeout, memory limit, trap).

use super::pool::Router;
use super::reply::host_error;
use http_body_util::BodyExt as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;
use wasmtime_wasi_http::WasiBody;

pub(super) async fn handle_request(
    router: &Router,
    local: SocketAddr,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<WasiBody> {
    let Some(i) = router.app.route(req.uri().path()) else {
        return host_error(404, "not-found", "no route serves this path");
    };
    // A wasi:http 0.2 request must have an authority. HTTP/1.1 requires a Host header (RFC
    // 9112 §3.2: answer 400 without one); an HTTP/1.0 client may omit it, and gets this
    // server's own address, as it asked this server.
    if req.uri().authority().is_none() && !req.headers().contains_key(http::header::HOST) {
        if req.version() != http::Version::HTTP_10 {
            return host_error(
                400,
                "bad-request",
                "an HTTP/1.1 request needs a Host header",
            );
        }
        if let Ok(v) = http::HeaderValue::from_str(&local.to_string()) {
            req.headers_mut().insert(http::header::HOST, v);
        }
    }
    let handler = &router.handlers[i];
    let start = Instant::now();
    let id = handler.state().next_request.fetch_add(1, Ordering::Relaxed);
    let result = async {
        let _permit = handler.state().requests.acquire().await?;
        let mut req = req.map(|body| body.map_err(|e| e.into()).boxed_unsync());
        with_authority(&mut req);
        handler.handle(id, req).await
    }
    .await;
    let limited = handler.state().setup.limited.take(id);
    match result {
        Ok(r) => r,
        Err(e) if start.elapsed() >= router.request_timeout => {
            eprintln!("serve: request timed out: {e:?}");
            host_error(
                504,
                "timeout",
                &format!(
                    "the request ran longer than its budget ({} ms)",
                    router.request_timeout.as_millis()
                ),
            )
        }
        Err(e) if limited => {
            eprintln!("serve: request {id}: {e:#}");
            host_error(
                503,
                "memory-limit",
                "the request needed more memory than one instance may use (--max-memory-mb)",
            )
        }
        Err(e) => {
            eprintln!("serve: error: {e:?}");
            host_error(500, "internal", "the component failed; see the server log")
        }
    }
}

/// As Spin does (and `wasmtime serve` does not): an origin-form request reaches the guest with
/// scheme `http` and the `Host` header as its authority, so the component can tell which host
/// the client asked for. A Host that is not a valid authority, or more than one, is left out.
fn with_authority<B>(req: &mut hyper::Request<B>) {
    if req.uri().authority().is_some()
        || req.headers().get_all(http::header::HOST).iter().count() != 1
    {
        return;
    }
    let Some(authority) = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
    else {
        return;
    };
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(uri: &str, hosts: &[&str]) -> hyper::Request<()> {
        let mut b = hyper::Request::get(uri);
        for h in hosts {
            b = b.header(http::header::HOST, *h);
        }
        let mut r = b.body(()).unwrap();
        with_authority(&mut r);
        r
    }

    #[test]
    fn origin_form_gets_the_host_as_authority() {
        let r = with_host("/a?b=1", &["app.example:8080"]);
        assert_eq!(r.uri().to_string(), "http://app.example:8080/a?b=1");
        // An absolute target keeps its own authority.
        let r = with_host("https://x.example/a", &["app.example"]);
        assert_eq!(r.uri().to_string(), "https://x.example/a");
        // No Host, two, or one that is not an authority: left as it came.
        for hosts in [&[][..], &["a.example", "b.example"], &["a b"]] {
            assert_eq!(with_host("/a", hosts).uri().to_string(), "/a", "{hosts:?}");
        }
    }
}
