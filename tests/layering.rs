//! The crate's modules form layers: no module imports one that imports it back,
//! directly or round a longer loop (a parent and its own submodules aside). Read
//! from the source, so a new `use crate::…` that closes a loop fails here with the
//! loop named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`sfu::shard::route`) → the modules its code names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    let mut modules: BTreeMap<String, String> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().with_extension("");
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| p != "mod" && p != "lib" && p != "main")
            .collect();
        if parts.first().is_some_and(|p| p == "bin") {
            continue;
        }
        // Code only: comments and the tests at the bottom do not count.
        let text = std::fs::read_to_string(f).unwrap();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        modules.insert(parts.join("::"), code);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|c| names.contains(c))
    };
    let mut g = BTreeMap::new();
    for (m, code) in &modules {
        let parent = m.rsplit_once("::").map_or("", |(p, _)| p);
        let mut deps = BTreeSet::new();
        for (prefix, base) in [("crate::", String::new()), ("super::", parent.to_string())] {
            for (i, _) in code.match_indices(prefix) {
                let rest: String = code[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let full = match base.as_str() {
                    "" => rest,
                    b => format!("{b}::{rest}"),
                };
                if let Some(d) = resolve(full.trim_end_matches(':')) {
                    let related = d == *m
                        || d.starts_with(&format!("{m}::"))
                        || m.starts_with(&format!("{d}::"));
                    if !related {
                        deps.insert(d);
                    }
                }
            }
        }
        g.insert(m.clone(), deps);
    }
    g
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A loop through `start`, if there is one.
fn find_loop(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in g.get(last).into_iter().flatten() {
            if next == start {
                let mut found = path.clone();
                found.push(start.to_string());
                return Some(found);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let g = graph();
    assert!(
        g.len() > 20,
        "the crate's modules were found: {:?}",
        g.keys()
    );
    assert!(
        g["sfu::worker"].contains("sfu::shard"),
        "imports are read: {:?}",
        g["sfu::worker"]
    );
    let loops: Vec<String> = g
        .keys()
        .filter_map(|m| find_loop(&g, m))
        .map(|l| l.join(" -> "))
        .collect();
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}
