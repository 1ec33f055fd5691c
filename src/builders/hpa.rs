//! HorizontalPodAutoscaler, only when the replica range allows scaling.
use super::child_meta;
use crate::api::McpServer;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use kube::ResourceExt;

pub fn build(mcp: &McpServer) -> Option<HorizontalPodAutoscaler> {
    let r = &mcp.spec.replicas;
    if r.max <= r.min {
        return None;
    }
    Some(HorizontalPodAutoscaler {
        metadata: child_meta(mcp),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: mcp.name_any(),
            },
            min_replicas: Some(r.min),
            max_replicas: r.max,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(r.target_cpu_utilization.unwrap_or(70)),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}
