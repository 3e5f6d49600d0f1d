//! The evidence chain (issue 17): every sealed run folder is an entry
//! whose hash covers the one before it. `archive verify` catches a byte
//! changed in an old run, an old folder rewritten together with its
//! seal, a folder deleted outside retention, an entry altered, and — given
//! a head copied from an old mail — a chain truncated or rewritten.

use std::path::{Path, PathBuf};

use crate::harness::bundle::{open_bundle, py, writable};
use crate::harness::{Output, Test};

const LOG: &str = "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\nu1,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n";

/// A small city with three query checks sealed; returns it, the runs and
/// the head `archive verify` printed.
fn city() -> (Test, Vec<PathBuf>, String) {
    let t = Test::new().file("inbox/query_logs/log.csv", LOG);
    let mut runs = Vec::new();
    for now in [
        "2026-07-01T09:00:00+08:00",
        "2026-07-02T09:00:00+08:00",
        "2026-07-03T09:00:00+08:00",
    ] {
        let out = t.run(&[
            "run",
            "query-check",
            "--period",
            "2026H1",
            "--no-send",
            "--now",
            now,
        ]);
        out.assert_ran();
        runs.push(out.run_dir());
    }
    let ok = t.run(&["archive", "verify"]);
    assert_eq!(ok.status, 0, "{}{}", ok.stdout, ok.stderr);
    let head = ok
        .stdout
        .split(", head ")
        .nth(1)
        .and_then(|h| h.split_whitespace().nth(1))
        .expect("the head")
        .to_owned();
    assert!(
        ok.stdout.contains("evidence chain of 3 entries intact"),
        "{}",
        ok.stdout
    );
    (t, runs, head)
}

fn verify(t: &Test, head: Option<&str>) -> Output {
    let mut args = vec!["archive", "verify"];
    if let Some(h) = head {
        args.extend(["--head", h]);
    }
    t.run(&args)
}

