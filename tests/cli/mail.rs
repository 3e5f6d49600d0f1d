//! Mail through the file transport, read back by an independent MIME
//! parser (Python's `email` package): every officer gets their own unit's
//! workbook and nobody else's, exactly once, with the Chinese subject and
//! file name intact, and the attachment encrypted with the unit's password
//! (rule 5(2)2) and decrypting byte for byte to the archived workbook.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::mail::{
    Parsed, is_receipt, opened, parse_all, parse_every, passwords_by_address, sha256, sha256_bytes,
};
use crate::harness::{Test, run_binary};

#[test]
fn every_officer_gets_their_own_workbook_exactly_once() {
    let sent = Delivery::a_sample_audit_is_mailed_with_nothing_failed();
    let (expected, chief) = sent.each_officer_is_owed_their_unit_s_workbook();
    sent.every_reader_has_a_password_of_their_own();
    sent.each_officer_opens_their_own_workbook_once(&expected, &chief);
    sent.each_ethics_unit_opens_its_unit_s_workbook_with_its_own_password();
    sent.sending_again_delivers_nothing_new();
}

/// The sample city's sample audit, mailed through the file transport and
/// read back.
struct Delivery {
    city: Test,
    config: webir_audit::config::Config,
    dir: std::path::PathBuf,
    files: std::path::PathBuf,
    got: Vec<Parsed>,
    passwords: BTreeMap<String, String>,
}

impl Delivery {
    /// The sample audit runs and mails every workbook, none failing.
    fn a_sample_audit_is_mailed_with_nothing_failed() -> Delivery {
        let city = Test::sample_city();
        let config = city.loaded_config();
        let out = city.sample_audit_2026h1(&[]);
        let dir = out.run_dir();
        assert!(out.stdout.contains("0 failed"), "{}", out.stdout);

        let files = config.paths.state.join("outbox-files");
        let got = parse_all(&files);
        let passwords = passwords_by_address(&config);
        Delivery {
            city,
            config,
            dir,
            files,
            got,
            passwords,
        }
    }

    /// Who must receive what: each unit's officer its unit's workbook, the
    /// chief administrator the city-wide one; with the chief's address.
    fn each_officer_is_owed_their_unit_s_workbook(
        &self,
    ) -> (BTreeMap<(String, String), String>, String) {
        let (config, dir) = (&self.config, &self.dir);
        // Who must receive what: each unit's officer its unit's workbook (the
        // Health Bureau's officer its unit's only), the chief administrator
        // the city-wide one.
        let mut expected: BTreeMap<(String, String), String> = BTreeMap::new();
        for unit in config.agencies.units() {
            let path = dir.join(format!("reports/{}.xlsx", unit.id));
            expected.insert(
                (unit.officer_email.clone().unwrap(), sha256(&path)),
                unit.id.clone(),
            );
        }
        let chief = config
            .chief
            .clone()
            .expect("the sample city names its chief administrator");
        assert_ne!(
            Some(&chief.email),
            config.agencies.health_bureau().officer_email.as_ref()
        );
        expected.insert(
            (
                chief.email.clone(),
                sha256(&dir.join("reports/city-wide.xlsx")),
            ),
            "city-wide".into(),
        );
        (expected, chief.email)
    }

    /// Every reader has a password of their own: none opens another's mail.
    fn every_reader_has_a_password_of_their_own(&self) {
        let passwords = &self.passwords;
        let distinct: BTreeSet<&String> = passwords.values().collect();
        assert_eq!(distinct.len(), passwords.len(), "{passwords:?}");
    }

