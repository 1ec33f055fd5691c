//! Drift: has anyone else taken a field we apply?
//!
//! Server-side apply records, per field manager, the set of fields it owns
//! (`metadata.managedFields[].fieldsV1`). When another actor changes one of our
//! fields — `kubectl scale` (through `/scale`), `kubectl set env`, an edit, a
//! forced apply — the API server moves that field's ownership to them. So a
//! child has drifted exactly when our Apply entry no longer covers every field of
//! what we apply. This needs no memory (it survives operator restarts), works for
//! objects without a meaningful `metadata.generation` (Services, HPAs) and is
//! immune to the API server's value normalisation (quantities, defaults), which a
//! value-by-value comparison would mistake for drift.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::Value;
use std::borrow::Cow;

/// Our manager's Apply entry on the main resource (not a subresource), parsed
/// if the cache [`pack`]ed it; None also when packed text does not parse (the
/// caller then sees drift and applies again).
pub fn applied_fields<'a>(
    entries: &'a [ManagedFieldsEntry],
    manager: &str,
) -> Option<Cow<'a, Value>> {
    let f = entries
        .iter()
        .find(|e| {
            e.manager.as_deref() == Some(manager)
                && e.operation.as_deref() == Some("Apply")
                && e.subresource.as_deref().unwrap_or("").is_empty()
        })
        .and_then(|e| e.fields_v1.as_ref())?;
    match &f.0 {
        Value::String(text) => serde_json::from_str(text).ok().map(Cow::Owned),
        v => Some(Cow::Borrowed(v)),
    }
}

/// Keep a field set as its JSON text: parsed, a Deployment's is a tree of
/// mostly one-entry maps (each map node has room for 11), ~29 KB per cached
/// Deployment in a heaptrack profile at N = 300; the text is parsed again only
/// when a reconcile compares it.
pub fn pack(f: &mut FieldsV1) {
    if !f.0.is_string() {
        f.0 = Value::String(f.0.to_string());
    }
}

/// Does the field set `fields` (fieldsV1) cover every field set in `desired`?
/// `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` identify the
/// object and are never in a field set. Empty objects and lists are skipped: the
/// API server may drop them.
pub fn covers(desired: &Value, fields: &Value) -> bool {
    let Some(obj) = desired.as_object() else {
        return true;
    };
    let mut top = obj.clone();
    top.remove("apiVersion");
    top.remove("kind");
    top.remove("status");
    if let Some(Value::Object(meta)) = top.get_mut("metadata") {
        meta.remove("name");
        meta.remove("namespace");
    }
    covers_value(&Value::Object(top), fields)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn covers_value(desired: &Value, fields: &Value) -> bool {
    let Some(set) = fields.as_object() else {
        return false;
    };
    // A leaf, or an atomic struct, map or list: owned as a whole.
    if set.is_empty() {
        return true;
    }
    match desired {
        Value::Object(m) => m.iter().filter(|(_, v)| !is_empty(v)).all(|(k, v)| {
            set.get(&format!("f:{k}"))
                .is_some_and(|sub| covers_value(v, sub))
        }),
        Value::Array(items) => items.iter().all(|item| covers_item(item, set)),
        _ => true,
    }
}

/// A list element: `k:{...}` for an associative list (matched on its keys), `v:<json>`
/// for a set of scalars.
fn covers_item(item: &Value, set: &serde_json::Map<String, Value>) -> bool {
    match item {
        Value::Object(fields) => set.iter().any(|(k, sub)| {
            let Some(key) = k
                .strip_prefix("k:")
                .and_then(|j| serde_json::from_str::<serde_json::Map<String, Value>>(j).ok())
            else {
                return false;
            };
            // A key field the server defaulted (a port's protocol) is absent from ours.
            key.iter()
                .all(|(kk, kv)| fields.get(kk).is_none_or(|v| v == kv))
                && key.keys().any(|kk| fields.contains_key(kk))
                && covers_value(item, sub)
        }),
        scalar => set.contains_key(&format!("v:{scalar}")),
    }
}

/// Is `path` (e.g. `["spec", "replicas"]`) in the field set?
pub fn owns(fields: &Value, path: &[&str]) -> bool {
    let mut cur = fields;
    for p in path {
        match cur.get(format!("f:{p}")) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "notes", "namespace": "a", "labels": {"app": "x"},
                         "ownerReferences": [{"uid": "u1", "name": "notes", "kind": "McpServer", "apiVersion": "v1"}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
                     "template": {"spec": {"containers": [{"name": "mcp", "image": "i",
                        "env": [{"name": "POOL_MAX_SIZE", "value": "10"}],
                        "ports": [{"name": "mcp", "containerPort": 8080}]}]}}}
        })
    }

    /// The field set the API server records for `deployment()`.
    fn fields() -> Value {
        json!({
            "f:metadata": {"f:labels": {"f:app": {}},
                           "f:ownerReferences": {"k:{\"uid\":\"u1\"}": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {},
                       "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"mcp\"}": {
                           ".": {}, "f:name": {}, "f:image": {},
                           "f:env": {"k:{\"name\":\"POOL_MAX_SIZE\"}": {".": {}, "f:name": {}, "f:value": {}}},
                           "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:containerPort": {}}}
                       }}}}}
        })
    }

    #[test]
    fn full_ownership_is_no_drift() {
        assert!(covers(&deployment(), &fields()));
    }

    #[test]
    fn a_field_taken_by_another_manager_is_drift() {
        // kubectl scale: spec.replicas moved to kubectl.
        let mut f = fields();
        if let Some(m) = f["f:spec"].as_object_mut() {
            m.remove("f:replicas");
        }
        assert!(!covers(&deployment(), &f));
        // kubectl set env POOL_MAX_SIZE=500: the value moved, the element stays.
        let mut f = fields();
        let env = &mut f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"mcp\"}"]
            ["f:env"]["k:{\"name\":\"POOL_MAX_SIZE\"}"];
        if let Some(m) = env.as_object_mut() {
            m.remove("f:value");
        }
        assert!(!covers(&deployment(), &f));
    }

    #[test]
    fn fields_of_others_and_server_defaults_are_not_drift() {
        let mut f = fields();
        f["f:spec"]["f:paused"] = json!({});
        assert!(covers(&deployment(), &f), "extra owned fields are fine");
        let mut d = deployment();
        d["spec"]["template"]["metadata"] = json!({});
        assert!(covers(&d, &fields()), "empty objects are skipped");
    }

    #[test]
    fn a_list_element_we_set_that_is_gone_is_drift() {
        let mut d = deployment();
        if let Some(a) = d["spec"]["template"]["spec"]["containers"][0]["env"].as_array_mut() {
            a.push(json!({"name": "EXTRA", "value": "1"}));
        }
        assert!(!covers(&d, &fields()));
    }

    #[test]
    fn set_lists_and_ownership_paths() {
        let d = json!({"spec": {"finalizers": ["a", "b"]}});
        let f = json!({"f:spec": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}});
        assert!(covers(&d, &f));
        let f = json!({"f:spec": {"f:finalizers": {"v:\"a\"": {}}}});
        assert!(!covers(&d, &f));
        assert!(owns(&fields(), &["spec", "replicas"]));
        assert!(!owns(&fields(), &["spec", "paused"]));
    }
}
