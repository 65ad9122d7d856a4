//! Why a reconciliation failed. Every variant is retried by the error policy; `kind` labels the error metric.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("sweep {0} has no namespace (SeedSweeps are namespaced)")]
    MissingNamespace(String),
    #[error(
        "status.engine of sweep {sweep} cannot be read ({message}); delete and recreate the sweep"
    )]
    CorruptState { sweep: String, message: String },
    #[error("serializing the status: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// Every value of [`Error::kind`], so the error counter starts at zero for each.
    pub const KINDS: [&'static str; 5] = [
        "api",
        "client",
        "missing_namespace",
        "corrupt_state",
        "serialize",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "client",
            Error::MissingNamespace(_) => "missing_namespace",
            Error::CorruptState { .. } => "corrupt_state",
            Error::Serialize(_) => "serialize",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
