//! Mail through the file transport, read back by an independent MIME
//! parser (Python's `email` package): every officer gets their own unit's
//! workbook and nobody else's, exactly once, with the Chinese subject and
//! file name intact and the attachment byte for byte the archived workbook.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use crate::harness::{Test, repo, run_binary};
use crate::sample_data::copy_dir;

/// A message as an independent MIME parser (Python's `email` package)
/// reads it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Parsed {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    /// The decoded text/plain body.
    pub text: String,
    /// The attachment's decoded file name ("" without one).
    pub name: String,
    /// SHA-256 of the attachment's bytes ("" without one).
    pub sha: String,
    /// The attachment's bytes, written beside the message.
    pub attachment: Option<PathBuf>,
}

/// Every `.eml` in `dir`, in name order, parsed by Python.
pub fn parse_all(dir: &std::path::Path) -> Vec<Parsed> {
    let script = r#"
import email, email.policy, glob, hashlib, json, sys
out = []
for f in sorted(glob.glob(sys.argv[1] + "/*.eml")):
    m = email.message_from_bytes(open(f, "rb").read(), policy=email.policy.default)
    atts = list(m.iter_attachments())
    body = m.get_body(preferencelist=("plain",))
    p = {"to": str(m["To"]), "subject": str(m["Subject"]),
         "message_id": str(m["Message-ID"]),
         "text": body.get_content() if body is not None else "",
         "name": "", "sha": "", "attachment": None}
    if atts:
        data = atts[0].get_content()
        p["name"] = atts[0].get_filename()
        p["sha"] = hashlib.sha256(data).hexdigest()
        p["attachment"] = f + ".attachment"
        open(p["attachment"], "wb").write(data)
    out.append(p)
print(json.dumps(out, ensure_ascii=False))
"#;
    let out = Command::new("python3")
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Parsed>>(&out.stdout).unwrap()
}

pub fn sha256(path: &std::path::Path) -> String {
    webir_audit::ingest::hash_file(path).unwrap().1
}

#[test]
fn every_officer_gets_their_own_workbook_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("sample_data"), &tmp.path().join("city"));
    let config_path = tmp.path().join("city/webir-audit.toml");
    let config = webir_audit::config::load(&config_path).unwrap();
    let c = config_path.to_str().unwrap();
    let out = run_binary(
        &[
            "run",
            "sample-audit",
            "--period",
            "2026H1",
            "--seed",
            "12345678901234567890",
            "--config",
            c,
        ],
        tmp.path(),
    );
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    let dir = out.run_dir();
    assert!(out.stdout.contains("0 failed"), "{}", out.stdout);

    let files = config.paths.state.join("outbox-files");
    let got = parse_all(&files);
    // Who must receive what: each unit's officer its unit's workbook, the
    // Health Bureau's officer also the city-wide one.
    let mut expected: BTreeMap<(String, String), String> = BTreeMap::new();
    for unit in config.agencies.units() {
        let path = dir.join(format!("reports/{}.xlsx", unit.id));
        expected.insert(
            (unit.officer_email.clone().unwrap(), sha256(&path)),
            unit.id.clone(),
        );
    }
    let hb = config.agencies.health_bureau();
    expected.insert(
        (
            hb.officer_email.clone().unwrap(),
            sha256(&dir.join("reports/city-wide.xlsx")),
        ),
        "city-wide".into(),
    );
    // Workbooks; critical findings' notices (緊急) are messages of their own.
    let officers: Vec<_> = got
        .iter()
        .filter(|p| p.to.starts_with("officer") && !p.subject.contains("緊急"))
        .collect();
    assert_eq!(
        officers.len(),
        expected.len(),
        "one message per officer per workbook"
    );
    for Parsed {
        to,
        subject,
        name,
        sha,
        ..
    } in officers
    {
        let unit = expected
            .get(&(to.clone(), sha.clone()))
            .unwrap_or_else(|| panic!("{to} received a workbook that is not theirs ({name})"));
        assert!(
            subject.starts_with("【健保WebIR稽核】") && subject.contains("抽查工作底稿"),
            "{subject}"
        );
        assert!(
            name.ends_with("_2026H1_抽查工作底稿.xlsx") && name.contains("健保WebIR稽核_"),
            "{name}"
        );
        if unit == "city-wide" {
            assert!(subject.contains("全市彙整"), "{subject}");
        }
    }
    // Ethics units hear of serious findings, with their unit's workbook.
    for Parsed { to, sha, .. } in got
        .iter()
        .filter(|p| p.to.starts_with("ethics") && !p.subject.contains("緊急"))
    {
        let unit = config
            .agencies
            .units()
            .find(|u| u.ethics_email.as_deref() == Some(to.as_str()))
            .unwrap();
        assert_eq!(
            *sha,
            sha256(&dir.join(format!("reports/{}.xlsx", unit.id))),
            "{to}"
        );
    }

    // Sending again delivers nothing new.
    let again = run_binary(&["outbox", "send", "--config", c], tmp.path());
    assert!(again.stdout.contains("mail: 0 sent"), "{}", again.stdout);
    assert_eq!(parse_all(&files).len(), got.len());
    let list = run_binary(&["outbox", "list", "--config", c], tmp.path());
    assert!(
        list.stdout
            .contains(&format!("{} messages: {} sent", got.len(), got.len())),
        "{}",
        list.stdout
    );
}

