//! A tiny in-memory Kubernetes API server behind a kube `Client` (the tower-test
//! pattern kube-rs uses): it stores applied objects, answers gets and lists, and
//! records every request so tests can count writes. Only for pure request-sequence
//! tests; the real API server tests live in `real_apiserver.rs`.
#![allow(dead_code)]

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
}

#[derive(Default)]
pub struct State {
    /// Objects by their item path, e.g. /apis/apps/v1/namespaces/ns/deployments/name
    pub objects: BTreeMap<String, Value>,
    pub requests: Vec<Recorded>,
    rv: u64,
}

#[derive(Clone, Default)]
pub struct FakeApi(pub Arc<Mutex<State>>);

impl FakeApi {
    pub fn client(&self) -> Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let resp = me.handle(req).await;
                send.send_response(resp);
            }
        });
        Client::new(svc, "default")
    }

    pub fn insert(&self, path: &str, obj: Value) {
        if let Ok(mut s) = self.0.lock() {
            s.objects.insert(path.to_string(), obj);
        }
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.0
            .lock()
            .ok()
            .and_then(|s| s.objects.get(path).cloned())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.0
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    pub fn clear_requests(&self) {
        if let Ok(mut s) = self.0.lock() {
            s.requests.clear();
        }
    }

    /// Writes to anything but Events (which the recorder sends as it likes).
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != Method::GET && !r.path.contains("/events"))
            .collect()
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let merge = req
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/merge-patch+json"));
        let body = req
            .into_body()
            .collect_bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let mut s = match self.0.lock() {
            Ok(s) => s,
            Err(_) => return respond(StatusCode::INTERNAL_SERVER_ERROR, json!({})),
        };
        s.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
        });
        let item_path = path
            .trim_end_matches("/status")
            .trim_end_matches("/eviction")
            .to_string();
        match method {
            Method::GET => {
                if let Some(o) = s.objects.get(&path) {
                    return respond(StatusCode::OK, o.clone());
                }
                // A list: every stored object directly under this collection path.
                let prefix = format!("{path}/");
                let is_list = path.ends_with('s') && !s.objects.contains_key(&path);
                let items: Vec<Value> = s
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .collect();
                if is_list
                    && (query.contains("labelSelector")
                        || !items.is_empty()
                        || collection_like(&path))
                {
                    return respond(
                        StatusCode::OK,
                        json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}),
                    );
                }
                not_found(&path)
            }
            Method::PATCH => {
                let patch: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                // A resourceVersion in the patch is a precondition, as on a real server.
                if let (Some(want), Some(have)) = (
                    patch["metadata"]["resourceVersion"].as_str(),
                    s.objects
                        .get(&item_path)
                        .and_then(|o| o["metadata"]["resourceVersion"].as_str()),
                ) {
                    if want != have {
                        return respond(
                            StatusCode::CONFLICT,
                            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
                                   "message": format!("the object has been modified (have {have}, want {want})")}),
                        );
                    }
                }
                let manager = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("fieldManager="))
                    .map(str::to_string);
                s.rv += 1;
                let rv = s.rv.to_string();
                let entry = s
                    .objects
                    .entry(item_path.clone())
                    .or_insert_with(|| json!({}));
                if path.ends_with("/status") && merge {
                    // RFC 7386, as a real server merges it.
                    json_patch::merge(&mut entry["status"], &patch["status"]);
                } else if path.ends_with("/status") {
                    entry["status"] = patch["status"].clone();
                } else {
                    let status = entry.get("status").cloned();
                    let mut next = patch.clone();
                    if let Some(st) = status {
                        next["status"] = st;
                    }
                    // What a real server records for an apply: the applier owns what it sent.
                    if let Some(m) = manager {
                        next["metadata"]["managedFields"] = json!([{"manager": m, "operation": "Apply",
                            "fieldsType": "FieldsV1", "fieldsV1": field_set(&patch)}]);
                    }
                    *entry = next;
                }
                entry["metadata"]["resourceVersion"] = json!(rv);
                respond(StatusCode::OK, entry.clone())
            }
            Method::POST => {
                if path.ends_with("/eviction") {
                    s.objects.remove(&item_path);
                    return respond(
                        StatusCode::CREATED,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    );
                }
                let obj: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                respond(StatusCode::CREATED, obj)
            }
            Method::DELETE => match s.objects.remove(&path) {
                Some(o) => respond(StatusCode::OK, o),
                None => not_found(&path),
            },
            _ => respond(StatusCode::METHOD_NOT_ALLOWED, json!({})),
        }
    }
}

/// A fieldsV1 set for `v`, every list atomic (enough for ownership checks).
fn field_set(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (format!("f:{k}"), field_set(v)))
                .collect(),
        ),
        _ => json!({}),
    }
}

fn collection_like(path: &str) -> bool {
    ["/pods", "/replicasets", "/endpointslices"]
        .iter()
        .any(|c| path.ends_with(c))
}

fn respond(code: StatusCode, v: Value) -> Response<Body> {
    let bytes = serde_json::to_vec(&v).unwrap_or_default();
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| Response::new(Body::from(Vec::new())))
}

fn not_found(path: &str) -> Response<Body> {
    respond(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
    )
}
