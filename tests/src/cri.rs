//! A real containerd (Debian's, with its CRI plugin, runc, and the CNI bridge and host-local
//! plugins) that runs with its own config, root, state and socket under /run/netprobe-cri,
//! and pods made through CRI RunPodSandbox, as the kubelet makes them. Everything it creates
//! is removed when the `Cri` is dropped (panics included), by the next start if a run was
//! killed, and by `cargo xtask lab down`.

mod cleanup;
pub mod image;

use std::{
    collections::BTreeMap,
    fs::{self, File},
    net::IpAddr,
    os::fd::{AsRawFd, RawFd},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    runtime_service_client::RuntimeServiceClient, Capability, ContainerConfig, ContainerMetadata,
    CreateContainerRequest, ImageSpec, Int64Value, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    ListPodSandboxRequest, Mount, MountPropagation, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
};
use tokio::{net::UnixStream, runtime::Runtime};
use tonic::transport::{Channel, Endpoint, Uri};

pub use cleanup::{all as cleanup, daemons, leftovers};

pub const DIR: &str = "/run/netprobe-cri";
/// containerd's gRPC socket, CRI included.
pub const SOCKET: &str = "/run/netprobe-cri/containerd.sock";
/// The CNI bridge and subnet; apart from the lab's np-br0 and 10.99.0.0/24.
pub const BRIDGE: &str = "np-cni0";
pub const SUBNET: &str = "10.98.0.0/24";
/// The CNI network's name, which libcni's cache files start with.
const NETWORK: &str = "netprobe-cri";
/// Marks a containerd started by `cargo xtask lab pod add`, which outlives the command.
const PERSISTENT: &str = "/run/netprobe-cri/persistent";
/// All our pods' cgroups live under this parent.
const CGROUP_PARENT: &str = "/netprobe-cri";

/// A container as the kubelet would start it from a pod spec.
#[derive(Debug, Clone, Default)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    /// Added to an empty set (`drop: [ALL]`), without the `CAP_` prefix, as Kubernetes writes them.
    pub add_capabilities: Vec<String>,
    pub readonly_rootfs: bool,
    pub host_pid: bool,
    pub mounts: Vec<HostMount>,
}

/// A hostPath volume mount.
#[derive(Debug, Clone)]
pub struct HostMount {
    pub host: String,
    pub container: String,
    pub readonly: bool,
    /// `mountPropagation: HostToContainer`.
    pub host_to_container: bool,
}

/// A pod sandbox as CRI reports it.
#[derive(Debug, Clone)]
pub struct Pod {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// /var/run/netns/cni-<uuid>; None for a hostNetwork pod.
    pub netns: Option<PathBuf>,
    pub ip: Option<IpAddr>,
    /// The pause process.
    pub pid: u32,
}

impl Pod {
    /// `program` inside the pod's network namespace; for a hostNetwork pod, the node's.
    pub fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(netns) => {
                let mut cmd = Command::new("nsenter");
                cmd.arg(format!("--net={}", netns.display())).arg("--").arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }
}

/// A running containerd of the harness.
pub struct Cri {
    rt: Runtime,
    daemon: Option<Child>,
    /// Left running on drop (`cargo xtask lab pod add`).
    keep: bool,
    /// The lab lock: containerd never runs beside a lab or another privileged test.
    _lock: Option<File>,
    /// From building the pause image to containerd answering with it imported (the lock
    /// wait and leftover cleanup excluded).
    startup: Duration,
}

impl Cri {
    /// Starts containerd and imports the pause image. Waits for any lab or other harness on
    /// this machine to finish first, then removes what a killed run left.
    pub fn start() -> Result<Self> {
        let lock = crate::lab::lock()?;
        cleanup::all()?;
        Self::launch(lock, false)
    }

    /// The containerd that `cargo xtask lab pod add` left running, or a new one that stays
    /// running (holding the lab lock) until `cargo xtask lab down`.
    pub fn start_or_attach() -> Result<Self> {
        if let Ok(cri) = Self::attach() {
            return Ok(cri);
        }
        let lock = crate::lab::lock()?;
        cleanup::all()?;
        let mut cri = Self::launch(lock, true)?;
        fs::write(PERSISTENT, "")?;
        cri.keep = true;
        Ok(cri)
    }

    /// The containerd that `cargo xtask lab pod add` left running.
    pub fn attach() -> Result<Self> {
        if !Path::new(PERSISTENT).exists() || cleanup::daemons().is_empty() {
            bail!("no containerd of `cargo xtask lab pod add` is running");
        }
        Ok(Self { rt: runtime()?, daemon: None, keep: true, _lock: None, startup: Duration::ZERO })
    }

