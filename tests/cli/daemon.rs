//! The real daemon binary on the sample city, mailing through a real SMTP
//! server. Decision passes run at chosen times (`daemon --once --now`);
//! each test asserts on the run ledger and on what the server received.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::Test;
use crate::harness::served::{
    SAMPLE_AUDIT, admin_mail, arrivals, city, ledger, pass, received, row, run_folders,
};
use crate::smtp::Smtp;

#[test]
fn down_across_a_scheduled_time_it_catches_up_once_and_reports_what_is_too_late() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, SAMPLE_AUDIT);
    // First start before the July run; then down until the 20th.
    pass(&c, "2026-07-01T10:00:00+08:00");
    assert!(ledger(&c).is_empty());
    assert!(smtp.received().is_empty());
    pass(&c, "2026-07-20T10:00:00+08:00");
    assert_eq!(ledger(&c), [row("sample-audit", "2026H1", "mailed")]);
    let sent = smtp.received().len();
    assert!(sent > 10, "every unit's workbook");
    assert!(arrivals(&smtp).values().all(|n| *n == 1));
    assert_eq!(run_folders(&c, "2026H1").len(), 1);
    // Later passes, and a normal tick after, never run the period again
    // (its worksheets are due on 19 August: no reminder yet either).
    pass(&c, "2026-07-21T10:00:00+08:00");
    pass(&c, "2026-08-05T08:00:00+08:00");
    assert_eq!(smtp.received().len(), sent);
    assert_eq!(run_folders(&c, "2026H1").len(), 1);
    // Down past January's run and its 30 days: missed, and said so once.
    pass(&c, "2027-03-01T10:00:00+08:00");
    pass(&c, "2027-03-02T10:00:00+08:00");
    assert_eq!(
        ledger(&c),
        [
            row("sample-audit", "2026H1", "mailed"),
            row("sample-audit", "2026H2", "missed")
        ]
    );
    let alerts = admin_mail(&smtp, "排程逾期未執行");
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].contains("2026H2"), "{}", alerts[0]);
    let status = c.run_at(&["status"], "2027-03-02T10:00:00+08:00");
    assert!(
        status.stdout.contains("sample-audit 2026H2 missed"),
        "{}",
        status.stdout
    );
    let json = c.run_at(&["status", "--json"], "2027-03-02T10:00:00+08:00");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["jobs"][0]["next"], "2027-07-05T00:00:00Z");
    let reminders = received(&smtp)
        .into_iter()
        .filter(|(_, p)| p.subject.contains("】提醒：") || p.subject.contains("】逾期"))
        .count();
    assert_eq!(v["outbox"]["sent"], sent + reminders + 1);
}

#[test]
fn the_period_boundary_is_the_first_second_of_july_in_taipei() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(
        &smtp,
        &SAMPLE_AUDIT.replace("0 0 8 5 1,7 *", "0 0 0 1 1,7 *"),
    );
    // Remove the query logs so nothing runs: only the ledger is looked at.
    std::fs::remove_dir_all(c.dir.path().join("city/inbox/query_logs")).unwrap();
    pass(&c, "2026-06-30T23:00:00+08:00");
    pass(&c, "2026-06-30T23:59:59+08:00");
    assert!(ledger(&c).is_empty());
    pass(&c, "2026-07-01T00:00:00+08:00");
    assert_eq!(
        ledger(&c),
        [row("sample-audit", "2026H1", "waiting-for-inputs")]
    );
}

#[test]
fn missing_inputs_wait_and_the_admin_is_told_once_which() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, SAMPLE_AUDIT);
    let hr = c.dir.path().join("city/inbox/hr");
    let keep = tmp.path().join("hr-kept");
    std::fs::rename(&hr, &keep).unwrap();
    pass(&c, "2026-07-01T10:00:00+08:00");
    pass(&c, "2026-07-05T09:00:00+08:00");
    pass(&c, "2026-07-12T09:00:00+08:00");
    assert_eq!(
        ledger(&c),
        [row("sample-audit", "2026H1", "waiting-for-inputs")]
    );
    assert!(
        admin_mail(&smtp, "等待匯入資料").is_empty(),
        "not before 14 days"
    );
    pass(&c, "2026-07-19T09:00:00+08:00");
    pass(&c, "2026-07-20T09:00:00+08:00");
    let alerts = admin_mail(&smtp, "等待匯入資料");
    assert_eq!(alerts.len(), 1, "once");
    assert!(alerts[0].contains("hr/"), "{}", alerts[0]);
    assert!(!alerts[0].contains("query_logs/"), "{}", alerts[0]);
    // The export arrives: the run happens at the next pass.
    std::fs::rename(&keep, &hr).unwrap();
    pass(&c, "2026-07-21T09:00:00+08:00");
    assert_eq!(ledger(&c), [row("sample-audit", "2026H1", "mailed")]);
}