    /// Each officer's message opens with their password to a workbook owed
    /// to them, one message per workbook, named and titled as such.
    fn each_officer_opens_their_own_workbook_once(
        &self,
        expected: &BTreeMap<(String, String), String>,
        chief: &str,
    ) {
        // Workbooks; critical findings' notices (緊急) are messages of their own.
        let officers: Vec<_> = self
            .got
            .iter()
            .filter(|p| {
                (p.to.starts_with("officer") || p.to == chief) && !p.subject.contains("緊急")
            })
            .collect();
        assert_eq!(
            officers.len(),
            expected.len(),
            "one message per officer per workbook"
        );
        for p in officers {
            let Parsed {
                to, subject, name, ..
            } = p;
            let sha = sha256_bytes(&opened(p, &self.passwords[to]));
            let unit = expected
                .get(&(to.clone(), sha))
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
    }

    /// Ethics units hear of serious findings, with their unit's workbook,
    /// opened with their own password and not the unit officer's.
    fn each_ethics_unit_opens_its_unit_s_workbook_with_its_own_password(&self) {
        let passwords = &self.passwords;
        for p in self
            .got
            .iter()
            .filter(|p| p.to.starts_with("ethics") && !p.subject.contains("緊急"))
        {
            let to = &p.to;
            let sha = sha256_bytes(&opened(p, &passwords[to]));
            let officer = to.replace("ethics", "officer");
            let bytes = std::fs::read(p.attachment.as_ref().unwrap()).unwrap();
            assert!(
                !office_crypto::decrypt_from_bytes(bytes, &passwords[&officer])
                    .is_ok_and(|b| sha256_bytes(&b) == sha),
                "{to}: the officer's password opens the ethics unit's attachment"
            );
            let unit = self
                .config
                .agencies
                .units()
                .find(|u| u.ethics_email.as_deref() == Some(to.as_str()))
                .unwrap();
            // The unit's workbook, or the second review of its officer's own
            // account.
            let file = if p.subject.contains("專責人員本人帳號覆核") {
                format!("reports/{}.second-review.xlsx", unit.id)
            } else {
                format!("reports/{}.xlsx", unit.id)
            };
            assert_eq!(sha, sha256(&self.dir.join(file)), "{to}");
        }
    }

    /// Sending again delivers nothing new, and the outbox lists every
    /// message, the chain's receipts too, as sent.
    fn sending_again_delivers_nothing_new(&self) {
        // Sending again delivers nothing new.
        let again = self.city.run(&["outbox", "send"]);
        assert!(again.stdout.contains("mail: 0 sent"), "{}", again.stdout);
        assert_eq!(parse_all(&self.files).len(), self.got.len());
        let list = self.city.run(&["outbox", "list"]);
        // The outbox lists the chain's receipts too.
        let all = parse_every(&self.files).len();
        assert!(
            list.stdout.contains(&format!("{all} messages: {all} sent")),
            "{}",
            list.stdout
        );
    }
}

#[test]
fn no_send_only_queues() {
    let t = Test::new().file(
        "inbox/query_logs/log.csv",
        "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\nu1,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n",
    );
    let out = t.run(&["run", "query-check", "--period", "2026H1", "--no-send"]);
    out.assert_ran();
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
    let runs = crate::harness::demo_runs(&out.stdout);
    assert_eq!(runs.len(), 4, "{}", out.stdout);
    // The demo shows the duties; it does not do them for the daemon.
    let store = webir_audit::store::Store::open(&dir.join("var/state")).unwrap();
    assert_eq!(
        store.ledger().unwrap(),
        [],
        "the demo's runs are not in the ledger"
    );
    for r in &runs {
        assert!(
            r.join("SHA256SUMS").exists() && r.join("reports/city-wide.xlsx").exists(),
            "{}",
            r.display()
        );
    }
    // Every message sent is on file, the evidence chain's receipts too.
    let every = parse_every(&dir.join("var/state/outbox-files"));
    assert!(every.iter().any(is_receipt), "the chain's head witnessed");
    let emls = parse_all(&dir.join("var/state/outbox-files"));
    let sent: usize = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("mail: "))
        .map(|l| {
            assert!(l.contains(" sent, 0 to retry, 0 failed"), "{l}");
            l.split(' ').next().unwrap().parse::<usize>().unwrap()
        })
        .sum();
    assert!(sent == every.len(), "{}", out.stdout);
    // 10 units' and the city-wide workbook for three jobs, the external
    // audit's city-wide one, plus ethics copies.
    assert!(emls.len() > 3 * 11, "{}", emls.len());
    // Workbooks; and, without one, critical notices and the external
    // audit's notices to the units it drew (point 6(4)).
    let bare: Vec<&str> = emls
        .iter()
        .filter(|p| !p.name.ends_with(".xlsx"))
        .map(|p| p.subject.as_str())
        .collect();
    assert!(
        emls.iter()
            .all(|p| p.subject.starts_with("【健保WebIR稽核】"))
    );
    assert!(
        bare.iter()
            .all(|s| s.contains("緊急") || s.contains("外部稽核受稽核通知") || s.contains("承諾")),
        "{bare:?}"
    );
    // Each draw by its ceremony: the commitment mailed to the chief and
    // every ethics unit before the seed.
    for (what, to) in [
        ("抽樣母體承諾：2026H1", 11),
        ("外部稽核候選單位承諾：2026", 11),
    ] {
        assert_eq!(
            bare.iter().filter(|s| s.contains(what)).count(),
            to,
            "{what}"
        );
    }
    assert_eq!(
        bare.iter()
            .filter(|s| s.contains("外部稽核受稽核通知"))
            .count(),
        3,
        "the three units drawn"
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
    out.assert_ran();
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
    let mails = the_sample_city_s_audit_mails_reply_to_the_health_bureau();
    let mut readers = Readers::default();
    for m in &mails {
        readers.each_reader_is_told_their_part(m);
    }
    readers.every_kind_of_reader_was_mailed();
}

/// The sample city's audit is mailed, every message replying to the
/// Health Bureau; its mails, read back.
fn the_sample_city_s_audit_mails_reply_to_the_health_bureau() -> Vec<Parsed> {
    let city = Test::sample_city();
    city.sample_audit_2026h1(&[]);
    let outbox = city.loaded_config().paths.state.join("outbox-files");
    for e in std::fs::read_dir(&outbox).unwrap() {
        let eml = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(
            eml.contains("Reply-To: webir.khb@example.gov.tw"),
            "no Reply-To"
        );
    }
    parse_all(&outbox)
}

/// How many mails each kind of reader got.
#[derive(Default)]
struct Readers {
    officers: usize,
    ethics: usize,
    chief: usize,
    critical: usize,
}

impl Readers {
    /// `m` names no system administrator, says how to answer it, and
    /// what its reader must do; counted by its reader.
    fn each_reader_is_told_their_part(&mut self, m: &Parsed) {
        assert!(!m.text.contains("系統管理者"), "{}: {}", m.to, m.text);
        if !m.subject.contains("緊急") {
            a_mail_says_how_to_answer_it_and_reads_as_a_document(m);
        }
        if m.subject.contains("緊急") {
            self.critical += 1;
            a_critical_notice_goes_out_at_once_without_the_workbook(m);
            return;
        }
        if m.subject.contains("專責人員本人帳號覆核") {
            a_second_review_asks_the_ethics_unit_to_fill_it_in(m);
            return;
        }
        if m.to.starts_with("ethics.") {
            self.ethics += 1;
            the_ethics_unit_investigates_and_fills_in_nothing(m);
        } else if m.subject.contains("全市彙整") {
            self.chief += 1;
            assert!(m.text.starts_with("衛生局總管理者 您好"), "{}", m.text);
            assert!(!m.text.contains("黃色欄位"), "{}", m.text);
            assert!(m.text.contains("督導"), "{}", m.text);
        } else {
            self.officers += 1;
            assert!(m.text.starts_with("專責人員 您好"), "{}", m.text);
            assert!(m.text.contains("黃色欄位"), "{}", m.text);
        }
    }

