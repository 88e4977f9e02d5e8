//! The Kubernetes manifests: they render with kustomize, validate against the API schemas
//! offline, their alert rules load in promtool, and every metric they use is one the agent
//! documents (docs/agent.md). No cluster is needed, and none is pretended.

use std::{fs, path::Path, process::Command};

const VALIDATE: &str = "/opt/netprobe-tools/venv/bin/kubernetes-validate";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace")
}

fn kustomize(dir: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize", &root().join(dir).to_string_lossy()])
        .output()
        .expect("kubectl (scripts/install-deps)");
    assert!(out.status.success(), "{dir}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// kubernetes-validate's verdict on `yaml` against Kubernetes 1.32, strictly: every line it
/// printed that is not a pass.
fn validate(name: &str, yaml: &str) -> Vec<String> {
    let file = std::env::temp_dir().join(format!("netprobe-{name}-{}.yaml", std::process::id()));
    fs::write(&file, yaml).unwrap();
    let out = Command::new(VALIDATE)
        .args(["--strict", "-k", "1.32.0"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate (scripts/install-deps)");
    let _ = fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {text}");
    text.lines()
        .filter(|l| !l.starts_with("INFO") || !l.contains(" passed "))
        .map(String::from)
        .collect()
}

#[test]
fn the_base_renders_and_validates_against_the_kubernetes_api() {
    let base = kustomize("deploy/kubernetes");
    assert_eq!(validate("base", &base), Vec::<String>::new());
    for kind in ["Namespace", "ServiceAccount", "DaemonSet", "Service"] {
        assert!(base.contains(&format!("kind: {kind}\n")), "{kind} in the base");
    }
    // The probes and the Service point at the port the agent listens on.
    assert!(base.contains("--listen=$(POD_IP):9990"), "{base}");
    assert!(base.contains("containerPort: 9990"));
    assert!(base.contains("path: /readyz") && base.contains("path: /healthz"));
}

#[test]
fn every_added_capability_says_why() {
    let ds = fs::read_to_string(root().join("deploy/kubernetes/base/daemonset.yaml")).unwrap();
    let lines: Vec<&str> = ds.lines().collect();
    let start = lines.iter().position(|l| l.trim() == "add:").expect("capabilities added");
    let mut caps = 0;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let Some(cap) = l.trim().strip_prefix("- ") else {
            if l.trim().starts_with('#') {
                continue;
            }
            break;
        };
        caps += 1;
        assert!(lines[i - 1].trim().starts_with('#'), "capability {cap} has no comment saying why");
    }
    assert!(caps >= 5, "{caps} capabilities");
}

#[test]
fn the_operator_overlay_validates_and_its_rules_load_in_promtool() {
    let overlay = kustomize("deploy/kubernetes/overlays/prometheus-operator");
    let complaints = validate("overlay", &overlay);
    // prometheus-operator's kinds are CRDs, which have no schema in Kubernetes itself.
    let crds = ["kind PodMonitor", "kind PrometheusRule"];
    for c in &complaints {
        assert!(crds.iter().any(|k| c.contains(k)), "unexpected: {c}");
    }
    // The rule groups of the PrometheusRule, as a rules file promtool checks.
    let rule = fs::read_to_string(
        root().join("deploy/kubernetes/overlays/prometheus-operator/prometheusrule.yaml"),
    )
    .unwrap();
    let spec = rule.split("\nspec:\n").nth(1).expect("a spec");
    let groups: String =
        spec.lines().map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l))).collect();
    let file = std::env::temp_dir().join(format!("netprobe-rules-{}.yaml", std::process::id()));
    fs::write(&file, groups).unwrap();
    let out =
        Command::new("promtool").arg("check").arg("rules").arg(&file).output().expect("promtool");
    let _ = fs::remove_file(&file);
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("SUCCESS: 4 rules found"), "{said}");
}

#[test]
fn the_rules_and_the_dashboard_use_only_documented_metrics() {
    let docs = fs::read_to_string(root().join("docs/agent.md")).unwrap();
    let dir = root().join("deploy/kubernetes/overlays/prometheus-operator");
    let mut used = 0;
    for file in ["prometheusrule.yaml", "netprobe-dashboard.json"] {
        let text = fs::read_to_string(dir.join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("netprobe_") {
            let name: String =
                rest[i..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            rest = &rest[i + name.len()..];
            if name.ends_with('_') || name == "netprobe_" {
                continue;
            }
            used += 1;
            assert!(
                docs.contains(&format!("`{name}`")),
                "{file} uses {name}, which docs/agent.md does not list"
            );
        }
    }
    assert!(used >= 10, "{used} metric uses");
}