/// Power lost mid-run (kill -9 once the run has made its folder): the
/// next passes remove what it left and complete the period once, its
/// mail sent once. The run's seal, its mail and its ledger row are one
/// transaction, so no moment leaves mail queued for a run the ledger
/// does not know finished.
#[test]
fn killed_during_a_run_the_period_completes_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, SAMPLE_AUDIT);
    pass(&c, "2026-07-01T10:00:00+08:00");
    let now = "2026-07-05T09:00:00+08:00";
    let mut child = c
        .command(&["daemon", "--once", "--now", now])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run is under way (its folder made, the ledger
    // saying `running`), then kill -9.
    let start = Instant::now();
    loop {
        let running = ledger(&c).iter().any(|r| r.2 == "running");
        if running && !run_folders(&c, "2026H1").is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{:?}",
            ledger(&c)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(smtp.received().is_empty(), "killed before sending");

    pass(&c, now);
    pass(&c, "2026-07-05T10:00:00+08:00");
    assert_eq!(ledger(&c), [row("sample-audit", "2026H1", "mailed")]);
    let folders = run_folders(&c, "2026H1");
    assert_eq!(folders.len(), 1, "what the kill left is gone: {folders:?}");
    assert!(folders[0].join("SHA256SUMS").exists(), "sealed");
    let queued = c.outbox().len();
    assert!(queued > 10);
    assert_eq!(received(&smtp).len(), queued, "every message, once");
    assert!(arrivals(&smtp).values().all(|n| *n == 1));
}

#[test]
fn a_second_daemon_is_refused_and_sigterm_stops_the_first_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, SAMPLE_AUDIT);
    let mut first = c
        .command(&["daemon", "-v"])
        .env_remove("GLIBC_TUNABLES")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for it to be up (signal handlers installed), then keep reading
    // its log so it never blocks on a full pipe.
    let mut log = std::io::BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("daemon started") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut log, &mut line).unwrap() > 0,
            "the daemon ended"
        );
    }
    // Started without GLIBC_TUNABLES, it runs as the same process (the
    // pid the second daemon names, under its own name) with glibc's
    // malloc on huge pages.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let proc = format!("/proc/{}", first.id());
        let environ = std::fs::read(format!("{proc}/environ")).unwrap();
        assert!(
            environ
                .split(|b| *b == 0)
                .any(|v| v == b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1"),
            "{}",
            String::from_utf8_lossy(&environ)
        );
        let comm = std::fs::read_to_string(format!("{proc}/comm")).unwrap();
        assert_eq!(comm.trim_end(), "webir-audit");
    }
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut log, &mut rest);
        rest
    });
    let second = c.run_at(&["daemon"], "2026-07-01T10:00:00+08:00");
    assert_eq!(second.status, 2);
    assert!(
        second.stderr.contains("another webir-audit daemon")
            && second.stderr.contains(&first.id().to_string()),
        "{}",
        second.stderr
    );
    // SIGTERM: exit 0 within 10 seconds.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = first.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let rest = reader.join().unwrap();
    assert!(rest.contains("stopping"), "{rest}");
}

#[test]
fn bad_schedules_refuse_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, &SAMPLE_AUDIT.replace("0 0 8 5 1,7 *", "0 0 8 5 1 *"));
    let out = c.run_at(&["daemon", "--once"], "2026-07-01T10:00:00+08:00");
    assert_eq!(out.status, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("test.toml") && out.stderr.contains("six months"),
        "{}",
        out.stderr
    );
    assert!(!Path::new(&c.loaded_config().paths.state.join("daemon.lock")).exists());
}

/// Regression: a schedules folder without `sample-audit.toml` was
/// accepted, so deleting a file switched a duty of the regulation off.
#[test]
fn a_duty_without_a_schedule_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = Test::sample_city().served(&smtp, "");
    let dir = c.dir.path().join("schedules");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(crate::harness::repo().join("schedules")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::remove_file(dir.join("sample-audit.toml")).unwrap();
    let run = || c.run_at(&["daemon", "--once"], "2026-07-01T10:00:00+08:00");
    let out = run();
    assert_eq!(out.status, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("no schedule for job \"sample-audit\"")
            && out.stderr.contains("point 6(1)"),
        "{}",
        out.stderr
    );
    // The shipped set, whole, starts.
    std::fs::copy(
        crate::harness::repo().join("schedules/sample-audit.toml"),
        dir.join("sample-audit.toml"),
    )
    .unwrap();
    let out = run();
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
}

