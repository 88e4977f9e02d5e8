//! Kubernetes pod names from the node's container runtime, over its CRI gRPC socket
//! (runtime.v1, through the k8s-cri client): ListPodSandbox for the ready sandboxes, then a
//! verbose PodSandboxStatus for each, whose info JSON holds the netns path. That path's inode
//! is the key netprobe attributes everything by, so the join with kernel events is exact.
//! Self-contained, so that pod naming (pods.rs) and `doctor` can call it.

use std::{
    collections::BTreeMap,
    future::Future,
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    runtime_service_client::RuntimeServiceClient, ListPodSandboxRequest, NamespaceMode,
    PodSandboxFilter, PodSandboxState, PodSandboxStateValue, PodSandboxStatusRequest,
    VersionRequest,
};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where containerd, k3s's containerd and CRI-O listen, in the order `--cri-socket` tries them.
pub const DEFAULT_SOCKETS: [&str; 3] = [
    "/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
];

/// A refresh must not stall netprobe: every connect and call gives up after this.
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// The default `--cri-socket`: the first of [`DEFAULT_SOCKETS`] that exists.
pub fn default_socket() -> Option<PathBuf> {
    DEFAULT_SOCKETS.iter().map(PathBuf::from).find(|p| p.exists())
}

/// A ready pod sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriPod {
    pub sandbox_id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The pod's own labels, without the io.kubernetes.* ones the kubelet adds.
    pub labels: BTreeMap<String, String>,
    /// The netns bind mount (/var/run/netns/cni-<uuid> under containerd), which setns can
    /// open. None for a hostNetwork pod (its traffic is the node's) or a closed netns.
    pub netns_path: Option<PathBuf>,
    /// The inode of `netns_path`: the key netprobe counts by. None as for the path, and
    /// when the path cannot be read here.
    pub netns_inode: Option<u64>,
    /// Empty for a hostNetwork pod.
    pub ip: String,
}

/// What the runtime says it is, e.g. containerd 1.6.20~ds1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("no container runtime socket at {0}")]
    NoSocket(PathBuf),
    #[error("{0}: connection refused: the container runtime is not running")]
    Refused(PathBuf),
    #[error("{0}: the container runtime closed the connection: it stopped or restarted")]
    Lost(PathBuf),
    #[error("{socket}: {what}: no answer within {}s", TIMEOUT.as_secs())]
    Timeout { socket: PathBuf, what: &'static str },
    #[error("{socket}: {what}: {message}")]
    Failed { socket: PathBuf, what: &'static str, message: String },
}

/// A connection to the runtime, kept between refreshes.
pub struct Client {
    socket: PathBuf,
    inner: RuntimeServiceClient<Channel>,
}

impl Client {
    pub async fn connect(socket: &Path) -> Result<Self, CriError> {
        if !socket.exists() {
            return Err(CriError::NoSocket(socket.to_owned()));
        }
        let path = socket.to_owned();
        let endpoint = Endpoint::from_static("http://[::]");
        let connect = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }));
        let channel = bounded(socket, "connect", connect).await?;
        Ok(Self { socket: socket.to_owned(), inner: RuntimeServiceClient::new(channel) })
    }

    pub async fn version(&mut self) -> Result<RuntimeInfo, CriError> {
        let request = VersionRequest { version: String::new() };
        let v = bounded(&self.socket, "Version", self.inner.version(request)).await?.into_inner();
        Ok(RuntimeInfo { name: v.runtime_name, version: v.runtime_version })
    }

    /// Every ready sandbox, with its netns inode.
    pub async fn pods(&mut self) -> Result<Vec<CriPod>, CriError> {
        let ready = PodSandboxStateValue { state: PodSandboxState::SandboxReady as i32 };
        let request = ListPodSandboxRequest {
            filter: Some(PodSandboxFilter { state: Some(ready), ..Default::default() }),
        };
        let list = bounded(&self.socket, "ListPodSandbox", self.inner.list_pod_sandbox(request))
            .await?
            .into_inner();
        let mut pods = Vec::with_capacity(list.items.len());
        for sandbox in list.items {
            let request = PodSandboxStatusRequest { pod_sandbox_id: sandbox.id, verbose: true };
            let inner = &mut self.inner;
            let call = async move {
                match inner.pod_sandbox_status(request).await {
                    // Removed since the list: not a pod any more.
                    Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                    r => r.map(|r| Some(r.into_inner())),
                }
            };
            let Some(resp) = bounded(&self.socket, "PodSandboxStatus", call).await? else {
                continue;
            };
            let Some(status) = resp.status else { continue };
            let meta = status.metadata.unwrap_or_default();
            let host_network = status
                .linux
                .and_then(|l| l.namespaces?.options)
                .is_some_and(|o| o.network == NamespaceMode::Node as i32);
            let netns = match resp.info.get("info") {
                Some(info) if !host_network => netns_path(info).map(|p| here(&p)),
                _ => None,
            };
            pods.push(CriPod {
                sandbox_id: status.id,
                name: meta.name,
                namespace: meta.namespace,
                uid: meta.uid,
                labels: status
                    .labels
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("io.kubernetes."))
                    .collect(),
                // The namespace may be gone by now (pod deleted): then it names nothing.
                netns_inode: netns
                    .as_ref()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| m.ino()),
                netns_path: netns,
                ip: status.network.map(|n| n.ip).unwrap_or_default(),
            });
        }
        Ok(pods)
    }
}

