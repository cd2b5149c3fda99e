//! The deployment files against the server they deploy: `deploy/Dockerfile` and the
//! kustomize folder `deploy/k8s/`.
//!
//! Neither can be built or applied where the tests run (no container runtime, no
//! cluster), so each is read as Docker or Kubernetes would read it and every value that
//! names something of leanserve's is checked against leanserve itself:
//!
//! - the probe and scrape paths are requested from a running server, on the listener the
//!   probe's or the scrape's port leads to (a container port, through a Service);
//! - the environment of the image and the Deployment is loaded by `Config::load`, as the
//!   binary loads it, which names an unknown value, and refuses an insecure admin surface;
//!   the names are checked against the key table, which `Config::load` ignores;
//! - the container ports, the Services' target ports and the image's `EXPOSE` are checked
//!   against the listeners that configuration opens;
//! - the grace period against the preStop pause and `server.shutdown_timeout`;
//! - the image's command runs through the real binary's argument parsing, and its
//!   `config` command resolves the image's configuration.
//!
//! Every failure names the file and the field.
// It reads the key table through `leanserve::internals` and runs the `leanserve`
// binary, both of which come with the `cli` feature.
#![cfg(feature = "cli")]

mod util;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use leanserve::internals::keys::{self, KEYS};
use leanserve::{AdminBind, Config, LoadOptions, Profile, TunerMode};
use serde::Deserialize;
use serde_json::Value;
use util::Surface;

/// Stands in for the Secret's token wherever the Deployment reads one.
const SAMPLE_SECRET: &str = "deploy-test-sample-token";

/// Variables leanserve reads that are not configuration keys: the profile and the log
/// filter (env_logger).
const OTHER_VARS: &[&str] = &["LEANSERVE_ENV", "RUST_LOG"];

/// The shortest preStop pause that gives the endpoints controller (and the proxies and
/// load balancers behind it) time to take the pod out before it stops accepting.
const MIN_PRESTOP_SECONDS: u64 = 3;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn k8s_dir() -> PathBuf {
    repo().join("deploy/k8s")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// The Kubernetes manifests

/// The documents of a YAML file, as JSON values (every Kubernetes manifest is JSON
/// too); empty documents (a trailing `---`) are left out.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()))
        })
        .filter(|document| !document.is_null())
        .collect()
}

/// One Kubernetes object and the file it is in.
struct Manifest {
    file: String,
    doc: Value,
}

impl Manifest {
    /// `kind name` as a failure names it.
    fn what(&self) -> String {
        format!(
            "{}: {} {}",
            self.file,
            self.doc["kind"].as_str().unwrap_or("?"),
            self.doc["metadata"]["name"].as_str().unwrap_or("?")
        )
    }

    /// The value at `pointer` (a JSON pointer, `/spec/selector`); panics naming the file
    /// and the field when it is missing.
    fn at(&self, pointer: &str) -> &Value {
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{}: no {pointer}", self.what()))
    }

    /// The string at `pointer`.
    fn str(&self, pointer: &str) -> &str {
        self.at(pointer)
            .as_str()
            .unwrap_or_else(|| panic!("{}: {pointer} is not a string", self.what()))
    }

    /// The whole number at `pointer`.
    fn u64(&self, pointer: &str) -> u64 {
        self.at(pointer)
            .as_u64()
            .unwrap_or_else(|| panic!("{}: {pointer} is not a whole number", self.what()))
    }

    /// The labels or selector at `pointer` as a map.
    fn labels(&self, pointer: &str) -> BTreeMap<String, String> {
        let map = self
            .at(pointer)
            .as_object()
            .unwrap_or_else(|| panic!("{}: {pointer} is not a map", self.what()));
        map.iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: {pointer}/{k} is not a string", self.what()));
                (k.clone(), v.to_owned())
            })
            .collect()
    }
}

/// The `resources` of `deploy/k8s/kustomization.yaml`.
fn kustomization_resources() -> Vec<String> {
    let path = k8s_dir().join("kustomization.yaml");
    let documents = yaml_documents(&path);
    assert_eq!(documents.len(), 1, "{}: one document", path.display());
    let kustomization = Manifest {
        file: "kustomization.yaml".into(),
        doc: documents.into_iter().next().unwrap(),
    };
    assert_eq!(kustomization.str("/kind"), "Kustomization");
    kustomization
        .at("/resources")
        .as_array()
        .unwrap_or_else(|| panic!("kustomization.yaml: resources is not a list"))
        .iter()
        .map(|r| {
            r.as_str()
                .unwrap_or_else(|| panic!("kustomization.yaml: resource {r} is not a file name"))
                .to_owned()
        })
        .collect()
}

/// Every object of every file kustomization.yaml lists.
fn manifests() -> Vec<Manifest> {
    kustomization_resources()
        .into_iter()
        .flat_map(|file| {
            yaml_documents(&k8s_dir().join(&file))
                .into_iter()
                .map(move |doc| Manifest {
                    file: file.clone(),
                    doc,
                })
        })
        .collect()
}

/// Every object of `kind`.
fn all_of(manifests: &[Manifest], kind: &str) -> Vec<usize> {
    (0..manifests.len())
        .filter(|&i| manifests[i].doc["kind"] == kind)
        .collect()
}

/// The one object of `kind`.
fn one_of<'a>(manifests: &'a [Manifest], kind: &str) -> &'a Manifest {
    let found = all_of(manifests, kind);
    assert_eq!(
        found.len(),
        1,
        "deploy/k8s: expected one {kind}, found {}",
        found.len()
    );
    &manifests[found[0]]
}

/// The Deployment's pod spec, as a JSON pointer.
const POD: &str = "/spec/template/spec";

/// The pointer to the leanserve container (named `leanserve`, or the only one).
fn container_pointer(deployment: &Manifest) -> String {
    let containers = deployment
        .at(&format!("{POD}/containers"))
        .as_array()
        .unwrap_or_else(|| panic!("{}: containers is not a list", deployment.what()));
    let index = containers
        .iter()
        .position(|c| c["name"] == "leanserve")
        .or((containers.len() == 1).then_some(0))
        .unwrap_or_else(|| panic!("{}: no container named leanserve", deployment.what()));
    format!("{POD}/containers/{index}")
}

