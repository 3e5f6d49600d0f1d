//! Workbooks as a person sees them on paper: each kind of workbook of the
//! demo (a unit's and the city-wide one) is printed to PDF by LibreOffice
//! headless and read back page by page with poppler's `pdftotext -bbox`.
//! Checked: every page of a table sheet carries the column headers a
//! reader needs to read it (all of them when the sheet fits the page's
//! width, the key columns up to 帳號 on every page when it spans pages),
//! no column is lost, the type is legible, and every instruction of 摘要
//! prints whole. `.ci/install-render-tools` installs the tools when absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use calamine::{Data, Reader as _};

use crate::harness::{Test, run_binary};

/// A word on a printed page and its box (points).
#[derive(Debug)]
struct Word {
    text: String,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

#[derive(Debug)]
struct Page {
    width: f64,
    words: Vec<Word>,
}

impl Page {
    /// The page header's centre: the workbook's kind and the sheet.
    fn centre_header(&self) -> String {
        self.words
            .iter()
            .filter(|w| w.y1 < 40.0 && w.x0 > self.width / 4.0 && w.x0 < self.width * 0.6)
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The page's text without spaces or line breaks.
    fn squeezed(&self) -> String {
        self.words.iter().map(|w| w.text.as_str()).collect()
    }

    /// Whether `s` prints on the page: as a word, as running text, or as
    /// a header wrapped onto two lines (two words making it up).
    fn has_word(&self, s: &str) -> bool {
        self.words.iter().any(|w| w.text == s)
            || self
                .squeezed()
                .contains(&s.split_whitespace().collect::<String>())
            || self.words.iter().any(|a| {
                s.strip_prefix(a.text.as_str()).is_some_and(|rest| {
                    !rest.is_empty() && self.words.iter().any(|b| b.text == rest)
                })
            })
    }

    /// Two words printed over each other: their boxes share more than a
    /// point across and more than 4 points down (the lines of one wrapped
    /// cell share about 1.5).
    fn overlapping(&self) -> Option<(&str, &str)> {
        let ws = &self.words;
        ws.iter().enumerate().find_map(|(i, a)| {
            ws[i + 1..].iter().find_map(|b| {
                let across = a.x1.min(b.x1) - a.x0.max(b.x0);
                let down = a.y1.min(b.y1) - a.y0.max(b.y0);
                (across > 1.0 && down > 4.0).then_some((a.text.as_str(), b.text.as_str()))
            })
        })
    }

    /// The median height of the words in the page's body, in points.
    fn median_height(&self) -> f64 {
        let mut h: Vec<f64> = self
            .words
            .iter()
            .filter(|w| w.y0 > 40.0)
            .map(|w| w.y1 - w.y0)
            .collect();
        h.sort_by(f64::total_cmp);
        h.get(h.len() / 2).copied().unwrap_or(0.0)
    }
}

/// The most pages a workbook of the demo may print (`<run>-<name>`: the
/// runs are the account review, the sample audit, the internal and the
/// external audit, in that order). A unit's workbook is what its officer
/// prints, fills in and files; the city-wide one is the Health Bureau's
/// reading copy of every unit.
fn page_budget(stem: &str) -> usize {
    match stem {
        // 帳號清查 of the police's 60 accounts.
        "0-KPB" => 12,
        // 200 sampled records on 12 pages, its query findings on 4.
        "1-KPB" => 24,
        // What the sample audit asked is listed, not asked again.
        "2-KPB" => 12,
        // With what it asked every unit (回收狀況).
        "0-city-wide" => 14,
        "1-city-wide" => 30,
        "2-city-wide" => 32,
        "3-city-wide" => 16,
        other => panic!("no page budget for {other}"),
    }
}

/// Prints every workbook to `out/<stem>.pdf` with one LibreOffice run
/// (a profile of its own, so a desktop LibreOffice does not interfere).
fn to_pdf(workbooks: &[PathBuf], out: &Path) {
    let profile = out.join("lo-profile");
    let status = Command::new("soffice")
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.display()
        ))
        .args(["--headless", "--convert-to", "pdf", "--outdir"])
        .arg(out)
        .args(workbooks)
        .output()
        .expect("soffice runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn pages(pdf: &Path) -> Vec<Page> {
    let out = Command::new("pdftotext")
        .arg("-bbox")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs");
    assert!(out.status.success(), "{}", pdf.display());
    let html = String::from_utf8(out.stdout).unwrap();
    // One element per line: `<page width=".." ..>` and
    // `<word xMin=".." yMin=".." xMax=".." yMax="..">text</word>`.
    let attr = |line: &str, name: &str| -> f64 {
        let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let len = line[start..].find('"').unwrap();
        line[start..start + len].parse().unwrap()
    };
    let mut pages: Vec<Page> = Vec::new();
    for line in html.lines().map(str::trim) {
        if line.starts_with("<page ") {
            pages.push(Page {
                width: attr(line, "width"),
                words: Vec::new(),
            });
        } else if line.starts_with("<word ") {
            let text = &line[line.find('>').unwrap() + 1..line.rfind("</word>").unwrap()];
            pages.last_mut().unwrap().words.push(Word {
                x0: attr(line, "xMin"),
                x1: attr(line, "xMax"),
                y0: attr(line, "yMin"),
                y1: attr(line, "yMax"),
                text: text
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&"),
            });
        }
    }
    pages
}

/// Each table sheet's header row (the third row), by sheet name; and the
/// text 摘要 gives beside each label (應辦事項, 依據, notes).
fn read_workbook(path: &Path) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut wb = calamine::open_workbook_auto(path).unwrap();
    let mut headers = BTreeMap::new();
    let mut actions = Vec::new();
    for name in wb.sheet_names() {
        let range = wb.worksheet_range(&name).unwrap();
        let cell = |r: u32, c: u32| match range.get_value((r, c)) {
            Some(Data::String(s)) => s.clone(),
            _ => String::new(),
        };
        // The chart data has its blocks' headers in rows of their own.
        if name == "圖表資料" {
            continue;
        }
        if name == "摘要" {
            // What 摘要 says beside each label (應辦事項, 依據, notes, …):
            // the text a reader reads, which must print whole.
            for r in 0..range.height() as u32 {
                let (label, text) = (cell(r, 0), cell(r, 1));
                if !label.is_empty() && !text.is_empty() {
                    actions.push(text);
                }
            }
            continue;
        }
        let row: Vec<String> = (0..range.width() as u32)
            .map(|c| cell(2, c))
            .filter(|h| !h.is_empty())
            .collect();
        headers.insert(name, row);
    }
    (headers, actions)
}

