//! The seed ceremony run by the daemon (issue 17), through the real
//! binary, a real SMTP server and an injected clock: on 5 July the
//! population's commitment is mailed and nothing is drawn; the seed is
//! given on 8 July; the draw runs, and its manifest, workbooks and mails
//! show the seed, the commitment's time and the chain head; the evidence
//! bundle verifies offline.

use crate::harness::Test;
use crate::harness::mail::Parsed;
use crate::harness::served::received;
use crate::harness::served::{SAMPLE_AUDIT, admin_mail, city, ledger, pass, row, run_folders};
use crate::smtp::Smtp;

const SEED: &str = "11500007807230541183012";

fn ceremony(extra: &str) -> String {
    format!("{SAMPLE_AUDIT}seed = \"ceremony\"\nseed_wait = \"7d\"\n{extra}")
}

/// The 摘要 or 抽樣資訊 value beside `label` in a workbook.
fn beside(path: &std::path::Path, sheet: &str, label: &str) -> String {
    use calamine::Reader as _;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    wb.worksheet_range(sheet)
        .unwrap()
        .rows()
        .find(|r| r.first().is_some_and(|c| *c == label))
        .map(|r| r[1].to_string())
        .unwrap_or_else(|| panic!("no {label} on {sheet} of {}", path.display()))
}

#[test]
fn the_daemon_commits_waits_for_the_seed_and_draws_what_an_auditor_verifies_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, &ceremony(""));
    let config = c.loaded_config();
    let commitments = the_commitment_goes_out_and_nothing_is_drawn(&c, &smtp, &config);
    a_seed_too_short_or_for_another_period_is_refused(&c);
    the_chief_administrator_types_the_lottery_s_digits_once(&c);
    let dir = the_next_pass_draws_and_mails_one_run(&c);
    let m = the_manifest_records_the_ceremony(&dir, &commitments);
    the_chain_holds_freeze_commitment_seed_and_seal_in_order(&config);
    the_workbook_and_the_officer_s_mail_show_the_seed(&dir, &smtp, &config);
    the_bundle_verifies_offline_and_shows_the_ceremony(tmp.path(), &c, &dir, &m);
    a_changed_byte_in_the_run_is_named_by_archive_verify(&c, &dir);
}

/// 5 July 08:00: the commitment goes out to the chief administrator and
/// every ethics unit, and nothing is drawn; returns the commitments.
fn the_commitment_goes_out_and_nothing_is_drawn(
    c: &Test,
    smtp: &Smtp,
    config: &webir_audit::config::Config,
) -> Vec<Parsed> {
    pass(c, "2026-07-05T08:00:00+08:00");
    assert_eq!(
        ledger(c),
        [row("sample-audit", "2026H1", "waiting-for-seed")]
    );
    assert!(run_folders(c, "2026H1").is_empty());
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    assert!(store.draws("2026H1").unwrap().is_empty(), "no seed drawn");
    let freeze = store.latest_freeze("2026H1").unwrap().unwrap();
    drop(store);
    let got = received(smtp);
    let commitments: Vec<_> = got
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.subject.contains("抽樣母體承諾"))
        .collect();
    assert_eq!(commitments.len(), got.len(), "only the commitment went out");
    let mut to: Vec<String> = commitments.iter().map(|p| p.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        webir_audit::run::ceremony::commitment_recipients(config)
    );
    let hb = config.chief_email().unwrap().to_owned();
    assert!(to.contains(&hb));
    for a in config.agencies.iter() {
        if let Some(e) = &a.ethics_email {
            assert!(to.contains(e), "ethics unit {e} of {}", a.id);
        }
    }
    let text = &commitments[0].text;
    assert!(text.contains(&freeze.population_digest), "{text}");
    assert!(text.contains("2026-07-05T08:00:00"), "{text}");
    assert!(text.contains("大樂透") && text.contains("webir-audit seed --period 2026H1"));
    let status = c.run_at(&["status"], "2026-07-06T09:00:00+08:00");
    assert!(
        status.stdout.contains("waiting-for-seed"),
        "{}",
        status.stdout
    );
    commitments.into_iter().cloned().collect()
}

