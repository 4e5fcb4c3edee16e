//! The HTTP side of a component, shared by the edge app and the API component:
//! `wasi:http/incoming-handler@0.2` (WASI 0.2, through the `wasip2` bindings). Reads a request
//! into an [`http::Request`] head (and, for the API, a size-limited body) and writes an
//! [`app::Response`] (an [`http::Response`]) back, streaming file bodies.
//!
//! Why WASI 0.2 and not 0.3: every host we target accepts `incoming-handler@0.2.*` — the newest
//! Spin release (4.0.x), SpinKube's containerd shim, Spin's main branch and wasmtime — while each
//! of them accepts a different 0.3 (release candidates or final). 0.2 is the stable release;
//! moving to 0.3 waits until the released hosts agree on it.

use crate::app::{self, Body as AppBody};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::io::{Read, Seek, SeekFrom};
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Bytes read from a file per write when streaming a response body.
const CHUNK: usize = 64 * 1024;

/// The head of an incoming request as an [`http::Request`]: method, target (scheme and
/// authority when the host gave them: `scheme://authority/path?query`, else origin-form with
/// the authority as the Host header) and headers. The body stays with `req` ([`read_body`],
/// [`BodyReader`]). A request that the `http` types cannot hold (a method that is not a token,
/// a target that is not a URI) is an error: the caller answers 400.
pub fn request_head(req: &IncomingRequest) -> Result<app::Request, http::Error> {
    let mut headers = HeaderMap::new();
    for (n, v) in req.headers().entries() {
        // The host already checked names and values; one the http types refuse is dropped.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(&v),
        ) {
            headers.append(n, v);
        }
    }
    let method = match req.method() {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        Method::Other(o) => http::Method::from_bytes(o.as_bytes())?,
    };
    let path_and_query = req.path_with_query().unwrap_or_else(|| "/".to_string());
    let authority = req.authority().filter(|a| !a.is_empty());
    let scheme = req.scheme().map(|s| match s {
        Scheme::Http => "http".to_string(),
        Scheme::Https => "https".to_string(),
        Scheme::Other(o) => o,
    });
    let absolute = match (&scheme, &authority) {
        (Some(s), Some(a)) => http::Uri::builder()
            .scheme(s.as_str())
            .authority(a.as_str())
            .path_and_query(path_and_query.as_str())
            .build()
            .ok(),
        _ => None,
    };
    let uri = match absolute {
        Some(uri) => uri,
        None => {
            if let Some(v) = authority.and_then(|a| HeaderValue::try_from(a).ok()) {
                headers.insert(http::header::HOST, v);
            }
            http::Uri::try_from(path_and_query)?
        }
    };
    let mut r = http::Request::builder().method(method).uri(uri).body(())?;
    *r.headers_mut() = headers;
    Ok(r)
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

/// The request body as a [`std::io::Read`] (wrap it in a `BufReader`), for parsing while it
/// arrives: nothing is kept but what the parser keeps. Past `limit` bytes a read fails with
/// [`std::io::ErrorKind::FileTooLarge`]; a failed stream with `Other`.
pub struct BodyReader {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    pending: Vec<u8>,
    pos: usize,
    read: usize,
    limit: usize,
}

impl BodyReader {
    pub fn new(req: IncomingRequest, limit: usize) -> Result<BodyReader, BodyError> {
        let body = req.consume().map_err(|()| BodyError::Unreadable)?;
        let stream = body.stream().map_err(|()| BodyError::Unreadable)?;
        Ok(BodyReader {
            stream: Some(stream),
            body: Some(body),
            pending: Vec::new(),
            pos: 0,
            read: 0,
            limit,
        })
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos == self.pending.len() {
            let Some(stream) = &self.stream else {
                return Ok(0);
            };
            match stream.blocking_read(CHUNK as u64) {
                Ok(chunk) => {
                    self.read += chunk.len();
                    if self.read > self.limit {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::FileTooLarge,
                            format!("the body is over {} bytes", self.limit),
                        ));
                    }
                    self.pending = chunk;
                    self.pos = 0;
                }
                Err(StreamError::Closed) => return Ok(0),
                Err(StreamError::LastOperationFailed(_)) => {
                    return Err(std::io::Error::other("the request body could not be read"))
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        // The stream is a child of the body: it goes first.
        drop(self.stream.take());
        if let Some(body) = self.body.take() {
            IncomingBody::finish(body);
        }
    }
}

/// Sends `resp`: status and headers first, then the body (a file is streamed in 64 KiB
/// chunks, never held whole). A client that goes away mid-body ends the write quietly.
pub fn respond(out: ResponseOutparam, resp: app::Response) {
    let (head, body) = resp.into_parts();
    let body = match body {
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
    let entries: Vec<(String, Vec<u8>)> = head
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
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
    if response.set_status_code(head.status.as_u16()).is_err() {
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
    // No bigger than the file: a fresh instance's memory is untouched, and every page a
    // buffer touches is a page fault of its own.
    let mut buf = vec![0u8; len.min(CHUNK as u64) as usize];
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