/// The container's ports: (name, number).
fn container_ports(deployment: &Manifest) -> Vec<(Option<String>, u16)> {
    let container = container_pointer(deployment);
    let ports = deployment.at(&format!("{container}/ports"));
    ports
        .as_array()
        .unwrap_or_else(|| panic!("{}: {container}/ports is not a list", deployment.what()))
        .iter()
        .map(|port| {
            let number = port["containerPort"].as_u64().unwrap_or_else(|| {
                panic!(
                    "{}: a port without containerPort: {port}",
                    deployment.what()
                )
            });
            (
                port["name"].as_str().map(str::to_owned),
                u16::try_from(number).expect("a port number"),
            )
        })
        .collect()
}

/// A port reference (a number or a port name) resolved against the container's ports;
/// `None` when it names or numbers none of them.
fn resolve_port(ports: &[(Option<String>, u16)], reference: &Value) -> Option<u16> {
    match reference {
        Value::Number(n) => ports
            .iter()
            .map(|(_, p)| *p)
            .find(|p| Some(u64::from(*p)) == n.as_u64()),
        Value::String(name) => ports
            .iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, p)| *p),
        _ => None,
    }
}

/// Where an environment variable of the Deployment gets its value.
#[derive(Clone, Debug, PartialEq)]
enum EnvValue {
    Literal(String),
    Secret { name: String, key: String },
}

/// The container's environment.
fn deployment_env(deployment: &Manifest) -> BTreeMap<String, EnvValue> {
    let container = container_pointer(deployment);
    let Some(env) = deployment.doc.pointer(&format!("{container}/env")) else {
        return BTreeMap::new();
    };
    env.as_array()
        .unwrap_or_else(|| panic!("{}: {container}/env is not a list", deployment.what()))
        .iter()
        .map(|var| {
            let name = var["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: an env entry without a name", deployment.what()))
                .to_owned();
            let value = if let Some(value) = var.get("value") {
                let value = value.as_str().unwrap_or_else(|| {
                    panic!(
                        "{}: env {name}: the value must be a string (quote it)",
                        deployment.what()
                    )
                });
                EnvValue::Literal(value.to_owned())
            } else if let Some(secret) = var.pointer("/valueFrom/secretKeyRef") {
                EnvValue::Secret {
                    name: secret["name"].as_str().unwrap_or_default().to_owned(),
                    key: secret["key"].as_str().unwrap_or_default().to_owned(),
                }
            } else {
                panic!(
                    "{}: env {name}: only value and valueFrom.secretKeyRef are checked here",
                    deployment.what()
                )
            };
            (name, value)
        })
        .collect()
}

/// A Kubernetes memory quantity (`256Mi`, `1G`, `134217728`) in bytes.
fn memory_bytes(quantity: &str) -> Option<u64> {
    const UNITS: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (number, factor) = UNITS
        .iter()
        .find_map(|(suffix, factor)| quantity.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((quantity, 1));
    number.parse::<u64>().ok().map(|n| n * factor)
}

// ---------------------------------------------------------------------------------------
// The Dockerfile

/// One instruction of the Dockerfile, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    /// 0 for the first `FROM`'s stage, and so on.
    stage: usize,
    keyword: String,
    args: String,
}

fn dockerfile() -> Vec<Instruction> {
    let text = read(&repo().join("deploy/Dockerfile"));
    let mut instructions = Vec::new();
    let mut pending = String::new();
    let mut stage = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(part) = trimmed.strip_suffix('\\') {
            pending.push_str(part);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let whole = std::mem::take(&mut pending);
        let (keyword, args) = whole
            .split_once(char::is_whitespace)
            .unwrap_or((&whole, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stage = Some(stage.map_or(0, |s| s + 1));
        }
        instructions.push(Instruction {
            stage: stage.expect("deploy/Dockerfile: an instruction before the first FROM"),
            keyword,
            args: args.trim().to_owned(),
        });
    }
    instructions
}

/// The arguments of every `keyword` instruction of `stage`.
fn in_stage<'a>(instructions: &'a [Instruction], stage: usize, keyword: &str) -> Vec<&'a str> {
    instructions
        .iter()
        .filter(|i| i.stage == stage && i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

/// The final stage's number.
fn final_stage(instructions: &[Instruction]) -> usize {
    instructions.iter().map(|i| i.stage).max().unwrap_or(0)
}

/// The variables the final stage's `ENV` lines set (`ENV A=1 B=2`, or `ENV A 1`).
fn dockerfile_env(instructions: &[Instruction]) -> BTreeMap<String, String> {
    let unquote = |s: &str| s.trim_matches('"').to_owned();
    let mut env = BTreeMap::new();
    for args in in_stage(instructions, final_stage(instructions), "ENV") {
        if args
            .split_whitespace()
            .next()
            .is_some_and(|w| w.contains('='))
        {
            for pair in args.split_whitespace() {
                let (name, value) = pair.split_once('=').unwrap_or_else(|| {
                    panic!("deploy/Dockerfile: ENV {args}: {pair} is no NAME=VALUE")
                });
                env.insert(name.to_owned(), unquote(value));
            }
        } else {
            let (name, value) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
            env.insert(name.to_owned(), unquote(value.trim()));
        }
    }
    env
}

/// An `ENTRYPOINT` or `CMD` in exec form (a JSON list). The shell form runs `/bin/sh -c`
/// as PID 1, which does not pass SIGTERM on: leanserve would never drain, only be killed.
fn exec_form(args: &str, keyword: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|_| {
        panic!(
            "deploy/Dockerfile: {keyword} {args}: use the exec form [\"...\"], so SIGTERM reaches leanserve"
        )
    })
}