#[test]
fn every_kind_of_workbook_prints_whole_with_its_headers_on_every_page() {
    crate::harness::ensure_tools();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = run_binary(&["demo", "--out", dir.to_str().unwrap()], tmp.path());
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let runs = crate::harness::demo_runs(&out.stdout);
    assert_eq!(runs.len(), 4, "{}", out.stdout);
    // The police (the sample city's largest unit) and the city-wide
    // workbook of every job; the external audit has only the latter.
    let mut books = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        for name in ["KPB.xlsx", "city-wide.xlsx"] {
            let p = run.join("reports").join(name);
            if p.exists() {
                let copy = tmp.path().join(format!("{i}-{name}"));
                std::fs::copy(&p, &copy).unwrap();
                books.push(copy);
            }
        }
    }
    assert!(books.len() >= 7, "{books:?}");
    prints_as_a_person_reads_it(&books, tmp.path(), Some(page_budget));
    sent_to_the_right_people_by_working_days(&dir.join("city/webir-audit.toml"), &runs);
}

/// Issue 28, of a demo's city: every deadline is a working day by the
/// city's calendar, and no officer's worksheet holds an officer account
/// of the roster (theirs goes to a second reviewer, not to them).
fn sent_to_the_right_people_by_working_days(config: &Path, runs: &[PathBuf]) {
    let config = webir_audit::config::load(config).unwrap();
    let store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    let items = store.due_items().unwrap();
    assert!(!items.is_empty());
    for i in &items {
        let day: chrono::NaiveDate = i.due_on.parse().unwrap();
        assert!(config.rules.holidays.is_workday(day), "{i:?}");
        // A second review is never sent to the unit's officer.
        let (unit, review) = webir_audit::report::unit_of_key(&i.unit_id);
        // The chief administrator's own (a record, the officer review):
        // the chief's, whoever reads the chief's mail.
        if review && !webir_audit::report::is_chief_key(&i.unit_id) {
            let officer = config
                .agencies
                .get(unit)
                .and_then(|a| a.officer_email.as_ref());
            assert_ne!(officer, Some(&i.sent_to), "{i:?}");
        }
    }
    let ing = webir_audit::ingest::ingest(&config, None).unwrap();
    let roster = ing.table(webir_audit::model::Table::Roster);
    let accounts = roster.column("account_id").unwrap().str().unwrap().clone();
    let roles = roster.column("role").unwrap().str().unwrap().clone();
    let officers: std::collections::BTreeSet<&str> = accounts
        .iter()
        .zip(roles.iter())
        .filter(|(_, r)| matches!(r, Some("officer" | "chief_admin")))
        .filter_map(|(a, _)| a)
        .collect();
    assert!(!officers.is_empty());
    let sample = runs
        .iter()
        .find(|r| r.parent().unwrap().ends_with("sample-audit"))
        .expect("a sample audit");
    for unit in config.agencies.units() {
        let path = sample.join(format!("reports/{}.xlsx", unit.id));
        let mut wb = calamine::open_workbook_auto(&path).unwrap();
        let range = wb.worksheet_range("抽查工作底稿").unwrap();
        for r in range.rows().skip(3) {
            let who = match r.get(1) {
                Some(Data::String(s)) => s.split_whitespace().next().unwrap_or("").to_owned(),
                _ => continue,
            };
            assert!(
                !officers.contains(who.as_str()),
                "{}: its officer's worksheet holds {who}",
                unit.id
            );
        }
    }
}