/// The runtime's path as seen from here: in a container, /run/netns is mounted from the host
/// but /var/run may not be the host's symlink to /run.
fn here(path: &Path) -> PathBuf {
    match path.strip_prefix("/var/run") {
        Ok(rest) if !path.exists() => Path::new("/run").join(rest),
        _ => path.to_path_buf(),
    }
}

/// Connects, then asks for the runtime's version and its pods: what `doctor` shows.
pub async fn snapshot(socket: &Path) -> Result<(RuntimeInfo, Vec<CriPod>), CriError> {
    let mut client = Client::connect(socket).await?;
    let runtime = client.version().await?;
    Ok((runtime, client.pods().await?))
}

/// The netns path in containerd's verbose sandbox info: the network entry of
/// runtimeSpec.linux.namespaces. None when there is none (hostNetwork) and once the sandbox
/// is stopped (`netNamespaceClosed`: the spec then still shows the stale path).
fn netns_path(info: &str) -> Option<PathBuf> {
    let info: serde_json::Value = serde_json::from_str(info).ok()?;
    if info["netNamespaceClosed"].as_bool() == Some(true) {
        return None;
    }
    let namespaces = info["runtimeSpec"]["linux"]["namespaces"].as_array()?;
    let network = namespaces.iter().find(|ns| ns["type"] == "network")?;
    network["path"].as_str().filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// Runs a connect or call under [`TIMEOUT`], naming what failed and how. (A call on a
/// channel whose connection dropped reconnects inside it, so this bounds that too.)
async fn bounded<T, E>(
    socket: &Path,
    what: &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, CriError>
where
    E: std::error::Error + 'static,
{
    let timeout = || CriError::Timeout { socket: socket.to_owned(), what };
    match tokio::time::timeout(TIMEOUT, call).await {
        Err(_) => Err(timeout()),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(match io_kind(&e) {
            Some(io::ErrorKind::ConnectionRefused) => CriError::Refused(socket.to_owned()),
            Some(io::ErrorKind::NotFound) => CriError::NoSocket(socket.to_owned()),
            _ if lost(&e) => CriError::Lost(socket.to_owned()),
            _ => CriError::Failed { socket: socket.to_owned(), what, message: chain(&e) },
        }),
    }
}

/// The I/O error under a transport or status error, if there is one.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<io::ErrorKind> {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// A call that the transport gave up on (the peer hung up), not one the runtime refused.
fn lost(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<tonic::Status>().is_some_and(|s| {
        matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Cancelled)
            && std::error::Error::source(s).is_some_and(|t| t.is::<tonic::transport::Error>())
    })
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed copies of the verbose PodSandboxStatus info["info"] that containerd 1.6.20
    // (Debian 12) returned for the test harness's pods: kept are the keys netprobe reads plus
    // their neighbours (config, annotations, cniResult); the process, mounts and the rest of
    // the runtime spec were cut.
    const POD: &str = include_str!("../testdata/cri-verbose-pod.json");
    const HOST_NETWORK: &str = include_str!("../testdata/cri-verbose-host-network.json");
    const STOPPED: &str = include_str!("../testdata/cri-verbose-stopped.json");

    #[test]
    fn netns_of_a_pod() {
        let path = netns_path(POD).expect("a netns path");
        assert_eq!(path, Path::new("/var/run/netns/cni-835a71eb-99dd-3eba-4b12-7d3509161924"));
    }

    #[test]
    fn host_network_pod_has_no_netns() {
        assert_eq!(netns_path(HOST_NETWORK), None);
    }

    #[test]
    fn stopped_pod_has_no_netns_though_the_spec_still_names_it() {
        assert!(STOPPED.contains("/var/run/netns/cni-835a71eb"));
        assert_eq!(netns_path(STOPPED), None);
    }

    #[test]
    fn malformed_info_names_nothing() {
        assert_eq!(netns_path("not json"), None);
        assert_eq!(netns_path(r#"{"runtimeSpec":{"linux":{}}}"#), None);
        assert_eq!(
            netns_path(r#"{"runtimeSpec":{"linux":{"namespaces":[{"type":"network"}]}}}"#),
            None
        );
    }

    #[tokio::test]
    async fn missing_socket_is_said_so() {
        let err = snapshot(Path::new("/nonexistent/cri.sock")).await.unwrap_err();
        assert!(matches!(err, CriError::NoSocket(_)), "{err}");
        assert_eq!(err.to_string(), "no container runtime socket at /nonexistent/cri.sock");
    }

    #[tokio::test]
    async fn refused_socket_is_said_so() {
        // A socket file whose listener is gone, as a crashed runtime leaves it.
        let dir = std::env::temp_dir().join(format!("netprobe-cri-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cri.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let err = snapshot(&path).await.unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(err, CriError::Refused(_)), "{err}");
    }

    #[tokio::test]
    async fn silent_runtime_times_out() {
        // Accepts but never answers: a hung runtime.
        let dir = std::env::temp_dir().join(format!("netprobe-cri-hang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cri.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let start = std::time::Instant::now();
        let err = snapshot(&path).await.unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(err, CriError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_millis(2500), "{:?}", start.elapsed());
    }
}
