//! A small builder for integration tests, after just's `Test::new()`: a
//! temporary folder with a config and an inbox, and the real binary run on it.

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod bundle;
pub mod mail;
pub mod served;
pub mod workbook;

pub const BASE_CONFIG: &str = r#"
[paths]
inbox = "inbox"
archive = "var/archive"
state = "var/state"

[mail]
from = "webir-audit <w@example.gov.tw>"
admin = "admin@example.gov.tw"

[[agencies]]
id = "KHB"
name = "高雄市政府衛生局"
aliases = ["衛生局"]
requesting = true
purposes = ["public_health"]
officer_email = "o.khb@example.gov.tw"
health_bureau = true

[[agencies]]
id = "KPB"
name = "高雄市政府警察局"
aliases = ["警察局"]
requesting = true
purposes = ["criminal_investigation"]
officer_email = "o.kpb@example.gov.tw"

[[agencies]]
id = "KPB-1"
name = "第一分局"
parent = "KPB"
"#;

pub struct Test {
    pub dir: tempfile::TempDir,
    config: String,
}

pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub fn new() -> Test {
        let dir = tempfile::tempdir().expect("tempdir");
        Test {
            dir,
            config: BASE_CONFIG.to_owned(),
        }
    }

    /// Appends TOML to the config.
    pub fn config(mut self, extra: &str) -> Test {
        self.config.push_str(extra);
        self
    }

    /// Replaces a piece of the base config.
    pub fn config_replace(mut self, from: &str, to: &str) -> Test {
        assert!(self.config.contains(from), "{from:?} not in config");
        self.config = self.config.replace(from, to);
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Where the export the inbox got as `rel` is now: still in the inbox,
    /// or moved into the input store by a sealed run that read it.
    pub fn input(&self, rel: &str) -> PathBuf {
        input_at(&self.path("inbox"), &self.path("var/archive"), rel)
    }

    /// Writes an inbox file, dated [`FILE_TIME`]: no test depends on the
    /// day it runs.
    pub fn file(self, rel: &str, bytes: impl AsRef<[u8]>) -> Test {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
        written_at(&p, FILE_TIME);
        self
    }

    pub fn big5(self, rel: &str, text: &str) -> Test {
        let (bytes, _, bad) = encoding_rs::BIG5.encode(text);
        assert!(!bad, "fixture text not Big5-encodable");
        self.file(rel, bytes)
    }

    pub fn fixture(self, rel: &str, name: &str) -> Test {
        let bytes = std::fs::read(fixtures().join(name)).expect("fixture");
        self.file(rel, bytes)
    }

    pub fn config_path(&self) -> PathBuf {
        let p = self.path("webir-audit.toml");
        std::fs::write(&p, &self.config).expect("write config");
        std::fs::create_dir_all(self.path("inbox")).expect("inbox");
        p
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let config = self.config_path();
        let mut all: Vec<&str> = args.to_vec();
        let c = config.to_str().expect("utf-8 path");
        all.extend(["--config", c]);
        run_binary(&all, self.dir.path())
    }

    pub fn load(&self) -> webir_audit::ingest::Ingested {
        let config = webir_audit::config::load(&self.config_path()).expect("valid config");
        webir_audit::ingest::ingest(&config, None).expect("ingest")
    }
}

impl Output {
    /// Asserts a `run` finished and made its folder: exit 0 or 1, or 2
    /// only because checks were withheld for inputs the test's inbox does
    /// not have (each said on a `NOT CHECKED` line), never an error.
    pub fn assert_ran(&self) {
        let withheld = self.status == 2
            && self.stdout.lines().any(|l| l.starts_with("NOT CHECKED"))
            && !self.stderr.contains("error:");
        assert!(
            self.status <= 1 || withheld,
            "{}{}",
            self.stdout,
            self.stderr
        );
        assert!(self.run_dir().join("run.json").exists(), "{}", self.stdout);
    }

    /// The run folder: a `run` command's last line.
    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(self.stdout.lines().last().expect("a last line"))
    }
}

pub fn run_binary(args: &[&str], cwd: &Path) -> Output {
    run_binary_env(args, cwd, &[])
}

