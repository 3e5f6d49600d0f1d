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
    "vocab",
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

/// The longest a function of production code may be: one a reader can
/// hold. Tests (`#[cfg(test)]` items) are not counted.
const LONGEST_FUNCTION: usize = 100;

/// Every function of `text` (production code) longer than `limit` lines,
/// counted from its `fn` line to its closing brace: `(line, name, lines)`.
fn long_functions(text: &str, limit: usize) -> Vec<(usize, String, usize)> {
    // Braces inside string and char literals and comments do not count.
    let code: Vec<String> = text
        .lines()
        .map(|l| {
            let mut out = String::new();
            let mut chars = l.chars().peekable();
            let mut in_str = false;
            while let Some(c) = chars.next() {
                match (in_str, c) {
                    (false, '/') if chars.peek() == Some(&'/') => break,
                    (false, '"') => in_str = true,
                    (true, '\\') => {
                        chars.next();
                    }
                    (true, '"') => in_str = false,
                    (false, '\'') => {
                        // A char literal ('{', '\'') or a lifetime ('a).
                        let rest: String = chars.clone().take(3).collect();
                        if rest.starts_with('\\') || rest.chars().nth(1) == Some('\'') {
                            for d in chars.by_ref() {
                                if d == '\'' {
                                    break;
                                }
                            }
                        }
                    }
                    (false, c) => out.push(c),
                    (true, _) => {}
                }
            }
            out
        })
        .collect();
    let mut long = Vec::new();
    for (i, line) in code.iter().enumerate() {
        let Some(at) = line.find("fn ") else { continue };
        let before = line[..at].trim();
        let is_item = before.is_empty()
            || before.split_whitespace().all(|w| {
                matches!(w, "pub" | "async" | "const" | "unsafe" | "extern")
                    || w.starts_with("pub(")
            });
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !is_item || name.is_empty() {
            continue;
        }
        let (mut depth, mut opened) = (0i64, false);
        for (j, l) in code[i..].iter().enumerate() {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if !opened && l.trim_end().ends_with(';') {
                break; // a declaration without a body
            }
            if opened && depth == 0 {
                if j + 1 > limit {
                    long.push((i + 1, name.clone(), j + 1));
                }
                break;
            }
        }
    }
    long
}

#[test]
fn no_function_of_production_code_is_longer_than_a_reader_can_hold() {
    let src = repo().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    // A `tests.rs` is a test module (declared `#[cfg(test)] mod tests;`).
    for f in files.iter().filter(|f| !f.ends_with("tests.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        for (line, name, lines) in long_functions(&production_code(&text), LONGEST_FUNCTION) {
            problems.push(format!(
                "{}: fn {name} (line {line} of the code without its tests) is {lines} lines; split it into steps that each deserve a name",
                f.strip_prefix(&src).unwrap().display()
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn a_long_function_is_found_and_braces_in_strings_do_not_count() {
    let body: String = (0..101)
        .map(|i| format!("    let x{i} = \"}}\";\n"))
        .collect();
    let text = format!("pub(crate) fn long() {{\n{body}}}\nfn short() {{ '{{'; }}\n");
    assert_eq!(long_functions(&text, 100), [(1, "long".to_owned(), 103)]);
    assert!(long_functions(&text, 103).is_empty());
}
