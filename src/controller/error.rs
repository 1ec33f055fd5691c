//! Reconcile errors, by the step that failed. Spec problems are not errors: they
//! become conditions (see `decide` and `report`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("observe: {0}")]
    Observe(#[source] kube::Error),
    #[error("apply {kind}: {source}")]
    Apply {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("status write: {0}")]
    Status(#[source] kube::Error),
    #[error("serialization: {0}")]
    Serde(#[from] serde_json::Error),
    #[error("object has no namespace")]
    NoNamespace,
    #[error("caches not synced yet")]
    CachesNotReady,
}

impl Error {
    pub fn apply(kind: &'static str, source: kube::Error) -> Self {
        Error::Apply { kind, source }
    }

    fn api(&self) -> Option<&kube::Error> {
        match self {
            Error::Observe(e) | Error::Apply { source: e, .. } | Error::Status(e) => Some(e),
            _ => None,
        }
    }

    /// Every value `metric_label` can return (the series exist at 0 from the start).
    pub const METRIC_LABELS: [&'static str; 9] = [
        "conflict",
        "throttled",
        "forbidden",
        "observe",
        "apply",
        "status",
        "serde",
        "no_namespace",
        "caches_not_ready",
    ];

    /// A write refused because the object changed since it was read (409).
    pub fn is_conflict(&self) -> bool {
        matches!(self.api(), Some(kube::Error::Api(s)) if s.code == 409)
    }

    /// The `reconcile_errors` label: the step, or what the API server said.
    pub fn metric_label(&self) -> &'static str {
        if self.is_conflict() {
            return "conflict";
        }
        match (self, self.api()) {
            (_, Some(kube::Error::Api(s))) if s.code == 429 => "throttled",
            (_, Some(kube::Error::Api(s))) if s.code == 403 => "forbidden",
            (Error::Observe(_), _) => "observe",
            (Error::Apply { .. }, _) => "apply",
            (Error::Status(_), _) => "status",
            (Error::Serde(_), _) => "serde",
            (Error::NoNamespace, _) => "no_namespace",
            (Error::CachesNotReady, _) => "caches_not_ready",
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Observe(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("x", "Reason")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn every_label_is_preset() {
        let errors = [
            Error::Status(api(409)),
            Error::apply("Service", api(429)),
            Error::Observe(api(403)),
            Error::Observe(api(500)),
            Error::apply("Service", api(500)),
            Error::Status(api(500)),
            Error::Serde(serde_json::from_str::<u8>("x").expect_err("not a number")),
            Error::NoNamespace,
            Error::CachesNotReady,
        ];
        for e in &errors {
            assert!(Error::METRIC_LABELS.contains(&e.metric_label()), "{e}");
        }
        let all: std::collections::BTreeSet<_> = errors.iter().map(Error::metric_label).collect();
        assert_eq!(all.len(), Error::METRIC_LABELS.len());
    }

    #[test]
    fn labels_by_step_and_code() {
        assert_eq!(Error::Status(api(409)).metric_label(), "conflict");
        assert_eq!(
            Error::apply("Service", api(429)).metric_label(),
            "throttled"
        );
        assert_eq!(Error::apply("Service", api(500)).metric_label(), "apply");
        assert_eq!(Error::Observe(api(500)).metric_label(), "observe");
        assert_eq!(Error::Status(api(500)).metric_label(), "status");
        assert_eq!(Error::CachesNotReady.metric_label(), "caches_not_ready");
    }
}
