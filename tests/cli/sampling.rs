//! The sample audit of point 6(1) on the sample city: what the regulation
//! asks (≥ 20 % of accounts in use per agency, ≥ 10 records each), that an
//! auditor can re-draw it with our `verify` and with the standalone Python
//! verifier, that tampering is caught, and that a frozen population cannot
//! be changed before the seed ceremony.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{Output, repo, run_binary};
use crate::sample_data::copy_dir;

const SEED: &str = "31415926535897932384626";

struct City {
    tmp: tempfile::TempDir,
}

impl City {
    fn new() -> City {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("sample_data"), &tmp.path().join("city"));
        City { tmp }
    }

    fn config(&self) -> String {
        self.tmp
            .path()
            .join("city/webir-audit.toml")
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn inbox(&self, rel: &str) -> PathBuf {
        self.tmp.path().join("city/inbox").join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        let config = self.config();
        let mut all = args.to_vec();
        all.extend(["--config", config.as_str()]);
        run_binary(&all, self.tmp.path())
    }

    fn sample(&self, seed: Option<&str>) -> (Output, PathBuf) {
        let mut args = vec!["run", "sample-audit", "--period", "2026H1"];
        if let Some(s) = seed {
            args.extend(["--seed", s]);
        }
        let out = self.run(&args);
        assert!(
            out.status == 0 || out.status == 1,
            "{}{}",
            out.stdout,
            out.stderr
        );
        let dir = PathBuf::from(out.stdout.lines().last().unwrap());
        (out, dir)
    }
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn python_verify(dir: &Path) -> Output {
    let out = Command::new("python3")
        .arg(repo().join("tools/verify_sample.py"))
        .arg(dir)
        .output()
        .expect("python3 runs: the verifier is part of the product");
    Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn verify(dir: &Path) -> Output {
    run_binary(&["verify", dir.to_str().unwrap()], dir)
}

fn accounts(m: &Value) -> Vec<&Value> {
    m["units"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["strata"].as_array().unwrap())
        .flat_map(|s| s["accounts"].as_array().unwrap())
        .collect()
}

#[test]
fn sample_audit_meets_point_6_1_and_both_verifiers_redraw_it() {
    let city = City::new();
    let (out, dir) = city.sample(Some(SEED));
    assert!(out.stdout.contains(SEED), "{}", out.stdout);
    let m = manifest(&dir);
    assert_eq!(m["spec_version"], "webir-audit/sample/v1");
    assert_eq!(m["seed"], SEED);
    assert_eq!(m["seed_source"], "given");
    assert_eq!(m["draw_number"], 1);
    assert_eq!(m["period"]["start"], "2026-01-01T00:00:00");
    assert_eq!(m["period"]["end"], "2026-07-01T00:00:00");
    assert_eq!(m["period"]["timezone"], "Asia/Taipei");
    assert_eq!(m["inputs"].as_array().unwrap().len(), 6);
    assert_eq!(m["population_records"], 50_000);

    // Point 6(1): every requesting agency samples its subtree; each stratum
    // takes at least 20 % of its accounts in use, each account at least 10
    // records (all where it has fewer).
    let units: Vec<&str> = m["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["unit_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        units,
        [
            "DFS", "DNM", "DSM", "DTY", "KDC", "KHB", "KMS", "KPB", "KSA", "KTB"
        ]
    );
    let mut in_use = 0;
    for s in m["units"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["strata"].as_array().unwrap())
    {
        let (n_use, n) = (
            s["accounts_in_use"].as_u64().unwrap(),
            s["accounts_selected"].as_u64().unwrap(),
        );
        in_use += n_use;
        assert!(
            n * 100 >= n_use * 20 && (n == 0 || (n - 1) * 100 < n_use * 20),
            "{s}"
        );
        assert_eq!(s["accounts"].as_array().unwrap().len() as u64, n);
    }
    assert_eq!(in_use, m["population_accounts"].as_u64().unwrap());
    for a in accounts(&m) {
        let (mm, k) = (
            a["records_in_period"].as_u64().unwrap(),
            a["records_selected"].as_u64().unwrap(),
        );
        assert_eq!(k, mm.min(10), "{}", a["account_id"]);
        assert_eq!(a["records"].as_array().unwrap().len() as u64, k);
        assert_eq!(a["ticket"].as_str().unwrap().len(), 64);
    }

    // The files beside findings.csv: private, and sample.csv is masked.
    #[cfg(unix)]
    for f in [
        "manifest.json",
        "population.tsv",
        "sample.csv",
        "findings.csv",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let sample = std::fs::read_to_string(dir.join("sample.csv")).unwrap();
    let header: Vec<&str> = sample.lines().next().unwrap().split(',').collect();
    let subject = header.iter().position(|h| *h == "subject").unwrap();
    let rows: Vec<&str> = sample.lines().skip(1).collect();
    assert_eq!(
        rows.len(),
        accounts(&m)
            .iter()
            .map(|a| a["records_selected"].as_u64().unwrap() as usize)
            .sum::<usize>()
    );
    assert!(
        rows.iter()
            .all(|r| r.split(',').nth(subject).unwrap().contains("****"))
    );
    let population = std::fs::read_to_string(dir.join("population.tsv")).unwrap();
    assert_eq!(population.lines().count(), 50_001);

    let ours = verify(&dir);
    assert_eq!(
        ours.stdout.trim(),
        "MATCH",
        "{}{}",
        ours.stdout,
        ours.stderr
    );
    assert_eq!(ours.status, 0);
    let theirs = python_verify(&dir);
    assert_eq!(
        (theirs.status, theirs.stdout.trim()),
        (0, "MATCH"),
        "{}",
        theirs.stderr
    );

    // The same seed and inputs draw the same sample; the second draw of the
    // period is numbered and announced.
    let (again, dir2) = city.sample(Some(SEED));
    let m2 = manifest(&dir2);
    assert_eq!(m2["draw_number"], 2);
    assert!(again.stdout.contains("WARNING"), "{}", again.stdout);
    assert_eq!(m2["sample_digest"], m["sample_digest"]);
    assert_eq!(m2["units"], m["units"]);
    // An OS seed is 24 digits and is recorded as such.
    let (_, dir3) = city.sample(None);
    let m3 = manifest(&dir3);
    assert_eq!(m3["seed_source"], "os");
    assert_eq!(m3["seed"].as_str().unwrap().len(), 24);
    assert_eq!(m3["draw_number"], 3);
    assert_eq!(m3["population_digest"], m["population_digest"]);
}

#[test]
fn verifiers_name_the_first_difference_after_tampering() {
    let city = City::new();
    let (_, dir) = city.sample(Some(SEED));

    // An edited manifest (one ticket changed) no longer matches its digest.
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let m = manifest(&dir);
    let ticket = accounts(&m)[0]["ticket"].as_str().unwrap().to_owned();
    let forged = text.replacen(&ticket, &"0".repeat(64), 1);
    let forged_dir = dir.with_file_name("forged");
    std::fs::create_dir(&forged_dir).unwrap();
    std::fs::write(forged_dir.join("manifest.json"), forged).unwrap();
    std::fs::copy(
        dir.join("population.tsv"),
        forged_dir.join("population.tsv"),
    )
    .unwrap();
    for out in [verify(&forged_dir), python_verify(&forged_dir)] {
        assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("DIFFERS") && out.stdout.contains("sample_digest"),
            "{}",
            out.stdout
        );
    }

    // A population.tsv with one record changed fails its digest.
    let pop = std::fs::read_to_string(dir.join("population.tsv")).unwrap();
    let line = pop.lines().nth(1).unwrap();
    let changed = line.replacen('T', "X", 1);
    std::fs::write(
        forged_dir.join("manifest.json"),
        std::fs::read(dir.join("manifest.json")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        forged_dir.join("population.tsv"),
        pop.replacen(line, &changed, 1),
    )
    .unwrap();
    let out = python_verify(&forged_dir);
    assert_eq!(out.status, 1);
    assert!(
        out.stdout.contains("population digest differs"),
        "{}",
        out.stdout
    );

    // An input changed after the run: verify names it.
    let log = city.inbox("query_logs/webir_querylog_2026Q1.csv");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"W20268,2026-03-30 10:00:00,\xe7\x9c\xb7\xe5\xb1\xac\xe6\x8a\x95\xe4\xbf\x9d\xe8\xb3\x87\xe6\x96\x99,C279015870,social_welfare,\xe6\x88\x90\xe5\x8a\x9f,DFS,10.34.4.37\n");
    std::fs::write(&log, bytes).unwrap();
    let out = verify(&dir);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("input query_logs/webir_querylog_2026Q1.csv changed"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_frozen_population_cannot_change_before_the_ceremony() {
    let city = City::new();
    let out = city.run(&["freeze", "--period", "2026H1"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let digest = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("population digest "))
        .unwrap()
        .to_owned();
    assert!(
        out.stdout.contains("query_logs/webir_querylog_2026Q1.csv"),
        "{}",
        out.stdout
    );

    // The ceremony's seed, with the inputs unchanged: runs, same digest.
    let (_, dir) = city.sample(Some(SEED));
    assert_eq!(manifest(&dir)["population_digest"], digest.as_str());

    // One query-log row removed after the freeze: the draw is refused.
    let log = city.inbox("query_logs/webir_querylog_2026Q1.csv");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(5);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = city.run(&["run", "sample-audit", "--period", "2026H1", "--seed", SEED]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("changed since it was frozen") && out.stderr.contains(&digest),
        "{}",
        out.stderr
    );
}

#[test]
fn a_seed_must_be_20_to_64_digits() {
    let city = City::new();
    for bad in [
        "12345",
        "1234567890123456789x",
        "１２３４５６７８９０１２３４５６７８９０",
    ] {
        let out = city.run(&["run", "sample-audit", "--period", "2026H1", "--seed", bad]);
        assert_eq!(out.status, 2, "{bad}");
        assert!(
            out.stderr.contains("20 to 64 decimal digits"),
            "{}",
            out.stderr
        );
    }
}

/// Golden vectors: a refactor that changes a ticket changes every sample
/// ever drawn, so these values are fixed forever for spec v1 (and repeated
/// in docs/sampling.md and the Python verifier's self-test).
#[test]
fn golden_tickets_of_spec_v1() {
    use webir_audit::sampling::spec::{ticket, ticket_hex};
    let seed = "12345678901234567890";
    assert_eq!(
        ticket_hex(&ticket(&[seed, "account", "2026H1", "KHB", "u0001"])),
        "4395f08c06eb94a9e6c91dc3a79b50012f79a7e7286df2892d5ea6d2c05b628a"
    );
    assert_eq!(
        ticket_hex(&ticket(&[
            seed,
            "record",
            "2026H1",
            "u0001",
            "2026-03-02T09:15:00|承保資料查詢|A123456789|1"
        ])),
        "c371bdc86787f37b7cf7a58a1142cd53adbae46f42e6cdbf2034d1e89838e08c"
    );
    let out = Command::new("python3")
        .arg(repo().join("tools/verify_sample.py"))
        .arg("--self-test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
