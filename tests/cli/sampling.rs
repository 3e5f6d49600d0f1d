//! The sample audit of point 6(1) on the sample city: what the regulation
//! asks (≥ 20 % of accounts in use per agency, ≥ 10 records each), that an
//! auditor can re-draw it with our `verify` and with the standalone Python
//! verifier, that tampering is caught, and that a frozen population cannot
//! be changed before the seed ceremony.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::copy_dir;
use crate::harness::{Output, Test, repo, run_binary};

const SEED: &str = "31415926535897932384626";

/// The 2026H1 sample audit on `city` with `seed` (or the clock's, when
/// none), `extra` arguments added: its output and run folder.
fn sample_with(city: &Test, seed: Option<&str>, extra: &[&str]) -> (Output, PathBuf) {
    let mut args = vec!["run", "sample-audit", "--period", "2026H1"];
    if let Some(s) = seed {
        args.extend(["--seed", s]);
    }
    args.extend(extra);
    let out = city.run(&args).finished();
    let dir = out.run_dir();
    (out, dir)
}

fn sample(city: &Test, seed: Option<&str>) -> (Output, PathBuf) {
    sample_with(city, seed, &[])
}

fn manifest(dir: &Path) -> Value {
    crate::harness::json(dir, "manifest.json")
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
    let draw = Draw::records_its_seed_period_and_inputs();
    draw.every_stratum_takes_a_fifth_of_its_accounts_and_ten_records_each();
    draw.its_files_are_private_and_sample_csv_is_masked();
    draw.both_verifiers_redraw_it_here_and_from_an_auditor_s_copy();
    draw.a_second_draw_without_redraw_is_refused_before_anything_is_written();
    draw.a_redraw_with_the_same_seed_draws_the_same_sample_numbered();
    draw.an_os_seed_is_24_digits_and_recorded_as_such();
}

/// The sample city's first 2026H1 draw: its run folder and manifest.
struct Draw {
    city: Test,
    dir: PathBuf,
    m: Value,
}

impl Draw {
    /// The draw with the given seed states it, and its manifest records
    /// the spec, seed, period and inputs.
    fn records_its_seed_period_and_inputs() -> Draw {
        let city = Test::sample_city();
        let (out, dir) = sample(&city, Some(SEED));
        assert!(out.stdout.contains(SEED), "{}", out.stdout);
        let m = manifest(&dir);
        assert_eq!(m["spec_version"], "webir-audit/sample/v1");
        assert_eq!(m["seed"], SEED);
        assert_eq!(m["seed_source"], "given");
        assert_eq!(m["draw_number"], 1);
        assert_eq!(m["period"]["start"], "2026-01-01T00:00:00");
        assert_eq!(m["period"]["end"], "2026-07-01T00:00:00");
        assert_eq!(m["period"]["timezone"], "Asia/Taipei");
        assert_eq!(m["inputs"].as_array().unwrap().len(), 8);
        assert_eq!(m["population_records"], 50_000);
        Draw { city, dir, m }
    }

    /// Point 6(1): every requesting agency samples its subtree; each stratum
    /// takes at least 20 % of its accounts in use, each account at least 10
    /// records (all where it has fewer).
    fn every_stratum_takes_a_fifth_of_its_accounts_and_ten_records_each(&self) {
        let m = &self.m;
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
        for a in accounts(m) {
            let (mm, k) = (
                a["records_in_period"].as_u64().unwrap(),
                a["records_selected"].as_u64().unwrap(),
            );
            assert_eq!(k, mm.min(10), "{}", a["account_id"]);
            assert_eq!(a["records"].as_array().unwrap().len() as u64, k);
            assert_eq!(a["ticket"].as_str().unwrap().len(), 64);
        }
    }