/// The final stage's `WORKDIR`.
fn workdir(instructions: &[Instruction]) -> String {
    in_stage(instructions, final_stage(instructions), "WORKDIR")
        .last()
        .expect("deploy/Dockerfile: the final stage sets a WORKDIR")
        .trim_end_matches('/')
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// The configuration the container runs with

/// The environment leanserve sees in the container: the image's `ENV` lines, then the
/// Deployment's (which win), each Secret replaced by a sample value.
fn container_env(deployment: &Manifest, instructions: &[Instruction]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = dockerfile_env(instructions).into_iter().collect();
    for (name, value) in deployment_env(deployment) {
        let value = match value {
            EnvValue::Literal(text) => text,
            EnvValue::Secret { .. } => SAMPLE_SECRET.to_owned(),
        };
        env.insert(name, value);
    }
    env
}

/// The configuration the container starts with, the static root pointed at `root`.
fn container_config(
    deployment: &Manifest,
    instructions: &[Instruction],
    root: &Path,
) -> Result<Config, leanserve::ConfigError> {
    let mut env = container_env(deployment, instructions);
    env.insert("STATIC_FILE_ROOT_DIR".into(), root.display().to_string());
    // The profile comes from LEANSERVE_ENV, as in the container.
    Config::load(
        &LoadOptions::default()
            .config_dir(util::config_dir())
            .env(env),
    )
}

/// The container's configuration, or a failure naming the files and the refusal.
fn loaded(deployment: &Manifest, instructions: &[Instruction], root: &Path) -> Config {
    container_config(deployment, instructions, root).unwrap_or_else(|e| {
        panic!(
            "deploy/Dockerfile ENV + {}: leanserve would refuse to start: {e}",
            deployment.what()
        )
    })
}

// ---------------------------------------------------------------------------------------
// The checks

#[test]
fn deploy_kustomization_lists_every_manifest_and_each_parses() {
    let resources = kustomization_resources();
    let listed: BTreeSet<&str> = resources.iter().map(String::as_str).collect();
    assert_eq!(
        listed.len(),
        resources.len(),
        "kustomization.yaml: resources repeat a file"
    );
    for file in &resources {
        assert!(
            k8s_dir().join(file).is_file(),
            "kustomization.yaml: resources names {file}, which does not exist"
        );
    }
    for entry in std::fs::read_dir(k8s_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if yaml && name != "kustomization.yaml" {
            assert!(
                listed.contains(name.as_str()),
                "deploy/k8s/{name} is not in kustomization.yaml's resources: kustomize would leave it out"
            );
        }
    }
    let manifests = manifests();
    for m in &manifests {
        for field in ["/apiVersion", "/kind", "/metadata/name"] {
            m.str(field);
        }
    }
    for (kind, api_version) in [
        ("Deployment", "apps/v1"),
        ("HorizontalPodAutoscaler", "autoscaling/v2"),
        ("PodDisruptionBudget", "policy/v1"),
        ("ServiceMonitor", "monitoring.coreos.com/v1"),
    ] {
        let m = one_of(&manifests, kind);
        assert_eq!(
            m.str("/apiVersion"),
            api_version,
            "{}: apiVersion",
            m.what()
        );
    }
    assert!(
        !all_of(&manifests, "Service").is_empty(),
        "deploy/k8s: no Service"
    );
}

#[test]
fn deploy_selectors_and_scaling_target_the_deployment() {
    let manifests = manifests();
    let deployment = one_of(&manifests, "Deployment");
    let pod_labels = deployment.labels("/spec/template/metadata/labels");
    let selects_pods = |m: &Manifest, pointer: &str| {
        for (k, v) in m.labels(pointer) {
            assert_eq!(
                pod_labels.get(&k),
                Some(&v),
                "{}: {pointer} {k}={v} does not match the pods of {}",
                m.what(),
                deployment.what()
            );
        }
    };
    selects_pods(deployment, "/spec/selector/matchLabels");
    for i in all_of(&manifests, "Service") {
        selects_pods(&manifests[i], "/spec/selector");
    }
    let pdb = one_of(&manifests, "PodDisruptionBudget");
    selects_pods(pdb, "/spec/selector/matchLabels");

    let hpa = one_of(&manifests, "HorizontalPodAutoscaler");
    assert_eq!(
        hpa.str("/spec/scaleTargetRef/kind"),
        "Deployment",
        "{}",
        hpa.what()
    );
    assert_eq!(
        hpa.str("/spec/scaleTargetRef/name"),
        deployment.str("/metadata/name"),
        "{}: scaleTargetRef.name",
        hpa.what()
    );
    let metrics = hpa
        .at("/spec/metrics")
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        metrics.iter().any(|m| matches!(
            m.pointer("/resource/name").and_then(Value::as_str),
            Some("cpu" | "memory")
        )),
        "{}: spec.metrics has no cpu or memory target",
        hpa.what()
    );
    // Without resource requests the HPA has nothing to compute utilization against.
    let container = container_pointer(deployment);
    for metric in &metrics {
        if let Some(resource) = metric.pointer("/resource/name").and_then(Value::as_str) {
            deployment.at(&format!("{container}/resources/requests/{resource}"));
        }
    }

    // A drain must be able to evict one pod while the others keep serving.
    let min_replicas = hpa.u64("/spec/minReplicas");
    match (
        pdb.doc.pointer("/spec/maxUnavailable"),
        pdb.doc.pointer("/spec/minAvailable"),
    ) {
        (Some(max), None) => assert_eq!(max.as_u64(), Some(1), "{}: maxUnavailable", pdb.what()),
        (None, Some(min)) => assert!(
            min.as_u64().is_some_and(|min| min < min_replicas),
            "{}: minAvailable must be below the HPA's minReplicas {min_replicas}, or no pod can be evicted",
            pdb.what()
        ),
        _ => panic!("{}: set one of maxUnavailable and minAvailable", pdb.what()),
    }
    assert!(
        min_replicas >= 2,
        "{}: minReplicas {min_replicas}: a drain under the PodDisruptionBudget would take the only pod",
        hpa.what()
    );
}

