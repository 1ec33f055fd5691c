//! The 2024-11-05 HTTP+SSE transport: `GET <path>` opens an event stream whose
//! first `endpoint` event names the URL to POST JSON-RPC messages to; the
//! answers come back on the stream as `message` events. The endpoint must be
//! on the pod's own origin, and the stream is read through `limits`.
use futures::StreamExt;
use serde_json::{json, Value};
use sse_stream::{Sse, SseStream};

use super::limits::{capped_events, Budget};
use super::{
    from_reqwest, from_status, known_version, name, retry_after, Era, Facts, Failure, FailureKind,
    Outcome, Step, Target,
};

/// The revision that defined this transport.
const VERSION: &str = "2024-11-05";

/// JSON-RPC "Method not found".
const METHOD_NOT_FOUND: i64 = -32601;

pub(super) async fn check(
    http: &reqwest::Client,
    t: &Target,
    step: &Step,
    budget: &Budget,
) -> Outcome {
    step.set("the SSE stream");
    let base = reqwest::Url::parse(&t.url).map_err(|e| {
        Failure::new(
            FailureKind::Protocol,
            format!("{} is not a URL: {e}", t.url),
        )
    })?;
    let resp = http
        .get(base.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| from_reqwest(&e, "GET of the SSE stream"))?;
    if !resp.status().is_success() {
        return Err(from_status(
            resp.status(),
            retry_after(resp.headers()),
            "GET of the SSE stream",
        ));
    }
    let mut events =
        SseStream::from_bytes_stream(capped_events(resp.bytes_stream(), budget.clone())).boxed();

    step.set("the endpoint event");
    let endpoint = loop {
        let ev = next_event(&mut events, "the endpoint event").await?;
        if ev.event.as_deref() == Some("endpoint") {
            break endpoint(&base, ev.data.as_deref().unwrap_or_default())?;
        }
    };

    step.set("initialize");
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-operator-prober", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    post(http, &endpoint, &init, "initialize").await?;
    let result = answer(&mut events, 1, "initialize", false).await?;
    let mut facts = Facts {
        era: Era::Legacy,
        server_name: str_at(&result, "/serverInfo/name"),
        server_version: str_at(&result, "/serverInfo/version"),
        protocol_version: str_at(&result, "/protocolVersion"),
        tools: None,
    };
    match &facts.protocol_version {
        Some(v) => known_version(v)?,
        None => {
            return Err(Failure::new(
                FailureKind::Protocol,
                "initialize: the result has no protocolVersion",
            ))
        }
    }
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(http, &endpoint, &initialized, "notifications/initialized").await?;

    // tools/list only if the server advertised tools; ping is in every
    // legacy revision, but not every server implements it
    let list_tools = t.list_tools && result.pointer("/capabilities/tools").is_some();
    let method = if list_tools { "tools/list" } else { "ping" };
    step.set(method);
    post(
        http,
        &endpoint,
        &json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": {}}),
        method,
    )
    .await?;
    let result = answer(&mut events, 2, method, !list_tools).await?;
    if list_tools {
        let n = result
            .get("tools")
            .and_then(Value::as_array)
            .map(Vec::len)
            .ok_or_else(|| Failure::new(FailureKind::Protocol, "tools/list: no tools array"))?;
        facts.tools = Some(u32::try_from(n).unwrap_or(u32::MAX));
    }
    Ok(facts)
}

/// The endpoint event's URL, only on the pod's own origin (scheme, host,
/// port): a pod must not choose where the operator POSTs.
fn endpoint(base: &reqwest::Url, data: &str) -> Result<reqwest::Url, Failure> {
    let url = base.join(data.trim()).map_err(|e| {
        Failure::new(
            FailureKind::Protocol,
            format!("endpoint event {data:?} is not a URL: {e}"),
        )
    })?;
    if url.origin() != base.origin() {
        return Err(Failure::new(
            FailureKind::Protocol,
            format!("endpoint event {data:?} is not on the pod's origin; nothing was sent there"),
        ));
    }
    Ok(url)
}

/// POST one message; the answer comes on the stream, its body is not read.
async fn post(
    http: &reqwest::Client,
    endpoint: &reqwest::Url,
    body: &Value,
    step: &str,
) -> Result<(), Failure> {
    let resp = http
        .post(endpoint.clone())
        .json(body)
        .send()
        .await
        .map_err(|e| from_reqwest(&e, step))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(from_status(
            resp.status(),
            retry_after(resp.headers()),
            step,
        ))
    }
}

async fn next_event<S>(events: &mut S, step: &str) -> Result<Sse, Failure>
where
    S: futures::Stream<Item = Result<Sse, sse_stream::Error>> + Unpin,
{
    match events.next().await {
        Some(Ok(ev)) => Ok(ev),
        Some(Err(e)) => Err(Failure::new(
            FailureKind::Protocol,
            format!("waiting for {step}: the SSE stream broke: {e}"),
        )),
        None => Err(Failure::new(
            FailureKind::Protocol,
            format!("waiting for {step}: the server closed the SSE stream"),
        )),
    }
}

/// The `result` of the response with `id`; other messages are skipped.
/// `unadvertised`: the method is not among the server's capabilities.
async fn answer<S>(
    events: &mut S,
    id: u64,
    step: &str,
    unadvertised: bool,
) -> Result<Value, Failure>
where
    S: futures::Stream<Item = Result<Sse, sse_stream::Error>> + Unpin,
{
    loop {
        let ev = next_event(events, step).await?;
        if !matches!(ev.event.as_deref(), None | Some("message")) {
            continue;
        }
        let Some(data) = ev.data else { continue };
        let msg: Value = serde_json::from_str(&data).map_err(|e| {
            Failure::new(
                FailureKind::Protocol,
                format!("{step}: a message that is not JSON: {e}"),
            )
        })?;
        if msg.get("id").and_then(Value::as_u64) != Some(id) {
            continue;
        }
        if let Some(err) = msg.get("error") {
            let code = err.get("code").and_then(Value::as_i64);
            let kind = if unadvertised && code == Some(METHOD_NOT_FOUND) {
                FailureKind::UnadvertisedMethod
            } else {
                FailureKind::Protocol
            };
            return Err(Failure::new(kind, format!("{step}: JSON-RPC error {err}")));
        }
        return msg
            .get("result")
            .cloned()
            .ok_or_else(|| Failure::new(FailureKind::Protocol, format!("{step}: no result")));
    }
}

fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(name)
}
