//! Keeps deploy/ in step with the binaries and the schema.
// A malformed manifest should fail the test where it is found.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn files_under(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, ext, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ext.contains(&e))
        {
            out.push(path);
        }
    }
    out.sort();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// What the binaries read

/// Every quoted string that directly follows one of `markers`.
fn quoted_after(text: &str, markers: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for marker in markers {
        let mut rest = text;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_owned());
            }
        }
    }
    found
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The environment variables the sources under `dirs` read: clap
/// `env = "NAME"` attributes, `..: &str = "NAME"` constants and the string
/// given to the configuration helpers (`var`, `parsed`, `path`, ...).
fn env_names_read(dirs: &[&str]) -> BTreeSet<String> {
    let mut sources = Vec::new();
    for dir in dirs {
        files_under(&root().join(dir), &["rs"], &mut sources);
    }
    let markers = [
        "env = \"",
        ": &str = \"",
        "var(\"",
        "non_empty_env(\"",
        "parsed(\"",
        "path(\"",
        "required(\"",
    ];
    sources
        .iter()
        .flat_map(|file| quoted_after(&read(file), &markers))
        .filter(|name| is_env_name(name))
        .collect()
}

/// The binary an image runs, and the sources that make up what it reads.
fn binary_of_image(image: &str) -> Option<(&'static str, Vec<&'static str>)> {
    let name = image.rsplit('/').next()?.split(':').next()?;
    let shared = ["shared/server/src", "shared/telemetry/src"];
    let service = |bin, dir| {
        let mut dirs = vec![dir];
        dirs.extend(shared);
        Some((bin, dirs))
    };
    match name {
        "adscope-analytics" => service("adscope-analytics", "services/analytics/src"),
        "adscope-integrations" => service("adscope-integrations", "services/integrations/src"),
        "adscope-health" => service("adscope-health", "services/health/src"),
        "adscope-migrate" => Some(("adscope", vec!["services/cli/src"])),
        _ => None,
    }
}

#[test]
fn the_source_scan_finds_the_settings_the_readme_documents() {
    let analytics = env_names_read(&binary_of_image("adscope-analytics").unwrap().1);
    for name in [
        "ADSCOPE_LISTEN_ADDR",
        "DATABASE_URL",
        "ADSCOPE_JWT_PUBLIC_KEYS",
        "ADSCOPE_JWT_HS256_SECRET",
        "ADSCOPE_HEALTH_INTERVAL_SECS",
        "ADSCOPE_SNAPSHOT_TTL_SECS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "RUST_LOG",
    ] {
        assert!(
            analytics.contains(name),
            "{name} not found in {analytics:?}"
        );
    }
    assert!(
        !analytics.contains("ADSCOPE_WEBHOOK_SECRET"),
        "integrations' settings are not analytics'"
    );
    let integrations = env_names_read(&binary_of_image("adscope-integrations").unwrap().1);
    assert!(integrations.contains("ADSCOPE_WEBHOOK_SECRET"));
    assert!(integrations.contains("ADSCOPE_KMS_KEY_FILE"));
}

// ---------------------------------------------------------------------------
// The manifests

/// Every YAML document under deploy/k8s, with the file it came from.
fn documents() -> Vec<(PathBuf, Yaml)> {
    let mut files = Vec::new();
    files_under(&root().join("deploy/k8s"), &["yaml", "yml"], &mut files);
    assert!(!files.is_empty(), "no manifests under deploy/k8s");
    let mut docs = Vec::new();
    for file in files {
        let parsed = YamlLoader::load_from_str(&read(&file))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        docs.extend(
            parsed
                .into_iter()
                .filter(|d| !d.is_null())
                .map(|d| (file.clone(), d)),
        );
    }
    docs
}

fn kind(doc: &Yaml) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name(doc: &Yaml) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn items(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// A scalar as text (ports and flags may be written as numbers or strings).
fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The keys and values of ConfigMaps or Secrets, by name.
fn key_values(
    docs: &[(PathBuf, Yaml)],
    of_kind: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (_, doc) in docs.iter().filter(|(_, d)| kind(d) == of_kind) {
        let mut keys = BTreeMap::new();
        for section in ["data", "stringData"] {
            if let Some(hash) = doc[section].as_hash() {
                for (k, v) in hash {
                    keys.insert(k.as_str().unwrap().to_owned(), text(v).unwrap_or_default());
                }
            }
        }
        out.insert(name(doc).to_owned(), keys);
    }
    out
}

/// One container of a Deployment or Job, with what it is given.
struct Workload<'a> {
    kind: String,
    name: String,
    pod: &'a Yaml,
    labels: &'a Yaml,
    replicas: Option<i64>,
    container: &'a Yaml,
    /// Each variable and, when known, its value.
    env: BTreeMap<String, Option<String>>,
}