/// Writes `dir`'s seal again from its files (its workbooks too), as a
/// forger would.
fn reseal(dir: &Path) {
    writable(dir);
    let mut names: Vec<String> = crate::harness::files_relative(dir)
        .into_iter()
        .filter(|n| n != "SHA256SUMS" && !n.starts_with('.') && !n.contains("/."))
        .collect();
    names.sort();
    let mut sums = String::new();
    for n in names {
        if dir.join(&n).is_file() {
            sums.push_str(&format!(
                "{}  {n}\n",
                webir_audit::ingest::hash_file(&dir.join(&n)).unwrap().1
            ));
        }
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

#[test]
fn a_folder_rewritten_with_a_new_seal_is_caught_by_the_chain() {
    let (t, runs, _) = city();
    let old = &runs[0];
    writable(old);
    std::fs::write(old.join("findings.csv"), "code\n").unwrap();
    // The seal alone catches the change…
    let out = verify(&t, None);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(out.stdout.contains("findings.csv"), "{}", out.stdout);
    // …and a new seal does not hide it from the chain.
    reseal(old);
    let out = verify(&t, None);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("is not the one the evidence chain recorded"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_folder_deleted_outside_retention_is_caught() {
    let (t, runs, _) = city();
    writable(&runs[1]);
    std::fs::remove_dir_all(&runs[1]).unwrap();
    let out = verify(&t, None);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("is in the evidence chain but gone, and no retention deletion recorded it"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_altered_or_truncated_chain_is_caught() {
    let (t, _, head) = city();
    let config = webir_audit::config::load(&t.path("webir-audit.toml")).unwrap();
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    // The triggers refuse it…
    assert!(
        store
            .execute_raw("DELETE FROM chain WHERE seq = 3")
            .is_err()
    );
    // …so someone with the file drops them first.
    store.execute_raw("DROP TRIGGER chain_no_update").unwrap();
    store.execute_raw("DROP TRIGGER chain_no_delete").unwrap();
    store
        .execute_raw("UPDATE chain SET at = '2026-07-01 08:00:00' WHERE seq = 1")
        .unwrap();
    let out = verify(&t, None);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("chain entry 1: (seal"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("was altered"), "{}", out.stdout);
    // Truncated: the newest entry gone (every open of the state puts the
    // triggers back, so they are dropped again). A head copied from a
    // mail proves it.
    store
        .execute_raw("DROP TRIGGER IF EXISTS chain_no_delete")
        .unwrap();
    store
        .execute_raw("DELETE FROM chain WHERE seq = 3")
        .unwrap();
    let out = verify(&t, Some(&head));
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "does not contain head {head}: it was truncated or rewritten"
        )),
        "{}",
        out.stdout
    );
}

/// Issue 32, witnessed seals: the mail that follows a seal carries a
/// receipt of the chain's new head, in full, to the chief administrator
/// (here the Health Bureau's officer: no [chief_administrator]). A chain
/// rebuilt afterwards — an old run's findings changed, its seal and every
/// later hash recomputed — passes `archive verify` on its own: only the
/// receipt's head catches it.
#[test]
fn a_chain_rebuilt_after_its_receipt_was_mailed_is_caught_by_the_receipt() {
    let (t, runs, _) = city();
    let send = |now: &str| {
        let out = t.run(&["outbox", "send", "--now", now]);
        assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    };
    send("2026-07-03T10:00:00+08:00");
    let config = webir_audit::config::load(&t.path("webir-audit.toml")).unwrap();
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    let head = store.chain_head().unwrap().expect("a head");
    assert_eq!(head.seq, 3);
    let mails =
        crate::harness::mail::parse_every(&webir_audit::mail::outbox::file_transport_dir(&config));
    let receipts: Vec<&crate::harness::mail::Parsed> = mails
        .iter()
        .filter(|m| m.subject.contains("證據鏈收據"))
        .collect();
    assert_eq!(receipts.len(), 1, "one receipt for the three seals");
    assert_eq!(receipts[0].to, "o.khb@example.gov.tw");
    assert!(
        receipts[0].text.contains(&head.hash) && receipts[0].text.contains("第 3 筆"),
        "{}",
        receipts[0].text
    );
    // Nothing sealed since: no receipt again.
    drop(store);
    send("2026-07-03T11:00:00+08:00");
    let again =
        crate::harness::mail::parse_every(&webir_audit::mail::outbox::file_transport_dir(&config))
            .iter()
            .filter(|m| m.subject.contains("證據鏈收據"))
            .count();
    assert_eq!(again, 1);
    // The receipt's head vouches for every entry up to it.
    let out = verify(&t, Some(&head.hash));
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("is entry 3 of 3: entries 1 to 3 are as that copy saw them"),
        "{}",
        out.stdout
    );
    // A forger rewrites the first run and rebuilds the chain from it.
    let old = &runs[0];
    writable(old);
    std::fs::write(old.join("findings.csv"), "code\n").unwrap();
    reseal(old);
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    store.execute_raw("DROP TRIGGER chain_no_update").unwrap();
    let mut prev = webir_audit::store::chain::GENESIS.to_owned();
    for e in store.chain().unwrap() {
        let digest = if e.seq == 1 {
            webir_audit::archive::seal_digest(old).unwrap()
        } else {
            e.digest.clone()
        };
        let hash =
            webir_audit::store::chain::entry_hash(&prev, e.seq, &e.kind, &e.id, &digest, &e.at);
        store
            .execute_raw(&format!(
                "UPDATE chain SET digest = '{digest}', prev = '{prev}', hash = '{hash}' WHERE seq = {}",
                e.seq
            ))
            .unwrap();
        prev = hash;
    }
    drop(store);
    let out = verify(&t, None);
    assert_eq!(
        out.status, 0,
        "rebuilt whole, it passes alone: {}",
        out.stdout
    );
    let out = verify(&t, Some(&head.hash));
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("does not contain head"),
        "{}",
        out.stdout
    );
}

/// Each workbook's 摘要 (and each mail) carries the head as it was when
/// the workbook was made; that copy is what `--head` checks against.
#[test]
fn the_head_a_workbook_shows_is_one_the_chain_extends() {
    use calamine::Reader as _;
    let (t, runs, head) = city();
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook(runs[2].join("reports/KHB.xlsx")).unwrap();
    let summary = wb.worksheet_range("摘要").unwrap();
    let shown = summary
        .rows()
        .find(|r| r.first().is_some_and(|c| *c == "證據鏈"))
        .map(|r| r[1].to_string())
        .expect("a 證據鏈 row");
    // Made after the first two runs were sealed: entry 2.
    assert!(shown.starts_with("第 2 筆 "), "{shown}");
    let copied = shown["第 2 筆 ".len()..]
        .split('（')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(copied.len(), 16);
    let out = verify(&t, Some(&copied));
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("head 3 {head}")),
        "{}",
        out.stdout
    );
    let out = verify(&t, Some("0123456789abcdef"));
    assert_eq!(out.status, 1, "{}", out.stdout);
}

