//! The HTTP side of a component, shared by the edge app and the API component:
//! `wasi:http/incoming-handler@0.2` (WASI 0.2, through the `wasip2` bindings). Reads a request
//! into [`RequestParts`] (and, for the API, a size-limited body) and writes an
//! [`app::Response`] back, streaming file bodies.
//!
//! Why WASI 0.2 and not 0.3: every host we target accepts `incoming-handler@0.2.*` — the newest
//! Spin release (4.0.x), SpinKube's containerd shim, Spin's main branch and wasmtime — while each
//! of them accepts a different 0.3 (release candidates or final). 0.2 is the stable release;
//! moving to 0.3 waits until the released hosts agree on it.

use crate::app::{self, Body as AppBody};
use std::io::{Read, Seek, SeekFrom};
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Bytes read from a file per write when streaming a response body.
const CHUNK: usize = 64 * 1024;

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
    pub fn new(req: &IncomingRequest) -> RequestParts {
        let headers: Vec<(String, String)> = req
            .headers()
            .entries()
            .into_iter()
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        let path_with_query = req.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = match path_with_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_with_query, None),
        };
        let host_header = headers
            .iter()
            .find(|(n, _)| n == "host")
            .map(|(_, v)| v.clone());
        RequestParts {
            method: method_name(&req.method()),
            path,
            query,
            scheme: req.scheme().map(|s| match s {
                Scheme::Http => "http".to_string(),
                Scheme::Https => "https".to_string(),
                Scheme::Other(o) => o,
            }),
            host: req.authority().filter(|a| !a.is_empty()).or(host_header),
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

    /// The first value of a header (names are lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(o) => return o.clone(),
    }
    .to_string()
}

/// Why a request body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit arrived (the rest is not read).
    TooLarge,
    /// The stream failed (the client went away, or the host refused).
    Unreadable,
}

/// Reads the whole request body, refusing it as soon as it passes `limit` bytes, so a client
/// cannot make the component hold more than `limit` (plus one read) in memory.
pub fn read_body(req: IncomingRequest, limit: usize) -> Result<Vec<u8>, BodyError> {
    let body = req.consume().map_err(|()| BodyError::Unreadable)?;
    let stream = body.stream().map_err(|()| BodyError::Unreadable)?;
    let out = read_stream(&stream, limit);
    drop(stream);
    IncomingBody::finish(body);
    out
}

fn read_stream(stream: &InputStream, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    loop {
        let room = (limit + 1).saturating_sub(out.len()).min(CHUNK) as u64;
        match stream.blocking_read(room) {
            Ok(chunk) => {
                out.extend_from_slice(&chunk);
                if out.len() > limit {
                    return Err(BodyError::TooLarge);
                }
            }
            Err(StreamError::Closed) => return Ok(out),
            Err(StreamError::LastOperationFailed(_)) => return Err(BodyError::Unreadable),
        }
    }
}

/// Sends `resp`: status and headers first, then the body (a file is streamed in 64 KiB
/// chunks, never held whole). A client that goes away mid-body ends the write quietly.
pub fn respond(out: ResponseOutparam, resp: app::Response) {
    let body = match resp.body {
        AppBody::File { path, start, len } => match std::fs::File::open(&path)
            .and_then(|mut f| f.seek(SeekFrom::Start(start)).map(|_| f))
        {
            Ok(file) => Some(Source::File { file, len }),
            Err(e) => {
                eprintln!("secure-context edge: {path}: {e}");
                None
            }
        },
        AppBody::Bytes(b) => Some(Source::Bytes(b)),
        AppBody::Empty => None,
    };
    let entries: Vec<(String, Vec<u8>)> = resp
        .headers
        .into_iter()
        .map(|(n, v)| (n, v.into_bytes()))
        .collect();
    let headers = match Fields::from_list(&entries) {
        Ok(h) => h,
        Err(e) => {
            // A header the host refuses is a bug of ours: answer 500 rather than drop it.
            eprintln!("secure-context edge: response header refused: {e:?}");
            let r = OutgoingResponse::new(Fields::new());
            let _ = r.set_status_code(500);
            finish_empty(out, r);
            return;
        }
    };
    let response = OutgoingResponse::new(headers);
    if response.set_status_code(resp.status).is_err() {
        let _ = response.set_status_code(500);
    }
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Some(source) = body {
        let Ok(stream) = outgoing.write() else {
            return;
        };
        let sent = match source {
            Source::Bytes(b) => write_all(&stream, &b),
            Source::File { file, len } => send_file(&stream, file, len),
        };
        drop(stream);
        if sent.is_err() {
            // The client is gone; there is nobody left to tell.
            return;
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

enum Source {
    Bytes(Vec<u8>),
    File { file: std::fs::File, len: u64 },
}

fn finish_empty(out: ResponseOutparam, response: OutgoingResponse) {
    if let Ok(body) = response.body() {
        ResponseOutparam::set(out, Ok(response));
        let _ = OutgoingBody::finish(body, None);
    }
}

fn send_file(stream: &OutputStream, mut file: std::fs::File, len: u64) -> Result<(), ()> {
    let mut remaining = len;
    let mut buf = vec![0u8; CHUNK];
    while remaining > 0 {
        let n = remaining.min(CHUNK as u64) as usize;
        if let Err(e) = file.read_exact(&mut buf[..n]) {
            eprintln!("secure-context edge: reading a file mid-response: {e}");
            return Err(());
        }
        write_all(stream, &buf[..n])?;
        remaining -= n as u64;
    }
    Ok(())
}

/// Writes all of `data`, as much at a time as the host permits, then flushes.
fn write_all(stream: &OutputStream, mut data: &[u8]) -> Result<(), ()> {
    while !data.is_empty() {
        let permitted = stream.check_write().map_err(|_| ())?;
        if permitted == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = (permitted as usize).min(data.len());
        stream.write(&data[..n]).map_err(|_| ())?;
        data = &data[n..];
    }
    stream.blocking_flush().map_err(|_| ())
}