    /// Sets up and starts. A failure is cleaned up here, before the lock goes, so the
    /// cleanup never meets the next harness's state.
    fn launch(lock: File, persistent: bool) -> Result<Self> {
        let lock_fd = persistent.then(|| lock.as_raw_fd());
        match Self::try_launch(lock_fd) {
            Ok(mut cri) => {
                cri._lock = Some(lock);
                Ok(cri)
            }
            Err(e) => {
                if let Err(e) = cleanup::all() {
                    eprintln!("cri: {e:#}");
                }
                Err(e)
            }
        }
    }

    fn try_launch(lock_fd: Option<RawFd>) -> Result<Self> {
        let start = Instant::now();
        for dir in ["cni/net.d", "cni/ipam", "runc", "netns", "image"] {
            fs::create_dir_all(Path::new(DIR).join(dir))?;
        }
        fs::write(config_path(), config())?;
        fs::write(format!("{DIR}/cni/net.d/10-{NETWORK}.conflist"), conflist())?;
        let image = image::build(&Path::new(DIR).join("image"))?;
        let daemon = spawn_daemon(lock_fd)?;
        // From here on, Drop removes whatever part of the setup happened.
        let mut cri = Self {
            rt: runtime()?,
            daemon: Some(daemon),
            keep: false,
            _lock: None,
            startup: Duration::ZERO,
        };
        cri.wait_ready()?;
        image::run(
            Command::new("ctr")
                .args(["--address", SOCKET, "-n", "k8s.io", "images", "import", "--all-platforms"])
                .arg(&image),
        )
        .context("importing the pause image")?;
        cri.startup = start.elapsed();
        Ok(cri)
    }

