//! Reconcile errors. Spec problems are not errors: they become conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialization: {0}")]
    Serde(#[from] serde_json::Error),
    #[error("object has no namespace")]
    NoNamespace,
}

impl Error {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 429 => "throttled",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::Serde(_) => "serde",
            Error::NoNamespace => "no_namespace",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
