//! The engine's module graph is one-way (issue 17, item 3): `reconciler/src/lib.rs` lists its
//! top-level modules in dependency order, and a module refers (`crate::name`) only to modules
//! listed above it — so there is no cycle. Test code (`tests.rs`, everything after a
//! `#[cfg(test)]`) and comments are not counted. Also: `platform/` (the real clients) imports
//! nothing from `emulate/`, and only the clock reads the system time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests report failures by panicking.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reconciler/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of a file that are code outside tests, with their numbers.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    if path.file_name().is_some_and(|n| n == "tests.rs" || n == "testutil.rs") {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

/// `crate::name` references in `line`.
fn crate_refs(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        // `reconciler::crate::` cannot occur; `$crate::` in macros is not a module of ours.
        if !rest[..i].ends_with('$') && !name.is_empty() {
            out.push(name);
        }
        rest = after;
    }
    out
}

/// The top-level modules in the order lib.rs declares them.
fn declared_order() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_string)
        })
        .filter(|m| m != "testutil")
        .collect()
}

#[test]
fn modules_use_only_modules_listed_above_them_in_lib_rs() {
    let order = declared_order();
    assert!(order.len() > 20, "lib.rs declares {order:?}");
    let rank: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src()).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "testutil" {
            continue;
        }
        let Some(&mine) = rank.get(top.as_str()) else { panic!("{} is not declared in lib.rs", rel.display()) };
        for (n, line) in code_lines(file) {
            for used in crate_refs(&line) {
                let Some(&theirs) = rank.get(used.as_str()) else { continue };
                if used == top {
                    continue;
                }
                edges.entry(top.clone()).or_default().insert(used.clone());
                if theirs > mine {
                    violations
                        .push(format!("{}:{n}: `{top}` uses `{used}`, which lib.rs lists after it", rel.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "the module graph is not one-way:\n{}", violations.join("\n"));
    // The graph is real: the layers that must use each other do.
    assert!(edges["ops"].contains("plan") && edges["plan"].contains("model") && edges["model"].contains("vocab"));
    assert!(edges.get("vocab").is_none_or(|e| e.is_empty()), "vocab is a leaf: {:?}", edges.get("vocab"));
}

#[test]
fn the_platform_clients_import_nothing_from_the_emulators() {
    let mut files = Vec::new();
    rust_files(&src().join("platform"), &mut files);
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| {
            code_lines(f)
                .into_iter()
                .filter(|(_, l)| crate_refs(l).iter().any(|m| m == "emulate"))
                .map(move |(n, l)| format!("{}:{n}: {}", f.display(), l.trim()))
        })
        .collect();
    assert!(found.is_empty(), "platform/ uses emulate/:\n{}", found.join("\n"));
}

#[test]
fn only_the_clock_reads_the_system_time() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let found: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("reconciler/src/clock.rs"))
        .flat_map(|f| {
            code_lines(f)
                .into_iter()
                .filter(|(_, l)| l.contains("Utc::now()") || l.contains("SystemTime::now()"))
                .map(move |(n, l)| format!("{}:{n}: {}", f.display(), l.trim()))
        })
        .collect();
    assert!(found.is_empty(), "the system time is read outside the clock:\n{}", found.join("\n"));
}