#[test]
fn no_send_only_queues() {
    let t = Test::new().file(
        "inbox/query_logs/log.csv",
        "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\nu1,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n",
    );
    let out = t.run(&["run", "query-check", "--period", "2026H1", "--no-send"]);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("mail:"), "{}", out.stdout);
    assert!(!t.path("var/state/outbox-files").exists());
    let list = t.run(&["outbox", "list"]);
    assert!(list.stdout.contains("pending"), "{}", list.stdout);
    let send = t.run(&["outbox", "send"]);
    assert!(
        send.stdout.contains("0 failed") && !send.stdout.contains("mail: 0 sent"),
        "{}",
        send.stdout
    );
}

#[test]
fn a_broken_template_is_a_config_error() {
    let t = Test::new()
        .config_replace(
            "state = \"var/state\"",
            "state = \"var/state\"\ntemplates = \"tpl\"",
        )
        .file("tpl/subject.j2", "{% if %}");
    let out = t.run(&["check-config"]);
    assert_eq!(out.status, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("paths.templates"), "{}", out.stderr);
}

/// The README's main command: every job on the sample city, mailed to
/// files. On a fresh generated copy it must run, and refuse a used folder.
#[test]
fn demo_runs_every_job_and_mails_every_workbook() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let d = dir.to_str().unwrap();
    let out = run_binary(&["demo", "--out", d], tmp.path());
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let runs: Vec<PathBuf> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("run      "))
        .map(PathBuf::from)
        .collect();
    assert_eq!(runs.len(), 4, "{}", out.stdout);
    for r in &runs {
        assert!(
            r.join("SHA256SUMS").exists() && r.join("reports/city-wide.xlsx").exists(),
            "{}",
            r.display()
        );
    }
    let emls = parse_all(&dir.join("var/state/outbox-files"));
    assert!(
        out.stdout
            .contains(&format!("mail: {} sent, 0 to retry, 0 failed", emls.len())),
        "{}",
        out.stdout
    );
    // 10 units' and the city-wide workbook for three jobs, the external
    // audit's city-wide one, plus ethics copies.
    assert!(emls.len() > 3 * 11, "{}", emls.len());
    assert!(
        emls.iter()
            .all(|p| p.subject.starts_with("【健保WebIR稽核】")
                && (p.name.ends_with(".xlsx") || p.subject.contains("緊急")))
    );
    let again = run_binary(&["demo", "--out", d], tmp.path());
    assert_eq!(again.status, 2);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
}