    /// Officers, ethics units, the chief (once) and critical notices (in
    /// pairs) were all mailed.
    fn every_kind_of_reader_was_mailed(&self) {
        let Readers {
            officers,
            ethics,
            chief,
            critical,
        } = *self;
        assert!(
            officers > 5 && ethics > 0 && chief == 1 && critical > 0 && critical % 2 == 0,
            "{officers} {ethics} {chief} {critical}"
        );
    }
}

/// How to return it, and whom to ask; 貴機關, never 本機關; a workbook's
/// mail reads as a 公文.
fn a_mail_says_how_to_answer_it_and_reads_as_a_document(m: &Parsed) {
    // How to return it, and whom to ask (mail.reply_to,
    // mail.contact); a reader who returns nothing (the ethics
    // unit, the chief administrator) is not told to return it.
    let returns = !m.text.contains("無須填寫");
    let line = if returns {
        "回傳及聯絡：請回覆本信（webir.khb@example.gov.tw）；承辦人：衛生局 WebIR 稽核承辦人"
    } else {
        "聯絡：如有疑問請回覆本信（webir.khb@example.gov.tw）；承辦人：衛生局 WebIR 稽核承辦人"
    };
    assert!(m.text.contains(line), "{}", m.text);
    // The reader's agency is 貴機關, never 本機關.
    assert!(!m.text.contains("本機關"), "{}", m.text);
    // A workbook's mail is a 公文: 主旨, 說明, and 辦法 where the
    // reader has something to do.
    if m.attachment.is_some() && !m.subject.contains("調查") {
        let at = |s: &str| m.text.find(s);
        assert!(
            at("主旨：").is_some() && at("主旨：") < at("說明："),
            "{}",
            m.text
        );
        if returns {
            assert!(at("說明：") < at("辦法："), "{}", m.text);
        }
    }
}

/// Critical findings: at once, to the officer and the ethics unit, apart
/// from the workbook and its deadline.
fn a_critical_notice_goes_out_at_once_without_the_workbook(m: &Parsed) {
    assert!(m.name.is_empty(), "the notice carries no workbook");
    // The deadline it does not wait for: the workbook's day.
    assert!(m.text.contains("不待 2026-08-04 之回報期限"), "{}", m.text);
    if m.to.starts_with("ethics.") {
        assert!(
            m.text.contains("共同調查") && m.text.contains("調查紀錄"),
            "{}",
            m.text
        );
    } else {
        assert!(m.text.contains("廢止其使用權限"), "{}", m.text);
    }
}

/// A second review: the ethics unit audits the officer's own account,
/// fills in and returns.
fn a_second_review_asks_the_ethics_unit_to_fill_it_in(m: &Parsed) {
    assert!(m.to.starts_with("ethics."), "{}", m.to);
    for must in ["專責人員不自行抽查本人帳號", "黃色欄位", "辦法：", "回傳"] {
        assert!(
            m.text.contains(must),
            "review mail lacks {must}: {}",
            m.text
        );
    }
}

/// The ethics unit investigates with the officer (point 6(3)) and fills
/// in nothing.
fn the_ethics_unit_investigates_and_fills_in_nothing(m: &Parsed) {
    assert!(m.text.starts_with("政風單位 您好"), "{}", m.text);
    // The internal audit lists what was asked before apart.
    if m.subject.contains("內部稽核") {
        assert!(m.text.contains("「已列管異常查詢」"), "{}", m.text);
    }
    for must in ["會同", "共同調查", "調查紀錄", "第六點第三款"] {
        assert!(
            m.text.contains(must),
            "ethics mail lacks {must}: {}",
            m.text
        );
    }
    // Nothing to fill in or do as the officer does (辦法 is the
    // officer's).
    assert!(
        !m.text.contains("黃色欄位") && !m.text.contains("辦法："),
        "{}",
        m.text
    );
}

/// Rule 5(2)2: every attachment is encrypted unless the config exempts
/// its unit explicitly, with a reason every mail and `check-config` show.
/// A unit's password is issued once, on its first mail, and kept;
/// `passwords issue UNIT` replaces it, and the old one stays on record.
#[test]
fn attachments_are_encrypted_unless_a_unit_is_exempted_and_the_exemption_is_shown() {
    let mut city = Exempted::check_config_shows_kpb_s_exemption_and_its_reason();
    let (passwords, got) = city.a_run_mails_kpb_its_workbook_plain_and_says_why();
    city.khb_s_workbooks_open_with_its_password_and_say_who_holds_it(&passwords, &got);
    city.the_next_run_uses_the_same_password();
    city.a_new_password_replaces_it_and_the_old_one_stays_on_record();
    city.no_password_lies_in_the_clear_beside_the_attachments();
    city.a_rotated_key_seals_them_anew_and_the_old_key_says_what_to_do();
    city.a_lost_key_is_not_replaced_by_one_that_opens_nothing();
    city.an_exempt_unit_has_no_password_to_issue();
}

/// Why KPB's attachments go unencrypted, as its config says.
const REASON: &str = "收件端無法開啟加密檔，衛生局 115 年 11 月核定";

/// A city with KPB exempted from encryption, and KHB's first and second
/// password once issued.
struct Exempted {
    t: Test,
    config: webir_audit::config::Config,
    first: String,
    second: String,
}

impl Exempted {
    /// KPB is exempted with a reason, and `check-config` says so.
    fn check_config_shows_kpb_s_exemption_and_its_reason() -> Exempted {
        let t = Test::new()
            .config_replace(
                "officer_email = \"o.kpb@example.gov.tw\"",
                &format!("officer_email = \"o.kpb@example.gov.tw\"\nattachment_unencrypted = \"{REASON}\""),
            )
            .file(
                "inbox/query_logs/log.csv",
                "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\n\
                 u1,2026-03-02 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n\
                 p1,2026-03-02 11:00:00,個人投保資料,B123456789,criminal_investigation,成功,KPB,10.0.0.2\n",
            );
        let check = t.run(&["check-config"]);
        assert!(
            check.stdout.contains(&format!(
                "NOTE: KPB (高雄市政府警察局) gets its workbooks unencrypted: {REASON}"
            )),
            "{}",
            check.stdout
        );
        let config = webir_audit::config::load(&t.path("webir-audit.toml")).unwrap();
        Exempted {
            t,
            config,
            first: String::new(),
            second: String::new(),
        }
    }

