//! Mail over a real SMTP server (STARTTLS required, AUTH, a city-internal
//! CA): what arrives is counted on the server's side and parsed by Python's
//! `email` package. Faults: a server that is down, 421/450 then success,
//! 550, a connection cut after the data, and the sender killed mid-drain —
//! nothing is lost and nothing arrives twice.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::harness::Test;
use crate::harness::mail::{opened, passwords_by_address, sha256};
use crate::harness::served::{KPB_PASSWORD, arrivals, received};
use crate::smtp::Smtp;

const T0: &str = "2026-07-05T08:00:00+08:00";
const T1: &str = "2026-07-05T09:00:00+08:00";
const T2: &str = "2026-07-05T12:00:00+08:00";

#[test]
fn every_workbook_arrives_once_over_starttls_with_auth_to_its_own_unit_only() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let city = Test::sample_city().served(&smtp, "");
    let out = city.sample_audit_2026h1(&[]);
    assert!(
        out.stdout.contains("0 to retry, 0 failed, 0 of unknown"),
        "{}",
        out.stdout
    );
    let dir = out.run_dir();
    let config = city.loaded_config();
    let got = received(&smtp);
    let queued = city.outbox();
    assert_eq!(got.len(), queued.len(), "every queued message arrived");
    assert!(queued.iter().all(|(_, s, _)| s == "sent"));
    assert!(arrivals(&smtp).values().all(|n| *n == 1), "none twice");

    // Routing: the workbook each address may receive.
    let mut own: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in config.agencies.units() {
        for a in [&u.officer_email, &u.ethics_email].into_iter().flatten() {
            own.entry(a.clone())
                .or_default()
                .push(format!("reports/{}.xlsx", u.id));
        }
        // The ethics unit reviews its officer's own account.
        if let Some(e) = &u.ethics_email {
            own.entry(e.clone())
                .or_default()
                .push(format!("reports/{}.second-review.xlsx", u.id));
        }
    }
    let hb = config.chief_email().unwrap().to_owned();
    own.entry(hb)
        .or_default()
        .push("reports/city-wide.xlsx".into());
    let issued = passwords_by_address(&config);
    let mut encrypted = 0;
    for (rcpt, p) in &got {
        assert_eq!(rcpt, &vec![p.to.clone()], "envelope and header agree");
        if p.subject.contains("緊急") {
            // A critical findings' notice: no workbook attached.
            assert!(p.attachment.is_none(), "{}", p.subject);
            continue;
        }
        assert!(
            p.subject.starts_with("【健保WebIR稽核】") && p.subject.contains("抽查工作底稿"),
            "{}",
            p.subject
        );
        assert!(p.name.starts_with("健保WebIR稽核_"), "{}", p.name);
        let mine = &own[&p.to];
        // Every attachment is encrypted (rule 5(2)2): KPB's with the
        // password from its environment variable, the others with the one
        // the product issued them. Another password does not open it.
        let kpb = p.to == "officer.kpb@example.gov.tw" || p.to == "ethics.kpb@example.gov.tw";
        let password = if kpb { KPB_PASSWORD } else { &issued[&p.to] };
        let plain = opened(p, password);
        encrypted += usize::from(kpb);
        let bytes = std::fs::read(p.attachment.as_ref().unwrap()).unwrap();
        assert!(!office_crypto::decrypt_from_bytes(bytes, "wrong").is_ok_and(|b| b == plain));
        assert!(p.text.contains("附件已加密"), "{}", p.text);
        let eml = std::fs::read_to_string(received_eml(&smtp, &p.message_id)).unwrap();
        assert!(!eml.contains(password));
        let sha = {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(&plain))
        };
        assert!(
            mine.iter().any(|r| sha256(&dir.join(r)) == sha),
            "{} received a workbook that is not theirs ({})",
            p.to,
            p.name
        );
        if encrypted > 0 && p.to == "officer.kpb@example.gov.tw" {
            use calamine::Reader as _;
            let mut wb = calamine::Xlsx::new(std::io::Cursor::new(plain)).unwrap();
            assert!(!wb.sheet_names().is_empty());
            assert!(wb.worksheet_range(&wb.sheet_names()[0]).is_ok());
        }
    }
    assert!(encrypted >= 1, "KPB's officer got an encrypted workbook");

    // Sending again sends nothing.
    let again = city.run_at(&["outbox", "send"], T1);
    assert!(again.stdout.contains("mail: 0 sent"), "{}", again.stdout);
    assert_eq!(received(&smtp).len(), got.len());
}

