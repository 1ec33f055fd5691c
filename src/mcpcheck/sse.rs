//! The 2024-11-05 HTTP+SSE transport: `GET <path>` opens an event stream whose
//! first `endpoint` event names the URL to POST JSON-RPC messages to; the
//! answers come back on the stream as `message` events.
use futures::StreamExt;
use serde_json::{json, Value};
use sse_stream::{Sse, SseStream};

use super::{from_reqwest, known_version, Facts, Failure, FailureKind, Outcome, Step, Target};

/// The revision that defined this transport.
const VERSION: &str = "2024-11-05";

pub(super) async fn check(http: &reqwest::Client, t: &Target, step: &Step) -> Outcome {
    step.set("the SSE stream");
    let resp = http
        .get(&t.url)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| from_reqwest(&e, "GET of the SSE stream"))?;
    let base = resp.url().clone();
    let mut events = SseStream::from_bytes_stream(resp.bytes_stream());

    step.set("the endpoint event");
    let endpoint = loop {
        let ev = next_event(&mut events, "the endpoint event").await?;
        if ev.event.as_deref() == Some("endpoint") {
            let data = ev.data.unwrap_or_default();
            break base.join(data.trim()).map_err(|e| {
                Failure::new(
                    FailureKind::Protocol,
                    format!("endpoint event {data:?} is not a URL: {e}"),
                )
            })?;
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
    let result = answer(&mut events, 1, "initialize").await?;
    let mut facts = Facts {
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

    let (method, what) = if t.list_tools {
        ("tools/list", "tools/list")
    } else {
        ("ping", "ping")
    };
    step.set(what);
    post(
        http,
        &endpoint,
        &json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": {}}),
        what,
    )
    .await?;
    let result = answer(&mut events, 2, what).await?;
    if t.list_tools {
        let n = result
            .get("tools")
            .and_then(Value::as_array)
            .map(Vec::len)
            .ok_or_else(|| Failure::new(FailureKind::Protocol, "tools/list: no tools array"))?;
        facts.tools = Some(u32::try_from(n).unwrap_or(u32::MAX));
    }
    Ok(facts)
}

async fn post(
    http: &reqwest::Client,
    endpoint: &reqwest::Url,
    body: &Value,
    step: &str,
) -> Result<(), Failure> {
    http.post(endpoint.clone())
        .json(body)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map(drop)
        .map_err(|e| from_reqwest(&e, step))
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
async fn answer<S>(events: &mut S, id: u64, step: &str) -> Result<Value, Failure>
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
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("{step}: JSON-RPC error {err}"),
            ));
        }
        return msg
            .get("result")
            .cloned()
            .ok_or_else(|| Failure::new(FailureKind::Protocol, format!("{step}: no result")));
    }
}

fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}