#[test]
fn deploy_ports_agree_with_the_listeners() {
    let manifests = manifests();
    let deployment = one_of(&manifests, "Deployment");
    let instructions = dockerfile();
    let site = util::site();
    let config = loaded(deployment, &instructions, site.path());
    let opts = &config.opts;
    let ports = container_ports(deployment);
    let declared: BTreeSet<u16> = ports.iter().map(|(_, p)| *p).collect();

    // The serving listener: on every interface, on a declared port.
    let listen_ports = listener_ports(&config);
    assert!(
        opts.server.bind.ip().is_unspecified(),
        "{}: server.bind (LEANSERVE_BIND) is {}: probes and Services connect to the pod's IP, so bind 0.0.0.0",
        deployment.what(),
        opts.server.bind
    );
    if let AdminBind::Tcp(addr) = &opts.admin.bind {
        assert!(
            addr.ip().is_unspecified(),
            "{}: admin.bind (LEANSERVE_ADMIN_BIND) is {addr}: Prometheus cannot reach it",
            deployment.what()
        );
    }
    let listening: BTreeSet<u16> = listen_ports.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        declared,
        listening,
        "{}: container ports {declared:?}, but leanserve listens on {listening:?} (server.bind, admin.bind)",
        deployment.what()
    );

    // The Services route to declared ports.
    for i in all_of(&manifests, "Service") {
        let service = &manifests[i];
        for port in service.at("/spec/ports").as_array().unwrap() {
            let target = port.get("targetPort").or(port.get("port")).unwrap();
            assert!(
                resolve_port(&ports, target).is_some(),
                "{}: targetPort {target} is not a port of {}'s container",
                service.what(),
                deployment.what()
            );
        }
    }
    // The probes knock on declared ports.
    let container = container_pointer(deployment);
    for probe in ["livenessProbe", "readinessProbe"] {
        let port = deployment.at(&format!("{container}/{probe}/httpGet/port"));
        assert!(
            resolve_port(&ports, port).is_some(),
            "{}: {probe}.httpGet.port {port} is not a container port",
            deployment.what()
        );
    }
    // The image opens the same ports.
    let exposed: BTreeSet<u16> = in_stage(&instructions, final_stage(&instructions), "EXPOSE")
        .iter()
        .flat_map(|args| args.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
        .collect();
    assert_eq!(
        exposed,
        declared,
        "deploy/Dockerfile: EXPOSE {exposed:?} differs from {}'s container ports {declared:?}",
        deployment.what()
    );
}

/// The TCP ports leanserve listens on with `config`, and what each carries.
fn listener_ports(config: &Config) -> Vec<(u16, Surface)> {
    let server = config.opts.server.bind.port();
    match &config.opts.admin.bind {
        AdminBind::Tcp(addr) if addr.port() == server => vec![(server, Surface::Both)],
        AdminBind::Tcp(addr) => vec![(server, Surface::Public), (addr.port(), Surface::Admin)],
        AdminBind::Serving => vec![(server, Surface::Both)],
        AdminBind::Unix(_) => vec![(server, Surface::Public)],
    }
}