/// The file the server kept for `message_id`.
fn received_eml(smtp: &Smtp, message_id: &str) -> PathBuf {
    smtp.received()
        .into_iter()
        .map(|r| r.eml)
        .find(|e| {
            std::fs::read_to_string(e)
                .unwrap()
                .contains(&format!("Message-ID: {message_id}"))
        })
        .unwrap()
}

#[test]
fn a_server_that_is_down_or_answers_4xx_gets_every_message_once_later() {
    let tmp = tempfile::tempdir().unwrap();
    let mut smtp = Smtp::start(tmp.path(), "421,450");
    let city = Test::sample_city().served(&smtp, "");
    let out = city.run_at(&["run", "account-review", "--as-of", "2026-07-02"], T0);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("2 to retry, 0 failed"),
        "{}",
        out.stdout
    );
    let first = received(&smtp).len();
    assert_eq!(first, city.outbox().len() - 2);

    // Down: nothing goes, nothing is lost.
    smtp.stop();
    let out = city.run_at(&["run", "internal-audit", "--period", "2026"], T0);
    assert!(out.status <= 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(" 0 sent,"), "{}", out.stdout);
    assert_eq!(received(&smtp).len(), first);

    smtp.restart("");
    let out = city.run_at(&["outbox", "send"], T2);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let rows = city.outbox();
    assert!(rows.iter().all(|(_, s, _)| s == "sent"), "{rows:?}");
    let arrived = arrivals(&smtp);
    assert_eq!(arrived.len(), rows.len(), "every message arrived");
    assert!(arrived.values().all(|n| *n == 1), "none twice: {arrived:?}");
}

#[test]
fn a_550_fails_at_once_and_the_admin_is_told() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "550");
    let city = Test::sample_city().served(&smtp, "");
    let out = city.run_at(&["run", "account-review", "--as-of", "2026-07-02"], T0);
    assert!(
        out.stdout.contains("0 to retry, 1 failed"),
        "{}",
        out.stdout
    );
    let rows = city.outbox();
    let failed: Vec<_> = rows.iter().filter(|(_, s, _)| s == "failed").collect();
    assert_eq!(failed.len(), 1);
    // The alert goes at the next drain, and only once.
    city.run_at(&["outbox", "send"], T1);
    city.run_at(&["outbox", "send"], T2);
    let alerts: Vec<_> = received(&smtp)
        .into_iter()
        .filter(|(_, p)| p.to == "admin@example.gov.tw")
        .collect();
    assert_eq!(alerts.len(), 1);
    let p = &alerts[0].1;
    assert!(p.subject.contains("信件無法送達"), "{}", p.subject);
    assert!(
        p.text.contains(&failed[0].2) && p.text.contains("550"),
        "{}",
        p.text
    );
    let list = city.run_at(&["outbox", "list"], T2);
    assert!(
        list.stdout.contains("mailbox unavailable"),
        "{}",
        list.stdout
    );
}

#[test]
fn a_connection_cut_after_the_data_is_unknown_until_the_operator_decides() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "cut");
    let city = Test::sample_city().served(&smtp, "");
    let out = city.run_at(&["run", "account-review", "--as-of", "2026-07-02"], T0);
    assert!(
        out.stdout.contains("1 of unknown outcome"),
        "{}",
        out.stdout
    );
    let unknown: Vec<_> = city
        .outbox()
        .into_iter()
        .filter(|(_, s, _)| s == "unknown")
        .collect();
    assert_eq!(unknown.len(), 1);
    // Days later it has still not been sent again; the server has it once.
    city.run_at(&["outbox", "send"], T1);
    city.run_at(&["outbox", "send"], "2026-07-09T08:00:00+08:00");
    assert!(arrivals(&smtp).values().all(|n| *n == 1));
    let alert = received(&smtp)
        .into_iter()
        .find(|(_, p)| p.to == "admin@example.gov.tw")
        .unwrap()
        .1;
    assert!(
        alert.subject.contains("信件送達狀態不明"),
        "{}",
        alert.subject
    );
    let id = unknown[0].0.to_string();
    assert!(
        alert.text.contains(&format!("outbox confirm {id}")),
        "{}",
        alert.text
    );
    // The operator checked: it arrived.
    let c = city.run_at(&["outbox", "confirm", &id], T2);
    assert_eq!(c.status, 0, "{}{}", c.stdout, c.stderr);
    assert!(city.outbox().iter().all(|(_, s, _)| s == "sent"));
    assert_eq!(
        city.run_at(&["outbox", "confirm", &id], T2).status,
        2,
        "only an unknown message can be confirmed"
    );
}