/// The evidence bundle (issue 17): a sealed sample audit exported, opened
/// by 7-Zip (not our code) with the password, and verified with Python's
/// standard library alone in a fresh folder: the sample re-drawn (MATCH),
/// the files against the seal and the run against the chain (OK), and a
/// head copied from the run's own workbook found in the chain. The
/// password is in neither the output nor the bundle's names.
#[test]
fn an_evidence_bundle_verifies_offline_after_an_independent_extractor() {
    let city = Test::sample_city();
    let run = city.sample_audit_2026h1(&["--no-send"]);
    let fresh = open_bundle(
        city.dir.path(),
        city.config_path(),
        &run.run_dir(),
        &["--with-personal-data"],
    );
    let py = |args: &[&str]| py(&fresh, args);
    let (ok, text) = py(&["verify_sample.py", "run"]);
    assert!(ok && text.contains("MATCH"), "{text}");
    // The head the run's own workbook shows, copied by hand.
    use calamine::Reader as _;
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook(fresh.join("run/reports/KHB.xlsx")).unwrap();
    let shown = wb
        .worksheet_range("摘要")
        .unwrap()
        .rows()
        .find(|r| r.first().is_some_and(|c| *c == "證據鏈"))
        .map(|r| r[1].to_string())
        .unwrap();
    let head: String = shown
        .split_whitespace()
        .nth(3)
        .unwrap()
        .chars()
        .take(16)
        .collect();
    let (ok, text) = py(&["verify_bundle.py", ".", "--head", &head]);
    assert!(ok && text.trim().ends_with("OK"), "{text}");
    // The head vouches for the entries up to it: the run's seal is after.
    assert!(text.contains("entries 1 to "), "{text}");
    // A byte changed in the extracted run is found.
    let findings = fresh.join("run/findings.csv");
    let mut bytes = std::fs::read(&findings).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 1;
    std::fs::write(&findings, bytes).unwrap();
    let (ok, text) = py(&["verify_bundle.py", "."]);
    assert!(!ok && text.contains("run/findings.csv: changed"), "{text}");
}

