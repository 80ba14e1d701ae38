//! The edge is a stack: `http/` → domain (`auth/`, `events`, `cache_client`, `rate_limit/`,
//! `state`, `page`) → infra (shared crates). This test reads the sources and fails when a module
//! outside `http/` reaches into `http/`, or when two modules import each other — the shape
//! `docs/architecture.md` ("Edge layers") promises.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`http::extract::auth`) of every source file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path
                    .strip_prefix(src)
                    .expect("under src")
                    .with_extension("");
                let mut parts: Vec<String> = relative
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                found.insert(parts.join("::"), path);
            }
        }
    }
    found
}

/// The modules a file refers to through `crate::` or `super::` paths (test modules excluded).
fn references(module: &str, source: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let code: String = source
        .split("#[cfg(test)]")
        .next()
        .unwrap_or(source)
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let code = code.as_str();
    let own: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
    let mut out = BTreeSet::new();
    for (at, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let start_of_word = at == 0 || !code.as_bytes()[at - 1].is_ascii_alphanumeric();
        if !start_of_word || code[..at].ends_with('_') {
            continue;
        }
        let rest = &code[at..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Vec<&str> = if segments.first() == Some(&"crate") {
            segments.remove(0);
            Vec::new()
        } else {
            // `super` is relative to the module's parent; a `mod.rs` is its own directory.
            let mut base = own.clone();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
            base
        };
        base.extend(segments);
        // The longest prefix that names a module is the one referred to.
        while !base.is_empty() && !known.contains_key(&base.join("::")) {
            base.pop();
        }
        let target = base.join("::");
        if !target.is_empty() && target != module {
            out.insert(target);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    known
        .iter()
        .map(|(module, path)| {
            let source = std::fs::read_to_string(path).expect("read source");
            (module.clone(), references(module, &source, &known))
        })
        .collect()
}

#[test]
fn nothing_outside_http_imports_http() {
    let graph = graph();
    assert!(
        graph.contains_key("http::error"),
        "module scan found {graph:?}"
    );
    let offenders: Vec<String> = graph
        .iter()
        .filter(|(module, _)| {
            !module.is_empty() && !module.starts_with("http") && *module != "main"
        })
        .flat_map(|(module, targets)| {
            targets
                .iter()
                .filter(|t| t.starts_with("http"))
                .map(move |t| format!("{module} → {t}"))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "lower layers import http/: {offenders:#?}"
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = graph();
    let mut cycles = Vec::new();
    for (module, targets) in &graph {
        for target in targets {
            // A parent module declaring its children (`pub mod x;`) is not an import.
            let child_of = |parent: &str, child: &str| {
                parent.is_empty() || child.starts_with(&format!("{parent}::"))
            };
            if module < target
                && graph.get(target).is_some_and(|back| back.contains(module))
                && !child_of(module, target)
                && !child_of(target, module)
            {
                cycles.push(format!("{module} ↔ {target}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules importing each other: {cycles:#?}"
    );
}