fn workloads(docs: &[(PathBuf, Yaml)]) -> Vec<Workload<'_>> {
    let config_maps = key_values(docs, "ConfigMap");
    let secrets = key_values(docs, "Secret");
    let mut out = Vec::new();
    for (file, doc) in docs {
        if !matches!(kind(doc), "Deployment" | "Job") {
            continue;
        }
        let template = &doc["spec"]["template"];
        let pod = &template["spec"];
        for container in items(&pod["containers"]) {
            let mut env = BTreeMap::new();
            for from in items(&container["envFrom"]) {
                // Secret values are placeholders: only ConfigMap values count.
                let is_config = from["configMapRef"].is_hash();
                let (source, object) = if is_config {
                    (&config_maps, &from["configMapRef"])
                } else {
                    (&secrets, &from["secretRef"])
                };
                let object = object["name"].as_str().unwrap();
                let keys = source.get(object).unwrap_or_else(|| {
                    panic!(
                        "{}: envFrom names {object}, which no manifest defines",
                        file.display()
                    )
                });
                env.extend(
                    keys.iter()
                        .map(|(k, v)| (k.clone(), is_config.then(|| v.clone()))),
                );
            }
            for var in items(&container["env"]) {
                let var_name = var["name"].as_str().unwrap().to_owned();
                let value = if let Some(v) = text(&var["value"]) {
                    Some(v)
                } else if var["valueFrom"]["configMapKeyRef"].is_hash() {
                    let r = &var["valueFrom"]["configMapKeyRef"];
                    let map = config_maps.get(r["name"].as_str().unwrap());
                    let value = map.and_then(|m| m.get(r["key"].as_str().unwrap()));
                    assert!(
                        value.is_some(),
                        "{}: {var_name} refers to a missing key",
                        file.display()
                    );
                    value.cloned()
                } else {
                    let r = &var["valueFrom"]["secretKeyRef"];
                    let optional = r["optional"].as_bool().unwrap_or(false);
                    let secret = secrets.get(r["name"].as_str().unwrap());
                    let present =
                        secret.is_some_and(|s| s.contains_key(r["key"].as_str().unwrap()));
                    assert!(
                        optional || present,
                        "{}: {var_name} refers to a missing Secret key",
                        file.display()
                    );
                    None
                };
                env.insert(var_name, value);
            }
            out.push(Workload {
                kind: kind(doc).to_owned(),
                name: name(doc).to_owned(),
                pod,
                labels: &template["metadata"]["labels"],
                replicas: doc["spec"]["replicas"].as_i64(),
                container,
                env,
            });
        }
    }
    out
}

fn image<'a>(w: &Workload<'a>) -> &'a str {
    w.container["image"].as_str().unwrap_or("")
}

/// The adscope service Deployments, by binary.
fn service_deployments<'a>(
    workloads: &'a [Workload<'a>],
) -> BTreeMap<&'static str, &'a Workload<'a>> {
    workloads
        .iter()
        .filter(|w| w.kind == "Deployment")
        .filter_map(|w| binary_of_image(image(w)).map(|(bin, _)| (bin, w)))
        .collect()
}