/// Not a seed, and no ceremony for another period: refused, nothing kept.
fn a_seed_too_short_or_for_another_period_is_refused(c: &Test) {
    let bad = c.run_at(
        &["seed", "--period", "2026H1", "--value", "12345"],
        "2026-07-08T09:00:00+08:00",
    );
    assert_eq!(bad.status, 2, "{}{}", bad.stdout, bad.stderr);
    assert!(
        bad.stderr
            .contains("invalid seed (5 characters, too short)"),
        "{}",
        bad.stderr
    );
    let early = c.run_at(
        &["seed", "--period", "2026H2", "--value", SEED],
        "2026-07-08T09:00:00+08:00",
    );
    assert_eq!(early.status, 2);
    assert!(
        early.stderr.contains("no commitment of 2026H2"),
        "{}",
        early.stderr
    );
}

/// 8 July: the lottery's digits, typed by the chief administrator, are
/// taken; a second seed for the period is refused.
fn the_chief_administrator_types_the_lottery_s_digits_once(c: &Test) {
    let given = c.run_at(
        &[
            "seed",
            "--period",
            "2026H1",
            "--value",
            SEED,
            "--by",
            // A line break typed into it (issue 29: stored verbatim, it
            // split the lines the chain digest hashes) becomes a space.
            "衛生局\r\n王總管理者",
        ],
        "2026-07-08T10:00:00+08:00",
    );
    assert_eq!(given.status, 0, "{}{}", given.stdout, given.stderr);
    let again = c.run_at(
        &[
            "seed",
            "--period",
            "2026H1",
            "--value",
            "99999999999999999999",
        ],
        "2026-07-08T10:01:00+08:00",
    );
    assert_eq!(again.status, 2);
    assert!(
        again.stderr.contains("already has its seed"),
        "{}",
        again.stderr
    );
}

/// The next pass draws and mails the period's one run; returns its folder.
fn the_next_pass_draws_and_mails_one_run(c: &Test) -> std::path::PathBuf {
    pass(c, "2026-07-08T10:05:00+08:00");
    assert_eq!(ledger(c), [row("sample-audit", "2026H1", "mailed")]);
    let runs = run_folders(c, "2026H1");
    assert_eq!(runs.len(), 1);
    runs[0].clone()
}

/// The manifest: the seed, the commitment and its mails, the ledger;
/// returns it.
fn the_manifest_records_the_ceremony(
    dir: &std::path::Path,
    commitments: &[Parsed],
) -> serde_json::Value {
    let m = crate::harness::json(dir, "manifest.json");
    assert_eq!(m["seed"], SEED);
    assert_eq!(m["seed_source"], "given");
    let cer = &m["ceremony"];
    assert_eq!(cer["committed_at"], "2026-07-05T08:00:00");
    assert_eq!(cer["seed_given_at"], "2026-07-08T10:00:00");
    assert_eq!(cer["seed_given_by"], "衛生局 王總管理者");
    assert_eq!(cer["seed_via"], "command");
    assert_eq!(cer["population_digest"], m["population_digest"]);
    let ids: Vec<&str> = cer["commitment_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), commitments.len());
    for p in commitments {
        assert!(
            ids.iter()
                .any(|i| i.starts_with(&p.to) && i.contains(&p.message_id)),
            "{} {} not in {ids:?}",
            p.to,
            p.message_id
        );
    }
    assert_eq!(cer["seed_ledger"][0]["seed"], SEED);
    assert!(
        m["seed_postdates_population"]
            .as_str()
            .unwrap()
            .starts_with(
                "ceremony: the population was committed and mailed at 2026-07-05T08:00:00"
            ),
        "{}",
        m["seed_postdates_population"]
    );
    m
}

/// The chain: freeze, commitment, seed given, seed, seal — in order.
fn the_chain_holds_freeze_commitment_seed_and_seal_in_order(config: &webir_audit::config::Config) {
    let chain = webir_audit::store::Store::open(&config.paths.state)
        .unwrap()
        .chain()
        .unwrap();
    let kinds: Vec<&str> = chain.iter().map(|e| e.kind.as_str()).collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(at("freeze") < at("commitment"));
    assert!(at("commitment") < at("seed-given"));
    assert!(at("seed-given") < at("seed"));
    assert!(at("seed") < at("seal"), "{kinds:?}");
}

/// KPB's workbook and the mail its officer reads show the seed, the
/// commitment's time and the chain head.
fn the_workbook_and_the_officer_s_mail_show_the_seed(
    dir: &std::path::Path,
    smtp: &Smtp,
    config: &webir_audit::config::Config,
) {
    // The workbook shows the seed, the commitment's time and the head.
    let kpb = dir.join("reports/KPB.xlsx");
    assert!(beside(&kpb, "抽樣資訊", "種子").contains(SEED));
    assert!(beside(&kpb, "抽樣資訊", "種子來源").contains("抽籤儀式"));
    assert!(beside(&kpb, "抽樣資訊", "母體承諾寄出時間").starts_with("2026-07-05T08:00:00"));
    assert!(beside(&kpb, "抽樣資訊", "種子登錄").contains("衛生局 王總管理者"));
    assert!(beside(&kpb, "摘要", "證據鏈").starts_with("第 "));
    // And so does the mail the officer reads.
    let officer = config
        .agencies
        .get("KPB")
        .unwrap()
        .officer_email
        .clone()
        .unwrap();
    let mail = received(smtp)
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| p.to == officer && p.subject.contains("抽查"))
        .expect("KPB's workbook mail");
    assert!(
        mail.text
            .contains(&format!("抽樣種子：{SEED}（抽籤儀式之公開種子，母體承諾後登錄；母體承諾 2026-07-05T08:00:00 寄出")),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("證據鏈：第 "), "{}", mail.text);
}