    /// The first run issues KPB no password and mails its workbook plain,
    /// saying why; returns the passwords issued and the mail sent.
    fn a_run_mails_kpb_its_workbook_plain_and_says_why(
        &self,
    ) -> (BTreeMap<String, String>, Vec<Parsed>) {
        let t = &self.t;
        let out = t.run(&["run", "query-check", "--period", "2026Q1"]);
        out.assert_ran();
        let passwords = passwords_by_address(&self.config);
        assert!(
            !passwords.contains_key("o.kpb@example.gov.tw"),
            "no password for an exempt unit"
        );
        let got = parse_all(&t.path("var/state/outbox-files"));
        let kpb = got
            .iter()
            .filter(|p| p.to == "o.kpb@example.gov.tw" && !p.name.is_empty());
        assert_eq!(kpb.clone().count(), 1);
        for p in kpb {
            let bytes = std::fs::read(p.attachment.as_ref().unwrap()).unwrap();
            assert!(
                bytes.starts_with(b"PK"),
                "the exempt unit's workbook is a plain xlsx"
            );
            assert!(
                p.text.contains(&format!(
                    "附件未加密：衛生局核定貴機關之附件免予加密（理由：{REASON}）"
                )),
                "{}",
                p.text
            );
        }
        (passwords, got)
    }

