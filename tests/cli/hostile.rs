//! Hostile and broken input, through the real binary: names that would
//! reach a path, workbooks that inflate, garbage rows, control characters.

use std::path::Path;

use crate::harness::Test;
use crate::harness::files_relative as files;

const LOG: &str = "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\nu1,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n";

/// An agency id names workbooks and folders: anything but letters,
/// digits, `-` and `_` is refused by check-config (exit 3, naming the key),
/// and no run is made with it.
#[test]
fn an_agency_id_that_would_escape_its_folder_is_refused() {
    for bad in [
        "../../TB",
        "a/b",
        "a\\\\b",
        "..",
        "K B",
        "KHB\\u0000",
        "",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    ] {
        let t = Test::new()
            .config_replace("id = \"KPB-1\"", &format!("id = \"{bad}\""))
            .file("inbox/query_logs/log.csv", LOG);
        let out = t.run(&["check-config"]);
        assert_eq!(out.status, 3, "{bad:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("agencies[2].id") && out.stderr.contains("letters, digits"),
            "{bad:?}: {}",
            out.stderr
        );
        let run = t.run(&["run", "account-review", "--as-of", "2026-07-02"]);
        assert_eq!(run.status, 3, "{bad:?}: {}", run.stderr);
        assert!(!t.path("var/archive").exists(), "{bad:?}: a run was made");
        assert!(!t.path("TB.xlsx").exists() && !t.path("var/TB.xlsx").exists());
    }
}