/// The evidence bundle, opened by 7-Zip, verified by Python alone, shows
/// the ceremony as entries of the chain and the manifest's record of it.
fn the_bundle_verifies_offline_and_shows_the_ceremony(
    tmp: &std::path::Path,
    c: &Test,
    dir: &std::path::Path,
    m: &serde_json::Value,
) {
    let fresh =
        crate::harness::bundle::open_bundle(tmp, c.config_path(), dir, &["--with-personal-data"]);
    let (ok, text) = crate::harness::bundle::py(&fresh, &["verify_sample.py", "run"]);
    assert!(ok && text.contains("MATCH"), "{text}");
    // The bundle shows the ceremony: commitment, then the seed, then the
    // draw, each an entry of the chain with the digest the spec gives.
    let (ok, text) = crate::harness::bundle::py(&fresh, &["verify_bundle.py", "."]);
    assert!(ok && text.trim().ends_with("OK"), "{text}");
    assert!(
        text.contains(
            "ceremony: freeze entry 1, commitment entry 2 at 2026-07-05T08:00:00 (11 mails), seed given entry 3 at \
             2026-07-08T10:00:00, draw entry 4: the seed was given after the commitment"
        ),
        "{text}"
    );
    let bundled = crate::harness::json(&fresh.join("run"), "manifest.json");
    assert_eq!(bundled["ceremony"], m["ceremony"]);
}

/// A byte changed in the drawn run is named by `archive verify`.
fn a_changed_byte_in_the_run_is_named_by_archive_verify(c: &Test, dir: &std::path::Path) {
    let verify = |c: &Test| c.run_at(&["archive", "verify"], "2026-07-09T09:00:00+08:00");
    let ok = verify(c);
    assert_eq!(ok.status, 0, "{}{}", ok.stdout, ok.stderr);
    let target = dir.join("sample.csv");
    crate::harness::bundle::writable(dir);
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&target, bytes).unwrap();
    let caught = verify(c);
    assert_eq!(caught.status, 1, "{}{}", caught.stdout, caught.stderr);
    assert!(caught.stdout.contains("sample.csv"), "{}", caught.stdout);
}

#[test]
fn no_seed_in_time_tells_the_admin_once_and_keeps_waiting_or_falls_back_where_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, &ceremony(""));
    pass(&c, "2026-07-05T08:00:00+08:00");
    pass(&c, "2026-07-11T08:00:00+08:00");
    assert!(
        admin_mail(&smtp, "等候抽樣種子逾時").is_empty(),
        "not yet a week"
    );
    pass(&c, "2026-07-12T08:00:00+08:00");
    pass(&c, "2026-07-13T08:00:00+08:00");
    let told = admin_mail(&smtp, "等候抽樣種子逾時");
    assert_eq!(told.len(), 1, "once");
    assert!(
        told[0].contains("webir-audit seed --period 2026H1"),
        "{}",
        told[0]
    );
    assert_eq!(
        ledger(&c),
        [row("sample-audit", "2026H1", "waiting-for-seed")]
    );
    assert!(
        run_folders(&c, "2026H1").is_empty(),
        "never draws by itself"
    );

    // A schedule that allows the OS's seed draws it, and says so.
    let smtp2 = Smtp::start(&tmp.path().join("2"), "");
    let c2 = city(&smtp2, &ceremony("seed_fallback = \"os\"\n"));
    pass(&c2, "2026-07-05T08:00:00+08:00");
    assert!(run_folders(&c2, "2026H1").is_empty());
    pass(&c2, "2026-07-12T08:00:00+08:00");
    let runs = run_folders(&c2, "2026H1");
    assert_eq!(runs.len(), 1);
    let m = crate::harness::json(&runs[0], "manifest.json");
    assert_eq!(m["seed_source"], "os");
    assert_eq!(m["ceremony"]["seed_via"], "os-fallback");
    assert!(
        m["seed_postdates_population"]
            .as_str()
            .unwrap()
            .contains("no seed came within the wait"),
        "{}",
        m["seed_postdates_population"]
    );
    assert!(
        beside(&runs[0].join("reports/KPB.xlsx"), "抽樣資訊", "種子來源")
            .contains("等候種子逾時之備援")
    );
}

