//! Following up what a run asked of the units (issue 16): the sample
//! audit's worksheets are due in 30 days; the daemon, passing at injected
//! times, reminds each officer before and on the due day, tells the
//! officer and (in one digest) the chief administrator once overdue, and
//! the ethics unit after the grace period, each exactly once; a worksheet
//! returned through `inbox/returns/` — encrypted, as it was mailed — is
//! ingested, kept in the archive sealed, and closes its item, so that unit
//! hears nothing more. A file that is not ours is refused, moved aside,
//! and the admin told.

use std::path::{Path, PathBuf};

use crate::harness::Test;
use crate::harness::mail::Parsed;
use crate::harness::repo;
use crate::harness::served::{KPB_PASSWORD, arrivals, received};

/// The sample city, its mail kept in files, with only a job that does not
/// fire in July and August scheduled: these tests watch the follow-up alone.
fn city() -> Test {
    let internal_audit =
        std::fs::read_to_string(repo().join("schedules/internal-audit.toml")).unwrap();
    Test::sample_city().schedules(&internal_audit)
}

fn count(mails: &[Parsed], subject_has: &str) -> usize {
    mails
        .iter()
        .filter(|m| m.subject.contains(subject_has))
        .count()
}

#[test]
fn a_worksheet_is_chased_until_it_comes_back_and_then_never_again() {
    let mut chase = Chase::the_sample_audit_asks_each_unit_for_its_worksheet();
    chase.nothing_is_said_two_weeks_in();
    chase.each_officer_is_reminded_once_a_week_before();
    let (returns, bytes) = chase.kpb_sends_its_worksheet_back_encrypted();
    let long = a_stranger_s_file_and_a_link_land_beside_it(&returns, &bytes);
    let pass = chase.the_pass_takes_the_return_and_sets_the_rest_aside(&returns, &long);
    chase.the_return_closes_kpb_s_item_and_is_kept_as_received(&pass, &bytes);
    let mails = chase.the_admin_hears_of_each_refused_file_and_no_secret();
    chase.kpb_s_anomaly_is_investigated_with_its_ethics_unit(&mails, &returns);
    let (mails, open) = chase.the_others_are_chased_past_the_grace_period_and_kpb_is_not();
    chase.status_counts_what_came_back(open);
    chase.the_next_run_s_workbook_shows_kpb_returned_and_the_rest_late(open);
    every_message_is_sent_once(&mails);
}

/// The sample audit's worksheets, one a unit, and what the follow-up
/// then chases.
struct Chase {
    city: Test,
    config: webir_audit::config::Config,
    units: Vec<webir_audit::config::Agency>,
    sent: Vec<Parsed>,
    items: Vec<webir_audit::store::DueItem>,
    kpb: webir_audit::config::Agency,
    kpb_officer: String,
    /// The units' passwords, read when KPB's officer opens the workbook.
    passwords: std::collections::BTreeMap<String, String>,
}

impl Chase {
    /// The sample audit runs and leaves one item due on 4 August per unit
    /// and per second review.
    fn the_sample_audit_asks_each_unit_for_its_worksheet() -> Chase {
        let city = city();
        let config = city.loaded_config();
        let units: Vec<_> = config.agencies.units().cloned().collect();
        city.sample_audit_2026h1(&[]);
        let sent = city.outbox_mails();
        let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
        let items = store.due_items().unwrap();
        // One per unit, and one per second review of a unit's officer's own
        // account.
        let officers = items
            .iter()
            .filter(|i| !i.unit_id.ends_with(":review"))
            .count();
        assert_eq!(officers, units.len(), "one due item per unit");
        assert!(
            items.len() > officers,
            "the sample city has a second review"
        );
        assert!(
            items
                .iter()
                .all(|i| i.due_on == "2026-08-04" && i.closed_at.is_none())
        );
        let kpb = units.iter().find(|u| u.id == "KPB").unwrap().clone();
        let kpb_officer = kpb.officer_email.clone().unwrap();
        Chase {
            city,
            config,
            units,
            sent,
            items,
            kpb,
            kpb_officer,
            passwords: Default::default(),
        }
    }

    /// Two weeks in, the daemon has nothing to say yet.
    fn nothing_is_said_two_weeks_in(&self) {
        self.city
            .run_at(&["daemon", "--once"], "2026-07-20T09:00:00+08:00")
            .finished();
        assert_eq!(self.city.outbox_mails().len(), self.sent.len());
    }

    /// A week before the due day each officer and second reviewer is
    /// reminded, once, with the days left.
    fn each_officer_is_reminded_once_a_week_before(&self) {
        let (city, items, kpb) = (&self.city, &self.items, &self.kpb);
        city.run_at(&["daemon", "--once"], "2026-07-28T09:00:00+08:00")
            .finished();
        city.run_at(&["daemon", "--once"], "2026-07-28T15:00:00+08:00")
            .finished();
        let mails = city.outbox_mails();
        // Each officer, and each second reviewer.
        assert_eq!(count(&mails, "】提醒："), items.len(), "one reminder each");
        let review = items
            .iter()
            .find(|i| i.unit_id.ends_with(":review"))
            .unwrap();
        assert!(
            mails.iter().any(|m| m.subject.contains("】提醒：")
                && m.to == review.sent_to
                && m.text.contains("專責人員本人帳號覆核")),
            "the reviewer is reminded"
        );
        let r = mails
            .iter()
            .find(|m| m.subject.contains("】提醒：") && Some(&m.to) == kpb.officer_email.as_ref())
            .expect("KPB's officer reminded");
        assert!(
            r.text.contains("2026-08-04") && r.text.contains("尚餘 7 日"),
            "{}",
            r.text
        );
    }