/// Issue 32: a bundle exported `--with-inputs` reaches back to the
/// exports: it holds every file the run read, byte for byte (from the
/// input store, where the sealed run moved them), the shipped verifier
/// checks them against `run/inputs.json`, and its README says what
/// personal data it then holds.
#[test]
fn an_evidence_bundle_with_its_inputs_holds_the_exports_as_read() {
    let city = Test::sample_city();
    let run = city.sample_audit_2026h1(&["--no-send"]);
    let fresh = open_bundle(
        city.dir.path(),
        city.config_path(),
        &run.run_dir(),
        &["--with-personal-data", "--with-inputs"],
    );
    let (ok, text) = py(&fresh, &["verify_bundle.py", "."]);
    assert!(ok && text.trim().ends_with("OK"), "{text}");
    let read: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(fresh.join("run/inputs.json")).unwrap()).unwrap();
    assert!(read.len() > 3);
    for r in &read {
        let path = fresh.join("inputs").join(r["path"].as_str().unwrap());
        assert_eq!(
            webir_audit::ingest::hash_file(&path).unwrap().1,
            r["sha256"].as_str().unwrap(),
            "{}",
            path.display()
        );
    }
    let readme = std::fs::read_to_string(fresh.join("README.txt")).unwrap();
    assert!(
        readme.contains("personal data in") && readme.contains("未遮罩之個人資料"),
        "{readme}"
    );
    // One byte of one export changed: named.
    let first = fresh.join("inputs").join(read[0]["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&first).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&first, bytes).unwrap();
    let (ok, text) = py(&fresh, &["verify_bundle.py", "."]);
    assert!(
        !ok && text.contains(&format!(
            "inputs/{}: not the file the run read",
            read[0]["path"].as_str().unwrap()
        )),
        "{text}"
    );
}

/// Issue 30: a bundle leaves the archive without full national IDs unless
/// asked. By default `population.tsv` is left out, the bundle still
/// verifies against the seal (the file named with its sealed hash), the
/// sample verifier says it cannot re-draw rather than MATCH, and no file
/// of the bundle holds a whole national ID; with `--with-personal-data`
/// the population is in and the sample re-draws.
#[test]
fn an_evidence_bundle_holds_no_full_national_id_unless_asked() {
    let city = Test::sample_city();
    let run = city.sample_audit_2026h1(&["--no-send"]);
    let fresh = open_bundle(city.dir.path(), city.config_path(), &run.run_dir(), &[]);
    assert!(!fresh.join("run/population.tsv").exists());
    let id = regex_lite_national_id();
    // The spec and the verifiers are the same in every bundle; their worked
    // examples are made-up IDs. Everything from the run and the state:
    for rel in crate::harness::files_relative(&fresh)
        .into_iter()
        .filter(|r| !r.ends_with(".py") && r != "sampling.md")
    {
        let bytes = std::fs::read(fresh.join(&rel)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !id(&text),
            "{rel} holds a whole national ID in a bundle exported without personal data"
        );
    }
    let (ok, text) = py(&fresh, &["verify_bundle.py", "."]);
    assert!(ok && text.trim_end().ends_with("OK"), "{text}");
    assert!(
        text.contains("run/population.tsv: left out of the bundle (personal data)"),
        "{text}"
    );
    let (ok, text) = py(&fresh, &["verify_sample.py", "run"]);
    assert!(!ok && text.starts_with("NOT RE-DRAWN"), "{text}");
    assert!(text.contains("--with-personal-data"), "{text}");
    let readme = std::fs::read_to_string(fresh.join("README.txt")).unwrap();
    assert!(readme.contains("--with-personal-data"), "{readme}");
    assert!(!fresh.join("run/rejects.csv").exists());
    // bundle.json is not sealed: listing another file as withheld does not
    // excuse its absence.
    let bundle_json = fresh.join("bundle.json");
    let text = std::fs::read_to_string(&bundle_json).unwrap();
    let mut edited: serde_json::Value = serde_json::from_str(&text).unwrap();
    edited["withheld"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"file": "run/findings.csv"}));
    std::fs::write(&bundle_json, edited.to_string()).unwrap();
    std::fs::remove_file(fresh.join("run/findings.csv")).unwrap();
    let (ok, text) = py(&fresh, &["verify_bundle.py", "."]);
    assert!(
        !ok && text.contains("run/findings.csv: listed in SHA256SUMS but missing"),
        "{text}"
    );

    let full = open_bundle(
        city.dir.path(),
        city.config_path(),
        &run.run_dir(),
        &["--with-personal-data"],
    );
    assert!(full.join("run/population.tsv").exists());
    let (ok, text) = py(&full, &["verify_sample.py", "run"]);
    assert!(ok && text.contains("MATCH"), "{text}");
}

