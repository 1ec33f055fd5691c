//! Pods, ReplicaSets and Deployments as the operator caches them: only what a
//! reconcile, the readiness gate and the MCP prober read. They are
//! deserialized straight from the API server's JSON, unknown fields skipped,
//! so the rest (a pod's containers, volumes and tolerations, its statuses'
//! images, IDs and resources; the pod templates) is never allocated.
//! k8s-openapi's `Pod`, `ReplicaSet` and `Deployment` are 2,176, 2,288 and
//! 2,400 bytes before their first string, and these are the largest caches:
//! two or more pods per server, a ReplicaSet per revision.
use std::borrow::Cow;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::{ContainerState, PodCondition, PodReadinessGate};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use kube::Resource;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct CachedPod {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CachedPodSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CachedPodStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodSpec {
    /// Whether the pod carries our gate (`gate::gated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_gates: Option<Vec<PodReadinessGate>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodStatus {
    /// Readiness, its transition time and the gate's own condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<PodCondition>>,
    /// Restarts, waiting reasons and messages (`remediate::pod_obs`,
    /// `references::from_pods`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_statuses: Option<Vec<CachedContainerStatus>>,
    /// Why a pod never started (`remediate::start_state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_statuses: Option<Vec<CachedContainerStatus>>,
    /// Where the MCP prober connects (`podIP`, not camel case).
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedContainerStatus {
    #[serde(default)]
    pub restart_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<ContainerState>,
}

/// A ReplicaSet: its labels (the template hash), annotations (the revision)
/// and available replicas. A rollback reads the template with a GET
/// (`observe::rollback_template`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct CachedReplicaSet {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CachedReplicaSetStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedReplicaSetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
}

/// A Deployment: its metadata (our hash annotation and Apply entry: drift),
/// its replicas (the HPA hand-over) and its status. Not the pod template.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct CachedDeployment {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CachedDeploymentSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct CachedDeploymentSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

/// The Deployment an apply returned, as the cache would hold it.
impl From<Deployment> for CachedDeployment {
    fn from(d: Deployment) -> Self {
        Self {
            metadata: d.metadata,
            spec: d.spec.map(|s| CachedDeploymentSpec {
                replicas: s.replicas,
            }),
            status: d.status,
        }
    }
}

/// `kube::Resource` for a cached shape of a built-in kind: the same API path
/// as k8s-openapi's type, so `Api<Cached…>` lists and watches the same objects.
macro_rules! resource_as {
    ($cached:ty, $full:ty) => {
        impl Resource for $cached {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                <$full as k8s_openapi::Resource>::KIND.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                <$full as k8s_openapi::Resource>::GROUP.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                <$full as k8s_openapi::Resource>::VERSION.into()
            }
            fn api_version(_: &()) -> Cow<'_, str> {
                <$full as k8s_openapi::Resource>::API_VERSION.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                <$full as k8s_openapi::Resource>::URL_PATH_SEGMENT.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
resource_as!(CachedPod, k8s_openapi::api::core::v1::Pod);
resource_as!(CachedReplicaSet, k8s_openapi::api::apps::v1::ReplicaSet);
resource_as!(CachedDeployment, Deployment);

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    /// A kubelet-written pod reads the same through `CachedPod` as through
    /// k8s-openapi's `Pod`, for every field the operator reads.
    #[test]
    fn reads_what_a_full_pod_says() {
        let raw = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "notes-1", "namespace": "team-a", "uid": "u1",
                "labels": {"app": "notes", "pod-template-hash": "abc"},
                "creationTimestamp": "2026-12-01T10:00:00Z",
                "deletionTimestamp": "2026-12-01T10:05:00Z",
                "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}]},
            "spec": {"containers": [{"name": "mcp", "image": "x:1", "resources": {"limits": {"cpu": "1"}}}],
                "readinessGates": [{"conditionType": "mcp.operator.dev/healthy"}],
                "tolerations": [{"key": "k", "operator": "Exists"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}], "hostIP": "10.0.0.1",
                "conditions": [{"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-12-01T10:01:00Z"},
                               {"type": "mcp.operator.dev/healthy", "status": "False", "reason": "Wedged"}],
                "initContainerStatuses": [{"name": "init", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                    "state": {"terminated": {"exitCode": 0}}}],
                "containerStatuses": [{"name": "mcp", "ready": true, "restartCount": 2, "image": "x:1", "imageID": "sha",
                    "containerID": "containerd://c", "started": true,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}
        });
        let full: Pod = serde_json::from_value(raw.clone()).expect("pod");
        let cached: CachedPod = serde_json::from_value(raw).expect("cached pod");
        assert_eq!(cached.metadata, full.metadata);
        let (fs, cs) = (full.status.expect("status"), cached.status.expect("status"));
        assert_eq!(cs.conditions, fs.conditions);
        assert_eq!(cs.pod_ip, fs.pod_ip);
        let pairs =
            |c: Option<Vec<CachedContainerStatus>>,
             f: Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
                let (c, f) = (c.expect("cached"), f.expect("full"));
                assert_eq!(c.len(), f.len());
                for (c, f) in c.iter().zip(&f) {
                    assert_eq!(
                        (c.restart_count, &c.state, &c.last_state),
                        (f.restart_count, &f.state, &f.last_state)
                    );
                }
            };
        pairs(cs.container_statuses, fs.container_statuses);
        pairs(cs.init_container_statuses, fs.init_container_statuses);
        assert_eq!(
            cached.spec.and_then(|s| s.readiness_gates),
            full.spec.and_then(|s| s.readiness_gates)
        );
        assert!(std::mem::size_of::<CachedPod>() * 3 < std::mem::size_of::<Pod>());
    }

    /// `Api<Cached…>` must address the same objects as the full types.
    #[test]
    fn same_api_paths_as_the_full_types() {
        fn path<K: Resource<DynamicType = ()>>() -> [String; 5] {
            [
                K::kind(&()),
                K::group(&()),
                K::version(&()),
                K::api_version(&()),
                K::plural(&()),
            ]
            .map(|c| c.into_owned())
        }
        assert_eq!(path::<CachedPod>(), path::<Pod>());
        assert_eq!(path::<CachedReplicaSet>(), path::<ReplicaSet>());
        assert_eq!(path::<CachedDeployment>(), path::<Deployment>());
        assert_eq!(path::<CachedPod>()[4], "pods");
        assert_eq!(path::<CachedReplicaSet>()[3], "apps/v1");
    }

    /// Read from JSON or converted from what an apply returned: the same.
    #[test]
    fn a_deployment_keeps_replicas_and_status_read_or_converted() {
        let raw = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "notes", "namespace": "n", "generation": 4,
                         "annotations": {"mcp.operator.dev/applied-hash": "h"}},
            "spec": {"replicas": 3, "selector": {}, "template": {"spec": {"containers": [{"name": "mcp", "image": "x"}]}}},
            "status": {"observedGeneration": 4, "replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                       "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        });
        let full: Deployment = serde_json::from_value(raw.clone()).expect("deployment");
        let read: CachedDeployment = serde_json::from_value(raw).expect("cached deployment");
        assert_eq!(read, CachedDeployment::from(full.clone()));
        assert_eq!(read.spec.and_then(|s| s.replicas), Some(3));
        assert_eq!(read.status, full.status);
        assert!(std::mem::size_of::<CachedDeployment>() * 2 < std::mem::size_of::<Deployment>());
    }

    #[test]
    fn a_replica_set_keeps_its_revision_hash_and_availability() {
        let rs: CachedReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "notes-abc", "labels": {"pod-template-hash": "abc"},
                         "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 2, "selector": {}, "template": {"spec": {"containers": [{"name": "mcp", "image": "x"}]}}},
            "status": {"replicas": 2, "availableReplicas": 1, "readyReplicas": 1}
        }))
        .expect("replicaset");
        assert_eq!(rs.status.and_then(|s| s.available_replicas), Some(1));
        assert_eq!(
            rs.metadata
                .labels
                .and_then(|l| l.get("pod-template-hash").cloned())
                .as_deref(),
            Some("abc")
        );
        assert!(std::mem::size_of::<CachedReplicaSet>() * 3 < std::mem::size_of::<ReplicaSet>());
    }
}
