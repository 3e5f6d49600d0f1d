//! Issue 30: the tool keeps personal data only where and as long as the
//! regulation allows. The README's data inventory is the contract: a demo,
//! walked before and after its retention horizon, holds no file the
//! inventory does not name, none with a wider mode, and, past the horizon,
//! only what a hold or an unreturned worksheet keeps.

use std::path::{Path, PathBuf};

use crate::harness::files_in as walk;
use crate::harness::{repo, run_binary};

/// One row of the README's inventory: the path patterns (`<inbox>`,
/// `<archive>`, `<state>`, `<keys>`; `*` one segment) and the widest mode.
struct Place {
    patterns: Vec<String>,
    mode: u32,
}

/// The inventory table of README.md (after its `<!-- inventory` marker).
fn inventory() -> Vec<Place> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let at = readme.find("<!-- inventory").expect("the inventory marker");
    let mut out = Vec::new();
    for line in readme[at..].lines().skip(3) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let patterns = cells[1]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        let mode = u32::from_str_radix(cells[3], 8)
            .unwrap_or_else(|_| panic!("the mode of {line} is not octal"));
        out.push(Place { patterns, mode });
    }
    assert!(out.len() >= 10, "the inventory has {} rows", out.len());
    out
}

/// Whether `rel` (`/`-separated) matches `pattern` (`*` one segment).
fn matches(pattern: &str, rel: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let r: Vec<&str> = rel.split('/').collect();
    p.len() == r.len() && p.iter().zip(&r).all(|(p, r)| *p == "*" || p == r)
}

/// Every file under the demo's `var/` and inbox: none outside the
/// inventory, none with a wider mode than its row says. Returns them.
fn check_inventory(demo: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let places = inventory();
    let roots = [
        ("<inbox>", demo.join("city/inbox")),
        ("<archive>", demo.join("var/archive")),
        ("<state>", demo.join("var/state")),
        ("<keys>", demo.join("var/keys")),
    ];
    let mut seen = Vec::new();
    for e in walk(&demo.join("var"))
        .into_iter()
        .chain(walk(&demo.join("city/inbox")))
    {
        let (tag, root) = roots
            .iter()
            .find(|(_, r)| e.starts_with(r))
            .unwrap_or_else(|| panic!("{} is outside every place of the inventory", e.display()));
        let rel = format!("{tag}/{}", e.strip_prefix(root).unwrap().display());
        let place = places
            .iter()
            .find(|p| p.patterns.iter().any(|pat| matches(pat, &rel)))
            .unwrap_or_else(|| panic!("{rel} is not in README's data inventory"));
        let mode = std::fs::symlink_metadata(&e).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode & !place.mode,
            0,
            "{rel}: mode {mode:04o}, wider than the inventory's {:04o}",
            place.mode
        );
        seen.push(rel);
    }
    seen
}