/// Issue 28: a city shaped differently from the sample (the generator's
/// load-test city: 14 one-agency units, 420 accounts, another seed, no
/// chief administrator of its own) prints the same way: every kind of
/// workbook, its largest unit's and the city-wide, and every second
/// review, fill-in sheets one page wide at legible size, headers on every
/// page.
#[test]
fn a_city_shaped_differently_prints_the_same_way() {
    crate::harness::ensure_tools();
    let city = Test::generated(
        Path::new(env!("CARGO_BIN_EXE_webir-audit")),
        &[
            "--agencies",
            "14",
            "--accounts",
            "420",
            "--queries",
            "30000",
            "--seed",
            "7",
        ],
    );
    let out = city.run(&["demo"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let runs = crate::harness::demo_runs(&out.stdout);
    assert_eq!(runs.len(), 4, "{}", out.stdout);
    let mut books = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let reports = run.join("reports");
        let mut names: Vec<(u64, String)> = std::fs::read_dir(&reports)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.metadata().unwrap().len(),
                    e.file_name().to_string_lossy().into_owned(),
                )
            })
            .collect();
        names.sort();
        // The largest unit's workbook, the city-wide one, second reviews.
        let largest = names
            .iter()
            .rev()
            .find(|(_, n)| {
                n != "city-wide.xlsx" && !n.contains("second-review") && !n.contains("chief-admin")
            })
            .map(|(_, n)| n.clone());
        // And the chief administrator's (the external audit's records and
        // officer review).
        for name in names.iter().map(|(_, n)| n.clone()).filter(|n| {
            n == "city-wide.xlsx"
                || n.contains("second-review")
                || n.contains("chief-admin")
                || Some(n) == largest.as_ref()
        }) {
            let copy = city.path(&format!("{i}-{name}"));
            std::fs::copy(reports.join(&name), &copy).unwrap();
            books.push(copy);
        }
    }
    assert!(books.len() >= 7, "{books:?}");
    prints_as_a_person_reads_it(&books, city.dir.path(), None);
    sent_to_the_right_people_by_working_days(city.config_path(), &runs);
    issue_31_documents_hold(&runs);
}

/// Issue 31's documents on a city of any shape: every unit's internal
/// audit has a row for every duty of 資料安全管制作業, pre-filled or
/// 未檢核; the external audit sends the chief a record of each unit drawn
/// and the officer review.
fn issue_31_documents_hold(runs: &[PathBuf]) {
    let of = |job: &str| {
        runs.iter()
            .find(|r| r.parent().unwrap().file_name().unwrap() == job)
            .unwrap_or_else(|| panic!("no {job} run"))
    };
    let audit = of("internal-audit").join("reports");
    let mut units = 0;
    for e in std::fs::read_dir(&audit).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "city-wide.xlsx" || name.contains("second-review") {
            continue;
        }
        let mut wb: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
        let range = wb.worksheet_range("內部稽核").unwrap();
        let rows: Vec<(String, String)> = range
            .rows()
            .skip(3)
            .map(|r| (r[1].to_string(), r[2].to_string()))
            .collect();
        for point in crate::harness::DUTIES {
            let (_, found) = rows
                .iter()
                .find(|(p, _)| p == point)
                .unwrap_or_else(|| panic!("{name}: no row of {point}"));
            assert!(!found.is_empty(), "{name} {point}: nothing found or 未檢核");
        }
        units += 1;
    }
    assert!(units > 1);
    let external = of("external-audit");
    let selection: serde_json::Value =
        serde_json::from_slice(&std::fs::read(external.join("selection.json")).unwrap()).unwrap();
    for u in selection["units"].as_array().unwrap() {
        if u["selected"] == true {
            let id = u["unit_id"].as_str().unwrap();
            let path = external.join(format!("reports/{id}.chief-admin.xlsx"));
            let mut wb: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
            let rows = wb.worksheet_range("外部稽核紀錄").unwrap().rows().count();
            assert!(rows > 10, "{id}: {rows} rows");
        }
    }
    let reviews = std::fs::read_dir(external.join("reports"))
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            calamine::open_workbook::<calamine::Xlsx<_>, _>(&p)
                .is_ok_and(|wb| wb.sheet_names().iter().any(|n| n == "專責人員帳號"))
        })
        .count();
    assert_eq!(reviews, 1, "one review of officer accounts");
}