/// The scrape: (its path, the container port it reaches through its Service).
fn scrape_target(manifests: &[Manifest]) -> (String, u16) {
    let deployment = one_of(manifests, "Deployment");
    let monitor = one_of(manifests, "ServiceMonitor");
    let selector = monitor.labels("/spec/selector/matchLabels");
    let services: Vec<&Manifest> = all_of(manifests, "Service")
        .into_iter()
        .map(|i| &manifests[i])
        .filter(|s| {
            let labels = s.labels("/metadata/labels");
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .collect();
    assert_eq!(
        services.len(),
        1,
        "{}: spec.selector should pick one Service, picks {}",
        monitor.what(),
        services.len()
    );
    let endpoint = monitor.at("/spec/endpoints/0");
    let port_name = endpoint["port"].as_str().unwrap_or_else(|| {
        panic!(
            "{}: endpoints[0].port names no Service port",
            monitor.what()
        )
    });
    let service_port = services[0]
        .at("/spec/ports")
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port_name)
        .unwrap_or_else(|| {
            panic!(
                "{}: endpoints[0].port {port_name} is not a port of {}",
                monitor.what(),
                services[0].what()
            )
        });
    let target = service_port
        .get("targetPort")
        .unwrap_or(&service_port["port"]);
    let port = resolve_port(&container_ports(deployment), target).unwrap_or_else(|| {
        panic!(
            "{}: port {port_name}'s targetPort {target} is not a container port",
            services[0].what()
        )
    });
    let path = endpoint["path"].as_str().unwrap_or("/metrics").to_owned();
    (path, port)
}

#[test]
fn deploy_scrape_reaches_the_admin_listener_with_the_token() {
    let manifests = manifests();
    let deployment = one_of(&manifests, "Deployment");
    let monitor = one_of(&manifests, "ServiceMonitor");
    let site = util::site();
    let config = loaded(deployment, &dockerfile(), site.path());
    let (_, port) = scrape_target(&manifests);
    let surface = listener_ports(&config)
        .into_iter()
        .find(|(p, _)| *p == port)
        .map(|(_, s)| s);
    let public_metrics = config.opts.monitoring.public_metrics;
    assert!(
        matches!(surface, Some(Surface::Admin | Surface::Both))
            || (surface == Some(Surface::Public) && public_metrics),
        "{}: the scrape reaches container port {port}, which is not the admin listener ({:?}), and monitoring.public_metrics is off",
        monitor.what(),
        config.opts.admin.bind
    );
    if surface != Some(Surface::Public) && config.opts.admin.token.is_some() {
        // The admin surface answers a scrape without the token 401: it must send the
        // Secret the Deployment reads the token from.
        let token_source = deployment_env(deployment).remove(keys::ADMIN_TOKEN.key().env);
        let Some(EnvValue::Secret { name, key }) = token_source else {
            panic!(
                "{}: {} should come from a Secret",
                deployment.what(),
                keys::ADMIN_TOKEN.key().env
            );
        };
        let endpoint = monitor.at("/spec/endpoints/0");
        let credentials = endpoint
            .pointer("/authorization/credentials")
            .or(endpoint.get("bearerTokenSecret"))
            .unwrap_or_else(|| {
                panic!(
                    "{}: endpoints[0] sends no token (authorization.credentials): the admin listener answers 401",
                    monitor.what()
                )
            });
        assert_eq!(
            (credentials["name"].as_str(), credentials["key"].as_str()),
            (Some(name.as_str()), Some(key.as_str())),
            "{}: endpoints[0].authorization.credentials differ from the Secret {} reads {}",
            monitor.what(),
            deployment.what(),
            keys::ADMIN_TOKEN.key().env
        );
    }
}

#[actix_rt::test]
async fn deploy_probe_and_scrape_paths_answer_on_a_running_server() {
    let manifests = manifests();
    let deployment = one_of(&manifests, "Deployment");
    let site = util::site();
    let config = loaded(deployment, &dockerfile(), site.path());
    let surfaces: HashMap<u16, Surface> = listener_ports(&config).into_iter().collect();
    let ports = container_ports(deployment);

    // The test profile (loopback, free ports) with the container's admin token.
    let subsystems = util::start(site.path(), &[(keys::ADMIN_TOKEN.key().env, SAMPLE_SECRET)])
        .runtime()
        .await;
    let servers: HashMap<Surface, util::Server> = [Surface::Public, Surface::Admin, Surface::Both]
        .into_iter()
        .map(|surface| (surface, util::serve_surface(&subsystems, surface, None)))
        .collect();
    let url = |port: u16, path: &str| {
        let surface = surfaces.get(&port).unwrap_or_else(|| {
            panic!(
                "{}: GET {path} on container port {port}, where leanserve does not listen",
                deployment.what()
            )
        });
        format!("http://{}{path}", servers[surface].addr)
    };

    let container = container_pointer(deployment);
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = deployment.str(&format!("{container}/{probe}/httpGet/path"));
        let port = resolve_port(
            &ports,
            deployment.at(&format!("{container}/{probe}/httpGet/port")),
        )
        .unwrap_or_else(|| {
            panic!(
                "{}: {probe}.httpGet.port is not a container port",
                deployment.what()
            )
        });
        let probe_url = url(port, path);
        // Kubelet sends no token; readiness may take the children's start-up.
        util::eventually(
            &format!("{probe} GET {path} on port {port} answers 200"),
            || {
                let probe_url = probe_url.clone();
                async move { util::get_json(&probe_url, None).await.0 == 200 }
            },
        )
        .await;
    }

    let (path, port) = scrape_target(&manifests);
    let mut response = awc::Client::default()
        .get(url(port, &path))
        .insert_header(("Authorization", format!("Bearer {SAMPLE_SECRET}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "servicemonitor.yaml: GET {path} on container port {port} with the token"
    );
    let body = response.body().limit(1 << 22).await.unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains("leanserve_"),
        "servicemonitor.yaml: GET {path} answers no leanserve metrics"
    );
    drop(servers);
}

#[test]
fn deploy_environment_names_configuration_keys_and_prod_starts_with_it() {
    let manifests = manifests();
    let deployment = one_of(&manifests, "Deployment");
    let instructions = dockerfile();
    let known: BTreeSet<&str> = KEYS
        .iter()
        .map(|key| key.env)
        .chain(OTHER_VARS.iter().copied())
        .collect();
    let secret_vars: BTreeSet<&str> = KEYS.iter().filter(|k| k.secret).map(|k| k.env).collect();
    for (name, value) in deployment_env(deployment) {
        assert!(
            known.contains(name.as_str()),
            "{}: env {name} is no configuration variable of leanserve (src/config/keys.rs)",
            deployment.what()
        );
        assert!(
            !(secret_vars.contains(name.as_str()) && matches!(value, EnvValue::Literal(_))),
            "{}: env {name} is a secret: read it from a Secret (valueFrom.secretKeyRef)",
            deployment.what()
        );
    }
    for name in dockerfile_env(&instructions).keys() {
        assert!(
            known.contains(name.as_str()),
            "deploy/Dockerfile: ENV {name} is no configuration variable of leanserve (src/config/keys.rs)"
        );
        assert!(
            !secret_vars.contains(name.as_str()),
            "deploy/Dockerfile: ENV {name} would bake a secret into the image"
        );
    }
    let site = util::site();
    let config = loaded(deployment, &instructions, site.path());
    assert_eq!(
        config.opts.profile,
        Profile::Prod,
        "deploy/Dockerfile ENV + {}: LEANSERVE_ENV should select prod",
        deployment.what()
    );
}

/// The preStop pause in seconds: `exec: sleep N`, or the `sleep` action.
fn prestop_seconds(deployment: &Manifest) -> u64 {
    let pointer = format!("{}/lifecycle/preStop", container_pointer(deployment));
    let pre_stop = deployment.at(&pointer);
    if let Some(seconds) = pre_stop.pointer("/sleep/seconds") {
        return seconds.as_u64().expect("sleep.seconds");
    }
    let command: Vec<&str> = pre_stop
        .pointer("/exec/command")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{}: {pointer} is neither exec nor sleep", deployment.what()))
        .iter()
        .map(|word| word.as_str().unwrap_or_default())
        .collect();
    match command.as_slice() {
        [sleep, seconds] if sleep.rsplit('/').next() == Some("sleep") => {
            seconds.parse().unwrap_or_else(|_| {
                panic!(
                    "{}: {pointer}: sleep {seconds} is not whole seconds",
                    deployment.what()
                )
            })
        }
        _ => panic!(
            "{}: {pointer}.exec.command {command:?} is not [\"sleep\", \"N\"]",
            deployment.what()
        ),
    }
}

#[test]
fn deploy_grace_period_covers_the_prestop_pause_and_the_drain() {
    let manifests = manifests();
    let deployment = one_of(&manifests, "Deployment");
    let instructions = dockerfile();
    let site = util::site();
    let config = loaded(deployment, &instructions, site.path());
    let shutdown = config.opts.server.shutdown_timeout.as_secs();
    let pause = prestop_seconds(deployment);
    assert!(
        pause >= MIN_PRESTOP_SECONDS,
        "{}: preStop sleeps {pause} s: under {MIN_PRESTOP_SECONDS} s the pod may stop accepting before the Services drop it",
        deployment.what()
    );
    // Kubernetes' default when the field is absent.
    let grace = deployment
        .doc
        .pointer(&format!("{POD}/terminationGracePeriodSeconds"))
        .map_or(30, |v| v.as_u64().expect("terminationGracePeriodSeconds"));
    assert!(
        grace > pause + shutdown,
        "{}: terminationGracePeriodSeconds {grace} must exceed the preStop sleep {pause} s + server.shutdown_timeout {shutdown} s, or SIGKILL cuts the drain",
        deployment.what()
    );
    // An exec preStop needs a `sleep` in the image.
    if deployment
        .doc
        .pointer(&format!(
            "{}/lifecycle/preStop/exec",
            container_pointer(deployment)
        ))
        .is_some()
    {
        let base = in_stage(&instructions, final_stage(&instructions), "FROM")[0];
        assert!(
            !base.contains("distroless") && !base.starts_with("scratch"),
            "deploy/Dockerfile: the runtime image {base} has no sleep for {}'s exec preStop",
            deployment.what()
        );
    }
}

#[test]
fn deploy_memory_limit_is_set_and_the_configuration_stays_under_it() {
    let manifests = manifests();
    let deployment = one_of(&manifests, "Deployment");
    let container = container_pointer(deployment);
    let field = format!("{container}/resources/limits/memory");
    let text = deployment.str(&field);
    let limit = memory_bytes(text).unwrap_or_else(|| {
        panic!(
            "{}: {field} {text} is not a memory quantity",
            deployment.what()
        )
    });
    if let Some(request) = deployment
        .doc
        .pointer(&format!("{container}/resources/requests/memory"))
    {
        let request = memory_bytes(request.as_str().unwrap_or_default()).unwrap_or(u64::MAX);
        assert!(
            request <= limit,
            "{}: resources.requests.memory is above the limit {text}",
            deployment.what()
        );
    }
    let site = util::site();
    let config = loaded(deployment, &dockerfile(), site.path());
    let opts = &config.opts;
    assert_ne!(
        opts.tuner.mode,
        TunerMode::Off,
        "{}: the tuner is off, so nothing reads the memory limit",
        deployment.what()
    );
    if let Some(configured) = opts.tuner.memory_limit {
        assert!(
            configured <= limit,
            "{}: tuner.memory_limit_mb ({} MiB) is above the container's limit {text}",
            deployment.what(),
            configured >> 20
        );
    }
    // memory_critical fires at 1.25 x profiler.memory_threshold_mb: above the limit it
    // would never fire before the OOM kill.
    let critical = opts.profiler.memory_threshold_mb * 5 / 4;
    assert!(
        critical << 20 < limit,
        "{}: memory_critical fires at {critical} MiB (1.25 x MEMORY_THRESHOLD_MB {}), not under the limit {text}",
        deployment.what(),
        opts.profiler.memory_threshold_mb
    );
}

#[test]
fn deploy_dockerfile_builds_a_non_root_prod_image() {
    let instructions = dockerfile();
    let last = final_stage(&instructions);
    assert!(
        last >= 1,
        "deploy/Dockerfile: one FROM; build and run in separate stages"
    );
    let from = |stage| in_stage(&instructions, stage, "FROM")[0];
    // The binary links glibc dynamically: build and run on the same Debian release.
    let image = |stage| from(stage).split_whitespace().next().unwrap_or_default();
    let (builder, runtime) = (image(last - 1), image(last));
    assert!(
        builder.contains("bookworm")
            && (runtime.contains("bookworm") || runtime.contains("debian12")),
        "deploy/Dockerfile: builder {builder} and runtime {runtime} should share a Debian release (bookworm)"
    );

    let user = in_stage(&instructions, last, "USER");
    let user = user
        .last()
        .expect("deploy/Dockerfile: the final stage sets no USER, so it runs as root");
    let name = user.split(':').next().unwrap();
    assert!(
        name != "root" && name != "0",
        "deploy/Dockerfile: USER {user} is root"
    );

    let env = dockerfile_env(&instructions);
    assert_eq!(
        env.get("LEANSERVE_ENV").map(String::as_str),
        Some("prod"),
        "deploy/Dockerfile: ENV LEANSERVE_ENV=prod"
    );

    // The site, the templates and the configuration land where leanserve looks: relative
    // paths resolve against WORKDIR.
    let workdir = workdir(&instructions);
    let copies: Vec<(Vec<&str>, &str)> = in_stage(&instructions, last, "COPY")
        .into_iter()
        .filter(|args| !args.starts_with("--from"))
        .map(|args| {
            let words: Vec<&str> = args.split_whitespace().collect();
            let (dest, sources) = words.split_last().unwrap();
            (sources.to_vec(), *dest)
        })
        .collect();
    let root = env
        .get(keys::STATIC_FILES_ROOT_DIR.key().env)
        .map_or(
            keys::STATIC_FILES_ROOT_DIR.key().default.unwrap(),
            String::as_str,
        )
        .to_owned();
    let templates = env
        .get(keys::TEMPLATES_DIR.key().env)
        .map_or(keys::TEMPLATES_DIR.key().default.unwrap(), String::as_str)
        .to_owned();
    for (folder, expected) in [
        ("static", root),
        ("templates", templates),
        ("config", config_arg(&instructions)),
    ] {
        let expected = absolute(&workdir, &expected);
        let copied = copies
            .iter()
            .find(|(sources, _)| sources.iter().any(|s| s.trim_end_matches('/') == folder));
        let Some((_, dest)) = copied else {
            panic!("deploy/Dockerfile: the final stage does not COPY {folder}/");
        };
        assert_eq!(
            absolute(&workdir, dest),
            expected,
            "deploy/Dockerfile: COPY {folder}/ lands in {dest}, but leanserve reads {expected}"
        );
    }

    // The binary comes from the build stage, to where ENTRYPOINT runs it.
    let entrypoint = exec_form(
        in_stage(&instructions, last, "ENTRYPOINT")
            .last()
            .expect("deploy/Dockerfile: no ENTRYPOINT"),
        "ENTRYPOINT",
    );
    assert!(
        entrypoint[0].rsplit('/').next() == Some("leanserve"),
        "deploy/Dockerfile: ENTRYPOINT runs {}, not leanserve",
        entrypoint[0]
    );
    assert!(
        in_stage(&instructions, last, "COPY").iter().any(|args| {
            args.starts_with("--from")
                && args
                    .split_whitespace()
                    .last()
                    .map(|d| absolute(&workdir, d))
                    == Some(entrypoint[0].clone())
        }),
        "deploy/Dockerfile: no COPY --from the build stage puts the binary at {}",
        entrypoint[0]
    );
}

/// `path` made absolute against `workdir`.
fn absolute(workdir: &str, path: &str) -> String {
    let path = path.trim_end_matches('/');
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{workdir}/{}", path.trim_start_matches("./"))
    }
}