    /// The files beside findings.csv: private, and sample.csv is masked.
    fn its_files_are_private_and_sample_csv_is_masked(&self) {
        let (dir, m) = (&self.dir, &self.m);
        #[cfg(unix)]
        for f in [
            "manifest.json",
            "population.tsv",
            "sample.csv",
            "findings.csv",
        ] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o400, "{f}: private, and read-only once sealed");
        }
        let sample = std::fs::read_to_string(dir.join("sample.csv")).unwrap();
        let header: Vec<&str> = sample.lines().next().unwrap().split(',').collect();
        let subject = header.iter().position(|h| *h == "subject").unwrap();
        let rows: Vec<&str> = sample.lines().skip(1).collect();
        assert_eq!(
            rows.len(),
            accounts(m)
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
    }

    /// Our `verify` redraws it, also from the inputs moved to an
    /// auditor's copy, and so does the standalone Python verifier.
    fn both_verifiers_redraw_it_here_and_from_an_auditor_s_copy(&self) {
        let (city, dir) = (&self.city, &self.dir);
        let ours = verify(dir);
        assert_eq!(
            ours.stdout.trim(),
            "MATCH",
            "{}{}",
            ours.stdout,
            ours.stderr
        );
        assert_eq!(ours.status, 0);
        // The inputs moved elsewhere (an auditor's copy) verify the same.
        let copy = city.dir.path().join("auditor-copy");
        // The exports runs read: the input store and what the inbox still holds.
        copy_dir(&city.dir.path().join("var/archive/inputs"), &copy);
        copy_dir(&city.dir.path().join("city/inbox"), &copy);
        let moved = run_binary(
            &[
                "verify",
                dir.to_str().unwrap(),
                "--inputs",
                copy.to_str().unwrap(),
            ],
            city.dir.path(),
        );
        assert_eq!(
            moved.stdout.trim(),
            "MATCH",
            "{}{}",
            moved.stdout,
            moved.stderr
        );
        assert!(self.m["frozen_at"].is_null());
        let theirs = python_verify(dir);
        assert_eq!(
            (theirs.status, theirs.stdout.trim()),
            (0, "MATCH"),
            "{}",
            theirs.stderr
        );
    }

    /// A period is drawn once: a second draw without --redraw is refused
    /// before anything is drawn or written (it would look like seed
    /// shopping).
    fn a_second_draw_without_redraw_is_refused_before_anything_is_written(&self) {
        let refused = self
            .city
            .run(&["run", "sample-audit", "--period", "2026H1", "--seed", SEED]);
        assert_eq!(refused.status, 2, "{}{}", refused.stdout, refused.stderr);
        assert!(
            refused.stderr.contains("2026H1 was already drawn (draw 1")
                && refused.stderr.contains("--redraw"),
            "{}",
            refused.stderr
        );
        assert_eq!(
            std::fs::read_dir(self.dir.parent().unwrap())
                .unwrap()
                .count(),
            1,
            "no run folder for the refused draw"
        );
    }

    /// Asked for, the same seed and inputs draw the same sample; the second
    /// draw of the period is numbered and announced.
    fn a_redraw_with_the_same_seed_draws_the_same_sample_numbered(&self) {
        let m = &self.m;
        let (again, dir2) = sample_with(&self.city, Some(SEED), &["--redraw"]);
        let m2 = manifest(&dir2);
        assert_eq!(m2["draw_number"], 2);
        assert!(again.stdout.contains("WARNING"), "{}", again.stdout);
        assert_eq!(m2["sample_digest"], m["sample_digest"]);
        assert_eq!(m2["units"], m["units"]);
    }

    /// An OS seed is 24 digits and is recorded as such.
    fn an_os_seed_is_24_digits_and_recorded_as_such(&self) {
        let (_, dir3) = sample_with(&self.city, None, &["--redraw"]);
        let m3 = manifest(&dir3);
        assert_eq!(m3["seed_source"], "os");
        assert_eq!(m3["seed"].as_str().unwrap().len(), 24);
        assert_eq!(m3["draw_number"], 3);
        assert_eq!(m3["population_digest"], self.m["population_digest"]);
    }
}

#[test]
fn verifiers_name_the_first_difference_after_tampering() {
    let city = Test::sample_city();
    let (_, dir) = sample(&city, Some(SEED));

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
    let log = city.input("query_logs/webir_querylog_2026Q1.csv");
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
    let city = Test::sample_city();
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
    let (_, dir) = sample(&city, Some(SEED));
    assert_eq!(manifest(&dir)["population_digest"], digest.as_str());
    assert!(manifest(&dir)["frozen_at"].is_string());

    // One query-log row removed after the freeze: the draw is refused.
    let log = city.input("query_logs/webir_querylog_2026Q1.csv");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(5);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = city.run(&[
        "run",
        "sample-audit",
        "--period",
        "2026H1",
        "--seed",
        SEED,
        "--redraw",
    ]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("changed since it was frozen") && out.stderr.contains(&digest),
        "{}",
        out.stderr
    );
}

