//! The crate graph and the purity of the math crates, checked mechanically.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::workspace;

/// The Veil crates each crate may depend on (normal dependencies; dev-dependencies on
/// `veil-testkit` are always allowed). A crate missing here is a new crate: add it with
/// its reason in ARCHITECTURE.md.
const ALLOWED: &[(&str, &[&str])] = &[
    ("veil-core", &[]),
    ("veil-testkit", &[]),
    ("veil-accountant", &["veil-core"]),
    ("veil-ledger", &["veil-core", "veil-accountant"]),
    ("veil-ldp", &["veil-core"]),
    // A build check that veil-ldp's client part links without `std` (see its crate doc).
    ("veil-ldp-nostd", &["veil-ldp"]),
    // The browser client: veil-ldp in WebAssembly, randomness from the browser's crypto.
    ("veil-ldp-web", &["veil-ldp"]),
    // The LDP collector: checks reports with veil-ldp; no Polars (its segments are written
    // through a sink the CLI gives it).
    ("veil-collect", &["veil-ldp"]),
    ("veil-engine", &["veil-core", "veil-accountant"]),
    // The Spark engine: compiles the engine's scan plan to Spark SQL, no Polars of its own.
    (
        "veil-spark",
        &["veil-core", "veil-accountant", "veil-engine"],
    ),
    ("veil-report", &["veil-core", "veil-accountant"]),
    // The auditor runs mechanisms, LDP randomizers and (feature `job`) the engine's release
    // on neighbouring inputs (ARCHITECTURE.md, `crates/veil-audit`).
    ("veil-audit", &["veil-core", "veil-ldp", "veil-engine"]),
    ("veil-cli", &["*"]),
    // The Python package: the commands' library API and the engine's Arrow streams, no
    // Polars of its own (ARCHITECTURE.md, `crates/veil-py`).
    ("veil-py", &["veil-cli", "veil-engine"]),
    ("veil-bench", &["*"]),
];

/// Edges that must stay optional, behind a feature, so the crate's other parts build
/// without what the edge brings: the auditor's mechanism and LDP audits without Polars.
const OPTIONAL: &[(&str, &str)] = &[("veil-audit", "veil-engine")];

/// Crates that must stay pure: no file, network, environment or terminal access.
const PURE: &[&str] = &[
    "veil-core",
    "veil-accountant",
    "veil-ldp",
    "veil-ldp-nostd",
    "veil-report",
];

fn metadata() -> Value {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn crate_graph_follows_the_table() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let metadata = metadata();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name");
        let Some(allowed_here) = allowed.get(name) else {
            panic!(
                "{name} is not in the dependency table: add it to ARCHITECTURE.md and this test"
            );
        };
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            let dependency_name = dependency["name"].as_str().expect("dependency name");
            let kind = dependency["kind"].as_str().unwrap_or("normal");
            if dependency_name == "polars" || dependency_name.starts_with("polars-") {
                // The benchmark crate measures Veil against plain Polars baselines.
                assert!(
                    name == "veil-engine" || name == "veil-bench",
                    "only veil-engine may depend on Polars, not {name}"
                );
            }
            if OPTIONAL.contains(&(name, dependency_name)) && kind != "dev" {
                assert_eq!(
                    dependency["optional"].as_bool(),
                    Some(true),
                    "{name}'s dependency on {dependency_name} must stay optional (behind a feature)"
                );
            }
            if !dependency_name.starts_with("veil-") || kind == "dev" || allowed_here.contains(&"*")
            {
                continue;
            }
            assert!(
                allowed_here.contains(&dependency_name),
                "{name} must not depend on {dependency_name} (allowed: {allowed_here:?})"
            );
        }
    }
}

/// The files that may hold `unsafe` code, each crossing a C ABI: the Arrow C stream
/// interface in the engine, and taking a stream out of its Python capsule.
const UNSAFE_ALLOWED: &[&str] = &[
    "crates/veil-engine/src/memory/stream.rs",
    "crates/veil-py/src/lib.rs",
];

/// The crates that deny `unsafe_code` instead of forbidding it, for those files.
const UNSAFE_DENIED: &[&str] = &["veil-engine", "veil-py"];

fn lint_table(manifest: &Path) -> toml::Table {
    let text = std::fs::read_to_string(manifest).expect("readable manifest");
    let document: toml::Table = toml::from_str(&text).expect("a valid manifest");
    document
        .get("lints")
        .and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_default()
}

/// Every crate inherits the workspace's lints, except those that deny `unsafe_code`
/// instead of forbidding it; their tables are the workspace's otherwise.
#[test]
fn lints_are_the_workspaces_and_unsafe_is_denied_only_where_allowed() {
    let root = workspace();
    let text = std::fs::read_to_string(root.join("Cargo.toml")).expect("readable manifest");
    let document: toml::Table = toml::from_str(&text).expect("a valid manifest");
    let mut expected = document["workspace"]["lints"]
        .as_table()
        .expect("[workspace.lints]")
        .clone();
    expected
        .get_mut("rust")
        .and_then(toml::Value::as_table_mut)
        .expect("[workspace.lints.rust]")
        .insert("unsafe_code".into(), toml::Value::String("deny".into()));
    let metadata = metadata();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name");
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest path"));
        let lints = lint_table(&manifest);
        if UNSAFE_DENIED.contains(&name) {
            assert_eq!(
                lints, expected,
                "{name}'s [lints] must be the workspace's with unsafe_code = \"deny\""
            );
        } else {
            assert_eq!(
                lints.get("workspace").and_then(toml::Value::as_bool),
                Some(true),
                "{name} must inherit the workspace's lints ([lints] workspace = true)"
            );
        }
    }
}