/// Whether `text` holds a whole national ID (a letter, 1 or 2, eight digits).
fn regex_lite_national_id() -> impl Fn(&str) -> bool {
    |text: &str| {
        let b = text.as_bytes();
        b.windows(10).enumerate().any(|(i, w)| {
            w[0].is_ascii_uppercase()
                && (w[1] == b'1' || w[1] == b'2')
                && w[2..].iter().all(u8::is_ascii_digit)
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
                && b.get(i + 10).is_none_or(|c| !c.is_ascii_digit())
        })
    }
}

/// What a forger with the bundle does, written from docs/sampling.md
/// alone (§ 9's `SHA256SUMS`, § 13's entry hash), in Python, not with the
/// product's code: a run's findings emptied, its line of `SHA256SUMS`,
/// its seal's digest and every later entry's hash recomputed, and
/// `bundle.json`'s head set to the new one.
const FORGE: &str = r#"
import hashlib, json, os, sys
root = sys.argv[1]
run = os.path.join(root, "run")
sha = lambda b: hashlib.sha256(b).hexdigest()
target = os.path.join(run, "findings.csv")
os.chmod(target, 0o600)
with open(target, "rb") as f:
    header = f.readline()
with open(target, "wb") as f:
    f.write(header)
sums = os.path.join(run, "SHA256SUMS")
os.chmod(sums, 0o600)
lines = open(sums, "rb").read().decode("utf-8").splitlines()
lines = [(sha(header) + "  findings.csv") if l.endswith("  findings.csv") else l for l in lines]
open(sums, "wb").write(("\n".join(lines) + "\n").encode("utf-8"))
seal = sha(open(sums, "rb").read())
bundle = json.load(open(os.path.join(root, "bundle.json"), encoding="utf-8"))
entries = [json.loads(l) for l in open(os.path.join(root, "chain.jsonl"), encoding="utf-8")]
prev = "0" * 64
for e in entries:
    if e["kind"] == "seal" and e["id"] == bundle["run"]:
        e["digest"] = seal
    e["prev"] = prev
    text = "%s\n%d\n%s\n%s\n%s\n%s\n" % (prev, e["seq"], e["kind"], e["id"], e["digest"], e["at"])
    e["hash"] = prev = sha(text.encode("utf-8"))
with open(os.path.join(root, "chain.jsonl"), "w", encoding="utf-8") as f:
    for e in entries:
        f.write(json.dumps(e, ensure_ascii=False) + "\n")
bundle["chain_head"] = prev
json.dump(bundle, open(os.path.join(root, "bundle.json"), "w", encoding="utf-8"))
"#;

/// Issue 32, done when: the README's main command (the demo on the
/// repository's sample city) draws by the ceremony, so its sample
/// audit's bundle verifies offline with the shipped verifiers and shows
/// the population frozen and committed before the seed was given; and a
/// forger who rebuilds the bundle's chain after the receipt was mailed
/// passes the verifier alone but is caught by the receipt's head.
#[test]
fn the_readme_demo_s_bundle_shows_its_ceremony_and_a_rebuilt_chain_is_caught_by_its_receipt() {
    let mut demo = ReadmeDemo::states_its_seeds_and_when_each_step_happened();
    demo.the_manifest_and_the_selection_record_the_ceremony();
    demo.the_sample_s_bundle_verifies_alone_and_shows_the_ceremony();
    demo.the_bundle_s_files_and_fields_are_as_the_spec_names_them();
    demo.the_external_audit_s_bundle_shows_its_commitment();
    demo.the_last_receipt_vouches_for_every_entry_up_to_it();
    demo.a_rebuilt_bundle_passes_alone_and_is_caught_by_the_receipt();
}

