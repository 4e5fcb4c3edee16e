//! The Spin binding: `wasi:http/handler@0.3.0` via spin-sdk 7. Uses no Spin-only API (so the
//! same binary runs under `secure-context serve`): settings come from environment variables,
//! files from the directories mounted at /web and /edge.

use crate::app::{self, Body as AppBody, Files, Site, EDGE_ROOT, WEB_ROOT};
use crate::config::Config;
use bytes::Bytes;
use http_body::Frame;
use spin_sdk::http::Request;
use std::io::{Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

const CHUNK: u64 = 64 * 1024;

/// A response body: nothing, bytes, or a file slice streamed in 64 KiB chunks.
pub enum EdgeBody {
    Empty,
    Bytes(Option<Bytes>),
    File { file: std::fs::File, remaining: u64 },
}

impl http_body::Body for EdgeBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        match this {
            EdgeBody::Empty => Poll::Ready(None),
            EdgeBody::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            EdgeBody::File { file, remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(CHUNK) as usize;
                let mut buf = vec![0u8; n];
                match file.read_exact(&mut buf) {
                    Ok(()) => {
                        *remaining -= n as u64;
                        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
                    }
                    Err(e) => {
                        *remaining = 0;
                        Poll::Ready(Some(Err(e)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EdgeBody::Empty => true,
            EdgeBody::Bytes(b) => b.is_none(),
            EdgeBody::File { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            EdgeBody::Empty => http_body::SizeHint::with_exact(0),
            EdgeBody::Bytes(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            EdgeBody::File { remaining, .. } => http_body::SizeHint::with_exact(*remaining),
        }
    }
}

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
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let uri = req.uri();
    let host_header = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let authority = uri.authority().map(|a| a.as_str()).or(host_header);
    let r = app::Request {
        method: req.method().as_str(),
        path: uri.path(),
        query: uri.query(),
        scheme: uri.scheme_str(),
        host: authority,
        headers: &headers,
    };
    let config = Config::from_lookup(|k| std::env::var(k).ok());
    if let Err(e) = &config {
        eprintln!("secure-context edge: configuration error: {e}");
    }
    let site = site();
    if let Err(e) = &site {
        eprintln!("secure-context edge: {e}");
    }
    let resp = app::handle(&r, &config, site, &GuestFiles);
    into_http(resp)
}

fn into_http(resp: app::Response) -> http::Response<EdgeBody> {
    let body = match resp.body {
        AppBody::Empty => EdgeBody::Empty,
        AppBody::Bytes(b) => EdgeBody::Bytes(Some(Bytes::from(b))),
        AppBody::File { path, start, len } => match std::fs::File::open(&path)
            .and_then(|mut f| f.seek(SeekFrom::Start(start)).map(|_| f))
        {
            Ok(file) => EdgeBody::File {
                file,
                remaining: len,
            },
            Err(e) => {
                eprintln!("secure-context edge: {path}: {e}");
                EdgeBody::Empty
            }
        },
    };
    let mut out = http::Response::new(body);
    *out.status_mut() =
        http::StatusCode::from_u16(resp.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (n, v) in resp.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(n.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            out.headers_mut().append(n, v);
        }
    }
    out
}