#[test]
fn a_seed_must_be_20_to_64_digits() {
    let city = Test::sample_city();
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

/// The worked example of docs/sampling.md is what the tool draws: its
/// population fed through a real inbox gives the published population
/// digest, accounts, records and tickets.
#[test]
fn the_worked_example_in_the_spec_is_what_the_tool_draws() {
    let example = WorkedExample::its_population_is_drawn_from_a_real_inbox();
    example.the_population_digest_is_the_published_one();
    example.the_health_bureau_draws_the_published_accounts_and_records();
    example.every_printed_ticket_is_the_tool_s();
}

/// docs/sampling.md's worked example, and the manifest of the tool's draw
/// of its population.
struct WorkedExample {
    /// Holds the city's folder for the test's length.
    _t: crate::harness::Test,
    doc: String,
    m: Value,
}

/// A row of a Markdown table: `| rank | `id or key` | ... |`, its cells
/// unquoted.
fn markdown_cells(line: &str) -> Vec<String> {
    line.replace("\\|", "\u{1}")
        .split('|')
        .map(|c| c.trim().trim_matches('`').replace('\u{1}', "|"))
        .collect()
}

impl WorkedExample {
    /// The example's population, as a query log in an inbox, is drawn
    /// with its seed.
    fn its_population_is_drawn_from_a_real_inbox() -> WorkedExample {
        let doc = std::fs::read_to_string(repo().join("docs/sampling.md")).unwrap();
        let tsv = doc
            .split("```tsv\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the worked example's population block");
        let mut csv =
            String::from("帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\n");
        for line in tsv.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 6, "{line}");
            csv.push_str(&format!(
                "{},{},{},{},public_health,成功,{},10.0.0.1\n",
                f[0],
                f[2].replace('T', " "),
                f[3],
                f[4],
                f[1]
            ));
        }
        let t = crate::harness::Test::new().file("inbox/query_logs/example.csv", csv);
        let out = t.run(&crate::harness::SAMPLE_AUDIT_2026H1);
        out.assert_ran();
        let m = manifest(&out.run_dir());
        WorkedExample { _t: t, doc, m }
    }

    /// The population digest and count are those the example publishes.
    fn the_population_digest_is_the_published_one(&self) {
        let digest = self
            .doc
            .split("Population digest (46 records):\n`")
            .nth(1)
            .and_then(|r| r.split('`').next())
            .unwrap();
        assert_eq!(self.m["population_digest"], digest);
        assert_eq!(self.m["population_records"], 46);
    }

    /// The rows of the example's table under `title`.
    fn table(&self, title: &str) -> Vec<Vec<String>> {
        // Table rows: `| rank | `id or key` | ... | `ticket` | selected? |`.
        self.doc
            .split(title)
            .nth(1)
            .unwrap()
            .lines()
            .skip_while(|l| !l.starts_with("|---"))
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .map(markdown_cells)
            .collect()
    }

    /// The Health Bureau's stratum draws 2 of its 6 accounts, the
    /// published ones, each with its published records and tickets.
    fn the_health_bureau_draws_the_published_accounts_and_records(&self) {
        let khb = self.m["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["unit_id"] == "KHB")
            .unwrap()["strata"][0]
            .clone();
        assert_eq!(
            (
                khb["accounts_in_use"].as_u64(),
                khb["accounts_selected"].as_u64()
            ),
            (Some(6), Some(2))
        );
        let accounts = self.table("smallest first:\n\n| rank | account");
        let selected: Vec<&Vec<String>> = accounts.iter().filter(|r| r[5] == "selected").collect();
        assert_eq!(selected.len(), 2);
        for (row, got) in selected.iter().zip(khb["accounts"].as_array().unwrap()) {
            assert_eq!(got["account_id"], row[2].as_str());
            assert_eq!(got["ticket"], row[4].as_str());
            assert_eq!(got["records_in_period"].to_string(), row[3]);
            let records = self.table(&format!("`{}`:\n", row[2]));
            let chosen: Vec<&Vec<String>> = records.iter().filter(|r| r[4] == "selected").collect();
            let listed = got["records"].as_array().unwrap();
            assert_eq!(listed.len(), chosen.len());
            for (want, rec) in chosen.iter().zip(listed) {
                let key = format!(
                    "{}|{}|",
                    rec["queried_at"].as_str().unwrap(),
                    rec["query_item"].as_str().unwrap()
                );
                assert!(want[2].starts_with(&key), "{want:?} vs {rec}");
                assert_eq!(rec["ticket"], want[3].as_str());
            }
        }
    }

    /// Every ticket the tables print is the tool's ticket for its fields.
    fn every_printed_ticket_is_the_tool_s(&self) {
        use webir_audit::sampling::spec::{ticket, ticket_hex};
        let seed = "12345678901234567890";
        for row in &self.table("smallest first:\n\n| rank | account") {
            assert_eq!(
                ticket_hex(&ticket(&[seed, "account", "2026H1", "KHB", &row[2]])),
                row[4]
            );
        }
        for account in ["u03", "u02"] {
            for row in self.table(&format!("`{account}`:\n")) {
                assert_eq!(
                    ticket_hex(&ticket(&[seed, "record", "2026H1", account, &row[2]])),
                    row[3]
                );
            }
        }
    }
}

/// A query log that fails to load would silently shrink the population: no
/// seed is drawn until the inbox loads.
#[test]
fn no_seed_is_drawn_while_an_input_fails() {
    let t = crate::harness::Test::new().file(
        "inbox/query_logs/broken.csv",
        "帳號,查詢時間\nu1,2026-03-02 10:00:00\n",
    );
    let out = t.run(&["run", "sample-audit", "--period", "2026H1"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("query_logs/broken.csv") && out.stderr.contains("no seed was drawn"),
        "{}",
        out.stderr
    );
    assert!(!t.path("var/archive/2026H1/sample-audit").exists());
}
