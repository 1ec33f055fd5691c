//! Server-side apply that writes only when the desired object changed.
//!
//! Each child carries a hash of what we last applied; a reconcile that computes the
//! same desired object makes no write at all (the API server's own defaulting would
//! make a field-by-field diff noisy).
use super::error::Result;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

pub const FIELD_MANAGER: &str = "mcp-operator";
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

pub fn desired_hash<K: Serialize>(obj: &K) -> Result<String> {
    Ok(fnv1a(&serde_json::to_vec(obj)?))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    Written,
}

/// Apply `desired` unless `existing` already carries its hash.
pub async fn apply_if_changed<K>(
    api: &Api<K>,
    name: &str,
    existing: Option<&K>,
    mut desired: K,
) -> Result<(Applied, K)>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let hash = desired_hash(&desired)?;
    if let Some(cur) = existing {
        let same = cur
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(HASH_ANNOTATION))
            .is_some_and(|h| *h == hash);
        if same {
            return Ok((Applied::Unchanged, cur.clone()));
        }
    }
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(HASH_ANNOTATION.into(), hash);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let obj = api.patch(name, &params, &Patch::Apply(&desired)).await?;
    Ok((Applied::Written, obj))
}

/// Delete a child that should no longer exist; absent is fine.
pub async fn delete_if_present<K>(api: &Api<K>, name: &str, existing: Option<&K>) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if existing.is_none() {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), "cbf29ce484222325");
        assert_eq!(fnv1a(b"a"), "af63dc4c8601ec8c");
        assert_ne!(fnv1a(b"ab"), fnv1a(b"ba"));
    }
}