fn port_of_addr(addr: &str) -> i64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn every_service_has_grpc_probes_on_the_port_it_listens_on() {
    let docs = documents();
    let workloads = workloads(&docs);
    let services = service_deployments(&workloads);
    assert_eq!(
        services.keys().copied().collect::<Vec<_>>(),
        [
            "adscope-analytics",
            "adscope-health",
            "adscope-integrations"
        ],
        "one Deployment per service binary"
    );
    for (bin, w) in services {
        let addr = w.env["ADSCOPE_LISTEN_ADDR"]
            .clone()
            .unwrap_or_else(|| panic!("{bin}: ADSCOPE_LISTEN_ADDR has no visible value"));
        assert!(
            addr.starts_with("0.0.0.0:"),
            "{bin} must listen on every interface, not {addr}"
        );
        let port = port_of_addr(&addr);
        let container_ports: Vec<i64> = items(&w.container["ports"])
            .iter()
            .filter_map(|p| p["containerPort"].as_i64())
            .collect();
        assert_eq!(
            container_ports,
            [port],
            "{bin}: the container port is the listen port"
        );

        let readiness = &w.container["readinessProbe"]["grpc"];
        let liveness = &w.container["livenessProbe"]["grpc"];
        assert_eq!(
            readiness["port"].as_i64(),
            Some(port),
            "{bin}: readiness grpc port"
        );
        assert_eq!(
            liveness["port"].as_i64(),
            Some(port),
            "{bin}: liveness grpc port"
        );
        assert_eq!(
            readiness["service"].as_str(),
            Some(""),
            "{bin}: readiness asks for the whole server's status"
        );
        assert_eq!(
            liveness["service"].as_str(),
            Some(adscope_server::health::LIVENESS),
            "{bin}: liveness asks for the process's own status, not its dependencies'"
        );
        assert!(w.replicas.unwrap_or(1) >= 2, "{bin}: at least two replicas");
        for bound in ["requests", "limits"] {
            let r = &w.container["resources"][bound];
            assert!(
                !r["cpu"].is_badvalue() && !r["memory"].is_badvalue(),
                "{bin}: {bound}"
            );
        }

        // A Service in front of it, on the same port, selecting its pods.
        let service = docs
            .iter()
            .map(|(_, d)| d)
            .find(|d| kind(d) == "Service" && name(d) == w.name)
            .unwrap_or_else(|| panic!("{bin}: no Service named {}", w.name));
        let selector = service["spec"]["selector"].as_hash().unwrap();
        for (k, v) in selector {
            assert_eq!(
                &w.labels[k.as_str().unwrap()],
                v,
                "{bin}: the Service selects its pods"
            );
        }
        let service_port = &items(&service["spec"]["ports"])[0];
        assert_eq!(
            service_port["port"].as_i64(),
            Some(port),
            "{bin}: Service port"
        );
    }
}