#[test]
fn killed_mid_drain_then_restarted_loses_nothing_and_sends_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "ok,ok,slow");
    let city = Test::sample_city().served(&smtp, "");
    let out = city.run_at(
        &[
            "run",
            "account-review",
            "--as-of",
            "2026-07-02",
            "--no-send",
        ],
        T0,
    );
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    let queued = city.outbox().len();
    assert!(queued > 3);
    let mut child = city
        .command(&["outbox", "send", "--now", T0])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    smtp.wait_for_slow();
    child.kill().unwrap(); // SIGKILL, waiting for the third reply
    child.wait().unwrap();
    assert_eq!(smtp.received().len(), 3);

    let out = city.run_at(&["outbox", "send"], T1);
    assert!(
        out.stdout.contains("1 of unknown outcome"),
        "{}",
        out.stdout
    );
    let rows = city.outbox();
    let reports: Vec<_> = rows
        .iter()
        .filter(|(_, _, to)| to != "admin@example.gov.tw")
        .collect();
    assert_eq!(reports.len(), queued);
    let arrived = arrivals(&smtp);
    assert!(arrived.values().all(|n| *n == 1), "none twice: {arrived:?}");
    assert_eq!(
        received(&smtp)
            .iter()
            .filter(|(_, p)| p.to != "admin@example.gov.tw")
            .count(),
        queued,
        "none lost"
    );
    assert_eq!(
        reports.iter().filter(|(_, s, _)| s == "unknown").count(),
        1,
        "the interrupted one waits for the operator: {rows:?}"
    );
}

#[test]
fn send_test_resend_and_the_allowed_domains() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let city = Test::sample_city().served(&smtp, "");
    let t = city.run_at(&["send-test", "--to", "someone@example.gov.tw"], T0);
    assert_eq!(t.status, 0, "{}{}", t.stdout, t.stderr);
    let got = received(&smtp);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, ["someone@example.gov.tw"]);
    assert!(got[0].1.subject.contains("測試信件"));
    assert!(city.outbox().is_empty(), "a test mail is not in the outbox");
    let outside = city.run_at(&["send-test", "--to", "someone@gmail.com"], T0);
    assert_eq!(outside.status, 2);
    assert!(
        outside.stderr.contains("allowed_domains"),
        "{}",
        outside.stderr
    );
    // A wrong password is refused by the server.
    let args = ["send-test", "--to", "someone@example.gov.tw"];
    let mut guessed = city.command(&args);
    guessed.env("WEBIR_AUDIT_TEST_SMTP_PASSWORD", "guess");
    let wrong = crate::harness::output(guessed);
    assert_eq!(wrong.status, 2, "{}{}", wrong.stdout, wrong.stderr);
    assert!(wrong.stderr.contains("AUTH"), "{}", wrong.stderr);
    // The certificate is checked: without the city CA, nothing is sent.
    let text = std::fs::read_to_string(city.config_path()).unwrap();
    let ca_line = format!("ca_file = \"{}\"\n", smtp.ca.display());
    std::fs::write(city.config_path(), text.replace(&ca_line, "")).unwrap();
    let untrusted = city.run(&args);
    assert_eq!(
        untrusted.status, 2,
        "{}{}",
        untrusted.stdout, untrusted.stderr
    );
    assert_eq!(smtp.received().len(), 1, "{}", untrusted.stderr);
    std::fs::write(city.config_path(), text).unwrap();

    let out = city.run_at(&["run", "account-review", "--as-of", "2026-07-02"], T0);
    let run = out.run_dir();
    let run_id = run.file_name().unwrap().to_str().unwrap();
    let before = received(&smtp).len();
    let r = city.run_at(
        &[
            "outbox",
            "resend",
            run_id,
            "--to",
            "officer.ksa@example.gov.tw",
        ],
        T1,
    );
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let now = received(&smtp);
    assert_eq!(now.len(), before + 1);
    let (rcpt, copy) = now.last().unwrap();
    assert_eq!(rcpt, &["officer.ksa@example.gov.tw"]);
    let original = now
        .iter()
        .find(|(_, p)| p.to == copy.to && p.message_id != copy.message_id)
        .expect("the original");
    assert_eq!(original.1.sha, copy.sha, "the same workbook");
    // Never to an address the run did not mail.
    let refused = city.run_at(
        &["outbox", "resend", run_id, "--to", "x@example.gov.tw"],
        T1,
    );
    assert_eq!(refused.status, 2);
    assert!(
        refused.stderr.contains("sent nothing to"),
        "{}",
        refused.stderr
    );
}

#[test]
fn implicit_tls_works_too() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start_implicit_tls(tmp.path());
    let city = Test::sample_city().served(&smtp, "");
    let t = city.run_at(&["send-test", "--to", "someone@example.gov.tw"], T0);
    assert_eq!(t.status, 0, "{}{}", t.stdout, t.stderr);
    assert_eq!(smtp.received().len(), 1);
}
