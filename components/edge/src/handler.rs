//! The component's export, `wasi:http/incoming-handler@0.2` (see `edge_core::http_glue` for why
//! WASI 0.2). Uses no Spin-only API, so the same binary runs under Spin, SpinKube and
//! `secure-context serve`: settings come from environment variables, files from the
//! directories mounted at /web and /edge.

use edge_core::app::{self, Files, Site, EDGE_ROOT, WEB_ROOT};
use edge_core::config::Config;
use edge_core::http_glue::{request_head, respond};
use std::sync::OnceLock;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct GuestFiles;

impl Files for GuestFiles {
    fn size(&self, path: &str) -> Option<u64> {
        std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }
}

static SITE: OnceLock<Site> = OnceLock::new();

/// The allowlist, parsed once per instance.
fn site() -> Result<&'static Site, String> {
    if let Some(s) = SITE.get() {
        return Ok(s);
    }
    let manifest = std::fs::read(format!("{WEB_ROOT}/asset-manifest.json"))
        .map_err(|e| format!("{WEB_ROOT}/asset-manifest.json: {e}"))?;
    let encodings = std::fs::read(format!("{EDGE_ROOT}/encodings.json")).ok();
    let site = Site::parse(&manifest, encodings.as_deref())?;
    Ok(SITE.get_or_init(|| site))
}

struct Edge;

impl wasip2::exports::http::incoming_handler::Guest for Edge {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let head = request_head(&request);
        // The edge reads no request body; dropping the request discards it.
        drop(request);
        let config = Config::from_lookup(|k| std::env::var(k).ok());
        if let Err(e) = &config {
            eprintln!("secure-context edge: configuration error: {e}");
        }
        let site = site();
        if let Err(e) = &site {
            eprintln!("secure-context edge: {e}");
        }
        let response = match head {
            Ok(req) => app::handle(&req, &config, site, &GuestFiles),
            Err(e) => {
                eprintln!("secure-context edge: unreadable request: {e}");
                app::bad_request(&config)
            }
        };
        respond(out, response);
    }
}

wasip2::http::proxy::export!(Edge with_types_in wasip2);