#[test]
fn every_workload_runs_as_non_root_with_a_read_only_root() {
    let docs = documents();
    let workloads = workloads(&docs);
    assert!(
        workloads.len() >= 5,
        "the three services, the migration and the collector"
    );
    for w in &workloads {
        let who = format!("{} {}", w.kind, w.name);
        let pod = &w.pod["securityContext"];
        let own = &w.container["securityContext"];
        let non_root = own["runAsNonRoot"]
            .as_bool()
            .or(pod["runAsNonRoot"].as_bool());
        assert_eq!(non_root, Some(true), "{who}: runAsNonRoot");
        let uid = own["runAsUser"].as_i64().or(pod["runAsUser"].as_i64());
        assert_ne!(uid, Some(0), "{who}: not uid 0");
        assert_eq!(own["readOnlyRootFilesystem"].as_bool(), Some(true), "{who}");
        assert_eq!(
            own["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{who}"
        );
    }
}

#[test]
fn every_variable_set_is_one_the_binary_reads() {
    let docs = documents();
    let workloads = workloads(&docs);
    let mut checked = 0;
    for w in &workloads {
        let Some((bin, sources)) = binary_of_image(image(w)) else {
            continue;
        };
        let reads = env_names_read(&sources);
        assert!(
            reads.contains("DATABASE_URL"),
            "the scan of {bin} found nothing"
        );
        let unknown: Vec<_> = w.env.keys().filter(|n| !reads.contains(*n)).collect();
        assert!(
            unknown.is_empty(),
            "{} sets {unknown:?}, which {bin} never reads",
            w.name
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "three services and the migration Job");
}

#[test]
fn every_service_gets_its_required_settings_and_mounted_files() {
    let docs = documents();
    let workloads = workloads(&docs);
    let collector_ports: Vec<(String, i64)> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| kind(d) == "Service")
        .flat_map(|d| {
            items(&d["spec"]["ports"])
                .iter()
                .filter_map(|p| p["port"].as_i64())
                .map(|p| (name(d).to_owned(), p))
                .collect::<Vec<_>>()
        })
        .collect();
    for (bin, w) in service_deployments(&workloads) {
        assert!(w.env.contains_key("DATABASE_URL"), "{bin}: DATABASE_URL");
        let jwt = ["ADSCOPE_JWT_HS256_SECRET", "ADSCOPE_JWT_PUBLIC_KEYS"]
            .iter()
            .filter(|n| w.env.contains_key(**n))
            .count();
        assert_eq!(jwt, 1, "{bin}: exactly one of the JWT settings");

        // A file setting points into a mounted Secret volume.
        let mounts = items(&w.container["volumeMounts"]);
        let volumes = items(&w.pod["volumes"]);
        for setting in ["ADSCOPE_JWT_PUBLIC_KEYS", "ADSCOPE_KMS_KEY_FILE"] {
            let Some(value) = w.env.get(setting) else {
                continue;
            };
            let path = value.clone().expect("a file path is not secret");
            let mount = mounts
                .iter()
                .find(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
                .unwrap_or_else(|| panic!("{bin}: nothing mounted at {setting}={path}"));
            let volume = volumes
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap_or_else(|| panic!("{bin}: {setting}'s volume is not defined"));
            assert!(
                volume["secret"].is_hash(),
                "{bin}: {setting} comes from a Secret"
            );
        }

        // Traces go to the collector's OTLP/gRPC port.
        let endpoint = w.env["OTEL_EXPORTER_OTLP_ENDPOINT"].clone().unwrap();
        let host_port = endpoint.split("://").nth(1).unwrap();
        let service = host_port.split(['.', ':']).next().unwrap();
        let port = port_of_addr(host_port);
        assert!(
            collector_ports.contains(&(service.to_owned(), port)) && port == 4317,
            "{bin}: {endpoint} is not the collector's OTLP/gRPC Service"
        );
    }
    assert!(
        workloads.iter().any(|w| w.name == "otel-collector"),
        "the OpenTelemetry Collector is deployed"
    );
}

#[test]
fn the_migration_job_runs_adscope_migrate_with_an_admin_url() {
    let docs = documents();
    let workloads = workloads(&docs);
    let jobs: Vec<_> = workloads.iter().filter(|w| w.kind == "Job").collect();
    assert_eq!(jobs.len(), 1, "one migration Job");
    let job = jobs[0];
    let argv: Vec<String> = items(&job.container["command"])
        .iter()
        .chain(items(&job.container["args"]))
        .filter_map(text)
        .collect();
    assert_eq!(argv.len(), 2, "{argv:?}");
    assert_eq!(argv[0].rsplit('/').next(), Some("adscope"), "{argv:?}");
    assert_eq!(argv[1], "migrate");
    assert!(job.env.contains_key("DATABASE_URL"));
    assert_eq!(binary_of_image(image(job)).map(|b| b.0), Some("adscope"));
}

#[test]
fn network_policies_admit_only_the_expected_callers() {
    let docs = documents();
    let policies: BTreeMap<String, &Yaml> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| kind(d) == "NetworkPolicy")
        .filter_map(|d| {
            let component =
                d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"].as_str()?;
            Some((component.to_owned(), d))
        })
        .collect();
    assert!(
        docs.iter().any(|(_, d)| kind(d) == "NetworkPolicy"
            && d["spec"]["podSelector"]
                .as_hash()
                .is_some_and(|h| h.is_empty())
            && d["spec"]["ingress"].is_badvalue()),
        "a default-deny ingress policy"
    );
    let expected: [(&str, &[&str]); 3] = [
        ("analytics", &["frontend", "health", "integrations"]),
        ("integrations", &["frontend", "health", "namespace:airbyte"]),
        ("health", &["frontend", "health"]),
    ];
    for (component, callers) in expected {
        let policy = policies
            .get(component)
            .unwrap_or_else(|| panic!("no NetworkPolicy for {component}"));
        let mut admitted = BTreeSet::new();
        for rule in items(&policy["spec"]["ingress"]) {
            for from in items(&rule["from"]) {
                if let Some(c) =
                    from["podSelector"]["matchLabels"]["app.kubernetes.io/component"].as_str()
                {
                    assert!(
                        from["namespaceSelector"].is_badvalue(),
                        "{component}: same namespace"
                    );
                    admitted.insert(c.to_owned());
                } else {
                    let ns =
                        from["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                            .as_str()
                            .unwrap_or_else(|| panic!("{component}: an unexpected ingress source"));
                    admitted.insert(format!("namespace:{ns}"));
                }
            }
        }
        let callers: BTreeSet<String> = callers.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(admitted, callers, "{component}: who may call it");
    }
}

// ---------------------------------------------------------------------------
// The Dockerfile

#[test]
fn the_dockerfile_builds_health_apart_and_has_a_target_per_binary() {
    let dockerfile = read(&root().join("deploy/Dockerfile"));
    let joined = dockerfile.replace("\\\n", " ");
    let invocations: Vec<&str> = joined
        .lines()
        .filter(|l| l.trim_start().starts_with("RUN"))
        .flat_map(|l| l.split("&&"))
        .filter(|c| c.contains("cargo build"))
        .collect();
    let built = |pkg: &str| {
        let flag = format!("-p {pkg} ");
        invocations
            .iter()
            .filter(|c| format!("{c} ").contains(&flag))
            .collect::<Vec<_>>()
    };
    let health = built("adscope-health");
    assert_eq!(health.len(), 1, "health is built once: {invocations:?}");
    for other in ["adscope-analytics", "adscope-integrations", "adscope-cli"] {
        assert_eq!(built(other).len(), 1, "{other} is built once");
        assert!(
            !health[0].contains(&format!("-p {other}")),
            "health's fleet feature must not unify into {other}: {}",
            health[0]
        );
    }
    assert!(invocations.iter().all(|c| c.contains("--locked")));

    // Each target: its own stage, unprivileged, on the port the manifests use.
    let stages: BTreeMap<String, String> = dockerfile
        .split("\nFROM ")
        .skip(1)
        .filter_map(|stage| {
            let header = stage.lines().next()?;
            let name = header.split(" AS ").nth(1)?.trim().to_owned();
            Some((name, stage.to_owned()))
        })
        .collect();
    for (target, port) in [
        ("analytics", Some(50051)),
        ("integrations", Some(50052)),
        ("health", Some(50053)),
        ("migrate", None),
    ] {
        let stage = stages
            .get(target)
            .unwrap_or_else(|| panic!("no `{target}` target"));
        assert!(stage.contains("\nUSER 10001"), "{target} runs as uid 10001");
        assert!(
            stage.contains("\nENTRYPOINT ["),
            "{target} has an entrypoint"
        );
        if let Some(port) = port {
            assert!(
                stage.contains(&format!("\nEXPOSE {port}")),
                "{target} exposes {port}"
            );
            let listen = format!("ADSCOPE_LISTEN_ADDR=0.0.0.0:{port}");
            assert!(stage.contains(&listen), "{target} listens on {port}");
        }
    }
}

// ---------------------------------------------------------------------------
// Citus

/// Each `CREATE TABLE name (...)` of the migrations, with its body.
fn tables() -> Vec<(String, String)> {
    let mut files = Vec::new();
    files_under(&root().join("shared/db/migrations"), &["sql"], &mut files);
    let mut out = Vec::new();
    for file in files {
        let sql = read(&file);
        let mut rest = sql.as_str();
        while let Some(at) = rest.find("CREATE TABLE ") {
            rest = &rest[at + "CREATE TABLE ".len()..];
            let open = rest.find('(').unwrap();
            let table = rest[..open]
                .trim()
                .trim_start_matches("IF NOT EXISTS ")
                .trim();
            // The body ends at the parenthesis that closes the opening one.
            let mut depth = 0;
            let mut end = open;
            for (i, c) in rest[open..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = open + i;
                    break;
                }
            }
            out.push((table.to_owned(), rest[open + 1..end].to_owned()));
            rest = &rest[end..];
        }
    }
    out
}

fn has_tenant_column(body: &str) -> bool {
    body.lines()
        .any(|l| l.split_whitespace().next() == Some("tenant_id"))
}

#[test]
fn every_tenant_owned_table_is_keyed_and_distributed_on_tenant_id() {
    let tables = tables();
    let owned: Vec<&(String, String)> = tables
        .iter()
        .filter(|(_, b)| has_tenant_column(b))
        .collect();
    let names: BTreeSet<&str> = owned.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["campaigns", "ad_sets", "ads", "connections"] {
        assert!(names.contains(expected), "the scan found {names:?}");
    }
    assert!(
        tables
            .iter()
            .any(|(n, b)| n == "tenants" && !has_tenant_column(b))
    );

    let distribute = read(&root().join("deploy/citus/distribute.sql"));
    assert!(distribute.contains("create_reference_table('tenants')"));
    // The README's copy of the statements, for a reader, must not drift.
    let readme = read(&root().join("deploy/README.md"));
    for (table, _) in &owned {
        let call = format!("create_distributed_table('{table}', 'tenant_id'");
        assert!(readme.contains(&call), "deploy/README.md lacks {call})");
    }
    assert_eq!(
        readme.matches("create_distributed_table('").count(),
        owned.len(),
        "deploy/README.md distributes a table the migrations do not create"
    );
    for (table, body) in &owned {
        let key = body
            .split("PRIMARY KEY (")
            .nth(1)
            .unwrap_or_else(|| panic!("{table} has no table-level primary key"));
        assert!(
            key.trim_start().starts_with("tenant_id"),
            "{table}'s primary key starts with tenant_id"
        );
        let call = format!("create_distributed_table('{table}', 'tenant_id'");
        assert!(
            distribute.contains(&call),
            "deploy/citus/distribute.sql lacks {call})"
        );
    }
    // And nothing there names a table the migrations no longer create.
    for call in distribute.split("create_distributed_table('").skip(1) {
        let table = call.split('\'').next().unwrap();
        assert!(
            names.contains(table),
            "distribute.sql names unknown table {table}"
        );
    }
}