    /// KHB's workbooks open with its first password, and say who holds
    /// it; `passwords list` shows it and KPB's exemption.
    fn khb_s_workbooks_open_with_its_password_and_say_who_holds_it(
        &mut self,
        passwords: &BTreeMap<String, String>,
        got: &[Parsed],
    ) {
        let khb = got
            .iter()
            .filter(|p| p.to == "o.khb@example.gov.tw" && !p.name.is_empty())
            .collect::<Vec<_>>();
        assert!(!khb.is_empty());
        let first = passwords["o.khb@example.gov.tw"].clone();
        for p in &khb {
            assert!(!opened(p, &first).is_empty());
            // Who holds the password: the chief administrator, who hands each
            // unit's to its officer.
            let says = if p.subject.contains("全市彙整") {
                "各機關專責人員及政風單位之附件密碼各自不同，由總管理者以電話或公文分別交付"
            } else {
                "由衛生局總管理者以電話或公文交付貴機關專責人員"
            };
            assert!(p.text.contains(says), "{}", p.text);
        }
        let list = self.t.run(&["passwords", "list"]);
        assert!(list.stdout.contains(&first), "{}", list.stdout);
        assert!(
            list.stdout.contains(&format!("UNENCRYPTED: {REASON}")),
            "{}",
            list.stdout
        );
        self.first = first;
    }

    /// The next run uses the same password.
    fn the_next_run_uses_the_same_password(&self) {
        let t = &self.t;
        let out = t.run(&["run", "query-check", "--period", "2026H1"]);
        out.assert_ran();
        let got = parse_all(&t.path("var/state/outbox-files"));
        let khb: Vec<_> = got
            .iter()
            .filter(|p| p.to == "o.khb@example.gov.tw" && !p.name.is_empty())
            .collect();
        assert!(khb.len() >= 2);
        for p in &khb {
            opened(p, &self.first);
        }
    }

