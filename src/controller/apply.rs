//! Server-side apply of children: when to write (pure) and the write itself.
//!
//! A child is written when it is missing, when what we would apply changed (a
//! stable hash of it rides on the child as an annotation), or when it drifted:
//! another field manager took one of our fields (see `drift`). Otherwise nothing
//! is sent, so a steady state makes no mutating request at all.
use super::drift;
use super::error::Result;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

pub const FIELD_MANAGER: &str = "mcp-operator";
/// Holds `spec.replicas` for the moment ownership moves from us to the HPA
/// controller, so the field is never removed (which would default it to 1).
pub const HANDOVER_MANAGER: &str = "mcp-operator-handover";
pub const HASH_ANNOTATION: &str = "mcp.operator.dev/applied-hash";

/// FNV-1a: stable across builds and Rust versions, unlike `DefaultHasher`.
pub fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Why a child is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReason {
    Missing,
    Changed,
    /// Another field manager took a field we apply.
    Drifted,
    /// We own `spec.replicas` but an HPA should: release it (after a handover).
    ReleaseReplicas,
}

impl WriteReason {
    pub fn as_label(self) -> &'static str {
        match self {
            WriteReason::Missing => "missing",
            WriteReason::Changed => "changed",
            WriteReason::Drifted => "drifted",
            WriteReason::ReleaseReplicas => "release_replicas",
        }
    }
}

/// `desired` with the hash of its content in the hash annotation.
pub fn stamped<K: Resource + Serialize>(mut desired: K) -> Result<(K, String)> {
    let hash = fnv1a(&serde_json::to_vec(&desired)?);
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(HASH_ANNOTATION.into(), hash.clone());
    Ok((desired, hash))
}

/// Pure: must `stamped` (carrying `hash`) be applied over `live`?
pub fn write_needed<L: Resource, K: Resource + Serialize>(
    live: Option<&L>,
    stamped: &K,
    hash: &str,
) -> Result<Option<WriteReason>> {
    let Some(live) = live else {
        return Ok(Some(WriteReason::Missing));
    };
    let meta = live.meta();
    let same_hash = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(HASH_ANNOTATION))
        .is_some_and(|h| h == hash);
    if !same_hash {
        return Ok(Some(WriteReason::Changed));
    }
    // An object without managed fields (stripped by someone) gives no ownership to
    // compare: trust the hash.
    let entries = meta.managed_fields.as_deref().unwrap_or_default();
    if entries.is_empty() {
        return Ok(None);
    }
    let ours = drift::applied_fields(entries, FIELD_MANAGER);
    let desired = serde_json::to_value(stamped)?;
    Ok(match ours {
        Some(fields) if drift::covers(&desired, &fields) => None,
        _ => Some(WriteReason::Drifted),
    })
}

/// Does our Apply entry on `live` own `path`?
pub fn owns<K: Resource>(live: &K, path: &[&str]) -> bool {
    let entries = live.meta().managed_fields.as_deref().unwrap_or_default();
    drift::applied_fields(entries, FIELD_MANAGER).is_some_and(|f| drift::owns(&f, path))
}

/// Forced server-side apply as the operator.
pub async fn apply<K>(api: &Api<K>, name: &str, obj: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(obj)).await
}

/// Delete a child that should no longer exist; absent is fine.
pub async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), "cbf29ce484222325");
        assert_eq!(fnv1a(b"a"), "af63dc4c8601ec8c");
        assert_ne!(fnv1a(b"ab"), fnv1a(b"ba"));
    }

    fn svc(selector: &str) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "n"},
            "spec": {"selector": {"app": selector}}}))
        .expect("service")
    }

    #[test]
    fn write_needed_by_hash_and_ownership() {
        let (desired, hash) = stamped(svc("a")).expect("stamp");
        assert_eq!(
            write_needed(None::<&Service>, &desired, &hash).expect("ok"),
            Some(WriteReason::Missing)
        );
        let mut live = desired.clone();
        // No managed fields at all: the hash decides.
        assert_eq!(
            write_needed(Some(&live), &desired, &hash).expect("ok"),
            None
        );
        let (other, other_hash) = stamped(svc("b")).expect("stamp");
        assert_eq!(
            write_needed(Some(&live), &other, &other_hash).expect("ok"),
            Some(WriteReason::Changed)
        );
        let entry = |manager: &str, fields: serde_json::Value| {
            serde_json::from_value(json!({"manager": manager, "operation": "Apply",
                "fieldsType": "FieldsV1", "fieldsV1": fields}))
            .expect("entry")
        };
        let ours = json!({"f:metadata": {"f:annotations": {"f:mcp.operator.dev/applied-hash": {}}},
                          "f:spec": {"f:selector": {}}});
        live.metadata.managed_fields = Some(vec![entry(FIELD_MANAGER, ours)]);
        assert_eq!(
            write_needed(Some(&live), &desired, &hash).expect("ok"),
            None
        );
        assert!(owns(&live, &["spec", "selector"]));
        // The cache's packed form (its JSON text) answers the same.
        for e in live.metadata.managed_fields.iter_mut().flatten() {
            if let Some(f) = e.fields_v1.as_mut() {
                drift::pack(f);
            }
        }
        assert_eq!(
            write_needed(Some(&live), &desired, &hash).expect("ok"),
            None
        );
        assert!(owns(&live, &["spec", "selector"]));
        // kubectl edit took the selector.
        let lost =
            json!({"f:metadata": {"f:annotations": {"f:mcp.operator.dev/applied-hash": {}}}});
        live.metadata.managed_fields = Some(vec![
            entry(FIELD_MANAGER, lost),
            entry("kubectl-edit", json!({"f:spec": {"f:selector": {}}})),
        ]);
        assert_eq!(
            write_needed(Some(&live), &desired, &hash).expect("ok"),
            Some(WriteReason::Drifted)
        );
        assert!(!owns(&live, &["spec", "selector"]));
    }
}