/// Lines of a running daemon's log, read on a thread.
fn log_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::io::BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(log).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits up to 20 s for a log line containing `what`.
fn wait_for(rx: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(what) => return l,
            Ok(_) => {}
            Err(e) => panic!("no log line with {what:?}: {e}"),
        }
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Config changes take effect without a restart; a broken change is
/// refused, the previous config stays in force and the admin is told once.
#[test]
fn sighup_reloads_the_config_and_an_invalid_one_is_refused_once() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, SAMPLE_AUDIT);
    let good = std::fs::read_to_string(c.config_path()).unwrap();
    let mut d = c
        .command(&["daemon", "-v", "--now", "2026-07-01T10:00:00+08:00"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = log_lines(&mut d);
    wait_for(&rx, "pass done");

    // A typo: refused, the old config stays, one alert.
    std::fs::write(c.config_path(), format!("{good}\nnot_a_key = 1\n")).unwrap();
    for _ in 0..2 {
        signal(&d, "-HUP");
        wait_for(&rx, "previous one stays in force");
        wait_for(&rx, "pass done");
    }
    let alerts = |c: &Test| {
        webir_audit::store::Store::open(&c.loaded_config().paths.state)
            .map(|s| s.outbox().unwrap())
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.subject.contains("設定檔無效"))
            .count()
    };
    // (The config on disk is broken, so read the state folder of the good one.)
    std::fs::write(c.config_path(), &good).unwrap();
    assert_eq!(alerts(&c), 1, "told once");

    // A valid change is taken at the next wake-up.
    std::fs::write(
        c.config_path(),
        good.replace("admin@example.gov.tw", "admin2@example.gov.tw"),
    )
    .unwrap();
    signal(&d, "-HUP");
    wait_for(&rx, "configuration reloaded");
    signal(&d, "-TERM");
    let status = d.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Regression: after `run sample-audit --period 2026H1` by hand on 6 July,
/// the daemon's next pass drew 2026H1 again (draw 2, a second worksheet to
/// every officer). The ledger now holds runs made by hand, and the daemon
/// adopts the period.
#[test]
fn a_period_run_by_hand_is_adopted_not_drawn_again() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, SAMPLE_AUDIT);
    pass(&c, "2026-07-01T10:00:00+08:00");
    let by_hand = c.run_at(
        &[
            "run",
            "sample-audit",
            "--period",
            "2026H1",
            "--seed",
            "31415926535897932384",
        ],
        "2026-07-06T10:00:00+08:00",
    );
    assert!(by_hand.status <= 1, "{}{}", by_hand.stdout, by_hand.stderr);
    let sent = smtp.received().len();
    pass(&c, "2026-07-06T11:00:00+08:00");
    pass(&c, "2026-07-20T11:00:00+08:00");
    assert_eq!(ledger(&c), [row("sample-audit", "2026H1", "mailed")]);
    let note = webir_audit::store::Store::open(&c.loaded_config().paths.state)
        .unwrap()
        .ledger()
        .unwrap()[0]
        .error
        .clone()
        .unwrap_or_default();
    assert!(note.starts_with("run by hand"), "{note}");
    assert_eq!(run_folders(&c, "2026H1").len(), 1);
    let draws = webir_audit::store::Store::open(&c.loaded_config().paths.state)
        .unwrap()
        .draws("2026H1")
        .unwrap();
    assert_eq!(draws.len(), 1, "one draw");
    assert_eq!(smtp.received().len(), sent, "nothing mailed again");
}

/// A scheduled review whose inputs partly failed still goes out (its mail
/// and summary say what was not checked), and the admin, who can fix the
/// inputs, is told which checks were withheld and why.
#[test]
fn a_scheduled_run_with_a_failed_input_tells_the_admin_what_was_not_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(
        &smtp,
        r#"
[[schedule]]
job = "password-check"
cron = "0 0 8 10 1,4,7,10 *"
period = "previous-quarter"
"#,
    );
    // A roster export cut short: the passwords cannot be judged.
    let broken = c
        .dir
        .path()
        .join("city/inbox/roster/webir_accounts_20260703.xlsx");
    std::fs::write(&broken, "PK\u{3}\u{4} cut short").unwrap();
    pass(&c, "2026-07-10T09:00:00+08:00");
    assert_eq!(ledger(&c), [row("password-check", "2026Q2", "mailed")]);
    let told = admin_mail(&smtp, "部分檢核未執行");
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("ACCOUNT_PASSWORD_STALE")
            && told[0].contains("webir_accounts_20260703.xlsx"),
        "{}",
        told[0]
    );
}