/// Over `mail.max_attachment_mb` the workbook stays home and the officer
/// is told where it is.
#[test]
fn a_workbook_over_the_size_limit_is_not_attached_but_its_place_is_said() {
    let t = Test::new()
        .config_replace(
            "admin = \"admin@example.gov.tw\"",
            "admin = \"admin@example.gov.tw\"\nmax_attachment_mb = 0",
        )
        .file(
            "inbox/query_logs/log.csv",
            "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\nu1,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n",
        );
    let out = t.run(&["run", "query-check", "--period", "2026H1"]);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    let run = out.run_dir();
    let got = parse_all(&t.path("var/state/outbox-files"));
    assert!(!got.is_empty());
    for p in &got {
        assert!(p.attachment.is_none(), "{} got an attachment", p.to);
        assert!(p.text.contains("未隨信寄送"), "{}", p.text);
        assert!(
            p.text.contains(&run.join("reports").display().to_string()),
            "{}",
            p.text
        );
    }
}

/// Each reader is told what that reader must do (issue 15): the unit's
/// officer fills in the worksheet; the ethics unit, copied on serious
/// anomalies, investigates with the officer (point 6(3)) and fills in
/// nothing; the Health Bureau's chief administrator gets the city-wide
/// roll-up to supervise (point 4), with no worksheet. No mail names a role
/// the regulation does not have.
#[test]
fn each_mail_says_what_its_reader_must_do() {
    let tmp = tempfile::tempdir().unwrap();
    crate::sample_data::copy_dir(
        &crate::harness::repo().join("sample_data"),
        &tmp.path().join("city"),
    );
    let config = tmp.path().join("city/webir-audit.toml");
    let out = run_binary(
        &[
            "--now",
            "2026-07-05T08:00:00+08:00",
            "run",
            "sample-audit",
            "--period",
            "2026H1",
            "--seed",
            "12345678901234567890",
            "--config",
            config.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    let outbox = tmp.path().join("var/state/outbox-files");
    for e in std::fs::read_dir(&outbox).unwrap() {
        let eml = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(
            eml.contains("Reply-To: webir.khb@example.gov.tw"),
            "no Reply-To"
        );
    }
    let mails = parse_all(&outbox);
    let (mut officers, mut ethics, mut chief, mut critical) = (0, 0, 0, 0);
    for m in &mails {
        assert!(!m.text.contains("系統管理者"), "{}: {}", m.to, m.text);
        if !m.subject.contains("緊急") {
            // How to return it, and whom to ask (mail.reply_to, mail.contact).
            assert!(
                m.text.contains("回傳及聯絡：請回覆本信（webir.khb@example.gov.tw）；承辦人：衛生局 WebIR 稽核承辦人"),
                "{}",
                m.text
            );
        }
        if m.subject.contains("緊急") {
            // Critical findings: at once, to the officer and the ethics
            // unit, apart from the workbook and its deadline.
            critical += 1;
            assert!(m.name.is_empty(), "the notice carries no workbook");
            assert!(m.text.contains("不待 30 日"), "{}", m.text);
            if m.to.starts_with("ethics.") {
                assert!(
                    m.text.contains("共同調查") && m.text.contains("調查紀錄"),
                    "{}",
                    m.text
                );
            } else {
                assert!(m.text.contains("廢止其使用權限"), "{}", m.text);
            }
            continue;
        }
        if m.to.starts_with("ethics.") {
            ethics += 1;
            assert!(m.text.starts_with("政風單位 您好"), "{}", m.text);
            for must in ["會同", "共同調查", "調查紀錄", "第六點第三款"] {
                assert!(
                    m.text.contains(must),
                    "ethics mail lacks {must}: {}",
                    m.text
                );
            }
            assert!(
                !m.text.contains("黃色欄位") && !m.text.contains("應辦事項"),
                "{}",
                m.text
            );
        } else if m.subject.contains("全市彙整") {
            chief += 1;
            assert!(m.text.starts_with("衛生局總管理者 您好"), "{}", m.text);
            assert!(!m.text.contains("黃色欄位"), "{}", m.text);
            assert!(m.text.contains("督導"), "{}", m.text);
        } else {
            officers += 1;
            assert!(m.text.starts_with("專責人員 您好"), "{}", m.text);
            assert!(m.text.contains("黃色欄位"), "{}", m.text);
        }
    }
    assert!(
        officers > 5 && ethics > 0 && chief == 1 && critical > 0 && critical % 2 == 0,
        "{officers} {ethics} {chief} {critical}"
    );
}