/// The README's demo on the sample city: its two draws, the sample
/// audit's bundle opened, and the head of the last receipt mailed.
struct ReadmeDemo {
    city: Test,
    sample: PathBuf,
    external: PathBuf,
    /// The sample audit's bundle, opened with its personal data.
    fresh: PathBuf,
    /// The head of the last receipt mailed.
    head: String,
}

impl ReadmeDemo {
    /// The demo runs, states its seed and when each step happened, and
    /// draws a sample audit and an external audit.
    fn states_its_seeds_and_when_each_step_happened() -> ReadmeDemo {
        let city = Test::sample_city();
        let out = city.run_at(&["demo"], "2026-12-03T10:00:00+08:00");
        assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
        // The demo states its seed and when each step happened.
        for line in [
            "ceremony 2026H1: committed and mailed at 2026-12-03T10:00:00",
            "seed 20260705080000000000 given at 2026-12-03T10:01:00",
            "ceremony 2026/external-audit: committed and mailed at 2026-12-03T10:01:00",
            "seed 20260705080000000000 given at 2026-12-03T10:02:00",
        ] {
            assert!(out.stdout.contains(line), "{line}: {}", out.stdout);
        }
        let runs = crate::harness::demo_runs(&out.stdout);
        let sample = runs
            .iter()
            .find(|r| r.to_string_lossy().contains("/sample-audit/"))
            .expect("a sample audit")
            .clone();
        let external = runs
            .iter()
            .find(|r| r.to_string_lossy().contains("/external-audit/"))
            .expect("an external audit")
            .clone();
        ReadmeDemo {
            city,
            sample,
            external,
            fresh: PathBuf::new(),
            head: String::new(),
        }
    }

    /// The sample audit's manifest and the external audit's selection say
    /// the seed was given after the population was committed.
    fn the_manifest_and_the_selection_record_the_ceremony(&self) {
        let m = crate::harness::json(&self.sample, "manifest.json");
        assert!(
            m["seed_postdates_population"]
                .as_str()
                .unwrap()
                .starts_with(
                    "ceremony: the population was committed and mailed at 2026-12-03T10:00:00"
                ),
            "{}",
            m["seed_postdates_population"]
        );
        assert_eq!(m["ceremony"]["seed_given_at"], "2026-12-03T10:01:00");
        let s = crate::harness::json(&self.external, "selection.json");
        assert_eq!(s["ceremony"]["population_digest"], s["units_digest"]);
        assert!(
            s["seed_postdates_candidates"]
                .as_str()
                .unwrap()
                .starts_with("ceremony: "),
            "{}",
            s["seed_postdates_candidates"]
        );
    }

    /// Each draw's bundle, verified by the shipped verifiers alone: the
    /// sample audit's redraws and shows its ceremony.
    fn the_sample_s_bundle_verifies_alone_and_shows_the_ceremony(&mut self) {
        self.fresh = open_bundle(
            self.city.dir.path(),
            self.city.config_path(),
            &self.sample,
            &["--with-personal-data"],
        );
        let fresh = &self.fresh;
        let (ok, text) = py(fresh, &["verify_sample.py", "run"]);
        assert!(ok && text.contains("MATCH"), "{text}");
        let (ok, text) = py(fresh, &["verify_bundle.py", "."]);
        assert!(ok && text.trim().ends_with("OK"), "{text}");
        let ceremony = text
            .lines()
            .find(|l| l.starts_with("ceremony: freeze entry "))
            .unwrap_or_else(|| panic!("the ceremony shown: {text}"));
        assert!(
            ceremony.contains("at 2026-12-03T10:00:00 (11 mails), seed given entry ")
                && ceremony.ends_with("the seed was given after the commitment"),
            "{ceremony}"
        );
    }