    /// Starts containerd again after [`Cri::kill_containerd`], on the same state: it finds
    /// its sandboxes again, as after a crash or an upgrade on a node.
    pub fn restart_containerd(&mut self) -> Result<()> {
        if !cleanup::daemons().is_empty() {
            bail!("containerd is running");
        }
        self.daemon = Some(spawn_daemon(None)?);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.daemon.as_mut().and_then(|d| d.try_wait().ok().flatten()) {
                bail!("containerd exited ({status}): {}", log_tail());
            }
            // The socket accepts before the CRI plugin is initialised ("server is not
            // initialized yet"): ready is when it answers.
            let answers = self.rt.block_on(async {
                let mut client = connect(Path::new(SOCKET)).await?;
                client.list_pod_sandbox(ListPodSandboxRequest::default()).await?;
                anyhow::Ok(())
            });
            if answers.is_ok() {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("containerd not answering on {SOCKET} after 10 s: {}", log_tail());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a pod sandbox `namespace/name` with these labels (plus the io.kubernetes.pod.*
    /// ones the kubelet adds), in its own netns on the CNI bridge or in the node's.
    pub fn add(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        host_network: bool,
    ) -> Result<Pod> {
        self.add_sandbox(namespace, name, labels, host_network, false)
    }

    /// Like [`Cri::add`], with the host's PID namespace when `host_pid` (a DaemonSet's
    /// `hostPID: true`).
    pub fn add_sandbox(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        host_network: bool,
        host_pid: bool,
    ) -> Result<Pod> {
        let uid = fs::read_to_string("/proc/sys/kernel/random/uuid")?.trim().to_owned();
        let mut all: std::collections::HashMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.insert("io.kubernetes.pod.name".into(), name.into());
        all.insert("io.kubernetes.pod.namespace".into(), namespace.into());
        all.insert("io.kubernetes.pod.uid".into(), uid.clone());
        let network = if host_network { NamespaceMode::Node } else { NamespaceMode::Pod };
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid,
                namespace: namespace.into(),
                attempt: 0,
            }),
            hostname: if host_network { String::new() } else { name.into() },
            labels: all,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: CGROUP_PARENT.into(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: network as i32,
                        pid: if host_pid { NamespaceMode::Node } else { NamespaceMode::Container }
                            as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        let id = self
            .rt
            .block_on(async {
                connect(Path::new(SOCKET)).await?.run_pod_sandbox(request).await.map_err(Into::into)
            })
            .map_err(|e: anyhow::Error| e.context(format!("RunPodSandbox {namespace}/{name}")))?
            .into_inner()
            .pod_sandbox_id;
        let pod = self.status(&id)?;
        if let Some(netns) = &pod.netns {
            fs::write(
                Path::new(cleanup::NETNS_RECORDS).join(&id),
                netns.as_os_str().as_encoded_bytes(),
            )?;
        }
        Ok(pod)
    }

    /// Imports an OCI image archive (`cargo xtask image`) into the CRI plugin's namespace.
    pub fn import(&self, archive: &Path) -> Result<()> {
        image::run(
            Command::new("ctr")
                .args(["--address", SOCKET, "-n", "k8s.io", "images", "import", "--all-platforms"])
                .arg(archive),
        )
        .with_context(|| format!("importing {}", archive.display()))
    }

    /// Creates and starts a container in `pod`, as the kubelet would; returns its id. It goes
    /// with its sandbox.
    pub fn run_container(&self, pod: &Pod, c: &Container) -> Result<String> {
        let mounts = c
            .mounts
            .iter()
            .map(|m| Mount {
                container_path: m.container.clone(),
                host_path: m.host.clone(),
                readonly: m.readonly,
                propagation: if m.host_to_container {
                    MountPropagation::PropagationHostToContainer
                } else {
                    MountPropagation::PropagationPrivate
                } as i32,
                ..Default::default()
            })
            .collect();
        let pid = if c.host_pid { NamespaceMode::Node } else { NamespaceMode::Container };
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: c.name.clone(), attempt: 0 }),
            image: Some(ImageSpec { image: c.image.clone(), ..Default::default() }),
            args: c.args.clone(),
            mounts,
            log_path: format!("{}.log", c.name),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    capabilities: Some(Capability {
                        add_capabilities: c.add_capabilities.clone(),
                        drop_capabilities: vec!["ALL".into()],
                        ..Default::default()
                    }),
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Pod as i32,
                        pid: pid as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    readonly_rootfs: c.readonly_rootfs,
                    run_as_user: Some(Int64Value { value: 0 }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = self.status(&pod.id)?;
        let sandbox_config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: status.name.clone(),
                uid: status.uid.clone(),
                namespace: status.namespace.clone(),
                attempt: 0,
            }),
            log_directory: format!("{DIR}/logs/{}", pod.id),
            ..Default::default()
        };
        fs::create_dir_all(format!("{DIR}/logs/{}", pod.id))?;
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let id = self
            .rt
            .block_on(async {
                let mut client = connect(Path::new(SOCKET)).await?;
                let id = client.create_container(request).await?.into_inner().container_id;
                client.start_container(StartContainerRequest { container_id: id.clone() }).await?;
                anyhow::Ok(id)
            })
            .with_context(|| {
                format!("running container {} in {}/{}", c.name, pod.namespace, pod.name)
            })?;
        Ok(id)
    }

    /// What a container of `pod` wrote (its CRI log), for failures.
    pub fn container_log(&self, pod: &Pod, name: &str) -> String {
        fs::read_to_string(format!("{DIR}/logs/{}/{name}.log", pod.id)).unwrap_or_default()
    }

    /// The pod as CRI's verbose PodSandboxStatus describes it.
    pub fn status(&self, id: &str) -> Result<Pod> {
        let request = PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true };
        let resp = self
            .rt
            .block_on(async {
                connect(Path::new(SOCKET))
                    .await?
                    .pod_sandbox_status(request)
                    .await
                    .map_err(Into::into)
            })
            .map_err(|e: anyhow::Error| e.context(format!("PodSandboxStatus {id}")))?
            .into_inner();
        let status = resp.status.context("no status")?;
        let meta = status.metadata.context("no metadata")?;
        let info: serde_json::Value =
            serde_json::from_str(resp.info.get("info").context("no verbose info")?)?;
        let netns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|ns| ns["type"] == "network")
            .and_then(|ns| ns["path"].as_str())
            .map(PathBuf::from);
        let ip = status.network.map(|n| n.ip).filter(|ip| !ip.is_empty());
        Ok(Pod {
            id: status.id,
            namespace: meta.namespace,
            name: meta.name,
            uid: meta.uid,
            labels: status.labels.into_iter().collect(),
            netns,
            ip: ip.map(|ip| ip.parse()).transpose().context("pod IP")?,
            pid: info["pid"].as_u64().context("no pause pid in the verbose info")? as u32,
        })
    }

    /// Stops and removes the sandbox of `namespace/name`, as the kubelet does on deletion.
    pub fn remove(&self, namespace: &str, name: &str) -> Result<()> {
        self.rt.block_on(async {
            let mut client = connect(Path::new(SOCKET)).await?;
            let list =
                client.list_pod_sandbox(ListPodSandboxRequest { filter: None }).await?.into_inner();
            let ids: Vec<String> = list
                .items
                .into_iter()
                .filter(|s| {
                    s.metadata.as_ref().is_some_and(|m| m.namespace == namespace && m.name == name)
                })
                .map(|s| s.id)
                .collect();
            if ids.is_empty() {
                bail!("no pod {namespace}/{name}");
            }
            for id in ids {
                stop_and_remove(&mut client, &id).await?;
            }
            Ok(())
        })
    }

    /// Kills containerd (not its shims), as a crash would.
    pub fn kill_containerd(&mut self) -> Result<()> {
        for pid in cleanup::daemons() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(mut daemon) = self.daemon.take() {
            daemon.wait()?;
        }
        Ok(())
    }

    /// How long the pause build, containerd's start and the image import took.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    pub fn socket(&self) -> &'static Path {
        Path::new(SOCKET)
    }
}