    /// KPB's officer opens the mailed worksheet with the unit's password,
    /// answers every row (one anomaly) and puts it, encrypted again, into
    /// inbox/returns/; returns that folder and the bytes put there.
    fn kpb_sends_its_worksheet_back_encrypted(&mut self) -> (PathBuf, Vec<u8>) {
        let kpb = &self.kpb;
        let attachment = self
            .sent
            .iter()
            .find(|m| {
                Some(&m.to) == kpb.officer_email.as_ref() && m.name.ends_with("抽查工作底稿.xlsx")
            })
            .and_then(|m| m.attachment.clone())
            .expect("KPB's workbook");
        let mailed = std::fs::read(&attachment).unwrap();
        assert!(
            mailed.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]),
            "mailed encrypted"
        );
        // The officer opens it with the unit's password, answers every row
        // (one anomaly), saves, and it goes back encrypted with that password.
        self.passwords = crate::harness::mail::passwords_by_address(&self.config);
        let city = &self.city;
        let plain =
            office_crypto::decrypt_from_bytes(mailed, &self.passwords[&self.kpb_officer]).unwrap();
        let opened = city.path("kpb-opened.xlsx");
        std::fs::write(&opened, &plain).unwrap();
        let filled = city.path("kpb-filled.xlsx");
        crate::harness::workbook::refill_sheet(&opened, &filled, "抽查工作底稿", |rows| {
            for (i, r) in crate::harness::workbook::table_rows(rows)
                .iter_mut()
                .enumerate()
            {
                let anomaly = if i == 0 { "有" } else { "無" };
                crate::harness::workbook::answer(r, ["是", "是", "是", anomaly, ""]);
            }
            crate::harness::workbook::sign(rows, "稽核員甲", "2026-07-29");
        });
        let bytes = self.protected_for_kpb(&filled, "2026-07-29T09:00:00Z");
        let returns = city.path("city/inbox/returns");
        std::fs::create_dir_all(&returns).unwrap();
        std::fs::write(returns.join("KPB_回傳.xlsx"), &bytes).unwrap();
        (returns, bytes)
    }

    /// The file at `filled`, encrypted with KPB's officer's password as of `at`.
    fn protected_for_kpb(&self, filled: &std::path::Path, at: &str) -> Vec<u8> {
        let mut store = webir_audit::store::Store::open(&self.config.paths.state).unwrap();
        webir_audit::mail::protect(
            &self.config,
            &mut store,
            "KPB",
            webir_audit::mail::Role::Officer,
            &std::fs::read(filled).unwrap(),
            at,
        )
        .unwrap()
        .bytes
    }

    /// The next pass takes KPB's return from the inbox and sets the
    /// stranger's file and the link aside, each with a note of its name and why.
    fn the_pass_takes_the_return_and_sets_the_rest_aside(
        &self,
        returns: &Path,
        long: &str,
    ) -> crate::harness::Output {
        let pass = self
            .city
            .run_at(&["daemon", "--once"], "2026-07-30T09:00:00+08:00")
            .finished();
        assert!(
            !returns.join("KPB_回傳.xlsx").exists()
                && !returns.join("refused/KPB_回傳.xlsx").exists(),
            "taken from the inbox: {}{}",
            pass.stdout,
            pass.stderr
        );
        // Refused, not lost: set aside under names of the tool's, each with
        // the name it came with and why.
        let note =
            |n: &str| std::fs::read_to_string(returns.join(format!("refused/{n}.txt"))).unwrap();
        assert!(returns.join("refused/0001.refused").exists());
        assert!(note("0001").contains("link.xlsx") && note("0001").contains("symbolic link"));
        assert!(returns.join("refused/0002.refused").exists());
        assert!(note("0002").contains(long), "{}", note("0002"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(returns.join("refused/0002.refused"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        pass
    }

    /// KPB's item is closed by its return, which is kept in the archive as
    /// received, and the archive still verifies.
    fn the_return_closes_kpb_s_item_and_is_kept_as_received(
        &self,
        pass: &crate::harness::Output,
        bytes: &[u8],
    ) {
        let city = &self.city;
        let store = webir_audit::store::Store::open(&self.config.paths.state).unwrap();
        let kpb_item = store
            .due_items()
            .unwrap()
            .into_iter()
            .find(|i| i.unit_id == "KPB")
            .unwrap();
        assert!(
            kpb_item.closed_at.is_some(),
            "{kpb_item:?} {} {}",
            pass.stdout,
            pass.stderr
        );
        let kept: Vec<PathBuf> = std::fs::read_dir(city.path("var/archive/2026H1/returns"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(
            std::fs::read(kept[0].join("returned.xlsx")).unwrap(),
            bytes,
            "kept as received"
        );
        let verify = city
            .run_at(&["archive", "verify"], "2026-07-30T09:05:00+08:00")
            .finished();
        assert_eq!(verify.status, 0, "{}", verify.stdout);
    }

    /// The admin hears of each refused file, and the secret a link points
    /// at is never read; returns the mail so far.
    fn the_admin_hears_of_each_refused_file_and_no_secret(&self) -> Vec<Parsed> {
        let mails = self.city.outbox_mails();
        assert_eq!(
            count(&mails, "回傳檔案無法收件"),
            2,
            "the admin hears of each refused file"
        );
        assert!(
            !mails.iter().any(|m| m.text.contains("root:x:0")),
            "the secret a link points at is never read"
        );
        mails
    }

    /// KPB's confirmed anomaly opens the investigation of point 6(3): the
    /// record goes to the officer and the ethics unit and comes back filled in.
    fn kpb_s_anomaly_is_investigated_with_its_ethics_unit(&self, mails: &[Parsed], returns: &Path) {
        let (city, kpb, kpb_officer) = (&self.city, &self.kpb, &self.kpb_officer);
        let inv: Vec<&Parsed> = mails
            .iter()
            .filter(|m| m.subject.contains("請會同調查"))
            .collect();
        assert_eq!(inv.len(), 2, "officer and ethics unit");
        assert!(inv.iter().any(|m| Some(&m.to) == kpb.ethics_email.as_ref()));
        let officer_copy = inv.iter().find(|m| &m.to == kpb_officer).unwrap();
        assert!(
            officer_copy.text.contains("會同貴機關政風單位"),
            "{}",
            officer_copy.text
        );
        let record = crate::harness::mail::opened(officer_copy, &self.passwords[kpb_officer]);
        let opened = city.path("inv-opened.xlsx");
        std::fs::write(&opened, &record).unwrap();
        let filled = city.path("inv-filled.xlsx");
        crate::harness::workbook::refill_sheet(&opened, &filled, "調查紀錄", |rows| {
            // Title, blank, header, one anomaly, blank, the three sign-off lines.
            assert_eq!(rows.len(), 8, "one anomaly: {rows:?}");
            assert_eq!(rows[5][0], calamine::Data::String("填表人（簽章）".into()));
            rows[3].resize(11, calamine::Data::Empty);
            rows[3][6] = calamine::Data::String("政風室王科員".into());
            rows[3][7] = calamine::Data::String("經查係承辦人誤植目的".into());
            rows[3][8] = calamine::Data::String("經查無異常".into());
            rows[3][9] = calamine::Data::String("加強宣導".into());
        });
        let back = self.protected_for_kpb(&filled, "2026-08-01T09:00:00Z");
        std::fs::write(returns.join("KPB_調查紀錄.xlsx"), back).unwrap();
        let pass = city
            .run_at(&["daemon", "--once"], "2026-08-01T09:00:00+08:00")
            .finished();
        assert!(
            !returns.join("KPB_調查紀錄.xlsx").exists(),
            "{}",
            pass.stderr
        );
        let store = webir_audit::store::Store::open(&self.config.paths.state).unwrap();
        let inv_item = store
            .due_items()
            .unwrap()
            .into_iter()
            .find(|i| i.job == "investigation")
            .expect("an investigation item");
        assert_eq!(inv_item.unit_id, "KPB");
        assert!(inv_item.closed_at.is_some(), "{inv_item:?} {}", pass.stderr);
    }

    /// On the due day, once overdue and past the grace period every other
    /// item is chased (the chief in one digest, the ethics units copied),
    /// and KPB hears nothing; returns the mail and the number still open.
    fn the_others_are_chased_past_the_grace_period_and_kpb_is_not(&self) -> (Vec<Parsed>, usize) {
        let (city, items, kpb) = (&self.city, &self.items, &self.kpb);
        city.run_at(&["daemon", "--once"], "2026-08-04T09:00:00+08:00")
            .finished();
        city.run_at(&["daemon", "--once"], "2026-08-05T09:00:00+08:00")
            .finished();
        city.run_at(&["daemon", "--once"], "2026-08-18T09:00:00+08:00")
            .finished();
        city.run_at(&["daemon", "--once"], "2026-08-19T09:00:00+08:00")
            .finished();
        let mails = city.outbox_mails();
        // Every item but KPB's: the other units' and the second review.
        let open = items.len() - 1;
        assert_eq!(count(&mails, "】今日到期："), open);
        let overdue: Vec<&Parsed> = mails
            .iter()
            .filter(|m| m.subject.contains("】逾期："))
            .collect();
        let chief = self.config.chief_email().unwrap().to_owned();
        let digest: Vec<&&Parsed> = overdue
            .iter()
            .filter(|m| m.to == chief && m.text.starts_with("衛生局總管理者"))
            .collect();
        assert_eq!(digest.len(), 1, "one digest to the chief administrator");
        assert!(
            digest[0].text.contains("督導")
                && !digest[0].text.contains("（KPB）")
                && digest[0].text.contains("專責人員本人帳號覆核）")
                && !digest[0].text.contains(":review"),
            "{}",
            digest[0].text
        );
        assert_eq!(overdue.len() - 1, open, "each open unit's officer");
        let with_ethics = self
            .units
            .iter()
            .filter(|u| u.id != "KPB" && u.ethics_email.is_some())
            .count();
        assert!(with_ethics > 0);
        assert_eq!(count(&mails, "】逾期副知政風："), with_ethics);
        // KPB, whose worksheet came back, heard nothing after it.
        let after: Vec<&Parsed> = mails
            .iter()
            .filter(|m| {
                (Some(&m.to) == kpb.officer_email.as_ref()
                    || Some(&m.to) == kpb.ethics_email.as_ref())
                    && ["今日到期", "逾期"].iter().any(|s| m.subject.contains(s))
            })
            .collect();
        assert!(
            after.is_empty(),
            "{:?}",
            after.iter().map(|m| &m.subject).collect::<Vec<_>>()
        );
        (mails, open)
    }

    /// `status`, as text and as JSON, counts what was asked, returned and
    /// is still open.
    fn status_counts_what_came_back(&self, open: usize) {
        let (city, items) = (&self.city, &self.items);
        let status = city
            .run_at(&["status"], "2026-08-19T10:00:00+08:00")
            .finished();
        assert!(
            status.stdout.contains(&format!(
                "returns: {} asked, 2 returned, {open} open ({open} overdue)",
                items.len() + 1
            )),
            "{}",
            status.stdout
        );
        let json = city
            .run_at(&["status", "--json"], "2026-08-19T10:00:00+08:00")
            .finished();
        let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(v["due"].as_array().unwrap().len(), items.len() + 1);
    }

    /// The next run's city-wide workbook shows KPB's worksheet returned,
    /// every row answered, and the others overdue.
    fn the_next_run_s_workbook_shows_kpb_returned_and_the_rest_late(&self, open: usize) {
        let next = self
            .city
            .run_at(
                &["run", "query-check", "--period", "2026H1", "--no-send"],
                "2026-08-20T09:00:00+08:00",
            )
            .finished();
        let dir = next.run_dir();
        use calamine::Reader as _;
        let mut wb: calamine::Xlsx<_> =
            calamine::open_workbook(dir.join("reports/city-wide.xlsx")).unwrap();
        let sheet = wb.worksheet_range("回收狀況").expect("a 回收狀況 sheet");
        let rows: Vec<Vec<String>> = sheet
            .rows()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect();
        let kpb_row = rows
            .iter()
            .find(|r| r[0].ends_with("（KPB）") && r[2] == "20260705T080000")
            .expect("KPB's row");
        assert_eq!(kpb_row[5], "已回傳", "{kpb_row:?}");
        assert_eq!(kpb_row[6], "2026-07-30");
        // Rows answered of rows asked, from the return: every one.
        let (done, all) = kpb_row[7].split_once(" / ").expect("x / y");
        assert!(done == all && all != "0", "{kpb_row:?}");
        assert!(
            rows.iter()
                .any(|r| r.get(5).is_some_and(|s| s == "逾期未回傳") && r[7] == "尚未回傳"),
            "{rows:?}"
        );
        let late = rows
            .iter()
            .filter(|r| r.get(5).is_some_and(|s| s == "逾期未回傳"))
            .count();
        assert_eq!(late, open);
    }
}

/// A stranger's file with a name of 251 bytes, and a link to a secret,
/// land in inbox/returns/ too; returns the long name.
fn a_stranger_s_file_and_a_link_land_beside_it(returns: &Path, bytes: &[u8]) -> String {
    let mut foreign = bytes.to_vec();
    let n = foreign.len();
    foreign[n / 2..].fill(0);
    // A stranger's file with a name of 251 bytes (it jammed every pass:
    // its refused copy's name was too long), and a link to a secret.
    let long = format!("{}不明檔案.xlsx", "長".repeat(78));
    std::fs::write(returns.join(&long), &foreign).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/passwd", returns.join("link.xlsx")).unwrap();
    long
}

/// Every message was sent once.
fn every_message_is_sent_once(mails: &[Parsed]) {
    let ids: std::collections::BTreeSet<&str> =
        mails.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), mails.len());
}

/// A unit's officer changes while its worksheet is open: the daemon hands
/// the item to the new officer (the workbook again, encrypted, with what
/// is due by when), records it, and from then on reminds the new officer
/// only. `outbox resend RUN --to` the new officer of another unit does the
/// same by hand.
#[test]
fn an_open_item_follows_the_unit_s_new_officer() {
    let city = city();
    let run_dir = city.sample_audit_2026h1(&[]).run_dir();
    // The register is edited: nothing else.
    let register = city.city_path("agencies.xlsx");
    for unit in ["ksa", "ktb"] {
        let old = crate::harness::set_in_register(
            &register,
            &unit.to_uppercase(),
            "專責人員信箱",
            &format!("officer2.{unit}@example.gov.tw"),
        );
        assert_eq!(old, format!("officer.{unit}@example.gov.tw"));
    }
    // By hand, for KTB: its current officer, whom the run never mailed.
    let resend = city
        .run_at(
            &[
                "outbox",
                "resend",
                run_dir.to_str().unwrap(),
                "--to",
                "officer2.ktb@example.gov.tw",
            ],
            "2026-07-10T09:00:00+08:00",
        )
        .finished();
    assert!(
        resend.stdout.contains("1 open items handed over"),
        "{}",
        resend.stdout
    );
    // The daemon, for KSA (KTB's is done).
    city.run_at(&["daemon", "--once"], "2026-07-10T10:00:00+08:00")
        .finished();
    city.run_at(&["daemon", "--once"], "2026-07-10T11:00:00+08:00")
        .finished();
    let config = city.loaded_config();
    let passwords = crate::harness::mail::passwords_by_address(&config);
    let mails = city.outbox_mails();
    for (unit, new) in [
        ("KSA", "officer2.ksa@example.gov.tw"),
        ("KTB", "officer2.ktb@example.gov.tw"),
    ] {
        let handed: Vec<&Parsed> = mails
            .iter()
            .filter(|m| m.to == new && m.subject.contains("移交待辦"))
            .collect();
        assert_eq!(handed.len(), 1, "{unit}: handed over once");
        let h = handed[0];
        assert!(
            h.text.contains("2026-08-04") && h.text.contains("專責人員已異動"),
            "{}",
            h.text
        );
        let plain = crate::harness::mail::opened(h, &passwords[new]);
        assert_eq!(
            plain,
            std::fs::read(run_dir.join(format!("reports/{unit}.xlsx"))).unwrap(),
            "{unit}: the run's workbook"
        );
    }
    // Reminders now reach the new officers only.
    city.run_at(&["daemon", "--once"], "2026-07-28T09:00:00+08:00")
        .finished();
    let mails = city.outbox_mails();
    let reminded = |to: &str| {
        mails
            .iter()
            .filter(|m| m.to == to && m.subject.contains("】提醒："))
            .count()
    };
    assert_eq!(reminded("officer2.ksa@example.gov.tw"), 1);
    assert_eq!(reminded("officer.ksa@example.gov.tw"), 0);
    assert_eq!(reminded("officer2.ktb@example.gov.tw"), 1);
    assert_eq!(reminded("officer.ktb@example.gov.tw"), 0);
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    let ksa = store
        .due_items()
        .unwrap()
        .into_iter()
        .find(|i| i.unit_id == "KSA")
        .unwrap();
    assert_eq!(ksa.sent_to, "officer2.ksa@example.gov.tw");
}

/// The account review comes back too (point 6(2)): a return with a 處理結果
/// on every row closes the unit's item; one with a row left blank is
/// recorded and kept but leaves the item open; one whose tool columns were
/// changed is refused.
#[test]
fn an_account_review_comes_back_with_its_decisions() {
    let review = ReviewReturn::the_account_review_runs();
    review.a_return_with_an_account_changed_is_refused();
    review.a_sign_off_day_that_is_no_day_is_refused_naming_the_cell();
    review.a_row_left_blank_is_taken_but_leaves_the_item_open();
    review.a_decision_on_every_row_closes_the_item();
    review.both_returns_are_kept_with_who_signed_and_what_was_decided();
}

/// KPB's account review of 3 July, and its workbook coming back.
struct ReviewReturn {
    city: Test,
    config: webir_audit::config::Config,
    run_dir: PathBuf,
}

impl ReviewReturn {
    /// The account review runs as of 2 July.
    fn the_account_review_runs() -> ReviewReturn {
        let city = city();
        let out = city
            .run_at(
                &["run", "account-review", "--as-of", "2026-07-02"],
                "2026-07-03T08:00:00+08:00",
            )
            .finished();
        let run_dir = out.run_dir();
        let config = city.loaded_config();
        ReviewReturn {
            city,
            config,
            run_dir,
        }
    }

    /// KPB's workbook filled in (a row left blank, or an account changed,
    /// where asked), signed on `day`, and encrypted as it was mailed.
    fn fill_signed(&self, name: &str, leave_blank: bool, tamper: bool, day: &str) -> PathBuf {
        use calamine::Data;
        let original = self.run_dir.join("reports/KPB.xlsx");
        let out = self.city.path(name);
        crate::harness::workbook::refill_sheet(&original, &out, "帳號清查", |rows| {
            crate::harness::workbook::sign(rows, "專責人員乙", day);
            let width = rows[2].len();
            let at = |h: &str| crate::harness::workbook::table_column(rows, h);
            let (done, who, account) = (at("處理結果"), at("處理人"), at("帳號"));
            for (i, r) in crate::harness::workbook::table_rows(rows)
                .iter_mut()
                .enumerate()
            {
                r.resize(width, Data::Empty);
                if !(leave_blank && i == 0) {
                    r[done] = Data::String("保留".into());
                    r[who] = Data::String("專責人員乙".into());
                }
                if tamper && i == 1 {
                    r[account] = Data::String("W00000".into());
                }
            }
        });
        // Back encrypted with the unit's password, as it was mailed.
        let config = &self.config;
        let mut store = webir_audit::store::Store::open(&config.paths.state).unwrap();
        let bytes = webir_audit::mail::protect(
            config,
            &mut store,
            "KPB",
            webir_audit::mail::Role::Officer,
            &std::fs::read(&out).unwrap(),
            "2026-07-10T09:00:00Z",
        )
        .unwrap()
        .bytes;
        std::fs::write(&out, bytes).unwrap();
        out
    }

    /// KPB's workbook filled in and signed on 12 July.
    fn fill(&self, name: &str, leave_blank: bool, tamper: bool) -> PathBuf {
        self.fill_signed(name, leave_blank, tamper, "115/07/12")
    }

    fn run_id(&self) -> &str {
        self.run_dir.file_name().unwrap().to_str().unwrap()
    }

    /// KPB's due item of the account review.
    fn item(&self) -> webir_audit::store::DueItem {
        webir_audit::store::Store::open(&self.config.paths.state)
            .unwrap()
            .due_item("account-review", self.run_id(), "KPB")
            .unwrap()
            .expect("KPB's account review is due")
    }

    /// `ingest-worksheet` of `f`, as returned, at `now`.
    fn ingest(&self, f: &Path, now: &str) -> crate::harness::Output {
        let f = crate::harness::as_returned(&self.config, f);
        self.city
            .run_at(&["ingest-worksheet", f.to_str().unwrap()], now)
    }

    /// A return whose account column was changed is refused, naming it.
    fn a_return_with_an_account_changed_is_refused(&self) {
        let tampered = self.ingest(
            &self.fill("tampered.xlsx", false, true),
            "2026-07-10T09:00:00+08:00",
        );
        assert_eq!(tampered.status, 2, "{}{}", tampered.stdout, tampered.stderr);
        assert!(tampered.stderr.contains("帳號"), "{}", tampered.stderr);
    }

    /// The sign-off's day must be a day: refused, naming the cell.
    fn a_sign_off_day_that_is_no_day_is_refused_naming_the_cell(&self) {
        let undated = self.ingest(
            &self.fill_signed("undated.xlsx", false, false, "not a date; =cmd"),
            "2026-07-10T09:00:00+08:00",
        );
        assert_eq!(undated.status, 2, "{}{}", undated.stdout, undated.stderr);
        assert!(
            undated.stderr.contains("日期") && undated.stderr.contains("not a date; =cmd"),
            "{}",
            undated.stderr
        );
    }

    /// A return with a row left blank is taken, and the item stays open.
    fn a_row_left_blank_is_taken_but_leaves_the_item_open(&self) {
        let partial = self.ingest(
            &self.fill("partial.xlsx", true, false),
            "2026-07-11T09:00:00+08:00",
        );
        assert_eq!(partial.status, 0, "{}{}", partial.stdout, partial.stderr);
        assert!(
            partial.stdout.contains("the item stays open"),
            "{}",
            partial.stdout
        );
        assert!(self.item().closed_at.is_none());
    }

    /// A return with a 處理結果 on every row closes the item on its day.
    fn a_decision_on_every_row_closes_the_item(&self) {
        let whole = self.ingest(
            &self.fill("whole.xlsx", false, false),
            "2026-07-12T09:00:00+08:00",
        );
        assert_eq!(whole.status, 0, "{}{}", whole.stdout, whole.stderr);
        assert!(
            whole.stdout.starts_with("帳號清查 of KPB"),
            "{}",
            whole.stdout
        );
        assert_eq!(
            self.item().closed_at.as_deref(),
            Some("2026-07-12T09:00:00")
        );
    }

    /// Both returns are kept as received; the sign-off and the decisions
    /// are recorded.
    fn both_returns_are_kept_with_who_signed_and_what_was_decided(&self) {
        // Both returns are kept as received.
        let kept = std::fs::read_dir(self.city.path("var/archive/as-of-2026-07-02/returns"))
            .unwrap()
            .count();
        assert_eq!(kept, 2);
        let store = webir_audit::store::Store::open(&self.config.paths.state).unwrap();
        // Who signed it and when is recorded with it (the ROC day as a day).
        assert_eq!(
            store
                .sign_off("account-review", self.run_id(), "KPB")
                .unwrap(),
            Some(webir_audit::store::SignOff {
                filled_by: "專責人員乙".into(),
                head: String::new(),
                day: "2026-07-12".into(),
            })
        );
        let decisions = store.returned_decisions("account-review").unwrap();
        assert!(
            decisions
                .iter()
                .any(|(u, _, a, _)| u == "KPB" && a.contains("保留"))
        );
    }
}

/// Point 6(4): each unit the external audit draws is told what to prepare
/// and by when, and its preparation is a due item; a second draw of the
/// period supersedes the first's items; the Health Bureau closes an item
/// by hand once the unit is ready, and reminders stop for it.
#[test]
fn units_drawn_by_the_external_audit_are_told_and_followed_up() {
    let city = city();
    let seed = "27182818284590452353602874";
    let run = |args: &[&str], now: &str| city.run_at(args, now);
    let first = run(
        &["run", "external-audit", "--period", "2026", "--seed", seed],
        "2027-03-01T08:00:00+08:00",
    );
    assert!(first.status <= 2, "{}{}", first.stdout, first.stderr);
    let second = run(
        &[
            "run",
            "external-audit",
            "--period",
            "2026",
            "--seed",
            seed,
            "--redraw",
        ],
        "2027-03-01T09:00:00+08:00",
    );
    assert!(second.status <= 2, "{}{}", second.stdout, second.stderr);
    let dir = second.run_dir();
    let sel: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("selection.json")).unwrap()).unwrap();
    let drawn: Vec<String> = sel["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["selected"] == true)
        .map(|u| u["unit_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(drawn.len(), 3);
    let config = city.loaded_config();
    let mails = city.outbox_mails();
    for u in &drawn {
        let officer = config
            .agencies
            .get(u)
            .unwrap()
            .officer_email
            .clone()
            .unwrap();
        let notices: Vec<&Parsed> = mails
            .iter()
            .filter(|m| m.to == officer && m.subject.contains("外部稽核受稽核通知"))
            .collect();
        // One per draw: the second draw told them again.
        assert_eq!(notices.len(), 2, "{u}");
        assert!(
            notices[0].text.contains("第六點第四款")
                && notices[0].text.contains("業務需求人員清冊")
                && notices[0].text.contains("2027-03-31"),
            "{}",
            notices[0].text
        );
    }
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    let open: Vec<_> = store
        .due_items()
        .unwrap()
        .into_iter()
        .filter(|i| i.job == "external-audit" && i.closed_at.is_none())
        .collect();
    // Three units prepare; the chief has three records and the officer
    // review to return.
    assert_eq!(open.len(), 7, "the second draw's only: {open:?}");
    let run_id = dir.file_name().unwrap().to_str().unwrap();
    assert!(open.iter().all(|i| i.run_id == run_id));
    // The first drawn unit is ready; the Health Bureau closes its item.
    let close = run(
        &[
            "followup",
            "close",
            run_id,
            &drawn[0],
            "--note",
            "資料已備妥（電話確認）",
        ],
        "2027-03-20T09:00:00+08:00",
    );
    assert_eq!(close.status, 0, "{}{}", close.stdout, close.stderr);
    city.run_at(&["daemon", "--once"], "2027-03-24T09:00:00+08:00")
        .finished();
    let mails = city.outbox_mails();
    for (i, u) in drawn.iter().enumerate() {
        let officer = config
            .agencies
            .get(u)
            .unwrap()
            .officer_email
            .clone()
            .unwrap();
        let reminded = mails
            .iter()
            .filter(|m| {
                m.to == officer && m.subject.contains("】提醒：") && m.subject.contains("外部稽核")
            })
            .count();
        assert_eq!(reminded, usize::from(i > 0), "{u}");
    }
}

/// Encrypts `plain` with `password` as Excel would (agile encryption).
fn encrypt(plain: &[u8], password: &str) -> Vec<u8> {
    use rand09::SeedableRng as _;
    use std::io::Write as _;
    let mut rng = rand09::rngs::StdRng::seed_from_u64(7);
    let mut w = ms_offcrypto_writer::Ecma376AgileWriter::create(
        &mut rng,
        password,
        std::io::Cursor::new(Vec::new()),
    )
    .unwrap();
    w.write_all(plain).unwrap();
    w.into_inner().unwrap().into_inner()
}

/// Issue 16's year, with the real daemon and a real SMTP server: the H1
/// sample audit is mailed, the officer is reminded before the deadline,
/// the officer and the chief administrator hear once it is overdue, the
/// worksheet comes back encrypted through `inbox/returns/` with one
/// anomaly confirmed, the investigation record goes out and comes back,
/// a unit's officer changes and its open item reaches the new one, the
/// January account review shows the still-open findings of July's review
/// as repeats one level higher, and its city-wide workbook shows the unit
/// complete. Every message arrives once; none is missing.
#[test]
fn one_unit_through_a_year_with_the_daemon_and_a_real_smtp_server() {
    let year = Year::a_city_mailing_through_a_real_smtp_server();
    let workbook = year.july_s_seed_ceremony_mails_the_sample_audit_and_the_password_check();
    year.the_officers_review_their_accounts_in_july_by_hand();
    year.the_officer_is_reminded_and_then_told_it_is_overdue();
    let inv = year.the_worksheet_comes_back_with_one_anomaly_confirmed(&workbook);
    year.the_investigation_record_comes_back_concluded(&inv);
    year.ksa_s_open_items_reach_its_new_officer();
    year.january_s_exports_arrive();
    let dir = year.january_s_account_review_lists_july_s_findings_as_repeats();
    the_city_wide_workbook_shows_kpb_s_returns_complete(&dir);
    year.every_message_arrived_once();
    let _ = crate::harness::served::ENV;
}

/// A sample city whose daemon runs the sample audit and the account
/// review, and mails through a real SMTP server.
struct Year {
    c: crate::harness::Test,
    smtp: crate::smtp::Smtp,
    config: webir_audit::config::Config,
    kpb: webir_audit::config::Agency,
    officer: String,
    chief: String,
    returns: PathBuf,
    // Dropped last, as it holds the server's files.
    _tmp: tempfile::TempDir,
}

impl Year {
    /// The city, its SMTP server, and the two schedules it runs.
    fn a_city_mailing_through_a_real_smtp_server() -> Year {
        let tmp = tempfile::tempdir().unwrap();
        let smtp = crate::smtp::Smtp::start(tmp.path(), "");
        let c = crate::harness::Test::sample_city().served(&smtp, "");
        let schedules = c.dir.path().join("schedules");
        std::fs::create_dir_all(&schedules).unwrap();
        for f in ["sample-audit.toml", "account-review.toml"] {
            std::fs::copy(repo().join("schedules").join(f), schedules.join(f)).unwrap();
        }
        crate::harness::suspend_unscheduled_duties(&schedules);
        let config = c.loaded_config();
        let kpb = config.agencies.get("KPB").unwrap().clone();
        let officer = kpb.officer_email.clone().unwrap();
        let chief = config.chief_email().unwrap().to_owned();
        let returns = c.dir.path().join("city/inbox/returns");
        std::fs::create_dir_all(&returns).unwrap();
        Year {
            c,
            smtp,
            config,
            kpb,
            officer,
            chief,
            returns,
            _tmp: tmp,
        }
    }

    /// One pass of the daemon at `now`, which succeeds.
    fn pass(&self, now: &str) {
        let out = self.c.run_at(&["daemon", "--once"], now);
        assert_eq!(out.status, 0, "{now}: {}{}", out.stdout, out.stderr);
    }

    /// The messages the server received for `to` whose subject has `has`.
    fn subjects(&self, to: &str, has: &str) -> Vec<Parsed> {
        received(&self.smtp)
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| p.to == to && p.subject.contains(has))
            .collect()
    }

    /// July: the seed ceremony's commitment and seed, then the sample
    /// audit's workbook and the quarter's password check reach KPB's
    /// officer; returns the workbook's message.
    fn july_s_seed_ceremony_mails_the_sample_audit_and_the_password_check(&self) -> Parsed {
        let (c, officer, chief) = (&self.c, &self.officer, &self.chief);
        // July: the sample audit, then the quarter's password check (an
        // account review as of 30 June).
        // The shipped schedule's seed ceremony: the commitment at 08:00, the
        // seed read out at a dice ceremony that morning and typed in.
        self.pass("2026-07-05T08:00:00+08:00");
        assert!(self.subjects(chief, "抽樣母體承諾").len() == 1);
        let seed = c.run_at(
            &[
                "seed",
                "--period",
                "2026H1",
                "--value",
                "31415926535897932384626",
            ],
            "2026-07-05T08:30:00+08:00",
        );
        assert_eq!(seed.status, 0, "{}{}", seed.stdout, seed.stderr);
        self.pass("2026-07-05T09:00:00+08:00");
        self.pass("2026-07-10T08:00:00+08:00");
        let workbook = self.subjects(officer, "抽查工作底稿");
        assert_eq!(workbook.len(), 1);
        // The quarterly password check is a notice of its own, not a review.
        assert_eq!(self.subjects(officer, "帳號清查").len(), 0);
        assert_eq!(self.subjects(officer, "密碼定期更換").len(), 1);
        workbook.into_iter().next().unwrap()
    }

    /// The officers review their accounts in July, by hand, and KPB's
    /// officer gets the review.
    fn the_officers_review_their_accounts_in_july_by_hand(&self) {
        let review = self.c.run_at(
            &["run", "account-review", "--as-of", "2026-07-10"],
            "2026-07-10T09:00:00+08:00",
        );
        assert!(review.status <= 1, "{}{}", review.stdout, review.stderr);
        assert_eq!(self.subjects(&self.officer, "帳號清查").len(), 1);
    }

    /// A week before the deadline the officer is reminded; past it the
    /// officer is told, and KPB is on the chief administrator's list.
    fn the_officer_is_reminded_and_then_told_it_is_overdue(&self) {
        let officer = &self.officer;
        // A week before the deadline, then past it.
        self.pass("2026-07-28T09:00:00+08:00");
        assert_eq!(
            self.subjects(officer, "】提醒：")
                .iter()
                .filter(|m| m.subject.contains("抽查工作底稿"))
                .count(),
            1
        );
        self.pass("2026-08-05T09:00:00+08:00");
        assert_eq!(
            self.subjects(officer, "】逾期：")
                .iter()
                .filter(|m| m.subject.contains("抽查工作底稿"))
                .count(),
            1
        );
        let digest = self.subjects(&self.chief, "】逾期：");
        assert!(
            digest.iter().any(|m| m.text.contains("（KPB）")),
            "the chief administrator's list"
        );
    }

    /// The worksheet comes back, encrypted with the unit's password, one
    /// anomaly confirmed, and the investigation record goes to the officer
    /// and the ethics unit; returns the officer's.
    fn the_worksheet_comes_back_with_one_anomaly_confirmed(
        &self,
        workbook: &Parsed,
    ) -> Vec<Parsed> {
        let (c, returns) = (&self.c, &self.returns);
        let plain = office_crypto::decrypt_from_bytes(
            std::fs::read(workbook.attachment.as_ref().unwrap()).unwrap(),
            KPB_PASSWORD,
        )
        .unwrap();
        let opened = c.dir.path().join("opened.xlsx");
        std::fs::write(&opened, plain).unwrap();
        let filled = c.dir.path().join("filled.xlsx");
        crate::harness::workbook::refill_sheet(&opened, &filled, "抽查工作底稿", |rows| {
            for (i, r) in crate::harness::workbook::table_rows(rows)
                .iter_mut()
                .enumerate()
            {
                let anomaly = if i == 0 { "有" } else { "無" };
                crate::harness::workbook::answer(r, ["是", "是", "是", anomaly, ""]);
            }
            crate::harness::workbook::sign(rows, "稽核員甲", "2026-08-06");
        });
        std::fs::write(
            returns.join("KPB.xlsx"),
            encrypt(&std::fs::read(&filled).unwrap(), KPB_PASSWORD),
        )
        .unwrap();
        self.pass("2026-08-06T09:00:00+08:00");
        assert!(!returns.join("KPB.xlsx").exists());
        let inv = self.subjects(&self.officer, "請會同調查");
        assert_eq!(inv.len(), 1);
        assert_eq!(
            self.subjects(self.kpb.ethics_email.as_deref().unwrap(), "請會同調查")
                .len(),
            1
        );
        inv
    }

    /// The investigation record comes back, concluded, and is taken in.
    fn the_investigation_record_comes_back_concluded(&self, inv: &[Parsed]) {
        let (c, returns) = (&self.c, &self.returns);
        let record = office_crypto::decrypt_from_bytes(
            std::fs::read(inv[0].attachment.as_ref().unwrap()).unwrap(),
            KPB_PASSWORD,
        )
        .unwrap();
        let opened = c.dir.path().join("inv.xlsx");
        std::fs::write(&opened, record).unwrap();
        let filled = c.dir.path().join("inv-filled.xlsx");
        crate::harness::workbook::refill_sheet(&opened, &filled, "調查紀錄", |rows| {
            for r in crate::harness::workbook::table_rows(rows).iter_mut() {
                r.resize(11, calamine::Data::Empty);
                r[6] = calamine::Data::String("政風室王科員".into());
                r[8] = calamine::Data::String("異常屬實".into());
                r[9] = calamine::Data::String("帳號停權並移送懲處".into());
            }
        });
        std::fs::write(
            returns.join("KPB-調查紀錄.xlsx"),
            encrypt(&std::fs::read(&filled).unwrap(), KPB_PASSWORD),
        )
        .unwrap();
        self.pass("2026-08-07T09:00:00+08:00");
        assert!(!returns.join("KPB-調查紀錄.xlsx").exists());
    }

    /// KSA's officer changes in the register: its open worksheet and
    /// account review reach the new one, and the old one hears no more.
    fn ksa_s_open_items_reach_its_new_officer(&self) {
        crate::harness::set_in_register(
            &self.c.city_path("agencies.xlsx"),
            "KSA",
            "專責人員信箱",
            "officer2.ksa@example.gov.tw",
        );
        self.pass("2026-08-08T09:00:00+08:00");
        // July's password check asked nothing to hand over.
        assert_eq!(
            self.subjects("officer2.ksa@example.gov.tw", "移交待辦")
                .len(),
            2,
            "worksheet and account review"
        );
        self.pass("2026-08-20T09:00:00+08:00");
        assert!(
            self.subjects("officer.ksa@example.gov.tw", "逾期副知")
                .is_empty()
        );
    }

    /// January: the year-end exports (personnel, roster, the second
    /// half-year's queries) arrive in the inbox, dated 5 January.
    fn january_s_exports_arrive(&self) {
        let c = &self.c;
        let inbox = c.dir.path().join("city/inbox");
        // The same list exported again (a byte more: another file).
        let archive = c.dir.path().join("var/archive");
        let input = |rel: &str| crate::harness::input_at(&inbox, &archive, rel);
        let mut hr = std::fs::read(input("hr/hr_status_20260702.csv")).unwrap();
        hr.extend_from_slice(b"\r\n");
        std::fs::write(inbox.join("hr/hr_status_20270105.csv"), hr).unwrap();
        {
            use calamine::Reader as _;
            let mut wb =
                calamine::open_workbook_auto(input("roster/webir_accounts_20260702.xlsx")).unwrap();
            let name = wb.sheet_names()[0].clone();
            let range = wb.worksheet_range(&name).unwrap();
            let rows: Vec<Vec<String>> = range
                .rows()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect();
            let at = rows
                .iter()
                .position(|r| r.iter().any(|c| c == "帳號"))
                .unwrap();
            let header: Vec<&str> = rows[at].iter().map(String::as_str).collect();
            let titles: Vec<&str> = Vec::new();
            crate::harness::write_xlsx(
                &inbox.join("roster/webir_accounts_20270105.xlsx"),
                &titles,
                &header,
                &rows[at + 1..],
            );
        }
        // The second half-year's queries (one a month by a DSM account).
        let mut log = String::from(
            "帳號,查詢時間,查詢項目,被查詢人身分證號,查詢目的,查詢結果,機關代碼,來源IP\n",
        );
        for m in 7..=12 {
            log.push_str(&format!(
                "W20264,2026-{m:02}-28 10:00:00,投保單位資料,O137262761,military_service,成功,DSM,10.33.3.33\n"
            ));
        }
        log.push_str(
            "W20264,2026-12-31 10:00:00,投保單位資料,O137262761,military_service,成功,DSM,10.33.3.33\n",
        );
        std::fs::write(inbox.join("query_logs/webir_querylog_2026H2.csv"), log).unwrap();
        // Exported on 5 January (the files' times say when).
        let january = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_799_107_200);
        for f in [
            "hr/hr_status_20270105.csv",
            "roster/webir_accounts_20270105.xlsx",
            "query_logs/webir_querylog_2026H2.csv",
        ] {
            std::fs::File::options()
                .write(true)
                .open(inbox.join(f))
                .unwrap()
                .set_modified(january)
                .unwrap();
        }
    }

    /// The account review of 2026 runs as of the day it ran and lists
    /// July's findings that are still there as repeats; returns its run.
    fn january_s_account_review_lists_july_s_findings_as_repeats(&self) -> PathBuf {
        self.pass("2027-01-10T08:00:00+08:00");
        // The account review is as of the day it ran.
        let review = self
            .config
            .paths
            .archive
            .join("as-of-2027-01-10/account-review");
        let status = self.c.run_at(&["status"], "2027-01-10T08:30:00+08:00");
        let dir = std::fs::read_dir(&review)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", review.display(), status.stdout))
            .next()
            .unwrap()
            .unwrap()
            .path();
        let findings = std::fs::read_to_string(dir.join("findings.csv")).unwrap();
        assert!(
            findings
                .lines()
                .any(|l| l.contains("重複列管：2026-07-10 清查首次列出")),
            "July's findings still there are repeats"
        );
        dir
    }

    /// Every message arrived at the server once, and none is left unsent.
    fn every_message_arrived_once(&self) {
        assert!(arrivals(&self.smtp).values().all(|n| *n == 1));
        let store = webir_audit::store::Store::open(&self.config.paths.state).unwrap();
        let outbox = store.outbox().unwrap();
        assert!(
            outbox.iter().all(|m| m.state.as_str() == "sent"),
            "{:?}",
            outbox
                .iter()
                .filter(|m| m.state.as_str() != "sent")
                .map(|m| (&m.recipient, &m.subject, &m.last_error))
                .collect::<Vec<_>>()
        );
        assert_eq!(self.smtp.received().len(), outbox.len());
    }
}

/// The Health Bureau's city-wide workbook in the run at `dir`: KPB's
/// worksheet and investigation came back, each wholly.
fn the_city_wide_workbook_shows_kpb_s_returns_complete(dir: &Path) {
    use calamine::Reader as _;
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook(dir.join("reports/city-wide.xlsx")).unwrap();
    let rows: Vec<Vec<String>> = wb
        .worksheet_range("回收狀況")
        .unwrap()
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let kpb_rows: Vec<&Vec<String>> = rows.iter().filter(|r| r[0].ends_with("（KPB）")).collect();
    assert!(
        kpb_rows
            .iter()
            .any(|r| r[1].contains("抽查工作底稿") && r[5] == "已回傳"),
        "{kpb_rows:?}"
    );
    assert!(
        kpb_rows
            .iter()
            .any(|r| r[1].contains("調查紀錄") && r[5] == "已回傳"),
        "{kpb_rows:?}"
    );
    // How much of each came back, from the return itself.
    for r in &kpb_rows {
        let said = if r[5] == "已回傳" {
            r[7].split_once(" / ").is_some_and(|(a, b)| a == b)
        } else {
            r[7] == "尚未回傳"
        };
        assert!(said, "{r:?}");
    }
}

/// A query check's findings come back with what the unit did about each
/// (異常查詢's 處理情形): every row answered closes the unit's item.
#[test]
fn a_query_check_comes_back_with_what_was_done() {
    use calamine::Data;
    let city = city();
    let out = city
        .run_at(
            &["run", "query-check", "--period", "2026H1", "--no-send"],
            "2026-07-06T08:00:00+08:00",
        )
        .finished();
    let dir = out.run_dir();
    let config = city.loaded_config();
    let filled = city.path("khb.xlsx");
    crate::harness::workbook::refill_sheet(
        &dir.join("reports/KHB.xlsx"),
        &filled,
        "異常查詢",
        |rows| {
            let (done, width) = (
                crate::harness::workbook::table_column(rows, "處理情形"),
                rows[2].len(),
            );
            assert!(rows.len() > 3, "KHB has findings");
            for r in crate::harness::workbook::table_rows(rows).iter_mut() {
                r.resize(width, Data::Empty);
                r[done] = Data::String("已查明，係公務查詢".into());
            }
        },
    );
    let filled = crate::harness::as_returned(&config, &filled);
    let back = city.run_at(
        &["ingest-worksheet", filled.to_str().unwrap()],
        "2026-07-20T09:00:00+08:00",
    );
    assert_eq!(back.status, 0, "{}{}", back.stdout, back.stderr);
    assert!(
        back.stdout.starts_with("查詢稽核 of KHB"),
        "{}",
        back.stdout
    );
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    let item = store
        .due_item(
            "query-check",
            dir.file_name().unwrap().to_str().unwrap(),
            "KHB",
        )
        .unwrap()
        .unwrap();
    assert!(item.closed_at.is_some(), "{item:?}");
    // A unit with no finding is asked nothing, so not chased.
    use calamine::Reader as _;
    let run_id = dir.file_name().unwrap().to_str().unwrap();
    let mut asked_nothing = 0;
    for u in config.agencies.units() {
        let mut wb: calamine::Xlsx<_> =
            calamine::open_workbook(dir.join(format!("reports/{}.xlsx", u.id))).unwrap();
        let findings = wb
            .worksheet_range("異常查詢")
            .map_or(0, |r| r.height().saturating_sub(3));
        let due = store.due_item("query-check", run_id, &u.id).unwrap();
        assert_eq!(due.is_some(), findings > 0, "{}: {findings} findings", u.id);
        asked_nothing += usize::from(findings == 0);
    }
    assert!(
        asked_nothing > 0,
        "the sample city has a unit without findings"
    );
}

/// Point 4, last paragraph: a new chief administrator in the config is
/// noticed by the daemon once: the new chief, the old one and the admin
/// are told to apply to the NHIA for the change of permissions, and the
/// Health Bureau's item is chased until it is closed by hand. The chief
/// the state sees first is recorded without a notice.
#[test]
fn a_new_chief_administrator_is_told_to_apply_to_the_nhia() {
    let city = city();
    city.run_at(&["daemon", "--once"], "2026-07-10T09:00:00+08:00")
        .finished();
    assert_eq!(
        count(&city.outbox_mails(), "總管理者異動"),
        0,
        "the first chief seen"
    );
    let text = std::fs::read_to_string(city.config_path()).unwrap();
    assert!(text.contains("chief.khb@example.gov.tw"));
    std::fs::write(
        city.config_path(),
        text.replace("周秀志", "林新任")
            .replace("chief.khb@example.gov.tw", "chief2.khb@example.gov.tw"),
    )
    .unwrap();
    city.run_at(&["daemon", "--once"], "2026-07-13T09:00:00+08:00")
        .finished();
    city.run_at(&["daemon", "--once"], "2026-07-13T10:00:00+08:00")
        .finished();
    let mails = city.outbox_mails();
    let notices: Vec<&Parsed> = mails
        .iter()
        .filter(|m| m.subject.contains("總管理者異動"))
        .collect();
    let config = city.loaded_config();
    let to: std::collections::BTreeSet<&str> = notices.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(
        to,
        [
            "chief.khb@example.gov.tw",
            "chief2.khb@example.gov.tw",
            config.mail.admin.as_str()
        ]
        .into_iter()
        .collect(),
        "told once each, the old chief too"
    );
    assert_eq!(notices.len(), 3);
    let text = &notices[0].text;
    assert!(
        text.contains("第四點末段") && text.contains("健保署") && text.contains("林新任"),
        "{text}"
    );
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    let item = store
        .due_items()
        .unwrap()
        .into_iter()
        .find(|i| i.job == "chief-change")
        .expect("the Health Bureau's item");
    assert_eq!(item.sent_to, "chief2.khb@example.gov.tw");
    assert!(item.closed_at.is_none());
    drop(store);
    // Chased past its day, to the new chief only.
    let past: chrono::NaiveDate = item.due_on.parse().unwrap();
    let later = format!("{}T09:00:00+08:00", past + chrono::Duration::days(2));
    city.run_at(&["daemon", "--once"], &later).finished();
    let chased: Vec<String> = city
        .outbox_mails()
        .into_iter()
        .filter(|m| m.subject.contains("逾期：") && m.subject.contains("健保署權限異動申請"))
        .map(|m| m.to)
        .collect();
    assert!(
        !chased.is_empty(),
        "chased: {:?}",
        city.outbox_mails()
            .iter()
            .map(|m| (m.to.clone(), m.subject.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        chased,
        ["chief2.khb@example.gov.tw"],
        "once, to the new chief"
    );
    let reminder = city
        .outbox_mails()
        .into_iter()
        .find(|m| m.subject.contains("逾期：") && m.subject.contains("健保署權限異動申請"))
        .unwrap();
    assert!(
        reminder.text.contains("衛生局總管理者 您好")
            && !reminder.text.contains("並已通知衛生局總管理者"),
        "{}",
        reminder.text
    );
}