    /// A new password replaces it; the old one stays on record.
    fn a_new_password_replaces_it_and_the_old_one_stays_on_record(&mut self) {
        let (config, first) = (&self.config, &self.first);
        let issue = self.t.run(&["passwords", "issue", "KHB"]);
        assert_eq!(issue.status, 0, "{}{}", issue.stdout, issue.stderr);
        let second = passwords_by_address(config)["o.khb@example.gov.tw"].clone();
        assert_ne!(*first, second);
        assert!(
            issue.stdout.contains(&second) && !issue.stdout.contains(first.as_str()),
            "{}",
            issue.stdout
        );
        let mut store = webir_audit::store::Store::open(&config.paths.state).unwrap();
        let key = webir_audit::keyfile::KeyFile::open(&config.paths.key_file).unwrap();
        let history: Vec<_> = store
            .attachment_passwords(&key)
            .unwrap()
            .into_iter()
            .filter(|p| p.unit_id == "KHB")
            .collect();
        assert_eq!(history.len(), 2);
        assert!(history[0].retired_at.is_some() && history[1].retired_at.is_none());
        drop(store);
        self.second = second;
    }

    /// Issue 30: no password lies in the clear beside the attachments it
    /// opens. The database holds each sealed under the key outside the
    /// state folder; a copy of the database alone shows none of them.
    fn no_password_lies_in_the_clear_beside_the_attachments(&self) {
        let config = &self.config;
        let db = std::fs::read(self.t.path("var/state/state.sqlite3")).unwrap();
        let db = String::from_utf8_lossy(&db);
        for p in [&self.first, &self.second] {
            assert!(
                !db.contains(p.as_str()),
                "a password in the clear in the database"
            );
        }
        assert!(!config.paths.key_file.starts_with(&config.paths.state));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&config.paths.key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
    }

    /// The key rotated: the same passwords, sealed under the new key; the
    /// old key opens none of them any more, and says what to do.
    fn a_rotated_key_seals_them_anew_and_the_old_key_says_what_to_do(&self) {
        let t = &self.t;
        let new_key = t.path("var/keys/rotated.key");
        let rotate = t.run(&[
            "passwords",
            "rotate-key",
            "--new-key",
            new_key.to_str().unwrap(),
        ]);
        assert_eq!(rotate.status, 0, "{}{}", rotate.stdout, rotate.stderr);
        assert!(
            rotate.stdout.contains("point paths.key_file"),
            "{}",
            rotate.stdout
        );
        let stale = t.run(&["passwords", "list"]);
        assert_ne!(stale.status, 0);
        assert!(stale.stderr.contains("rotate-key"), "{}", stale.stderr);
        std::fs::rename(&new_key, &self.config.paths.key_file).unwrap();
    }

    /// The key gone (a wrong path, a lost file): nothing makes a new one
    /// that would open none of the passwords sealed.
    fn a_lost_key_is_not_replaced_by_one_that_opens_nothing(&self) {
        let (t, config) = (&self.t, &self.config);
        let away = t.path("var/keys-away.key");
        std::fs::rename(&config.paths.key_file, &away).unwrap();
        let lost = t.run(&["passwords", "list"]);
        assert_ne!(lost.status, 0);
        assert!(lost.stderr.contains("restore it"), "{}", lost.stderr);
        assert!(!config.paths.key_file.exists());
        std::fs::rename(&away, &config.paths.key_file).unwrap();
        let list = t.run(&["passwords", "list"]);
        assert_eq!(list.status, 0, "{}", list.stderr);
        assert!(list.stdout.contains(&self.second), "{}", list.stdout);
    }

