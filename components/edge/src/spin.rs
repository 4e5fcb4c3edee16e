//! The Spin binding: `wasi:http/handler@0.3.0` via spin-sdk 7. Uses no Spin-only API (so the
//! same binary runs under `secure-context serve`): settings come from environment variables,
//! files from the directories mounted at /web and /edge.

use edge_core::app::{self, Files, Site, EDGE_ROOT, WEB_ROOT};
use edge_core::config::Config;
use edge_core::http_glue::{into_http, EdgeBody, RequestParts};
use spin_sdk::http::Request;
use std::sync::OnceLock;

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

#[spin_sdk::http_service]
async fn handle(req: Request) -> http::Response<EdgeBody> {
    let parts = RequestParts::new(&req);
    let config = Config::from_lookup(|k| std::env::var(k).ok());
    if let Err(e) = &config {
        eprintln!("secure-context edge: configuration error: {e}");
    }
    let site = site();
    if let Err(e) = &site {
        eprintln!("secure-context edge: {e}");
    }
    let resp = app::handle(&parts.request(), &config, site, &GuestFiles);
    into_http(resp)
}