    /// § 15: the bundle's files and fields, as the spec names them; § 13:
    /// every entry's id in its grammar; § 9: rejects.csv's header.
    fn the_bundle_s_files_and_fields_are_as_the_spec_names_them(&self) {
        let fresh = &self.fresh;
        let bundle = crate::harness::json(fresh, "bundle.json");
        let keys: Vec<&String> = bundle.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["chain_entries", "chain_head", "inputs", "run", "withheld"]
        );
        let agencies = crate::harness::json(fresh, "agencies.json");
        for a in agencies.as_array().unwrap() {
            let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["id", "name", "parent", "requesting", "unit"]);
        }
        let chain = std::fs::read_to_string(fresh.join("chain.jsonl")).unwrap();
        for line in chain.lines() {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["at", "digest", "hash", "id", "kind", "prev", "seq"]);
            let (kind, id) = (e["kind"].as_str().unwrap(), e["id"].as_str().unwrap());
            assert!(id_follows_the_grammar(kind, id), "{kind} {id}");
        }
        assert!(
            chain.contains("\"id\":\"2026/external-audit#1\""),
            "{chain}"
        );
        let rejects = std::fs::read_to_string(fresh.join("run/rejects.csv")).unwrap();
        assert_eq!(
            rejects.trim_start_matches('\u{feff}').lines().next(),
            Some("table,source_file,sheet,source_row,reason,raw")
        );
    }

    /// The external audit's bundle verifies and shows its commitment.
    fn the_external_audit_s_bundle_shows_its_commitment(&self) {
        let units = open_bundle(
            self.city.dir.path(),
            self.city.config_path(),
            &self.external,
            &[],
        );
        let (ok, text) = py(&units, &["verify_bundle.py", "."]);
        assert!(
            ok && text.contains("ceremony: commitment entry ")
                && text.contains("at 2026-12-03T10:01:00"),
            "{text}"
        );
    }

    /// The last receipt mailed: its head, in full, from its body; it
    /// vouches for every entry up to it, the sample's seal among them.
    fn the_last_receipt_vouches_for_every_entry_up_to_it(&mut self) {
        let mail = webir_audit::mail::outbox::file_transport_dir(&self.city.loaded_config());
        let receipts: Vec<crate::harness::mail::Parsed> = crate::harness::mail::parse_every(&mail)
            .into_iter()
            .filter(crate::harness::mail::is_receipt)
            .collect();
        let (seq, head) = receipts
            .iter()
            .filter_map(|r| {
                let n: u64 = r
                    .subject
                    .split("第 ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()?;
                let hash = r
                    .text
                    .split(|c: char| !c.is_ascii_hexdigit())
                    .find(|w| w.len() == 64)?
                    .to_owned();
                Some((n, hash))
            })
            .max()
            .expect("a receipt with its head");
        // It vouches for every entry up to it, the sample's seal among them.
        let (ok, text) = py(&self.fresh, &["verify_bundle.py", ".", "--head", &head]);
        assert!(
            ok && text.contains(&format!(
                "is entry {seq} of {seq}: entries 1 to {seq} are as that copy saw them"
            )),
            "{text}"
        );
        self.head = head;
    }

    /// The forger rebuilds the bundle: alone it passes, the receipt
    /// catches it.
    fn a_rebuilt_bundle_passes_alone_and_is_caught_by_the_receipt(&self) {
        let (fresh, head) = (&self.fresh, &self.head);
        std::fs::write(fresh.join("forge.py"), FORGE).unwrap();
        let (ok, text) = py(fresh, &["forge.py", "."]);
        assert!(ok, "{text}");
        let (ok, text) = py(fresh, &["verify_bundle.py", "."]);
        assert!(
            ok && text.trim().ends_with("OK"),
            "rebuilt whole, it passes alone: {text}"
        );
        let (ok, text) = py(fresh, &["verify_bundle.py", ".", "--head", head]);
        assert!(
            !ok && text.contains(&format!("the chain does not contain head {head}")),
            "{text}"
        );
    }
}