#[test]
fn a_seed_file_is_taken_from_the_inbox_and_a_population_changed_since_the_commitment_is_not_drawn()
{
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, &ceremony(""));
    pass(&c, "2026-07-05T08:00:00+08:00");
    let seeds = c.dir.path().join("city/inbox/seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    // A seed file written before the commitment went out is never taken.
    let early = seeds.join("2026H1.txt");
    std::fs::write(&early, SEED).unwrap();
    crate::harness::written_at(&early, "2026-07-01T08:00:00+08:00");
    pass(&c, "2026-07-06T09:00:00+08:00");
    assert!(seeds.join("2026H1.txt.refused").exists());
    let refused = admin_mail(&smtp, "抽樣種子檔不予登錄");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains("before the commitment was mailed at 2026-07-05T08:00:00"),
        "{}",
        refused[0]
    );
    assert_eq!(
        ledger(&c),
        [row("sample-audit", "2026H1", "waiting-for-seed")]
    );
    // A late export arrives after the commitment.
    let logs = c.dir.path().join("city/inbox/query_logs");
    std::fs::write(
        logs.join("late.csv"),
        "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\n\
         W00101,2026-06-30 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n",
    )
    .unwrap();
    let file = seeds.join("2026H1.txt");
    std::fs::write(&file, format!(" {SEED}\n")).unwrap();
    // Written on 8 July, after the commitment, whatever today is.
    crate::harness::written_at(&file, "2026-07-08T09:30:00+08:00");
    pass(&c, "2026-07-08T10:00:00+08:00");
    assert!(
        seeds.join("2026H1.txt.taken").exists(),
        "the file is taken once"
    );
    assert!(run_folders(&c, "2026H1").is_empty(), "nothing drawn");
    let failed = admin_mail(&smtp, "排程工作失敗");
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].contains("changed since its commitment was mailed at 2026-07-05T08:00:00"),
        "{}",
        failed[0]
    );
    // The late file removed, the population matches again: drawn.
    std::fs::remove_file(logs.join("late.csv")).unwrap();
    pass(&c, "2026-07-08T11:00:00+08:00");
    let runs = run_folders(&c, "2026H1");
    assert_eq!(runs.len(), 1, "{:?}", ledger(&c));
    let m = crate::harness::json(&runs[0], "manifest.json");
    assert_eq!(m["ceremony"]["seed_via"], "inbox");
    assert!(
        m["ceremony"]["seed_given_by"]
            .as_str()
            .unwrap()
            .ends_with("inbox/seeds/2026H1.txt")
    );
}

