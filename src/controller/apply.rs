//! Server-side apply of children: when to write (pure) and the write itself.
//!
//! A child is written when it is missing, when what we would apply changed (a
//! stable hash of it rides on the child as an annotation), or when it drifted:
//! another field manager took one of our fields (see `drift`). Otherwise nothing
//! is sent, so a steady state makes no mutating request at all.
//!
//! A child's name may be held by an object someone else made: then nothing is
//! written to it (`held_by_another`), since a forced apply would take it over.
use super::drift;
use super::error::Result;
use crate::status::compute::ChildRejected;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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

/// Is the object with `meta` a child of the McpServer with `uid`: does its
/// controller owner reference point at that McpServer? Our label is no proof
/// (anyone can set it), nor is a reference that is not the controller one.
pub fn controlled_by(meta: &ObjectMeta, uid: Option<&str>) -> bool {
    uid.is_some_and(|uid| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true) && r.uid == uid)
    })
}

/// Pure: the conflict when the name of child `kind` `ns/name` is held by an
/// object (`meta`) that is not the child of the McpServer with `uid`. A forced
/// apply would rewrite it and add our owner reference (so it would also be
/// deleted with the McpServer): it is reported instead, and left alone.
pub fn held_by_another(
    kind: &'static str,
    ns: &str,
    name: &str,
    meta: &ObjectMeta,
    uid: Option<&str>,
) -> Option<ChildRejected> {
    if controlled_by(meta, uid) {
        return None;
    }
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    let whose = match controller {
        Some(r) if r.kind == "McpServer" && r.name == name => {
            format!("it belongs to an earlier McpServer {name} (uid {}), and goes when the garbage collector deletes it", r.uid)
        }
        Some(r) => format!("it is controlled by {} {}", r.kind, r.name),
        None => "it has no controller owner reference".to_string(),
    };
    Some(ChildRejected::name_conflict(
        kind,
        format!(
            "{kind} {ns}/{name} exists and was not created for this McpServer ({whose}): the operator writes nothing to it; \
             rename the McpServer, or delete or rename that {kind} if nothing uses it"
        ),
    ))
}

/// Forced server-side apply as the operator. Only over an object that is
/// ours or absent (`held_by_another`).
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

    fn holder(owners: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(
            json!({"name": "web", "namespace": "team-a", "ownerReferences": owners}),
        )
        .expect("meta")
    }

    #[test]
    fn only_our_controller_reference_makes_a_child_ours() {
        let ours = json!([{"apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
            "name": "web", "uid": "u1", "controller": true}]);
        assert!(controlled_by(&holder(ours.clone()), Some("u1")));
        assert_eq!(
            held_by_another(
                "Service",
                "team-a",
                "web",
                &holder(ours.clone()),
                Some("u1")
            ),
            None
        );
        // No uid known: nothing is ours.
        assert!(!controlled_by(&holder(ours), None));
        let cases = [
            // Another team's Service: no owner at all.
            (json!(null), "it has no controller owner reference"),
            // Our uid, but not as the controller (someone added it by hand).
            (
                json!([{"apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
                    "name": "web", "uid": "u1"}]),
                "it has no controller owner reference",
            ),
            (
                json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "other",
                    "uid": "d9", "controller": true}]),
                "it is controlled by Deployment other",
            ),
            // The child of an earlier McpServer of the same name, not yet collected.
            (
                json!([{"apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
                    "name": "web", "uid": "u0", "controller": true}]),
                "an earlier McpServer web (uid u0)",
            ),
        ];
        for (owners, why) in cases {
            let c = held_by_another(
                "Service",
                "team-a",
                "web",
                &holder(owners.clone()),
                Some("u1"),
            )
            .unwrap_or_else(|| panic!("{owners} taken over"));
            assert_eq!(c.reason(), "NameConflict");
            assert!(
                c.message.starts_with("Service team-a/web exists"),
                "{}",
                c.message
            );
            assert!(c.message.contains(why), "{why}: {}", c.message);
            assert!(c.message.contains("rename the McpServer"), "{}", c.message);
        }
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