/// `unsafe` appears only in the files that cross a C ABI.
#[test]
fn unsafe_code_stays_in_the_c_interfaces() {
    let root = workspace();
    for crate_name in UNSAFE_DENIED {
        let mut files = Vec::new();
        rust_files(
            &root.join("crates").join(crate_name).join("src"),
            &mut files,
        );
        for file in files {
            let relative = file
                .strip_prefix(&root)
                .expect("inside the workspace")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&file).expect("readable source file");
            if text.contains("allow(unsafe_code)")
                || text.contains("unsafe {")
                || text.contains("unsafe fn")
            {
                assert!(
                    UNSAFE_ALLOWED.contains(&relative.as_str()),
                    "{relative} holds unsafe code; only {UNSAFE_ALLOWED:?} may"
                );
            }
        }
    }
}

fn rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn math_crates_do_no_io() {
    let forbidden = [
        "std::fs",
        "std::net",
        "std::env",
        "std::io",
        "println!",
        "eprintln!",
        "print!(",
        "eprint!(",
        "SysRng",
        "thread_rng",
        "rand::rng(",
    ];
    for crate_name in PURE {
        let source = workspace().join("crates").join(crate_name).join("src");
        if !source.exists() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&source, &mut files);
        for file in files {
            // Unit tests may print and read the environment; only library code is checked.
            let is_test = file.file_name().is_some_and(|name| name == "tests.rs");
            if is_test {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("readable source file");
            let library_part = text
                .split("#[cfg(test)]\nmod tests {")
                .next()
                .unwrap_or(&text);
            for word in forbidden {
                assert!(
                    !library_part.contains(word),
                    "{} uses {word}: math crates do no I/O",
                    file.display()
                );
            }
        }
    }
}

/// A crate's modules, each with the modules of the same crate its code names (through
/// `crate::…` and `super::…` paths, comments and unit tests left out). A module naming one
/// of its own ancestors is not counted: a child may use what its parent holds.
fn module_graph(source: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(source, &mut files);
    let mut modules: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(source).expect("a file of the crate");
        let mut path: Vec<String> = relative
            .with_extension("")
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(
            path.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            path.pop();
        }
        if path.last().is_some_and(|last| last == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable source file");
        let code: String = text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or(&text)
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        modules.insert(path, code);
    }
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|length| path[..length].to_vec())
            .find(|prefix| modules.contains_key(prefix))
    };
    let mut graph = BTreeMap::new();
    for (module, code) in &modules {
        let mut named = BTreeSet::new();
        for (anchor, base) in [
            ("crate::", Vec::new()),
            ("super::", module[..module.len().saturating_sub(1)].to_vec()),
        ] {
            for (index, _) in code.match_indices(anchor) {
                let before = code[..index].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = &code[index + anchor.len()..];
                // `crate::a::{b, c::d}` names a::b and a::c::d.
                let head: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let head: Vec<String> = head
                    .split("::")
                    .filter(|part| !part.is_empty())
                    .map(str::to_string)
                    .collect();
                let mut targets = vec![head.clone()];
                if rest[head.join("::").len()..]
                    .trim_start_matches(':')
                    .starts_with('{')
                {
                    let group = rest.split_once('{').map_or("", |(_, after)| after);
                    let group = group.split_once('}').map_or(group, |(inside, _)| inside);
                    targets = group
                        .split(',')
                        .map(|item| {
                            head.iter()
                                .cloned()
                                .chain(item.trim().split("::").map(str::to_string))
                                .collect()
                        })
                        .collect();
                }
                for target in targets {
                    let full: Vec<String> = base.iter().cloned().chain(target).collect();
                    if let Some(found) = resolve(&full)
                        && found != *module
                        && !module.starts_with(&found)
                    {
                        named.insert(found);
                    }
                }
            }
        }
        graph.insert(module.clone(), named);
    }
    graph
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut cycles = Vec::new();
    for entry in std::fs::read_dir(workspace().join("crates")).expect("crates/") {
        let source = entry.expect("a crate").path().join("src");
        if !source.is_dir() {
            continue;
        }
        let graph = module_graph(&source);
        // Every module reachable from each module; a cycle is a module that reaches itself.
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&Vec<String>> = graph[start].iter().collect();
            while let Some(next) = stack.pop() {
                if next == start {
                    cycles.push(format!("{}: {}", source.display(), start.join("::")));
                    break;
                }
                if seen.insert(next.clone()) {
                    stack.extend(graph.get(next).into_iter().flatten());
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules in an import cycle (move what both use to a module of its own): {cycles:#?}"
    );
}
