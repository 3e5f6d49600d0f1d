//! The layering of ARCHITECTURE.md, checked on the source: a module
//! imports only modules below it, so there are no cycles and no stage
//! reaches up into the run layer. A small scan of `crate::` paths is
//! enough; only items marked `#[cfg(test)]` are left out, so production
//! code after a test module is scanned too.

use std::collections::BTreeSet;
use std::path::Path;

use crate::harness::repo;

/// Every top-level module, lowest first. A module may import only the
/// modules before it. Keep in step with ARCHITECTURE.md's "Layering".
const ORDER: &[&str] = &[
    // Foundations: pure descriptions and the state database.
    "clock",
    "keyfile",
    "period",
    "privacy",
    "templates",
    "store",
    "job",
    "model",
    "config",
    // Stages: data in, data out.
    "ingest",
    "checks",
    "sampling",
    "report",
    // Services that read and write files around a run.
    "synth",
    "archive",
    "inbox",
    "inputs",
    "schedule",
    "mail",
    "worksheet",
    "evidence",
    "followup",
    "receipt",
    "status",
    // The run layer and what drives it.
    "run",
    "verify",
    "daemon",
    "cli",
];

/// The `crate::x` modules `text` names (`crate::x::…` and `use crate::{x, …}`).
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_import_only_modules_below_them() {
    let src = repo().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if matches!(module.as_str(), "main" | "lib") {
            continue;
        }
        let Some(rank) = ORDER.iter().position(|m| *m == module) else {
            problems.push(format!(
                "src/{}: module {module} is not placed in the layering (tests/cli/layering.rs and ARCHITECTURE.md)",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for used in imports(&production_code(&text)) {
            if used == module {
                continue;
            }
            match ORDER.iter().position(|m| *m == used) {
                Some(r) if r < rank => {}
                Some(_) => problems.push(format!(
                    "src/{} imports crate::{used}, which is not below {module} in the layering",
                    rel.display()
                )),
                None => problems.push(format!(
                    "src/{} imports crate::{used}, which is not a module of the layering",
                    rel.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The scan sees both forms of a path, so the test above can fail.
#[test]
fn the_scan_sees_grouped_and_plain_paths() {
    let found =
        imports("use crate::{config::Config, run};\nlet x = crate::mail::outbox::stamp(now);");
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["config", "mail", "run"]
    );
}

/// `text` without its `#[cfg(test)]` items (a test module, inline or
/// declared, or a test-only function): what ships.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let (semi, brace) = (item.find(';'), item.find('{'));
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (Some(s), None) => s + 1,
            (_, Some(b)) => {
                let mut depth = 0;
                let mut end = item.len();
                for (i, c) in item[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        end = b + i + 1;
                        break;
                    }
                }
                end
            }
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn production_code_keeps_what_follows_a_test_module() {
    let text = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::z;\n    fn f() { if x { y } }\n}\nuse crate::b;\n#[cfg(test)]\nmod more;\nuse crate::c;\n";
    let kept = production_code(text);
    assert!(
        kept.contains("crate::a") && kept.contains("crate::b") && kept.contains("crate::c"),
        "{kept}"
    );
    assert!(!kept.contains("crate::z"), "{kept}");
}