/// The image's command line after the binary: ENTRYPOINT's arguments, then CMD.
fn image_args(instructions: &[Instruction]) -> Vec<String> {
    let last = final_stage(instructions);
    let entrypoint = in_stage(instructions, last, "ENTRYPOINT")
        .last()
        .map(|args| exec_form(args, "ENTRYPOINT"))
        .expect("deploy/Dockerfile: no ENTRYPOINT");
    let cmd = in_stage(instructions, last, "CMD")
        .last()
        .map(|args| exec_form(args, "CMD"))
        .unwrap_or_default();
    entrypoint.into_iter().skip(1).chain(cmd).collect()
}

/// The folder the image's command reads the configuration from (`--config`, else
/// `config`).
fn config_arg(instructions: &[Instruction]) -> String {
    let args = image_args(instructions);
    args.iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "config".to_owned())
}

#[test]
fn deploy_image_command_is_one_leanserve_accepts() {
    let instructions = dockerfile();
    let args = image_args(&instructions);

    // Usage: `--help` answers 0 once every argument before it parsed, 2 for a bad one.
    let status = Command::new(util::BIN)
        .env_clear()
        .args(&args)
        .arg("--help")
        .output()
        .unwrap()
        .status;
    assert_eq!(
        status.code(),
        Some(0),
        "deploy/Dockerfile: leanserve rejects ENTRYPOINT + CMD arguments {args:?}"
    );

    // Configuration: the same command as `config`, run in a copy of the image's layout
    // (the repository is one: WORKDIR's static/, config/ and templates/), with the
    // container's environment, resolves it and exits 0.
    let workdir = workdir(&instructions);
    let repo = repo();
    let mut config_args: Vec<String> = args
        .iter()
        .map(|a| match a.strip_prefix(&format!("{workdir}/")) {
            Some(relative) => repo.join(relative).display().to_string(),
            None => a.clone(),
        })
        .collect();
    match config_args.iter().position(|a| !a.starts_with('-')) {
        Some(i) if config_args[i] == "serve" => config_args[i] = "config".into(),
        _ => config_args.insert(0, "config".into()),
    }
    let manifests = manifests();
    let deployment = one_of(&manifests, "Deployment");
    let output = Command::new(util::BIN)
        .env_clear()
        .envs(container_env(deployment, &instructions))
        .current_dir(&repo)
        .args(&config_args)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "deploy/Dockerfile + {}: `leanserve {}` fails: {}",
        deployment.what(),
        config_args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("server.bind") && l.contains("0.0.0.0:")),
        "deploy/Dockerfile + {}: the image serves on {:?}",
        deployment.what(),
        printed.lines().find(|l| l.starts_with("server.bind"))
    );
}