impl Cri {
    /// Removes everything now; fails with what could not be removed. The check runs before
    /// the lab lock is released, so the next harness's state is not counted.
    pub fn stop(mut self) -> Result<()> {
        self.keep = true; // nothing more for Drop to do
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<()> {
        let result = cleanup::all();
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        result
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = self.shut_down() {
                eprintln!("cri: {e:#}");
            }
        }
    }
}

/// Starts our containerd, logging to DIR. `lock_fd` is inherited: a containerd that
/// outlives us keeps holding the lab lock (so do its shims).
fn spawn_daemon(lock_fd: Option<RawFd>) -> Result<Child> {
    let log = File::options().create(true).append(true).open(log_path())?;
    let mut cmd = Command::new("containerd");
    cmd.arg("--config")
        .arg(config_path())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    unsafe {
        cmd.pre_exec(move || {
            // Its own session: a Ctrl-C meant for the test does not stop it before the
            // cleanup can talk to it.
            libc::setsid();
            if let Some(fd) = lock_fd {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn().context("starting containerd (Debian package containerd)")
}

/// Stops and removes every sandbox, continuing past failures.
fn remove_all_sandboxes() -> Result<()> {
    runtime()?.block_on(async {
        let mut client = connect(Path::new(SOCKET)).await?;
        let list =
            client.list_pod_sandbox(ListPodSandboxRequest { filter: None }).await?.into_inner();
        let mut errors = Vec::new();
        for sandbox in list.items {
            if let Err(e) = stop_and_remove(&mut client, &sandbox.id).await {
                errors.push(format!("{e:#}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("; "))
        }
    })
}

async fn stop_and_remove(client: &mut RuntimeServiceClient<Channel>, id: &str) -> Result<()> {
    client
        .stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.into() })
        .await
        .with_context(|| format!("StopPodSandbox {id}"))?;
    client
        .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id.into() })
        .await
        .with_context(|| format!("RemovePodSandbox {id}"))?;
    let _ = fs::remove_file(Path::new(cleanup::NETNS_RECORDS).join(id));
    Ok(())
}

async fn connect(socket: &Path) -> Result<RuntimeServiceClient<Channel>> {
    let socket = socket.to_owned();
    let channel = Endpoint::from_static("http://[::]")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await?;
    Ok(RuntimeServiceClient::new(channel))
}

fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn config_path() -> PathBuf {
    Path::new(DIR).join("config.toml")
}

fn log_path() -> PathBuf {
    Path::new(DIR).join("containerd.log")
}

fn log_tail() -> String {
    let log = fs::read_to_string(log_path()).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// containerd's config. Plugins that would write outside DIR (opt) or that cannot work
/// here (the other snapshotters) are off. runc keeps its state under DIR too.
fn config() -> String {
    format!(
        r#"version = 2
root = "{DIR}/root"
state = "{DIR}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{SOCKET}"

[ttrpc]
  address = "{SOCKET}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  # Root here lacks CAP_SYS_RESOURCE; without this runc fails with "can't get final
  # child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  sandbox_image = "{image}"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{DIR}/cni/net.d"

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    Root = "{DIR}/runc"
"#,
        image = image::NAME
    )
}

/// The pod network: a bridge without a gateway address (isGateway would turn on the global
/// net.ipv4.ip_forward), host-local IPAM with its own data directory. containerd adds the
/// loopback plugin itself.
fn conflist() -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": false,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": SUBNET }]],
                "dataDir": format!("{DIR}/cni/ipam"),
            },
        }],
    })
    .to_string()
}