/// A period or review day reaches the run folder's path: only the strict
/// forms parse.
#[test]
fn a_period_that_would_escape_the_archive_is_refused() {
    let t = Test::new().file("inbox/query_logs/log.csv", LOG);
    for bad in ["../../x", "2026H1/..", "/tmp/x", "2026-01-01../etc"] {
        let out = t.run(&["run", "query-check", "--period", bad]);
        assert_eq!(out.status, 2, "{bad:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("invalid period"),
            "{bad:?}: {}",
            out.stderr
        );
    }
    let out = t.run(&["run", "account-review", "--as-of", "../2026-07-02"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(!t.path("var/archive").exists());
}

/// Names shown to people become file names in their mail client: the
/// attachment's name holds no separator or control character, whatever the
/// agency's name holds, and the run writes only inside its folder.
#[test]
fn an_agency_name_cannot_steer_a_file_name() {
    let t = Test::new()
        .config_replace(
            "name = \"高雄市政府警察局\"",
            // (Control characters in a name are refused by the config.)
            "name = \"../../警察局/二:三*\"",
        )
        .file("inbox/query_logs/log.csv", LOG);
    let out = t.run(&["run", "query-check", "--period", "2026H1"]);
    out.assert_ran();
    let outside: Vec<String> = files(t.dir.path())
        .into_iter()
        .filter(|f| !f.starts_with("var/") && !f.starts_with("inbox/") && f != "webir-audit.toml")
        .collect();
    assert!(outside.is_empty(), "written outside: {outside:?}");
    let mails = t.path("var/state/outbox-files");
    let mut seen = 0;
    for f in std::fs::read_dir(&mails).unwrap() {
        let eml = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for line in eml.lines().filter(|l| l.contains("filename")) {
            seen += 1;
            assert!(!line.contains('/') || line.contains("=?utf-8?"), "{line}");
        }
        // The encoded name, decoded, is a plain file name.
        for word in eml.split("=?utf-8?b?").skip(1) {
            let b64 = &word[..word.find("?=").unwrap()];
            let name = String::from_utf8(base64_decode(b64)).unwrap();
            if name.ends_with(".xlsx") {
                assert!(
                    !name.contains('/')
                        && !name.contains('\\')
                        && !name.chars().any(char::is_control),
                    "{name:?}"
                );
            }
        }
    }
    assert!(seen > 0, "no attachment seen");
}

fn base64_decode(s: &str) -> Vec<u8> {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = table.iter().position(|t| *t == c).unwrap() as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

const HEADER: &str = "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\n";

/// A control or invisible character, or quotes around it, makes an
/// identifier no identifier: the row is rejected with the reason, and the
/// run says so (exit 2).
#[test]
fn identifiers_with_control_characters_or_quotes_are_rejected() {
    let rows = [
        "u\u{0}1,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1",
        "u\u{200b}2,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1",
        "'u3',2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1",
        "u4,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1",
    ];
    let t = Test::new().file(
        "inbox/query_logs/log.csv",
        format!("{HEADER}{}\n", rows.join("\n")),
    );
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("3 row(s) rejected"), "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("is not an identifier").count(),
        3,
        "{}",
        out.stdout
    );
    let ing = t.load();
    let q = ing.table(webir_audit::model::Table::QueryLog);
    assert_eq!(q.height(), 1, "only u4 is loaded");
}

/// Garbage after the records is no footer: a footer is short and says
/// what footers say (合計, 共 N 筆, 列印…). A long line of junk is rejected,
/// shown by its first characters and its length, and the run exits 2;
/// the real footer is still skipped.
#[test]
fn garbage_after_the_records_is_rejected_not_skipped() {
    let junk: String = "x".repeat(300_000);
    let t = Test::new().file(
        "inbox/query_logs/log.csv",
        format!(
            "{HEADER}u1,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n合計,1 筆,,,,,,\n{junk}\n"
        ),
    );
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("loaded 1  rejected 1  skipped 1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("has 300000 bytes, more than any cell may"),
        "{}",
        out.stdout
    );
    let ing = t.load();
    let raw = ing
        .rejects
        .column("raw")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned();
    assert!(
        raw.contains("…（共 300000 字）"),
        "{}",
        &raw[..raw.len().min(200)]
    );
    assert!(
        raw.len() < 1000,
        "the reject shows the first characters only"
    );

    // Short, but no footer either: rejected too.
    let t = Test::new().file(
        "inbox/query_logs/log.csv",
        format!(
            "{HEADER}u1,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\nlorem ipsum,,,,,,,\n"
        ),
    );
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("loaded 1  rejected 1  skipped 0"),
        "{}",
        out.stdout
    );
}

/// An XLSX whose sheet is `mib` MiB of the same byte: tiny on disk.
fn bomb(path: &Path, mib: usize) {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    z.start_file("xl/worksheets/sheet1.xml", opts).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..mib {
        z.write_all(&chunk).unwrap();
    }
    z.finish().unwrap();
}

/// A workbook that would inflate past `[limits]` is refused before it is
/// read, naming the file and the limit; the other files are ingested.
#[test]
fn a_workbook_that_inflates_past_the_limits_is_refused_and_the_rest_goes_on() {
    let t = Test::new()
        .config("\n[limits]\nworkbook_mib = 8\nentry_mib = 4\n")
        .file("inbox/query_logs/log.csv", LOG);
    std::fs::create_dir_all(t.path("inbox/roster")).unwrap();
    bomb(&t.path("inbox/roster/bomb.xlsx"), 6);
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("roster/bomb.xlsx: xl/worksheets/sheet1.xml would inflate to 6.0 MiB, over limits.entry_mib (4.0 MiB); not read"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("query_logs/log.csv") && out.stdout.contains("loaded 1"));

    // With the default limits, a sheet that inflates a thousandfold is
    // refused for its ratio.
    let t = Test::new().file("inbox/query_logs/log.csv", LOG);
    std::fs::create_dir_all(t.path("inbox/roster")).unwrap();
    bomb(&t.path("inbox/roster/bomb.xlsx"), 20);
    let out = t.run(&["check-config"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("over limits.compression_ratio (100:1); not read"),
        "{}",
        out.stdout
    );
}

/// Limits are validated like every other key.
#[test]
fn limits_out_of_range_are_config_errors() {
    let t = Test::new().config("\n[limits]\nworkbook_mib = 0\ncompression_ratio = 1\n");
    let out = t.run(&["check-config"]);
    assert_eq!(out.status, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("limits.workbook_mib")
            && out.stderr.contains("limits.compression_ratio"),
        "{}",
        out.stderr
    );
}

/// A file most of whose rows are no records is not an export of its table:
/// past `limits.rejects_per_file` it is refused as a whole, with its first
/// reasons, instead of being loaded in part beside its rejects.
#[test]
fn a_file_of_mostly_garbage_is_refused_as_a_whole() {
    let bad = "u9,not a time,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n".repeat(3);
    let t = Test::new()
        .config("\n[limits]\nrejects_per_file = 2\n")
        .file("inbox/query_logs/a.csv", LOG)
        .file("inbox/query_logs/b.csv", format!("{HEADER}{bad}"));
    let out = t.run(&["ingest"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "FAILED: query_logs/b.csv: 3 of its 3 rows are no query_log records (more than limits.rejects_per_file, 2); the file was not used. The first: row 2: column"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("query_logs/a.csv") && out.stdout.contains("loaded 1"));
}

/// A write fault by hand (a file-size limit, as a full disk): the run
/// fails with the error (exit 2), leaves no run folder and queues no mail.
#[test]
fn a_write_fault_by_hand_leaves_no_half_run_and_no_mail() {
    let city = Test::sample_city();
    // The state database exists before the disk fills.
    let list = city.run(&["outbox", "list"]);
    assert_eq!(list.status, 0, "{}", list.stderr);
    let out = city.run_limited(
        96,
        &[
            "--now",
            "2026-07-05T08:00:00+08:00",
            "run",
            "query-check",
            "--period",
            "2026H1",
        ],
    );
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("File too large"), "{}", out.stderr);
    let runs = city.path("var/archive/2026H1/query-check");
    let left: Vec<_> = std::fs::read_dir(&runs)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "half-written runs: {left:?}");
    assert!(city.outbox().is_empty(), "mail was queued");
}

/// A damaged state database is named, refused, and nothing is run on it;
/// `status` says so too.
#[test]
fn a_corrupt_state_database_runs_nothing_and_status_says_so() {
    let t = Test::new()
        .file("inbox/query_logs/log.csv", LOG)
        .file(
            "schedules/s.toml",
            "[[schedule]]\njob = \"sample-audit\"\ncron = \"0 0 8 5 1,7 *\"\nperiod = \"previous-half-year\"\n",
        );
    let ok = t.run(&["run", "query-check", "--period", "2026H1", "--no-send"]);
    ok.assert_ran();
    let db = t.path("var/state/state.sqlite3");
    // Damage the pages after the header (the schema and its tables).
    let mut bytes = std::fs::read(&db).unwrap();
    let _ = std::fs::remove_file(t.path("var/state/state.sqlite3-wal"));
    let _ = std::fs::remove_file(t.path("var/state/state.sqlite3-shm"));
    assert!(bytes.len() > 8192);
    for b in &mut bytes[4096..] {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let runs_before = files(&t.path("var/archive")).len();
    for args in [
        vec!["run", "query-check", "--period", "2026H1"],
        vec!["status"],
    ] {
        let out = t.run(&args);
        assert_eq!(out.status, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("state.sqlite3"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(
        files(&t.path("var/archive")).len(),
        runs_before,
        "a run was made"
    );

    // Not a database at all: named too.
    std::fs::write(&db, b"garbage").unwrap();
    let out = t.run(&["run", "query-check", "--period", "2026H1"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("state.sqlite3"), "{}", out.stderr);
}

/// A state database another process holds locked: after the busy wait the
/// run stops with an error naming the file, and makes no run.
#[test]
fn a_locked_state_database_is_named_and_nothing_runs() {
    let t = Test::new().file("inbox/query_logs/log.csv", LOG);
    let ok = t.run(&["outbox", "list"]);
    assert_eq!(ok.status, 0, "{}", ok.stderr);
    let db = t.path("var/state/state.sqlite3");
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let out = t.run(&["run", "query-check", "--period", "2026H1"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("state.sqlite3") && out.stderr.contains("locked"),
        "{}",
        out.stderr
    );
    holder.execute_batch("ROLLBACK;").unwrap();
    assert!(files(&t.path("var/archive")).is_empty(), "a run was made");
}

/// Issue 29: two sample audits of one period started together (by hand,
/// or by hand and the daemon) both drew: draws 1 and 2, two sets of mail.
/// The draw is claimed in the state database in one transaction: one
/// draws, the other is refused and leaves no run folder.
#[test]
fn two_draws_of_a_period_started_together_make_one() {
    let city = Test::sample_city();
    let start = |seed: &str| {
        city.command(&[
            "--now",
            "2026-07-05T08:00:00+08:00",
            "run",
            "sample-audit",
            "--period",
            "2026H1",
            "--seed",
            seed,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (
        start("11111111111111111111111"),
        start("22222222222222222222222"),
    );
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let store = webir_audit::store::Store::open(&city.path("var/state")).unwrap();
    assert_eq!(store.draws("2026H1").unwrap().len(), 1, "one draw");
    let refused: Vec<String> = outs
        .iter()
        .filter(|o| !o.status.success() && o.status.code() != Some(1))
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert_eq!(refused.len(), 1, "{outs:?}");
    assert!(
        refused[0].contains("already drawn") || refused[0].contains("being drawn by another run"),
        "{}",
        refused[0]
    );
    let runs: Vec<_> = std::fs::read_dir(city.path("var/archive/2026H1/sample-audit"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
}

/// Issue 29: a run that dies after its seed was recorded and before its
/// seal (here: the disk fills while the population is written; a kill -9
/// or a power cut leaves the same state) left a draw nobody saw: a plain
/// re-run was refused as already drawn, the next draw was draw 2. The
/// draw is resumed with its recorded seed and number; another seed is
/// refused (that would be seed shopping); nothing of the dead run is left.
#[test]
fn a_draw_whose_run_died_before_its_seal_is_resumed_with_its_seed() {
    let city = Test::sample_city();
    let args = |seed: &'static str| {
        let mut a = vec![
            "--now",
            "2026-07-05T08:00:00+08:00",
            "run",
            "sample-audit",
            "--period",
            "2026H1",
        ];
        if !seed.is_empty() {
            a.extend(["--seed", seed]);
        }
        a
    };
    let seed = "31415926535897932384626";
    let died = city.run_limited(2048, &args(seed));
    assert_ne!(died.status, 0, "{}", died.stderr);
    assert!(died.stderr.contains("population"), "{}", died.stderr);
    let store = || webir_audit::store::Store::open(&city.path("var/state")).unwrap();
    assert_eq!(
        store().draws("2026H1").unwrap().len(),
        1,
        "the seed was recorded first"
    );
    // Another seed now would be seed shopping.
    let other = city.run(&args("27182818284590452353602"));
    assert_eq!(other.status, 2, "{}{}", other.stdout, other.stderr);
    assert!(
        other.stderr.contains("resumed with its recorded seed"),
        "{}",
        other.stderr
    );
    // Without one: draw 1, its seed, sealed; one run folder.
    let again = city.run(&args(""));
    assert!(again.status <= 1, "{}{}", again.stdout, again.stderr);
    let draws = store().draws("2026H1").unwrap();
    assert_eq!(draws.len(), 1);
    assert_eq!(draws[0].seed, seed);
    let runs: Vec<_> = std::fs::read_dir(city.path("var/archive/2026H1/sample-audit"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].join("SHA256SUMS").exists());
    assert_eq!(
        crate::harness::json(&runs[0], "manifest.json")["draw_number"],
        1
    );
    let verify = city.run(&["archive", "verify"]);
    assert_eq!(verify.status, 0, "{}{}", verify.stdout, verify.stderr);
    // A sealed run whose seal file is then deleted is not a crashed one:
    // the chain recorded its seal; it is neither removed nor redrawn.
    std::fs::remove_file(runs[0].join("SHA256SUMS")).unwrap();
    let after = city.run(&args(""));
    assert_eq!(after.status, 2, "{}{}", after.stdout, after.stderr);
    assert!(after.stderr.contains("already drawn"), "{}", after.stderr);
    assert!(runs[0].join("population.tsv").exists(), "not removed");
}

/// Issue 29: the external audit's draw of units, like the sample audit's,
/// is resumed with its seed and number when its run died before its seal
/// (here a mail template that fails to render, after the draw); it used
/// to need `--redraw` and be announced as draw 2.
#[test]
fn an_external_audit_draw_whose_run_died_is_resumed_with_its_seed() {
    let city =
        Test::sample_city().config_replace("[paths]\n", "[paths]\ntemplates = \"templates\"\n");
    crate::harness::copy_dir(
        &crate::harness::repo().join("templates"),
        &city.city_path("templates"),
    );
    let template = city.city_path("templates/external-audit.txt.j2");
    let good = std::fs::read_to_string(&template).unwrap();
    std::fs::write(&template, format!("{good}{{{{ no_such_value }}}}")).unwrap();
    let args = |seed: &'static str| {
        let mut a = vec![
            "--now",
            "2027-01-20T08:00:00+08:00",
            "run",
            "external-audit",
            "--period",
            "2026",
        ];
        if !seed.is_empty() {
            a.extend(["--seed", seed]);
        }
        a
    };
    let seed = "31415926535897932384626";
    let died = city.run(&args(seed));
    assert_eq!(died.status, 2, "{}{}", died.stdout, died.stderr);
    assert!(
        died.stderr.contains("no_such_value") || died.stderr.contains("external-audit.txt.j2"),
        "{}",
        died.stderr
    );
    let ledger = "2026/external-audit";
    let store = || webir_audit::store::Store::open(&city.path("var/state")).unwrap();
    assert_eq!(
        store().draws(ledger).unwrap().len(),
        1,
        "the seed was recorded"
    );
    std::fs::write(&template, good).unwrap();
    let other = city.run(&args("27182818284590452353602"));
    assert_eq!(other.status, 2, "{}{}", other.stdout, other.stderr);
    assert!(
        other.stderr.contains("resumed with its recorded seed"),
        "{}",
        other.stderr
    );
    let again = city.run(&args(""));
    assert!(again.status <= 2, "{}{}", again.stdout, again.stderr);
    let draws = store().draws(ledger).unwrap();
    assert_eq!(draws.len(), 1, "still one draw");
    assert_eq!(draws[0].seed, seed);
    let runs: Vec<_> = std::fs::read_dir(city.path("var/archive/2026/external-audit"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "the dead run's folder is gone: {runs:?}");
    assert!(runs[0].join("SHA256SUMS").exists(), "sealed");
    let selection = crate::harness::json(&runs[0], "selection.json");
    assert_eq!(selection["draw_number"], 1, "{selection}");
    assert_eq!(selection["seed"], seed, "{selection}");
}

/// Issue 29: a run killed before its seal left an unsealed folder with
/// personal data that `status` did not mention and nothing removed. A run
/// holds a lock beside its folder while it writes it; a folder with no
/// seal whose lock no one holds is what a killed run left: `status` names
/// it and the next run removes it. One being made (no lock yet) is not
/// touched.
#[test]
fn what_a_killed_run_left_is_shown_and_removed_by_the_next_run() {
    let city = Test::sample_city();
    crate::harness::copy_dir(
        &crate::harness::repo().join("schedules"),
        &city.path("schedules"),
    );
    let jobs = city.path("var/archive/2026H1/query-check");
    let killed = jobs.join("20260705T090000");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(
        killed.join("findings.csv"),
        "code,subject_id\nX,A123456789\n",
    )
    .unwrap();
    // The lock names the run's process, which is gone.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(jobs.join(".20260705T090000.running"), pid.to_string()).unwrap();
    let making = jobs.join("20260705T091500");
    std::fs::create_dir_all(&making).unwrap();
    let status = city.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("20260705T090000: left unsealed by a run that was killed"),
        "{}{}",
        status.stdout,
        status.stderr
    );
    assert!(
        !status.stdout.contains("20260705T091500"),
        "{}",
        status.stdout
    );
    let out = city.run_at(
        &["run", "query-check", "--period", "2026H1"],
        "2026-07-05T10:00:00+08:00",
    );
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert!(!killed.exists(), "removed");
    assert!(!jobs.join(".20260705T090000.running").exists());
    assert!(making.exists(), "one without a lock yet is not touched");
}