    /// An exempt unit has no password to issue.
    fn an_exempt_unit_has_no_password_to_issue(&self) {
        let refused = self.t.run(&["passwords", "issue", "KPB"]);
        assert_ne!(refused.status, 0);
        assert!(
            refused.stderr.contains("attachment_unencrypted"),
            "{}",
            refused.stderr
        );
    }
}

/// An exemption needs a reason, and a unit is either encrypted with its
/// own variable or exempted, never both.
#[test]
fn an_exemption_without_a_reason_or_beside_a_password_is_a_config_error() {
    for extra in [
        "attachment_unencrypted = \" \"",
        "attachment_unencrypted = \"核定\"\nattachment_password_env = \"KPB_PW\"",
    ] {
        let t = Test::new().config_replace(
            "officer_email = \"o.kpb@example.gov.tw\"",
            &format!("officer_email = \"o.kpb@example.gov.tw\"\n{extra}"),
        );
        let out = t.run(&["check-config"]);
        assert_eq!(out.status, 3, "{extra}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("agencies[1].attachment_unencrypted"),
            "{}",
            out.stderr
        );
    }
}

/// What each reader is told, by kind of mail and role, against the
/// regulation's roles and verbs (issue 15): a unit's officer (專責人員)
/// fills in and revokes (廢止, 6(2)); the ethics unit (政風單位) investigates
/// with the officer (會同、共同調查, 6(3)) and fills in nothing; the chief
/// administrator (總管理者) supervises (督導, point 4). No mail names a role
/// the regulation does not have or sends a unit to the NHIA itself. The
/// officer's 應辦事項 are 摘要's: the same table checks the workbook.
#[test]
fn mail_and_summary_wording_follows_the_regulation_s_roles_and_verbs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let out = run_binary(&["demo", "--out", dir.to_str().unwrap()], tmp.path());
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let mails = parse_all(&dir.join("var/state/outbox-files"));
    each_mail_says_its_reader_s_verbs_and_no_role_the_regulation_lacks(&mails);
    each_summary_s_actions_say_the_officer_s_verbs(&out.stdout);
}

/// A wording rule: (kind title in the subject, role, must say, must not
/// say).
type Rule = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);
/// Roles and steps the regulation does not have, never said.
const NEVER: &[&str] = &["系統管理者", "向健保署申請", "調整權限"];
/// What each kind of mail says to each role, and must not.
const RULES: &[Rule] = &[
    (
        "抽查工作底稿",
        "officer",
        &[
            "專責人員 您好",
            "黃色欄位",
            "回傳",
            "政風單位",
            "附件已加密",
        ],
        &[],
    ),
    (
        "帳號清查",
        "officer",
        &[
            "專責人員 您好",
            "處理結果",
            "廢止其使用權限",
            "第六點第二款",
        ],
        &[],
    ),
    (
        "內部稽核",
        "officer",
        &["專責人員 您好", "查核結果", "會同政風單位"],
        &[],
    ),
    ("查詢稽核", "officer", &["專責人員 您好", "異常查詢"], &[]),
    (
        "",
        "ethics",
        &[
            "政風單位 您好",
            "會同",
            "共同調查",
            "調查紀錄",
            "第六點第三款",
        ],
        &["黃色欄位", "辦法：", "處理結果欄"],
    ),
    (
        "抽查工作底稿",
        "review",
        &[
            "政風單位 您好",
            "專責人員不自行抽查本人帳號",
            "覆核",
            "黃色欄位",
            "第六點第一款",
            "回傳",
        ],
        &["會同", "副知"],
    ),
    (
        "",
        "chief_admin",
        &["衛生局總管理者 您好", "督導", "第四點"],
        &["黃色欄位", "專責人員 您好"],
    ),
    (
        "總管理者填復",
        "chief_fills",
        &["衛生局總管理者 您好", "黃色欄位", "回傳", "第四點"],
        &["督導", "專責人員 您好"],
    ),
    (
        "外部稽核",
        "chief_admin",
        &["外部稽核抽選", "業務需求人員清冊", "第六點第四款"],
        &[],
    ),
    (
        "緊急",
        "officer",
        &[
            "專責人員 您好",
            "廢止其使用權限",
            "會同政風單位",
            "之回報期限",
        ],
        &["黃色欄位"],
    ),
    (
        "緊急",
        "ethics",
        &["政風單位 您好", "共同調查", "調查紀錄"],
        &["廢止其使用權限", "黃色欄位"],
    ),
    (
        "抽樣母體承諾",
        "commitment",
        &[
            "衛生局總管理者、政風單位 您好",
            "第六點第一款",
            "種子產生「之前」",
            "種子規則",
            "webir-audit seed --period 2026H1 --value",
        ],
        &["黃色欄位", "--job"],
    ),
    (
        "外部稽核候選單位承諾",
        "commitment",
        &[
            "衛生局總管理者、政風單位 您好",
            "第四點第二款",
            "種子產生「之前」",
            "種子規則",
            "webir-audit seed --period 2026 --job external-audit --value",
        ],
        &["黃色欄位"],
    ),
];