/// Issue 29: a seed file is untrusted input. A link to a secret is not
/// followed (its contents were quoted in the admin's mail), nor a link to
/// a valid seed outside the inbox; a pipe does not stall the pass; a file
/// of megabytes is not read; an invalid seed is described, not quoted.
#[test]
fn a_seed_file_that_is_a_link_a_pipe_or_too_large_is_refused_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, &ceremony(""));
    pass(&c, "2026-07-05T08:00:00+08:00");
    let seeds = c.dir.path().join("city/inbox/seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    let file = seeds.join("2026H1.txt");
    let refused = seeds.join("2026H1.txt.refused");
    let secret = c.dir.path().join("secrets.env");
    std::fs::write(&secret, "WEBIR_AUDIT_SMTP_PASSWORD=hunter2\n").unwrap();
    let outside = c.dir.path().join("seed.txt");
    std::fs::write(&outside, SEED).unwrap();
    let fifo = c.dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    type Drop<'a> = Box<dyn Fn() + 'a>;
    let trials: [(&str, Drop<'_>); 5] = [
        (
            "symbolic link",
            Box::new(|| std::os::unix::fs::symlink(&secret, &file).unwrap()),
        ),
        (
            "symbolic link",
            Box::new(|| std::os::unix::fs::symlink(&outside, &file).unwrap()),
        ),
        (
            "named pipe",
            Box::new(|| std::fs::rename(&fifo, &file).unwrap()),
        ),
        (
            "more than the 4096 bytes",
            Box::new(|| std::fs::write(&file, vec![b'7'; 5_000_000]).unwrap()),
        ),
        (
            "not only digits",
            Box::new(|| std::fs::write(&file, "WEBIR_AUDIT_SMTP_PASSWORD=hunter2").unwrap()),
        ),
    ];
    for (i, (why, drop_it)) in trials.iter().enumerate() {
        drop_it();
        // Written after the commitment, whatever today is.
        if std::fs::symlink_metadata(&file).unwrap().is_file() {
            crate::harness::written_at(&file, "2026-07-06T08:00:00+08:00");
        }
        pass(&c, &format!("2026-07-06T{:02}:00:00+08:00", 9 + i));
        assert!(refused.symlink_metadata().is_ok(), "{why}: set aside");
        std::fs::remove_file(&refused).unwrap();
        let mails = admin_mail(&smtp, "抽樣種子檔不予登錄");
        assert!(mails.iter().any(|m| m.contains(why)), "{why}: {mails:?}");
        for m in &mails {
            assert!(!m.contains("hunter2") && m.len() < 10_000, "{m}");
        }
    }
    // One mail per distinct cause: the two links are one.
    assert_eq!(admin_mail(&smtp, "抽樣種子檔不予登錄").len(), 4);
    assert_eq!(
        ledger(&c),
        [row("sample-audit", "2026H1", "waiting-for-seed")],
        "nothing drawn from a seed outside the inbox"
    );
}

const EXTERNAL_AUDIT: &str = r#"
[[schedule]]
job = "external-audit"
cron = "0 0 8 1 3 *"
period = "previous-year"
max_lateness = "60d"
wait_for_inputs = "14d"
seed = "ceremony"
"#;

/// Issue 32: the external audit's draw of units comes by the same
/// ceremony. At the due time the candidates (each unit with its critical
/// findings, those with any first) are committed and mailed, nothing is
/// drawn; the seed is given for that draw (`--job external-audit`), and
/// the next pass draws, its `selection.json` carrying the ceremony and
/// the chain its entries in order.
#[test]
fn the_external_audit_draws_its_units_by_the_ceremony_too() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, EXTERNAL_AUDIT);
    let config = c.loaded_config();
    the_year_s_logs_and_inputs_arrive_after_it_ends(&c);
    the_candidates_are_committed_and_mailed_and_nothing_is_drawn(&c, &smtp, &config);
    a_seed_is_taken_only_for_the_external_audit_s_ceremony(&c);
    the_chief_administrator_gives_the_external_audit_s_seed(&c);
    the_next_pass_draws_one_run_carrying_the_ceremony(&c, &config);
    the_chain_holds_commitment_seed_given_and_seed_in_order(&config);
}

/// The external audit's draw of 2026, as the store keys it.
const EXTERNAL_AUDIT_KEY: &str = "2026/external-audit";

/// The year's logs reach its last day, and the roster and HR list are
/// copied in after it ends.
fn the_year_s_logs_and_inputs_arrive_after_it_ends(c: &Test) {
    // The year's logs reach its last day.
    std::fs::write(
        c.dir.path().join("city/inbox/query_logs/december.csv"),
        "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關,來源IP\n\
         W00101,2026-12-31 10:00:00,個人投保資料,A123456789,public_health,成功,KHB,10.0.0.1\n",
    )
    .unwrap();
    // The roster and HR list were copied in after the year ended.
    for f in [
        "roster/webir_accounts_20260702.xlsx",
        "hr/hr_status_20260702.csv",
    ] {
        crate::harness::written_at(
            &c.dir.path().join("city/inbox").join(f),
            "2027-01-04T09:00:00+08:00",
        );
    }
}