/// The binary, not yet started, with `env` set.
pub fn binary(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_webir-audit"));
    c.args(args).current_dir(cwd).env_remove("RUST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// The binary under a file-size limit of `kib` KiB (`ulimit -f`), as a
/// full disk would stop it: writes past the limit fail.
pub fn run_binary_limited(kib: u32, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!("ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_webir-audit"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run webir-audit under bash");
    Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn run_binary_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let out = binary(args, cwd, env).output().expect("run webir-audit");
    Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

/// A JSON file of a run folder (`manifest.json`, `run.json`, …).
pub fn json(dir: &Path, name: &str) -> serde_json::Value {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A run's `findings.csv` counted per (code, account id).
pub fn findings_per_account(dir: &Path) -> std::collections::BTreeMap<(String, String), usize> {
    let text = std::fs::read_to_string(dir.join("findings.csv")).expect("findings.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("a header")
        .trim_start_matches('\u{feff}')
        .split(',')
        .collect();
    let at = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (code, account) = (at("code"), at("account_id"));
    let mut out = std::collections::BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        *out.entry((f[code].to_owned(), f[account].to_owned()))
            .or_default() += 1;
    }
    out
}

/// Writes an export as a workbook a person saved: `titles` on the first
/// rows, a blank row, the header, then the rows (empty cells left empty).
pub fn write_xlsx(path: &Path, titles: &[&str], header: &[&str], rows: &[Vec<String>]) {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (r, t) in titles.iter().enumerate() {
        ws.write_string(r as u32, 0, *t).expect("title");
    }
    let at = titles.len() as u32 + 1;
    for (c, h) in header.iter().enumerate() {
        ws.write_string(at, c as u16, *h).expect("header");
    }
    for (i, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            ws.write_string(at + 1 + i as u32, c as u16, v)
                .expect("cell");
        }
    }
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    wb.save(path).expect("save");
}

/// The sample city copied into `dir/city`, and its 2026H1 sample audit
/// run on 5 July with the fixed seed every test uses, `extra` arguments
/// added (e.g. `--no-send`). Returns the config path and the run's output
/// (asserted to have run: exit 0 or 1).
pub fn sample_city_audit(dir: &Path, extra: &[&str]) -> (PathBuf, Output) {
    copy_dir(&repo().join("sample_data"), &dir.join("city"));
    let config = dir.join("city/webir-audit.toml");
    let mut args = vec![
        "--now",
        "2026-07-05T08:00:00+08:00",
        "run",
        "sample-audit",
        "--period",
        "2026H1",
        "--seed",
        "12345678901234567890",
        "--config",
        config.to_str().expect("a UTF-8 path"),
    ];
    args.extend(extra);
    let out = run_binary(&args, dir);
    assert!(out.status <= 1, "{}{}", out.stdout, out.stderr);
    (config, out)
}

/// Sets `column` (its Chinese header) of agency `id` in the agency
/// register workbook at `path`, as the chief administrator editing it in
/// Excel would; returns the value it had.
pub fn set_in_register(path: &Path, id: &str, column: &str, value: &str) -> String {
    use calamine::Reader as _;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(path).expect("register");
    let range = wb.worksheet_range("機關名冊").expect("sheet 機關名冊");
    let mut rows: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    drop(wb);
    let j = rows[0]
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column} in {:?}", rows[0]));
    let row = rows
        .iter_mut()
        .find(|r| r[0] == id)
        .unwrap_or_else(|| panic!("no agency {id} in the register"));
    let old = std::mem::replace(&mut row[j], value.to_owned());
    let mut out = rust_xlsxwriter::Workbook::new();
    let ws = out.add_worksheet();
    ws.set_name("機關名冊").expect("name");
    for (i, r) in rows.iter().enumerate() {
        for (j, c) in r.iter().enumerate() {
            ws.write_string(i as u32, j as u16, c).expect("cell");
        }
    }
    out.save(path).expect("save register");
    old
}

/// The year 2026's internal audit as the daemon makes it, in January.
pub const INTERNAL_AUDIT_2026: [&str; 6] = [
    "--now",
    "2027-01-10T08:00:00+08:00",
    "run",
    "internal-audit",
    "--period",
    "2026",
];

/// The modification time every file a test copies or writes gets: a
/// result that changed with it would change with the day a city's files
/// were copied, or the day the repository was cloned. (A test that needs
/// another time sets it with [`written_at`]; one runs the golden scenario
/// with every file dated a year later.)
pub const FILE_TIME: &str = "2026-07-03T09:00:00+08:00";

/// Copies the folder `from` to `to` (leaving out `var/`), every file
/// dated `at` (RFC 3339) whatever day the copy is made.
pub fn copy_dir_dated(from: &Path, to: &Path, at: &str) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if name == "var" {
            continue;
        }
        if p.is_dir() {
            copy_dir_dated(&p, &to.join(name), at);
        } else {
            std::fs::copy(&p, to.join(name)).unwrap();
            written_at(&to.join(name), at);
        }
    }
}

/// Sets `path`'s modification time to `at` (RFC 3339), as if the file
/// had been written then: the day an export arrived, a seed was typed.
pub fn written_at(path: &Path, at: &str) {
    let at = chrono::DateTime::parse_from_rfc3339(at).expect("an RFC 3339 time");
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(at.into()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `file`, a workbook as a unit's reader returns it: encrypted with the
/// password of the reader it was sent to (its officer; the ethics unit
/// for a second review; the chief administrator for their own), as Excel
/// keeps it when saving. A file already
/// encrypted is returned as it is. The sealed copy's path.
pub fn as_returned(config: &webir_audit::config::Config, file: &Path) -> PathBuf {
    use sha2::Digest as _;
    use webir_audit::mail::Role;
    let bytes = std::fs::read(file).unwrap();
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return file.to_owned();
    }
    let Ok(key) = webir_audit::worksheet::claimed_key(file, &bytes) else {
        // Not one of ours: refused for what it is, whatever it is sealed in.
        return file.to_owned();
    };
    let (unit, review) = webir_audit::report::unit_of_key(&key);
    let role = if webir_audit::report::is_chief_key(&key) {
        Role::ChiefAdmin
    } else if review {
        Role::Ethics
    } else {
        Role::Officer
    };
    let mut store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    let sealed = webir_audit::mail::protect(
        config,
        &mut store,
        unit,
        role,
        &bytes,
        "2026-07-01T00:00:00Z",
    )
    .unwrap()
    .bytes;
    // Sealed once per content: the same file returned twice is the same
    // bytes twice (a resend), as a reader's mail program sends it.
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    let out = file.with_extension(format!("{}.sealed.xlsx", &digest[..16]));
    if !out.exists() {
        std::fs::write(&out, sealed).unwrap();
    }
    out
}

/// Where the export dropped in `inbox` as `rel` is now: in the inbox, or,
/// once a sealed run read it, in the input store under `archive` (a file
/// in neither: the inbox, where it is to be written).
pub fn input_at(inbox: &Path, archive: &Path, rel: &str) -> PathBuf {
    let dropped = inbox.join(rel);
    let stored = archive.join("inputs").join(rel);
    if !dropped.exists() && stored.exists() {
        stored
    } else {
        dropped
    }
}

/// Every file under `dir` (not folders), sorted; none if `dir` is absent.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir`, relative to it, sorted.
pub fn files_relative(dir: &Path) -> Vec<String> {
    files_in(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

/// Copies `file` as `name` into `$WEBIR_AUDIT_TEST_ARTIFACTS`, when set:
/// a document a test made (an investigation record, a follow-up) kept for
/// a person to render and read. Nothing otherwise.
pub fn keep_artifact(file: &Path, name: &str) {
    if let Some(dir) = std::env::var_os("WEBIR_AUDIT_TEST_ARTIFACTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(file, dir.join(name)).unwrap();
    }
}

/// The points of the regulation the internal audit's checklist has a row
/// of: the duties of 資料安全管制作業 (3, 5(1)1–3, 5(2), 5(2)1–4, 5(3),
/// 5(4)) as its 依據 column cites them.
pub const DUTIES: &[&str] = &[
    "第三點",
    "第五點第一款第一目",
    "第五點第一款第二目",
    "第五點第一款第三目",
    "第五點第二款",
    "第五點第二款第一目",
    "第五點第二款第二目",
    "第五點第二款第三目",
    "第五點第二款第四目",
    "第五點第三款",
    "第五點第四款",
];

/// The runs a demo printed (`run      <dir>` lines), in order.
pub fn demo_runs(stdout: &str) -> Vec<std::path::PathBuf> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("run      "))
        .map(std::path::PathBuf::from)
        .collect()
}

/// Writes `<dir>/suspended-by-test.toml` suspending every duty of the
/// regulation the schedules in `dir` leave unscheduled, each with a reason:
/// a test that watches one job alone says so the way an operator would,
/// not through a seam in the daemon.
pub fn suspend_unscheduled_duties(dir: &Path) {
    let mut scheduled = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            scheduled.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    let text: String = webir_audit::job::Job::ALL
        .into_iter()
        .filter(|j| j.duty().is_some())
        .filter(|j| !scheduled.contains(&format!("job = \"{j}\"")))
        .map(|j| {
            format!(
                "[[suspended]]\njob = \"{j}\"\nreason = \"this test watches other jobs alone\"\n\n"
            )
        })
        .collect();
    std::fs::write(dir.join("suspended-by-test.toml"), text).unwrap();
}

/// Copies the sample city (or any folder), every file dated the
/// harness's fixed [`FILE_TIME`].
pub fn copy_dir(from: &Path, to: &Path) {
    copy_dir_dated(from, to, FILE_TIME);
}

/// Installs LibreOffice, poppler and 7-Zip if a test that renders or
/// opens a bundle finds them missing (`.ci/install-render-tools`).
pub fn ensure_tools() {
    let ok = |c: &str, arg: &str| {
        Command::new(c)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok("soffice", "--version") && ok("pdftotext", "-v") && ok("7z", "i") {
        return;
    }
    let out = Command::new(repo().join(".ci/install-render-tools"))
        .output()
        .expect("running .ci/install-render-tools");
    assert!(
        out.status.success(),
        "the rendering tests need LibreOffice and poppler: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