/// The role a demo mail is written to.
fn role_of(m: &Parsed) -> &'static str {
    if m.subject.contains("專責人員本人帳號覆核") {
        "review"
    } else if m.subject.contains("承諾") {
        // The ceremony's commitment, to the chief and ethics units.
        "commitment"
    } else if m.to.starts_with("ethics.") {
        "ethics"
    } else if m.subject.contains("總管理者填復") {
        // A workbook the chief administrator fills in and returns.
        "chief_fills"
    } else if m.subject.contains("全市彙整") {
        "chief_admin"
    } else {
        "officer"
    }
}

/// Each mail names its review's file by its day, never says what NEVER
/// lists, and says what its kind's and role's RULES ask; every rule but
/// the lone query check's meets a mail.
fn each_mail_says_its_reader_s_verbs_and_no_role_the_regulation_lacks(mails: &[Parsed]) {
    let mut used = vec![0usize; RULES.len()];
    for m in mails {
        let role = role_of(m);
        // A review's file is named by its day as officers write it.
        if m.subject.contains("帳號清查")
            && !m.subject.contains("專責人員帳號清查")
            && !m.name.is_empty()
        {
            assert!(
                m.name.contains("_基準日20") && !m.name.contains("as-of"),
                "{}",
                m.name
            );
        }
        for bad in NEVER {
            assert!(
                !m.text.contains(bad),
                "{} ({}) says {bad}: {}",
                m.to,
                m.subject,
                m.text
            );
        }
        for (i, (kind, r, must, must_not)) in RULES.iter().enumerate() {
            let critical = m.subject.contains("緊急");
            let kind_matches = if *kind == "緊急" {
                critical
            } else {
                !critical && m.subject.contains(kind)
            };
            if *r != role || !kind_matches {
                continue;
            }
            used[i] += 1;
            for w in *must {
                assert!(
                    m.text.contains(w),
                    "{} ({}) lacks {w}: {}",
                    m.to,
                    m.subject,
                    m.text
                );
            }
            for w in *must_not {
                assert!(
                    !m.text.contains(w),
                    "{} ({}) says {w}: {}",
                    m.to,
                    m.subject,
                    m.text
                );
            }
        }
    }
    // The demo runs no lone query check; every other rule met a mail.
    for (i, (kind, role, ..)) in RULES.iter().enumerate() {
        assert!(
            used[i] > 0 || *kind == "查詢稽核",
            "no {kind} mail to {role}"
        );
    }
}

/// 摘要's 應辦事項 of each kind say the officer's verbs, and never a role
/// or a step the regulation does not have, in each of the demo's four runs.
fn each_summary_s_actions_say_the_officer_s_verbs(demo_stdout: &str) {
    let runs = crate::harness::demo_runs(demo_stdout);
    for run in &runs {
        let job = run
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let (book, must): (&str, &[&str]) = match job.as_str() {
            "sample-audit" => ("KPB.xlsx", &["黃色欄位", "回傳", "政風單位", "清冊外帳號"]),
            "account-review" => (
                "KPB.xlsx",
                &["處理結果", "廢止其使用權限", "第六點第二款", "第四點第五款"],
            ),
            "internal-audit" => ("KPB.xlsx", &["查核結果", "政風單位"]),
            "external-audit" => ("city-wide.xlsx", &["業務需求人員清冊", "第六點第四款"]),
            other => panic!("unexpected run {other}"),
        };
        let path = run.join("reports").join(book);
        let mut wb: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
        use calamine::Reader as _;
        let range = wb.worksheet_range("摘要").unwrap();
        let actions: String = range
            .rows()
            .skip_while(|r| r.first().is_none_or(|c| *c != "應辦事項"))
            .skip(1)
            .take_while(|r| r.first().is_some_and(|c| c.to_string().ends_with('.')))
            .map(|r| r.get(1).map(|c| c.to_string()).unwrap_or_default())
            .collect();
        for w in must {
            assert!(actions.contains(w), "{job} 摘要 lacks {w}: {actions}");
        }
        for w in NEVER {
            assert!(!actions.contains(w), "{job} 摘要 says {w}: {actions}");
        }
    }
    assert_eq!(runs.len(), 4);
}
