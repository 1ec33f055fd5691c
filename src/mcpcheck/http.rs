//! rmcp's streamable HTTP client backend, over the prober's reqwest client:
//! rmcp's own backend for reqwest reads up to 16 MiB per body and has no
//! total per check; this one reads every body and event through `limits`,
//! sends only POSTs (no GET stream: the prober needs no server-initiated
//! messages) and hands HTTP failures back with their status, so the check
//! can tell "authentication required" and "come back later" from "broken".
use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use http::{HeaderName, HeaderValue, StatusCode};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorData, JsonRpcMessage, ServerJsonRpcMessage,
};
use rmcp::transport::common::http_header::{
    EVENT_STREAM_MIME_TYPE, HEADER_SESSION_ID, JSON_MIME_TYPE,
};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::{Sse, SseStream};

use super::limits::{capped_events, read_body, Budget, ReadError};

/// Why a POST failed, as the check classifies it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeHttpError {
    #[error("HTTP {status}")]
    Status {
        status: StatusCode,
        retry_after: Option<String>,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
}

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<ProbeHttpError>>;

/// One check's client: the shared reqwest client (no redirects) and the
/// check's byte budget.
#[derive(Clone, Debug)]
pub(crate) struct ProbeClient {
    pub(crate) http: reqwest::Client,
    pub(crate) budget: Budget,
}

fn read_err(e: impl Into<ReadError>) -> StreamableHttpError<ProbeHttpError> {
    StreamableHttpError::Client(ProbeHttpError::Read(e.into()))
}

/// `application/json; charset=utf-8` is JSON.
fn media_type_is(content_type: Option<&str>, want: &str) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(want))
}

/// The server's JSON-RPC error in `body`, if that is what it is.
fn json_rpc_error(body: &[u8]) -> Option<ErrorData> {
    match serde_json::from_slice::<ServerJsonRpcMessage>(body) {
        Ok(JsonRpcMessage::Error(e)) => Some(e.error),
        _ => None,
    }
}

impl ProbeClient {
    async fn post(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> PostResult {
        let mut req = self.http.post(uri.as_ref()).header(
            reqwest::header::ACCEPT,
            format!("{JSON_MIME_TYPE}, {EVENT_STREAM_MIME_TYPE}"),
        );
        for (k, v) in custom_headers {
            req = req.header(k, v);
        }
        if let Some(s) = &session_id {
            req = req.header(HEADER_SESSION_ID, s.as_ref());
        }
        let resp = req.json(&message).send().await.map_err(read_err)?;
        let status = resp.status();
        if matches!(status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == StatusCode::NOT_FOUND && session_id.is_some() {
            return Err(StreamableHttpError::SessionExpired);
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_json = media_type_is(content_type.as_deref(), JSON_MIME_TYPE);
        if !status.is_success() {
            return self
                .refused(resp, &message, session_id.is_some(), is_json)
                .await;
        }
        let new_session = resp
            .headers()
            .get(HEADER_SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let awaits_no_response = !matches!(message, JsonRpcMessage::Request(_));
        if media_type_is(content_type.as_deref(), EVENT_STREAM_MIME_TYPE) {
            let events = SseStream::from_bytes_stream(capped_events(
                resp.bytes_stream(),
                self.budget.clone(),
            ));
            return Ok(StreamableHttpPostResponse::Sse(events.boxed(), new_session));
        }
        if is_json {
            let body = read_body(resp, &self.budget).await.map_err(read_err)?;
            return match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
                Ok(m) => Ok(StreamableHttpPostResponse::Json(m, new_session)),
                Err(_) if awaits_no_response => Ok(StreamableHttpPostResponse::Accepted),
                Err(e) => Err(StreamableHttpError::UnexpectedServerResponse(
                    format!("a body that is not JSON-RPC: {e}").into(),
                )),
            };
        }
        if awaits_no_response {
            // some servers answer a notification with 200 and no body
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        Err(StreamableHttpError::UnexpectedContentType(content_type))
    }

    /// A non-success answer. A legacy server refuses `server/discover` with
    /// a 4xx (no session, unknown method): that becomes the JSON-RPC error
    /// rmcp needs to fall back to `initialize`, the server's own when it sent
    /// one (as rmcp's reqwest backend does). A JSON-RPC error on another 4xx
    /// stays one (some servers answer "Method not found" with 400 or 404).
    /// Everything else is the status, the body unread.
    async fn refused(
        &self,
        resp: reqwest::Response,
        message: &ClientJsonRpcMessage,
        in_session: bool,
        is_json: bool,
    ) -> PostResult {
        let status = resp.status();
        let retry_after = super::retry_after(resp.headers()).map(str::to_owned);
        let plain_4xx = status.is_client_error()
            && !matches!(
                status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
            );
        let JsonRpcMessage::Request(request) = message else {
            return Err(StreamableHttpError::Client(ProbeHttpError::Status {
                status,
                retry_after,
            }));
        };
        if plain_4xx {
            let server_error = if is_json {
                json_rpc_error(&read_body(resp, &self.budget).await.map_err(read_err)?)
            } else {
                None
            };
            let discover = matches!(request.request, ClientRequest::DiscoverRequest(_));
            let error = match server_error {
                Some(e) => Some(e),
                None if discover && !in_session => Some(ErrorData::invalid_request(
                    format!("server/discover refused with HTTP {status}"),
                    None,
                )),
                None => None,
            };
            if let Some(error) = error {
                // re-correlated: middleware that refuses cannot echo the id
                return Ok(StreamableHttpPostResponse::Json(
                    ServerJsonRpcMessage::error(error, Some(request.id.clone())),
                    None,
                ));
            }
        }
        Err(StreamableHttpError::Client(ProbeHttpError::Status {
            status,
            retry_after,
        }))
    }
}

impl StreamableHttpClient for ProbeClient {
    type Error = ProbeHttpError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> PostResult {
        self.post(uri, message, session_id, custom_headers).await
    }

    /// Closes a legacy session (the server would otherwise keep it until
    /// its idle timeout); the answer is not read.
    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        let mut req = self
            .http
            .delete(uri.as_ref())
            .header(HEADER_SESSION_ID, session_id.as_ref());
        for (k, v) in custom_headers {
            req = req.header(k, v);
        }
        req.send().await.map(drop).map_err(read_err)
    }

    /// No GET stream: rmcp then goes on without one, as with a server that
    /// answers the GET with 405.
    async fn get_stream(
        &self,
        _uri: Arc<str>,
        _session_id: Option<Arc<str>>,
        _last_event_id: Option<String>,
        _auth_header: Option<String>,
        _custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        Err(StreamableHttpError::ServerDoesNotSupportSse)
    }
}
