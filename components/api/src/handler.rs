//! The component's export (`wasi:http/incoming-handler@0.2`, see `edge_core::http_glue`):
//! dispatch, limits, and the edge app's header policy on every response. Never logs input data.

use crate::engine;
use crate::error::ApiError;
use crate::protocol::{self, Form, MAX_BODY};
use crate::routes::{self, Route, MODELS_ROOT};
use edge_core::app::{self, Body};
use edge_core::config::Config;
use edge_core::http_glue::{request_head, respond, BodyReader};
use edge_core::policy::Kind;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: Option<&'static str>,
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply {
            status: e.status,
            content_type: "application/json; charset=utf-8",
            body: e.json(),
            allow: None,
        }
    }
}

fn json_reply(v: &serde_json::Value) -> Reply {
    Reply {
        status: 200,
        content_type: "application/json; charset=utf-8",
        body: v.to_string().into_bytes(),
        allow: None,
    }
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut r = Reply::from(ApiError::new(
        405,
        "method-not-allowed",
        format!("this resource allows {allow}"),
    ));
    r.allow = Some(allow);
    r
}

fn manifest() -> Result<Vec<u8>, ApiError> {
    std::fs::read(format!("{MODELS_ROOT}/manifest.json")).map_err(|e| {
        eprintln!("api: {MODELS_ROOT}/manifest.json: {e}");
        ApiError::new(
            503,
            "model-unavailable",
            "the model manifest cannot be read",
        )
    })
}

fn reply(parts: &app::Request, config: &Config, req: IncomingRequest) -> Result<Reply, ApiError> {
    if !config.api {
        return Err(ApiError::new(
            403,
            "api-disabled",
            "the server-side inference API is off, so that no input data reaches this server; \
             the operator enables it with SC_API=on (spin.toml [component.api.environment], \
             or `SC_API=on scripts/up`)",
        ));
    }
    if app::https_redirect(parts, config).is_some() {
        return Err(ApiError::new(
            403,
            "https-required",
            "the API takes requests over HTTPS only (SC_REQUIRE_HTTPS=true)",
        ));
    }
    let read_only = matches!(*parts.method(), Method::GET | Method::HEAD);
    match routes::route(parts.uri().path()) {
        Route::NotFound => Err(ApiError::new(404, "not-found", "no such API resource")),
        Route::Models if read_only => {
            let m: serde_json::Value = serde_json::from_slice(&manifest()?)
                .map_err(|_| ApiError::new(500, "manifest", "the model manifest is invalid"))?;
            Ok(json_reply(&m))
        }
        Route::Model(name) if read_only => {
            let m = engine::model(routes::find(&manifest()?, name)?)?;
            Ok(json_reply(&engine::describe_json(&m)))
        }
        Route::Models | Route::Model(_) => Ok(method_not_allowed("GET, HEAD")),
        Route::Infer(_) if parts.method() != Method::POST => Ok(method_not_allowed("POST")),
        Route::Infer(name) => {
            let header = |n: &str| parts.headers().get(n).and_then(|v| v.to_str().ok());
            let form = Form::of(header("content-type"))?;
            let too_large = || {
                ApiError::new(
                    413,
                    "payload-too-large",
                    format!("request bodies are limited to {MAX_BODY} bytes"),
                )
            };
            if header("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|n| n > MAX_BODY as u64)
            {
                return Err(too_large());
            }
            let entry = routes::find(&manifest()?, name)?;
            // Parsed as it arrives: a tensor body is never held whole (see protocol.rs).
            let reader = BodyReader::new(req, MAX_BODY)
                .map_err(|_| ApiError::bad("body", "the request body could not be read"))?;
            let mut body = std::io::BufReader::with_capacity(64 * 1024, reader);
            if entry.tokenizer.is_some() && form == Form::Json {
                // A text model takes {"text": "..."} (or tensors of token ids): the body is
                // read whole, within MAX_BODY, and parsed into typed fields, never a JSON tree.
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut body, &mut bytes).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::FileTooLarge {
                        too_large()
                    } else {
                        ApiError::bad("body", "the request body could not be read")
                    }
                })?;
                if let Some(text) = protocol::parse_text(form, &bytes)? {
                    let model = engine::model(entry)?;
                    let (outputs, windows) = engine::infer_text(&model, &text)?;
                    let body = protocol::encode_text_outputs(
                        name,
                        &model.info.sha256,
                        &outputs,
                        &windows,
                    )?;
                    return Ok(Reply {
                        status: 200,
                        content_type: Form::Json.content_type(),
                        body,
                        allow: None,
                    });
                }
                let inputs = protocol::parse_inputs(form, &bytes)?;
                let model = engine::model(entry)?;
                let outputs = engine::infer(&model, inputs)?;
                let body = protocol::encode_outputs(form, name, &model.info.sha256, &outputs)?;
                return Ok(Reply {
                    status: 200,
                    content_type: form.content_type(),
                    body,
                    allow: None,
                });
            }
            let inputs = protocol::parse_inputs_from(form, &mut body)?;
            let model = engine::model(entry)?;
            let outputs = engine::infer(&model, inputs)?;
            let body = protocol::encode_outputs(form, name, &model.info.sha256, &outputs)?;
            Ok(Reply {
                status: 200,
                content_type: form.content_type(),
                body,
                allow: None,
            })
        }
    }
}

struct Api;

impl wasip2::exports::http::incoming_handler::Guest for Api {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        respond(out, handle(req));
    }
}

wasip2::http::proxy::export!(Api with_types_in wasip2);

fn handle(req: IncomingRequest) -> app::Response {
    let config = Config::from_lookup(|k| std::env::var(k).ok());
    let parts = match request_head(&req) {
        Ok(parts) => parts,
        Err(e) => {
            // A request the http types cannot hold (never from a conforming host): a JSON 400
            // like every other error of the API.
            eprintln!("api: unreadable request: {e}");
            let err = ApiError::new(400, "bad-request", "the request could not be read");
            let config = config.unwrap_or_else(|_| app::strict_config());
            return send(Reply::from(err), false, &config);
        }
    };
    let (r, config) = match config {
        Ok(c) => (reply(&parts, &c, req).unwrap_or_else(Reply::from), c),
        Err(e) => {
            eprintln!("api: configuration error: {e}");
            let err = ApiError::new(500, "configuration", format!("configuration error: {e}"));
            (Reply::from(err), app::strict_config())
        }
    };
    if r.status >= 400 {
        // Method, path and status only: never the body.
        let path: String = parts.uri().path().chars().take(200).collect();
        eprintln!("api: {} {path} -> {}", parts.method(), r.status);
    }
    send(r, parts.method() == Method::HEAD, &config)
}

/// The response for `r` (no body for HEAD), under the header policy.
fn send(r: Reply, head: bool, config: &Config) -> app::Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(a) = r.allow {
        headers.insert(ALLOW, HeaderValue::from_static(a));
    }
    if head {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(r.body.len()));
    }
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if head {
        Body::Empty
    } else {
        Body::Bytes(r.body)
    };
    app::finish(app::response(status, headers, body), Kind::Resource, config)
}