fn demo_binary(demo: &Path, now: &str, args: &[&str]) -> crate::harness::Output {
    let config = demo.join("city/webir-audit.toml");
    let mut all = vec!["--now", now];
    all.extend_from_slice(args);
    all.extend(["--config", config.to_str().unwrap()]);
    let out = run_binary(&all, demo);
    assert_eq!(out.status, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    out
}

/// The outbox's delivered messages as (sent_at, length of what is kept,
/// the recorded SHA-256 of the whole message).
fn outbox_rows(demo: &Path) -> Vec<(String, usize, Option<String>)> {
    let db = rusqlite::Connection::open(demo.join("var/state/state.sqlite3")).unwrap();
    let mut stmt = db
        .prepare("SELECT sent_at, length(eml), eml_sha256 FROM outbox WHERE state = 'sent'")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)? as usize, r.get(2)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn the_demo_past_its_retention_horizon_leaves_only_what_the_inventory_says() {
    let mut demo =
        Retention::the_demo_keeps_its_read_exports_archived_and_no_password_in_the_clear();
    demo.a_hostile_return_is_refused_and_told_to_the_admin_masked();
    demo.the_sample_audit_is_held_with_a_reason_naming_a_person();
    demo.only_a_unit_or_an_archived_run_can_be_held();
    demo.the_hold_s_reason_is_shown_and_stored_masked();
    demo.forty_days_on_sent_mail_keeps_its_headers_and_the_refused_file_is_gone();
    demo.past_the_horizon_only_the_held_run_remains();
    demo.released_the_run_stays_for_its_worksheets_and_the_chain_is_whole();
}

/// The demo walked through its retention: where it lives, the outbox files
/// of its first daemon pass, and the sample audit run put on hold.
struct Retention {
    /// Holds the demo's folder for the test's length.
    _tmp: tempfile::TempDir,
    demo: PathBuf,
    first_mail: Vec<PathBuf>,
    sample: PathBuf,
}

impl Retention {
    /// The demo runs; the inbox holds only what is waiting and the
    /// attachment passwords sit under the keys, not beside the attachments.
    fn the_demo_keeps_its_read_exports_archived_and_no_password_in_the_clear() -> Retention {
        let tmp = tempfile::tempdir().unwrap();
        let demo = tmp.path().join("demo");
        let out = run_binary(
            &[
                "--now",
                "2026-12-02T10:00:00+08:00",
                "demo",
                "--out",
                demo.to_str().unwrap(),
            ],
            tmp.path(),
        );
        assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
        let files = check_inventory(&demo);
        // The inbox holds only what is waiting: every export the runs read
        // moved into the archive's input store, owner-only.
        assert!(
            !files.iter().any(|f| f.starts_with("<inbox>/")),
            "{files:?}"
        );
        let stored: Vec<&String> = files
            .iter()
            .filter(|f| f.starts_with("<archive>/inputs/"))
            .collect();
        assert_eq!(stored.len(), 8, "{files:?}");
        // No attachment password in the clear beside the attachments.
        assert!(files.contains(&"<keys>/attachment-passwords.key".to_owned()));
        Retention {
            _tmp: tmp,
            demo,
            first_mail: Vec::new(),
            sample: PathBuf::new(),
        }
    }

    /// The daemon's housekeeping, daily: a hostile file in the returns
    /// folder, named with somebody's national ID, is refused, set aside
    /// owner-only, and told to the admin with the ID masked.
    fn a_hostile_return_is_refused_and_told_to_the_admin_masked(&mut self) {
        let demo = &self.demo;
        crate::harness::copy_dir_dated(
            &repo().join("schedules"),
            &demo.join("schedules"),
            crate::harness::FILE_TIME,
        );
        let returns = demo.join("city/inbox/returns");
        std::fs::create_dir_all(&returns).unwrap();
        std::fs::write(returns.join("A123456789 王大明.xlsx"), b"not a workbook").unwrap();
        demo_binary(demo, "2026-12-03T10:00:00+08:00", &["daemon", "--once"]);
        let files = check_inventory(demo);
        assert!(
            files.contains(&"<inbox>/returns/refused/0001.refused".to_owned()),
            "{files:?}"
        );
        self.first_mail = walk(&demo.join("var/state/outbox-files"));
        let mails = crate::harness::mail::parse_all(&demo.join("var/state/outbox-files"));
        // The reading above wrote each attachment beside its message: ours.
        for m in &mails {
            if let Some(a) = &m.attachment {
                std::fs::remove_file(a).unwrap();
            }
        }
        let told = mails
            .iter()
            .find(|m| m.to == "admin@example.gov.tw" && m.text.contains("無法收件"))
            .expect("the admin is told of the refused file");
        assert!(!told.text.contains("A123456789") && told.text.contains("A12****789"));
    }

    /// A legal hold on the sample audit, with a reason naming a person.
    fn the_sample_audit_is_held_with_a_reason_naming_a_person(&mut self) {
        let demo = &self.demo;
        self.sample = walk(&demo.join("var/archive/2026H1/sample-audit"))
            .into_iter()
            .find(|p| p.ends_with("manifest.json"))
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let out = demo_binary(
            demo,
            "2026-12-03T11:00:00+08:00",
            &[
                "hold",
                self.sample.to_str().unwrap(),
                "--reason",
                "地檢署偵查中，涉 A123456789",
            ],
        );
        assert!(
            out.stdout.starts_with("held     2026H1/sample-audit/"),
            "{}",
            out.stdout
        );
    }

    /// Only a unit or an archived run can be held.
    fn only_a_unit_or_an_archived_run_can_be_held(&self) {
        let demo = &self.demo;
        let config = demo.join("city/webir-audit.toml");
        for target in ["../../etc", "2026H1/sample-audit/nothing", "NOPE"] {
            let refused = run_binary(
                &[
                    "--now",
                    "2026-12-03T11:00:00+08:00",
                    "hold",
                    target,
                    "--reason",
                    "x",
                    "--config",
                    config.to_str().unwrap(),
                ],
                demo,
            );
            assert_eq!(refused.status, 2, "{target}: {}", refused.stdout);
        }
    }

    /// The hold's reason is listed with the ID masked, nor is it stored whole.
    fn the_hold_s_reason_is_shown_and_stored_masked(&self) {
        let demo = &self.demo;
        let out = demo_binary(demo, "2026-12-03T11:00:00+08:00", &["hold"]);
        assert!(
            out.stdout.contains("A12****789") && !out.stdout.contains("A123456789"),
            "{}",
            out.stdout
        );

        // Nor is it stored whole.
        let db = std::fs::read(demo.join("var/state/state.sqlite3")).unwrap();
        assert!(!String::from_utf8_lossy(&db).contains("A123456789"));
    }

    /// Forty days on: delivered messages keep their headers and hash only,
    /// the file transport's copies and the refused return are gone.
    fn forty_days_on_sent_mail_keeps_its_headers_and_the_refused_file_is_gone(&self) {
        let demo = &self.demo;
        demo_binary(demo, "2027-01-12T10:00:00+08:00", &["daemon", "--once"]);
        for f in &self.first_mail {
            assert!(
                !f.exists(),
                "{} outlived rules.outbox_keep_days",
                f.display()
            );
        }
        for (sent_at, kept, sha) in outbox_rows(demo) {
            if sent_at.as_str() < "2026-12-13" {
                assert!(kept < 4096 && sha.is_some(), "{sent_at}: {kept} bytes kept");
            }
        }
        let files = check_inventory(demo);
        assert!(!files.iter().any(|f| f.contains("/refused/")), "{files:?}");
    }

    /// Past the retention horizon: every run folder goes but the held one;
    /// so does every export but the current roster and HR list, and those
    /// the held run read; each with a tombstone, the chain still whole.
    fn past_the_horizon_only_the_held_run_remains(&self) {
        let demo = &self.demo;
        let out = demo_binary(demo, "2030-07-02T10:00:00+08:00", &["run", "retention"]);
        assert!(
            out.stdout.contains("held     2026H1/sample-audit/"),
            "{}",
            out.stdout
        );
        let files = check_inventory(demo);
        let runs: std::collections::BTreeSet<&str> = files
            .iter()
            .filter(|f| f.ends_with("/SHA256SUMS"))
            .map(String::as_str)
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert!(runs.iter().all(|r| r.contains("2026H1/sample-audit")));
    }

    /// Released: the run stays only for its worksheets still out, and keeps
    /// the exports it read; the chain holds the hold, release and tombstones.
    fn released_the_run_stays_for_its_worksheets_and_the_chain_is_whole(&self) {
        let demo = &self.demo;
        demo_binary(
            demo,
            "2030-07-03T10:00:00+08:00",
            &[
                "hold",
                self.sample.to_str().unwrap(),
                "--release",
                "--reason",
                "不起訴處分確定",
            ],
        );
        let out = demo_binary(demo, "2030-07-03T10:00:00+08:00", &["run", "retention"]);
        assert!(
            out.stdout.contains("worksheets not returned by"),
            "{}",
            out.stdout
        );
        check_inventory(demo);
        let out = demo_binary(demo, "2030-07-03T10:00:00+08:00", &["archive", "verify"]);
        assert!(out.stdout.contains("intact"), "{}", out.stdout);
        let db = rusqlite::Connection::open(demo.join("var/state/state.sqlite3")).unwrap();
        let kinds: Vec<String> = db
            .prepare("SELECT kind FROM chain ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for kind in ["hold", "release", "tombstone"] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} not in {kinds:?}");
        }
    }
}

