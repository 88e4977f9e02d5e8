//! `cargo xtask lab pod add|rm`: pods made through CRI on the harness's containerd, which
//! stays running between commands.

use anyhow::{Context, Result};
use netprobe_tests::cri::Cri;

use crate::PodAction;

pub fn run(action: PodAction) -> Result<()> {
    match action {
        PodAction::Add { pod, labels, host_network } => {
            let (namespace, name) = split(&pod)?;
            let labels = labels
                .iter()
                .map(|l| l.split_once('=').with_context(|| format!("label {l:?} is not k=v")))
                .collect::<Result<Vec<_>>>()?;
            let cri = Cri::start_or_attach()?;
            let pod = cri.add(namespace, name, &labels, host_network)?;
            let netns = pod.netns.map_or("host".into(), |p| p.display().to_string());
            let ip = pod.ip.map_or("none".into(), |ip| ip.to_string());
            println!("netns={netns} ip={ip}");
            Ok(())
        }
        PodAction::Rm { pod } => {
            let (namespace, name) = split(&pod)?;
            Cri::attach()?.remove(namespace, name)
        }
    }
}

fn split(pod: &str) -> Result<(&str, &str)> {
    pod.split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .with_context(|| format!("{pod:?}: expected NAMESPACE/NAME"))
}