// ---------------------------------------------------------------------------------------
// A single host: deploy/systemd/leanserve.service

/// The unit's `[Service]` settings, in order (`Environment=` repeats).
fn systemd_service() -> Vec<(String, String)> {
    let path = repo().join("deploy/systemd/leanserve.service");
    let mut section = String::new();
    let mut settings = Vec::new();
    for line in read(&path).lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if section == "Service" {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("leanserve.service: {line:?} is not key=value"));
            settings.push((key.to_owned(), value.to_owned()));
        }
    }
    settings
}

fn setting<'a>(service: &'a [(String, String)], key: &str) -> &'a str {
    service
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("leanserve.service: no {key}="))
}

#[test]
fn deploy_systemd_unit_starts_drains_and_restarts_as_the_server_expects() {
    let service = systemd_service();
    let env: HashMap<String, String> = service
        .iter()
        .filter(|(k, _)| k == "Environment")
        .map(|(_, v)| {
            let (name, value) = v.split_once('=').expect("Environment=NAME=value");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let known: BTreeSet<&str> = leanserve::internals::keys::KEYS
        .iter()
        .map(|key| key.env)
        .chain(["LEANSERVE_ENV", "RUST_LOG"])
        .collect();
    for name in env.keys() {
        assert!(
            known.contains(name.as_str()),
            "leanserve.service: {name} is not a setting"
        );
    }
    assert_eq!(env.get("LEANSERVE_ENV").map(String::as_str), Some("prod"));
    assert_ne!(
        setting(&service, "User"),
        "root",
        "leanserve.service runs as a service user"
    );

    // ExecStart, as `config` (which resolves and checks everything, then exits) in the
    // repository (the unit's WorkingDirectory holds the same static/ and config/).
    let exec: Vec<&str> = setting(&service, "ExecStart").split_whitespace().collect();
    assert!(
        exec[0].ends_with("/leanserve"),
        "ExecStart runs leanserve: {exec:?}"
    );
    let workdir = setting(&service, "WorkingDirectory");
    let args: Vec<String> = exec[1..]
        .iter()
        .map(|arg| match arg.strip_prefix(&format!("{workdir}/")) {
            Some(relative) => repo().join(relative).display().to_string(),
            None if *arg == "serve" => "config".to_owned(),
            None => (*arg).to_owned(),
        })
        .collect();
    assert!(exec.contains(&"serve"), "ExecStart serves: {exec:?}");
    let output = Command::new(util::BIN)
        .env_clear()
        .envs(&env)
        .current_dir(repo())
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "leanserve.service: `leanserve {}` fails: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );

    // Stopping: SIGTERM drains within server.shutdown_timeout; systemd waits longer.
    let site = tempfile::tempdir().unwrap();
    let mut load_env = env.clone();
    load_env.insert(
        "STATIC_FILE_ROOT_DIR".into(),
        site.path().display().to_string(),
    );
    let config = Config::load(
        &LoadOptions::default()
            .config_dir(util::config_dir())
            .env(load_env),
    )
    .expect("leanserve.service's environment loads");
    let shutdown = config.opts.server.shutdown_timeout.as_secs();
    assert_eq!(setting(&service, "KillSignal"), "SIGTERM");
    let stop: u64 = setting(&service, "TimeoutStopSec").parse().unwrap();
    assert!(
        stop > shutdown,
        "TimeoutStopSec={stop} must exceed shutdown_timeout={shutdown}"
    );

    // Restarts: after an escalation (status 3), not after a configuration mistake (2).
    assert_eq!(setting(&service, "Restart"), "on-failure");
    let prevented = setting(&service, "RestartPreventExitStatus");
    assert!(
        prevented.split_whitespace().any(|s| s == "2"),
        "{prevented}"
    );
    assert!(
        !prevented.split_whitespace().any(|s| s == "3"),
        "{prevented}"
    );

    // The admin socket and the profiles live in the folders systemd makes for the user.
    let admin = env["LEANSERVE_ADMIN_BIND"]
        .strip_prefix("unix:")
        .expect("a Unix socket");
    let runtime = format!("/run/{}/", setting(&service, "RuntimeDirectory"));
    assert!(admin.starts_with(&runtime), "{admin} is under {runtime}");
    let profiles = &env["LEANSERVE_PROFILER_PROFILES_DIR"];
    let state = format!("/var/lib/{}/", setting(&service, "StateDirectory"));
    assert!(profiles.starts_with(&state), "{profiles} is under {state}");
    // The tuner reads the unit's cgroup limit.
    assert!(setting(&service, "MemoryMax").ends_with(['M', 'G']));
}

/// `patch` merged into `base` as kustomize merges a strategic-merge patch of the shapes
/// deploy/k8s uses: maps field by field, lists of objects item by item on their merge key
/// (`mountPath` for volume mounts, `name` otherwise), anything else replaced.
fn strategic_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) => strategic_merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(patch)) => {
            for item in patch {
                let key = ["mountPath", "name"]
                    .into_iter()
                    .find(|key| item.get(key).is_some());
                let existing = key.and_then(|key| base.iter_mut().find(|e| e[key] == item[key]));
                match existing {
                    Some(existing) => strategic_merge(existing, item),
                    None => base.push(item.clone()),
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

#[test]
fn deploy_tls_overlay_mounts_the_secret_leanserve_loads() {
    let overlay = k8s_dir().join("tls");
    let kustomization = &yaml_documents(&overlay.join("kustomization.yaml"))[0];
    assert_eq!(
        kustomization["resources"],
        serde_json::json!(["../"]),
        "deploy/k8s/tls/kustomization.yaml: the base is its one resource"
    );
    let patches = kustomization["patches"].as_array().unwrap();
    assert_eq!(patches.len(), 1);
    let patch_file = patches[0]["path"].as_str().unwrap();
    let patch = &yaml_documents(&overlay.join(patch_file))[0];
    let manifests = manifests();
    let base = one_of(&manifests, "Deployment");
    assert_eq!(
        (&patch["kind"], &patch["metadata"]["name"]),
        (&base.doc["kind"], &base.doc["metadata"]["name"]),
        "deploy/k8s/tls/{patch_file}: patches the base's Deployment"
    );
    let mut merged = base.doc.clone();
    strategic_merge(&mut merged, patch);
    let deployment = Manifest {
        file: format!("tls/{patch_file} over {}", base.file),
        doc: merged,
    };
    let container = container_pointer(&deployment);

    // The certificate and key are files of a kubernetes.io/tls Secret's volume.
    let env = deployment_env(&deployment);
    let literal = |name: &str| match env.get(name) {
        Some(EnvValue::Literal(value)) => value.clone(),
        other => panic!("{}: env {name} is {other:?}", deployment.what()),
    };
    let (cert, key) = (literal("LEANSERVE_TLS_CERT"), literal("LEANSERVE_TLS_KEY"));
    let mounts = deployment.at(&format!("{container}/volumeMounts"));
    let mount = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| cert.starts_with(m["mountPath"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{}: {cert} is under no volume mount", deployment.what()));
    let mount_path = mount["mountPath"].as_str().unwrap();
    assert_eq!(cert, format!("{mount_path}/tls.crt"));
    assert_eq!(key, format!("{mount_path}/tls.key"));
    let volume = deployment
        .at(&format!("{POD}/volumes"))
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("{}: no volume {}", deployment.what(), mount["name"]));
    assert!(
        volume.pointer("/secret/secretName").is_some(),
        "{}: the certificate's volume is no Secret",
        deployment.what()
    );
    // The container's user reads the files: Secret files belong to root, so the mode
    // must let the fsGroup read them.
    let mode = volume
        .pointer("/secret/defaultMode")
        .and_then(Value::as_u64);
    let user = deployment.u64(&format!("{POD}/securityContext/runAsUser"));
    let group = deployment
        .doc
        .pointer(&format!("{POD}/securityContext/fsGroup"));
    let readable = match (mode, group) {
        (None, _) => true,
        (Some(mode), _) if mode & 0o004 != 0 => true,
        (Some(mode), Some(_)) => mode & 0o040 != 0,
        (Some(_), None) => user == 0,
    };
    assert!(
        readable,
        "{}: user {user} cannot read the Secret's files (mode {mode:?})",
        deployment.what()
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            deployment.str(&format!("{container}/{probe}/httpGet/scheme")),
            "HTTPS",
            "{}: {probe} would speak cleartext to the TLS port",
            deployment.what()
        );
    }

    // leanserve starts with that environment and those files: a certificate and key in
    // a folder standing in for the mount.
    let secret = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["leanserve".into()])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    std::fs::write(secret.path().join("tls.crt"), certificate.pem()).unwrap();
    std::fs::write(secret.path().join("tls.key"), pair.serialize_pem()).unwrap();
    let site = util::site();
    let mut env = container_env(&deployment, &dockerfile());
    for var in ["LEANSERVE_TLS_CERT", "LEANSERVE_TLS_KEY"] {
        let path = env[var].replacen(mount_path, &secret.path().display().to_string(), 1);
        env.insert(var.into(), path);
    }
    env.insert(
        "STATIC_FILE_ROOT_DIR".into(),
        site.path().display().to_string(),
    );
    let config = Config::load(
        &LoadOptions::default()
            .config_dir(util::config_dir())
            .env(env),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{}: leanserve would refuse to start: {e}",
            deployment.what()
        )
    });
    let files = config
        .opts
        .server
        .tls
        .as_ref()
        .expect("TLS on the serving listener");
    leanserve::Certificates::load(files, ("server.tls_cert", "server.tls_key"))
        .unwrap_or_else(|e| panic!("{}: {e}", deployment.what()));
}