/// Exports leave the inbox once a sealed run read them, later runs read
/// them from the archive with the same result, a newer export of the same
/// name supersedes the stored one, and each goes at the end of its
/// retention with a tombstone — all but the current roster and HR list.
#[test]
fn exports_leave_the_inbox_once_read_and_go_at_the_end_of_their_retention() {
    let tmp = tempfile::tempdir().unwrap();
    crate::harness::copy_dir_dated(
        &repo().join("sample_data"),
        &tmp.path().join("city"),
        crate::harness::FILE_TIME,
    );
    let demo = tmp.path();
    let inbox = demo.join("city/inbox");
    let before: Vec<PathBuf> = walk(&inbox);
    assert!(before.len() >= 8);
    let run = |now: &str| {
        let out = demo_binary_status(demo, now, &["run", "query-check", "--period", "2026H1"]);
        out.run_dir()
    };
    let first = run("2026-07-10T10:00:00+08:00");
    assert!(walk(&inbox).is_empty(), "{:?}", walk(&inbox));
    // Another run reads them where they are now: the same findings.
    let second = run("2026-07-11T10:00:00+08:00");
    assert_eq!(
        std::fs::read(first.join("findings.csv")).unwrap(),
        std::fs::read(second.join("findings.csv")).unwrap()
    );
    assert_eq!(
        crate::harness::json(&first, "inputs.json"),
        crate::harness::json(&second, "inputs.json")
    );
    // A corrected HR list under the same name replaces the stored one,
    // which is set aside, unread.
    let hr = before
        .iter()
        .find(|p| p.parent().unwrap().ends_with("hr"))
        .unwrap();
    let stored = demo
        .join("var/archive/inputs/hr")
        .join(hr.file_name().unwrap());
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes.extend_from_slice(b"\r\n");
    std::fs::write(hr, &bytes).unwrap();
    crate::harness::written_at(hr, crate::harness::FILE_TIME);
    run("2026-07-12T10:00:00+08:00");
    assert_eq!(std::fs::read(&stored).unwrap(), bytes);
    assert_eq!(walk(&demo.join("var/archive/inputs/superseded")).len(), 1);

    let out = demo_binary_status(demo, "2030-01-01T10:00:00+08:00", &["run", "retention"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let left: Vec<String> = walk(&demo.join("var/archive/inputs"))
        .iter()
        .map(|p| {
            p.strip_prefix(demo.join("var/archive/inputs"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    // The newest roster, HR list and applications register stay: what
    // runs read now.
    assert_eq!(left.len(), 3, "{left:?}\n{}", out.stdout);
    assert!(left.iter().any(|l| l.starts_with("roster/")), "{left:?}");
    assert!(left.iter().any(|l| l.starts_with("hr/")), "{left:?}");
    let verify = demo_binary_status(demo, "2030-01-01T10:00:00+08:00", &["archive", "verify"]);
    assert_eq!(verify.status, 0, "{}{}", verify.stdout, verify.stderr);
    let db = rusqlite::Connection::open(demo.join("var/state/state.sqlite3")).unwrap();
    let tombstones: i64 = db
        .query_row(
            "SELECT count(*) FROM chain WHERE kind = 'input-tombstone'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tombstones, before.len() as i64 + 1 - 3);
    // A stored export changed, or one slipped in: `archive verify` names it.
    let roster = walk(&demo.join("var/archive/inputs/roster")).remove(0);
    let mut bytes = std::fs::read(&roster).unwrap();
    bytes.push(b'\n');
    std::fs::write(&roster, bytes).unwrap();
    std::fs::write(demo.join("var/archive/inputs/hr/slipped-in.csv"), "x").unwrap();
    let verify = demo_binary_status(demo, "2030-01-01T10:00:00+08:00", &["archive", "verify"]);
    assert_eq!(verify.status, 1, "{}", verify.stdout);
    assert!(
        verify.stdout.contains("inputs/roster/") && verify.stdout.contains("changed since"),
        "{}",
        verify.stdout
    );
    assert!(
        verify
            .stdout
            .contains("inputs/hr/slipped-in.csv: in the input store but in no record"),
        "{}",
        verify.stdout
    );
}

fn demo_binary_status(demo: &Path, now: &str, args: &[&str]) -> crate::harness::Output {
    let config = demo.join("city/webir-audit.toml");
    let mut all = vec!["--now", now];
    all.extend_from_slice(args);
    all.extend(["--config", config.to_str().unwrap()]);
    let out = run_binary(&all, demo);
    assert!(out.status <= 1, "{args:?}: {}{}", out.stdout, out.stderr);
    out
}