/// 1 March: the candidates are committed and mailed to every recipient
/// of a commitment, KPB first for its critical findings; nothing is
/// drawn.
fn the_candidates_are_committed_and_mailed_and_nothing_is_drawn(
    c: &Test,
    smtp: &Smtp,
    config: &webir_audit::config::Config,
) {
    pass(c, "2027-03-01T08:00:00+08:00");
    assert_eq!(
        ledger(c),
        [row("external-audit", "2026", "waiting-for-seed")]
    );
    let key = EXTERNAL_AUDIT_KEY;
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    assert!(store.draws(key).unwrap().is_empty(), "no seed drawn");
    let committed = store.latest_ceremony(key).unwrap().expect("a commitment");
    drop(store);
    let got = received(smtp);
    let commitments: Vec<_> = got
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.subject.contains("外部稽核候選單位承諾：2026"))
        .collect();
    assert_eq!(
        commitments.len(),
        webir_audit::run::ceremony::commitment_recipients(config).len()
    );
    let text = &commitments[0].text;
    assert!(
        text.contains(&committed.population_digest)
            && text.contains("KPB 高雄市政府警察局：嚴重發現 46 筆，優先")
            && text.contains("webir-audit seed --period 2026 --job external-audit --value")
            && text.contains("seeds/2026.external-audit.txt"),
        "{text}"
    );
}

/// A job that draws nothing takes no seed, and the sample audit's seed
/// command does not reach this ceremony.
fn a_seed_is_taken_only_for_the_external_audit_s_ceremony(c: &Test) {
    // A job that draws nothing has no ceremony to give a seed to.
    let none = c.run_at(
        &[
            "seed",
            "--period",
            "2026",
            "--job",
            "internal-audit",
            "--value",
            SEED,
        ],
        "2027-03-04T10:00:00+08:00",
    );
    assert_eq!(none.status, 2, "{}", none.stdout);
    assert!(
        none.stderr.contains("internal-audit draws nothing"),
        "{}",
        none.stderr
    );
    // The sample audit's seed command does not reach this ceremony.
    let wrong = c.run_at(
        &["seed", "--period", "2026", "--value", SEED],
        "2027-03-04T10:00:00+08:00",
    );
    assert_eq!(wrong.status, 2, "{}", wrong.stdout);
    assert!(
        wrong.stderr.contains("no commitment of 2026"),
        "{}",
        wrong.stderr
    );
}

/// 4 March 10:00: the chief administrator gives the seed with
/// `--job external-audit`.
fn the_chief_administrator_gives_the_external_audit_s_seed(c: &Test) {
    let given = c.run_at(
        &[
            "seed",
            "--period",
            "2026",
            "--job",
            "external-audit",
            "--value",
            SEED,
            "--by",
            "衛生局 王總管理者",
        ],
        "2027-03-04T10:00:00+08:00",
    );
    assert_eq!(given.status, 0, "{}{}", given.stdout, given.stderr);
}

/// The next pass draws one run, its `selection.json` carrying the seed
/// and the ceremony's times, the seed after the candidates.
fn the_next_pass_draws_one_run_carrying_the_ceremony(
    c: &Test,
    config: &webir_audit::config::Config,
) {
    pass(c, "2027-03-04T11:00:00+08:00");
    let dir = config.paths.archive.join("2026/external-audit");
    let runs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "{:?}", ledger(c));
    let s = crate::harness::json(&runs[0], "selection.json");
    assert_eq!(s["seed"], SEED);
    assert_eq!(s["ceremony"]["committed_at"], "2027-03-01T08:00:00");
    assert_eq!(s["ceremony"]["seed_given_at"], "2027-03-04T10:00:00");
    assert_eq!(s["ceremony"]["population_digest"], s["units_digest"]);
    assert!(
        s["seed_postdates_candidates"]
            .as_str()
            .unwrap()
            .starts_with(
                "ceremony: the candidate list was committed and mailed at 2027-03-01T08:00:00"
            ),
        "{}",
        s["seed_postdates_candidates"]
    );
}

/// The chain holds the commitment, the seed given and the seed drawn,
/// in order.
fn the_chain_holds_commitment_seed_given_and_seed_in_order(config: &webir_audit::config::Config) {
    let key = EXTERNAL_AUDIT_KEY;
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    let kinds: Vec<(String, String)> = store
        .chain()
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.id))
        .filter(|(k, _)| k != "seal")
        .collect();
    assert_eq!(
        kinds,
        [
            ("commitment".to_owned(), key.to_owned()),
            ("seed-given".to_owned(), key.to_owned()),
            ("seed".to_owned(), format!("{key}#1")),
        ]
    );
}
