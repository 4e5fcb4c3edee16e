//! The HTTP side of a Spin component (wasi:http/handler@0.3.0 via spin-sdk 7), shared by the
//! edge app and the API component: reads a request into an [`app::Request`] and writes an
//! [`app::Response`] back, streaming file bodies.

use crate::app::{self, Body as AppBody};
use bytes::Bytes;
use http_body::Frame;
use std::io::{Read, Seek, SeekFrom};
use std::pin::Pin;
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

/// A request's parts, owned, from which [`app::Request`]s borrow.
pub struct RequestParts {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub scheme: Option<String>,
    pub host: Option<String>,
    /// Lower-case names, values as received (lossy UTF-8).
    pub headers: Vec<(String, String)>,
}

impl RequestParts {
    pub fn new<B>(req: &http::Request<B>) -> RequestParts {
        let headers = req
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
        RequestParts {
            method: req.method().as_str().to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            scheme: uri.scheme_str().map(str::to_string),
            host: uri
                .authority()
                .map(|a| a.as_str())
                .or(host_header)
                .map(str::to_string),
            headers,
        }
    }

    pub fn request(&self) -> app::Request<'_> {
        app::Request {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            scheme: self.scheme.as_deref(),
            host: self.host.as_deref(),
            headers: &self.headers,
        }
    }
}

pub fn into_http(resp: app::Response) -> http::Response<EdgeBody> {
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