/// A write fault while the run folder is written (a file-size limit here,
/// as a full disk would): no half-written run is left and nothing is mailed
/// for it; the row is failed with the error and the admin told once; a pass
/// after the retry delay runs it again (a second draw, numbered) and mails
/// it.
#[test]
fn a_write_fault_fails_the_run_cleanly_and_a_later_pass_retries_it() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, SAMPLE_AUDIT);
    let limited = |now: &str| {
        let out = c.run_limited(2048, &["daemon", "--once", "--now", now]);
        assert_eq!(out.status, 0, "{}", out.stderr);
    };
    limited("2026-07-05T08:00:00+08:00");
    assert_eq!(ledger(&c), [row("sample-audit", "2026H1", "failed")]);
    let store = webir_audit::store::Store::open(&c.loaded_config().paths.state).unwrap();
    let error = store.ledger().unwrap()[0].error.clone().unwrap_or_default();
    assert!(error.contains("File too large"), "{error}");
    assert!(
        run_folders(&c, "2026H1").is_empty(),
        "a half-written run was left"
    );
    let failed = admin_mail(&smtp, "排程工作失敗");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        received(&smtp)
            .iter()
            .all(|(_, p)| p.to == "admin@example.gov.tw"),
        "officers were mailed for a run that failed"
    );

    // Too soon to retry, and the same fault: nothing new.
    limited("2026-07-05T08:10:00+08:00");
    assert_eq!(ledger(&c), [row("sample-audit", "2026H1", "failed")]);
    assert_eq!(admin_mail(&smtp, "排程工作失敗").len(), 1);

    // The disk has room again: the retry runs and mails.
    pass(&c, "2026-07-05T08:45:00+08:00");
    assert_eq!(ledger(&c), [row("sample-audit", "2026H1", "mailed")]);
    let folders = run_folders(&c, "2026H1");
    assert_eq!(folders.len(), 1);
    assert!(folders[0].join("SHA256SUMS").exists());
    let manifest = crate::harness::json(&folders[0], "manifest.json");
    // Issue 29: the draw the failed run recorded is resumed with its
    // seed (it was draw 2 with a new seed: a draw nobody saw, and a seed
    // chosen again).
    let store = webir_audit::store::Store::open(&c.loaded_config().paths.state).unwrap();
    let draws = store.draws("2026H1").unwrap();
    assert_eq!(draws.len(), 1, "one draw");
    assert_eq!(manifest["draw_number"], 1);
    assert_eq!(manifest["seed"], draws[0].seed.as_str());
    assert_eq!(admin_mail(&smtp, "排程工作失敗").len(), 1);
}

/// In December the admin is told, once, that the holidays calendar has
/// no day of next year (deadlines would skip weekends only); not in
/// November, and not again at the next pass.
#[test]
fn in_december_the_admin_is_told_once_that_next_year_s_calendar_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, SAMPLE_AUDIT);
    pass(&c, "2026-11-30T09:00:00+08:00");
    assert!(admin_mail(&smtp, "行事曆").is_empty());
    pass(&c, "2026-12-01T09:00:00+08:00");
    pass(&c, "2026-12-08T09:00:00+08:00");
    let told = admin_mail(&smtp, "2027 年行事曆尚未匯入");
    assert_eq!(told.len(), 1, "once");
    assert!(
        told[0].contains("2027 年政府行政機關辦公日曆表") && told[0].contains("rules.holidays"),
        "{}",
        told[0]
    );
    // With next year's calendar (the DGPA's CSV beside the TOML), nothing.
    let tmp2 = tempfile::tempdir().unwrap();
    let smtp2 = Smtp::start(tmp2.path(), "");
    let c2 = city(&smtp2, SAMPLE_AUDIT);
    let folder = c2.dir.path().join("city/calendar");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::rename(
        c2.dir.path().join("city/holidays.toml"),
        folder.join("2026.toml"),
    )
    .unwrap();
    std::fs::write(
        folder.join("116年中華民國政府行政機關辦公日曆表.csv"),
        "西元日期,星期,是否放假,備註\n20270101,五,2,開國紀念日\n20270102,六,2,\n",
    )
    .unwrap();
    let config = c2.dir.path().join("city/webir-audit.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("holidays = \"holidays.toml\"", "holidays = \"calendar\"");
    std::fs::write(&config, text).unwrap();
    pass(&c2, "2026-12-01T09:00:00+08:00");
    assert!(admin_mail(&smtp2, "行事曆").is_empty());
}

/// Exports restored from a backup carry an old modification time, but
/// their names say when they were made: the daemon judges "exported after
/// the period ended" by that, so the half-year's audit runs on time
/// instead of waiting for a newer file (it waited, by file times alone).
#[test]
fn restored_exports_dated_by_their_names_do_not_hold_the_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), "");
    let c = city(&smtp, SAMPLE_AUDIT);
    let inbox = c.dir.path().join("city/inbox");
    for dir in ["roster", "hr", "query_logs", "forms"] {
        for e in std::fs::read_dir(inbox.join(dir)).unwrap() {
            crate::harness::written_at(&e.unwrap().path(), "2026-06-01T09:00:00+08:00");
        }
    }
    pass(&c, "2026-07-05T09:00:00+08:00");
    assert_eq!(ledger(&c), [row("sample-audit", "2026H1", "mailed")]);
}