/// docs/sampling.md § 9's seal and § 13's worked examples: computed by
/// the product, and each value found in the spec's text, so the two
/// cannot drift apart.
#[test]
fn the_spec_s_seal_and_chain_examples_hold() {
    let spec = include_str!("../../docs/sampling.md");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    std::fs::create_dir_all(dir.join("reports")).unwrap();
    std::fs::write(dir.join("a.txt"), "a\n").unwrap();
    std::fs::write(dir.join("reports/b.txt"), "b\n").unwrap();
    webir_audit::archive::seal(&dir, &Default::default()).unwrap();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    for line in sums.lines() {
        assert!(spec.contains(&format!("      {line}\n")), "{line}");
    }
    let folder = webir_audit::archive::seal_digest(&dir).unwrap();
    let entry = webir_audit::store::chain::entry_hash(
        webir_audit::store::chain::GENESIS,
        1,
        "seal",
        "2026H1/sample-audit/20260705T080000",
        &folder,
        "2026-07-05T08:00:00",
    );
    let seed = webir_audit::run::seed_digest(
        "2026H1",
        1,
        "12345678901234567890",
        "given",
        "7d2d58a817cc1284fc886b146b4ecb1365cc8bc2ebde85d2514294f1230fce09",
    );
    let given = webir_audit::run::ceremony::seed_given_digest(
        "2026H1",
        "12345678901234567890",
        "2026-07-08T10:00:00",
        "衛生局 王總管理者",
        webir_audit::store::SeedVia::Command,
    );
    for (what, value, expected) in [
        (
            "folder",
            folder,
            "c498c59ae08630afe65cf57682ec9e70b8cb5d17687b491b6c82465cf77fed1b",
        ),
        (
            "entry",
            entry,
            "e8c1c4fa8cfb0c3c7fa31de954252df063af373e672b476181855e483f04816b",
        ),
        (
            "seed",
            seed,
            "84ce19b45dbd9567cb56561c677d26fef0ce3bd125cec8c1cc8c5861c36bed49",
        ),
        (
            "seed given",
            given,
            "431d92ee69e5f54039d61ff51ade05101cef6384d4977ac03d98f8f3f972d78d",
        ),
    ] {
        assert_eq!(value, expected, "{what}");
        assert!(
            spec.contains(expected),
            "{what}: {expected} not in the spec"
        );
    }
}

/// docs/sampling.md § 13's grammar of ids, for each kind of entry.
pub fn id_follows_the_grammar(kind: &str, id: &str) -> bool {
    let stamp = |s: &str| {
        s.len() == 15
            && s.as_bytes()[8] == b'T'
            && s.chars()
                .enumerate()
                .all(|(i, c)| i == 8 || c.is_ascii_digit())
    };
    let run_period = |p: &str| {
        p.parse::<webir_audit::period::Period>()
            .is_ok_and(|q| q.id == p)
            || p.strip_prefix("as-of-")
                .is_some_and(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
    };
    let key = |k: &str| {
        let period = k.strip_suffix("/external-audit").unwrap_or(k);
        period
            .parse::<webir_audit::period::Period>()
            .is_ok_and(|q| q.id == period)
    };
    let folder = |id: &str| {
        let parts: Vec<&str> = id.split('/').collect();
        parts.len() == 3
            && run_period(parts[0])
            && if parts[1] == "returns" {
                let f: Vec<&str> = parts[2].split('_').collect();
                f.len() == 3 && stamp(f[0]) && !f[1].is_empty() && stamp(f[2])
            } else {
                webir_audit::job::Job::parse(parts[1]).is_some() && stamp(parts[2])
            }
    };
    match kind {
        "seal" | "return" | "tombstone" => folder(id),
        "seed" => id
            .rsplit_once('#')
            .is_some_and(|(k, n)| key(k) && n.parse::<u32>().is_ok_and(|n| n > 0)),
        "freeze" | "commitment" | "seed-given" => key(id),
        "input-tombstone" => id.starts_with("inputs/"),
        "hold" | "release" => !id.is_empty(),
        _ => false,
    }
}