/// Prints `books` to PDF (in `tmp`) and reads every page as a person
/// does: 摘要's instructions whole, each table sheet's headers on every
/// page, no text printed over other text, legible type; a sheet filled
/// in one page wide at 8 points or more, ending with its sign-off; each
/// workbook within `budget`'s pages, where given.
fn prints_as_a_person_reads_it(books: &[PathBuf], tmp: &Path, budget: Option<fn(&str) -> usize>) {
    let pdfs = tmp.join("pdf");
    to_pdf(books, &pdfs);

    for book in books {
        let printed = Printed::within_its_page_budget(book, &pdfs, budget);
        printed.its_instructions_print_whole();
        for (sheet, ps) in &printed.pages_by_sheet() {
            let fits = printed.each_page_shows_its_key_columns_legibly(sheet, ps);
            printed.a_sheet_to_fill_in_prints_one_page_wide_and_signs_off(sheet, ps, fits);
        }
    }
}

/// One workbook as printed: its pages, and what its sheets hold.
struct Printed<'a> {
    stem: &'a str,
    pages: Vec<Page>,
    headers: BTreeMap<String, Vec<String>>,
    actions: Vec<String>,
    /// Which table sheets have no row (the row under the header blank).
    empty: BTreeMap<String, bool>,
}

impl<'a> Printed<'a> {
    /// The workbook printed has pages, no more than its budget.
    fn within_its_page_budget(
        book: &'a Path,
        pdfs: &Path,
        budget: Option<fn(&str) -> usize>,
    ) -> Printed<'a> {
        let stem = book.file_stem().unwrap().to_str().unwrap();
        let pages = pages(&pdfs.join(format!("{stem}.pdf")));
        assert!(!pages.is_empty(), "{stem}");
        // The page budget of each workbook printed whole (issue 28): the
        // largest unit's sample audit (200 sampled records) was 48 pages.
        if let Some(budget) = budget.map(|b| b(stem)) {
            assert!(
                pages.len() <= budget,
                "{stem}: {} pages, over its budget of {budget}",
                pages.len()
            );
        }
        let (headers, actions) = read_workbook(book);
        // Which table sheets have no row (the row under the header blank).
        let empty: BTreeMap<String, bool> = {
            let mut wb = calamine::open_workbook_auto(book).unwrap();
            headers
                .keys()
                .map(|name| {
                    let range = wb.worksheet_range(name).unwrap();
                    let blank = (0..range.width() as u32)
                        .all(|c| matches!(range.get_value((3, c)), None | Some(Data::Empty)));
                    (name.clone(), blank)
                })
                .collect()
        };
        Printed {
            stem,
            pages,
            headers,
            actions,
            empty,
        }
    }

    /// 摘要's instructions print whole (not cut at the cell's edge).
    fn its_instructions_print_whole(&self) {
        let stem = self.stem;
        let all: String = self.pages.iter().map(Page::squeezed).collect();
        for a in &self.actions {
            let a: String = a.split_whitespace().collect();
            assert!(all.contains(&a), "{stem}: 摘要 cut: {a}");
        }
        assert!(!self.actions.is_empty(), "{stem}: no 應辦事項");
    }

    /// Pages of each table sheet, by the page header's centre.
    fn pages_by_sheet(&self) -> BTreeMap<&str, Vec<&Page>> {
        let stem = self.stem;
        let mut by_sheet: BTreeMap<&str, Vec<&Page>> = BTreeMap::new();
        for p in &self.pages {
            let centre = p.centre_header();
            if centre.is_empty() {
                continue;
            }
            // The longest sheet name the centre ends with ("抽查工作底稿
            // 異常查詢" is 異常查詢, "抽查工作底稿" the worksheet).
            let sheet = self
                .headers
                .keys()
                .filter(|s| centre.replace(' ', "").ends_with(s.as_str()))
                .max_by_key(|s| s.len());
            if let Some(s) = sheet {
                by_sheet.entry(s.as_str()).or_default().push(p);
            }
        }
        assert!(!by_sheet.is_empty(), "{stem}: no table sheet recognised");
        by_sheet
    }

    /// Every page of `sheet` shows the columns that identify a row, no
    /// text over other text, in legible type; every column prints
    /// somewhere, and the findings tables fit the page's width. Returns
    /// whether the sheet fits the page's width.
    fn each_page_shows_its_key_columns_legibly(&self, sheet: &str, ps: &[&Page]) -> bool {
        let stem = self.stem;
        let cols = &self.headers[sheet];
        // The columns that identify a row: up to the account, or the
        // first.
        let key: Vec<&String> = match cols.iter().position(|h| h == "帳號") {
            Some(i) => cols[..=i].iter().collect(),
            None => cols.iter().take(1).collect(),
        };
        let mut seen: Vec<&String> = Vec::new();
        let fits = ps.iter().all(|p| cols.iter().all(|h| p.has_word(h)));
        for (n, p) in ps.iter().enumerate() {
            // Every page: the key columns (all columns when the sheet
            // fits the page's width).
            for h in &key {
                assert!(
                    p.has_word(h),
                    "{stem} {sheet} page {}: no column {h} ({:?})",
                    n + 1,
                    p.squeezed().chars().take(120).collect::<String>()
                );
            }
            seen.extend(cols.iter().filter(|h| p.has_word(h)));
            // No cell's text runs into the next row's: a row too
            // short for its wrapped lines prints its last line cut,
            // under the next row (the sample's Big5 log lost
            // `05_big5.csv` on 資料品質 so).
            if let Some((a, b)) = p.overlapping() {
                panic!("{stem} {sheet} page {}: {a:?} prints over {b:?}", n + 1);
            }
            // Legible type: words at least ~9 points high (7-point
            // type), where a shrunk-to-fit sheet printed at 5 points.
            let h = p.median_height();
            assert!(
                h >= 8.5,
                "{stem} {sheet} page {}: type {h:.1} pt high",
                n + 1
            );
        }
        for h in cols {
            assert!(
                seen.contains(&h),
                "{stem} {sheet}: column {h} never printed"
            );
        }
        // A sheet that spans pages in width does so only when it must:
        // the findings tables fit.
        if sheet == "異常查詢" {
            assert!(fits, "{stem} {sheet} spans pages in width");
        }
        fits
    }

    /// A sheet a person fills in (issue 28) prints one page wide, its
    /// type at 8 points or more, and ends with its sign-off.
    fn a_sheet_to_fill_in_prints_one_page_wide_and_signs_off(
        &self,
        sheet: &str,
        ps: &[&Page],
        fits: bool,
    ) {
        let stem = self.stem;
        let cols = &self.headers[sheet];
        // A sheet a person fills in (issue 28) prints one page wide,
        // its type at 8 points or more (words 10.3 points high: 11-
        // point type prints 14.3), the columns that identify an item
        // and those to fill on one page; it ends with its sign-off.
        let fill_in = cols.iter().any(|h| {
            [
                "紀錄表已填具",
                "處理結果",
                "處理情形",
                "查核結果",
                "會同調查之政風人員",
            ]
            .contains(&h.as_str())
        });
        if !fill_in {
            return;
        }
        assert!(
            fits,
            "{stem} {sheet}: a sheet to fill in spans pages in width"
        );
        for (n, p) in ps.iter().enumerate() {
            let h = p.median_height();
            assert!(
                h >= 10.3,
                "{stem} {sheet} page {}: type {h:.1} pt high, under 8-point type",
                n + 1
            );
        }
        // The sign-off prints after the table (its lines may fall
        // across a page break); an empty table asks nothing.
        let tail: Vec<&&Page> = ps.iter().rev().take(2).collect();
        let asks = self.empty.get(sheet) != Some(&true);
        for label in ["填表人（簽章）", "單位主管（簽章）"] {
            assert_eq!(
                tail.iter().any(|p| p.has_word(label)),
                asks,
                "{stem} {sheet}: sign-off {label} (rows to fill in: {asks})"
            );
        }
    }
}
