//! The agency register as the Health Bureau keeps it (機關專責人員名冊): a
//! workbook (XLSX, XLS, ODS) or CSV (UTF-8 or Big5) with one row per
//! agency, read in place of `[[agencies]]` when the config says
//! `agencies = "agencies.xlsx"`, and written back by `agencies export`.
//! Every row becomes a [`RawAgency`] with its place (sheet, row), so the
//! validator's problems name the sheet, row, column and value.

use std::path::Path;

use calamine::{Data, Reader};

use super::raw::RawAgency;
use crate::model::PURPOSE;

/// The register's sheet.
pub const SHEET: &str = "機關名冊";

/// One column of the register: the field, its header, the other headers
/// it is recognised by, and what the notes sheet says of it.
#[derive(Debug)]
pub struct RegisterColumn {
    pub field: &'static str,
    pub header: &'static str,
    pub aliases: &'static [&'static str],
    pub note: &'static str,
}

pub const COLUMNS: &[RegisterColumn] = &[
    RegisterColumn {
        field: "id",
        header: "機關代碼",
        aliases: &["代碼", "id"],
        note: "必填。英數字、- 或 _，至多 32 字；用於檔名及資料夾名稱，不可重複。",
    },
    RegisterColumn {
        field: "name",
        header: "機關名稱",
        aliases: &["名稱", "name"],
        note: "必填。機關全銜；匯出檔之「機關」欄以代碼、名稱或別名辨識。",
    },
    RegisterColumn {
        field: "aliases",
        header: "別名",
        aliases: &["aliases"],
        note: "選填。匯出檔中該機關之其他寫法，以「、」分隔。",
    },
    RegisterColumn {
        field: "parent",
        header: "上級機關代碼",
        aliases: &["上級機關", "parent"],
        note: "選填（衛生局以外必填）。下拉選單列出本名冊之機關代碼；不得形成循環。",
    },
    RegisterColumn {
        field: "requesting",
        header: "資訊需求機關",
        aliases: &["requesting"],
        note: "是／否。資訊需求機關（管理要點第二點）自辦抽查並收受報表；其下屬機關併入其報表。",
    },
    RegisterColumn {
        field: "purposes",
        header: "查詢目的",
        aliases: &["purposes"],
        note: "依管理要點第三點之法定目的，以「、」分隔（社政、公共衛生、犯罪偵查、毒品施用者追蹤輔導、兵役、無照旅宿、其他法定職務）；空白者沿用上級機關。",
    },
    RegisterColumn {
        field: "officer_email",
        header: "專責人員信箱",
        aliases: &["專責人員電子郵件", "officer_email"],
        note: "資訊需求機關必填（管理要點第五點第一款）；須在 mail.allowed_domains 之網域內。異動時更新本欄，未結案件自動移交新專責人員。",
    },
    RegisterColumn {
        field: "ethics_email",
        header: "政風單位信箱",
        aliases: &["政風信箱", "ethics_email"],
        note: "選填但應填；嚴重異常及逾期未回傳時副知政風單位。",
    },
    RegisterColumn {
        field: "attachment_password_env",
        header: "附件密碼環境變數",
        aliases: &["attachment_password_env"],
        note: "選填。附件加密密碼所在之環境變數名稱；空白者由系統核發密碼（webir-audit passwords list）。",
    },
    RegisterColumn {
        field: "attachment_unencrypted",
        header: "附件不加密理由",
        aliases: &["attachment_unencrypted"],
        note: "選填。僅於確有必要時填寫理由；每封信均會載明不加密及其理由。",
    },
    RegisterColumn {
        field: "health_bureau",
        header: "衛生局",
        aliases: &["health_bureau"],
        note: "是／否。恰有一個機關為「是」：衛生局（總管理者所屬機關）。",
    },
    RegisterColumn {
        field: "chief_name",
        header: "總管理者姓名",
        aliases: &["總管理者", "chief_name"],
        note: "僅衛生局列填寫：總管理者（管理要點第四點）之姓名；全市彙整及專責人員帳號清查寄此人。設定檔有 [chief_administrator] 者以設定檔為準。",
    },
    RegisterColumn {
        field: "chief_email",
        header: "總管理者信箱",
        aliases: &["總管理者電子郵件", "chief_email"],
        note: "僅衛生局列填寫：總管理者之信箱，須在 mail.allowed_domains 之網域內；與姓名同時填寫。",
    },
];

/// Where a register row is, for problems: `file: sheet 機關名冊, row 5`.
#[derive(Debug, Clone)]
pub struct Place {
    pub file: String,
    pub sheet: Option<String>,
    pub row: usize,
}

impl Place {
    /// The place of a field's cell: sheet, row, column header.
    pub fn cell(&self, field: &str) -> String {
        let column = COLUMNS
            .iter()
            .find(|c| c.field == field)
            .map_or(field, |c| c.header);
        match &self.sheet {
            Some(s) => format!(
                "{}: sheet {s}, row {}, column {column}",
                self.file, self.row
            ),
            None => format!("{}: line {}, column {column}", self.file, self.row),
        }
    }

    /// The place of the row.
    pub fn row(&self) -> String {
        match &self.sheet {
            Some(s) => format!("{}: sheet {s}, row {}", self.file, self.row),
            None => format!("{}: line {}", self.file, self.row),
        }
    }
}

/// A register read: its agencies, each with its place, and the problems
/// of cells that are not what their column takes (`(place, value, why)`).
#[derive(Debug, Default)]
pub struct Register {
    pub agencies: Vec<RawAgency>,
    pub places: Vec<Place>,
    pub problems: Vec<(String, String, String)>,
}

/// A register's rows: each row's number (1-based) and its cells.
type RegisterRows = Vec<(usize, Vec<String>)>;

/// Reads the register at `path` (shown as `shown`).
pub fn read(path: &Path, shown: &str) -> Result<Register, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_lowercase();
    let (sheet, rows) = match ext.as_str() {
        "xlsx" | "xlsm" | "xls" | "ods" => {
            let (name, rows) = workbook_rows(path, shown)?;
            (Some(name), rows)
        }
        _ => (None, csv_rows(path, shown)?),
    };
    let (h, header) = header_row(&rows, shown)?;
    let mut out = Register::default();
    for (row, cells) in rows.iter().skip(h + 1) {
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let place = Place {
            file: shown.to_owned(),
            sheet: sheet.clone(),
            row: *row,
        };
        let a = agency_of_row(&place, &header, cells, &mut out.problems);
        out.agencies.push(a);
        out.places.push(place);
    }
    Ok(out)
}

/// The register sheet's name (its first sheet's if none is called
/// [`SHEET`]) and rows.
fn workbook_rows(path: &Path, shown: &str) -> Result<(String, RegisterRows), String> {
    let mut wb = calamine::open_workbook_auto(path).map_err(|e| format!("{shown}: {e}"))?;
    let names = wb.sheet_names();
    let name = names
        .iter()
        .find(|n| n.as_str() == SHEET)
        .or(names.first())
        .cloned()
        .ok_or_else(|| format!("{shown}: the workbook has no sheet"))?;
    let range = wb
        .worksheet_range(&name)
        .map_err(|e| format!("{shown}: sheet {name}: {e}"))?;
    let start = range.start().map_or(0, |(r, _)| r as usize);
    let rows: RegisterRows = range
        .rows()
        .enumerate()
        .map(|(i, r)| (start + i + 1, r.iter().map(cell_text).collect()))
        .collect();
    Ok((name, rows))
}

/// A CSV register's lines (UTF-8, with or without a byte-order mark, or
/// Big5).
fn csv_rows(path: &Path, shown: &str) -> Result<RegisterRows, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_owned(),
        Err(_) => {
            let (t, bad) = encoding_rs::BIG5.decode_without_bom_handling(bytes);
            if bad {
                return Err(format!("{shown}: neither valid UTF-8 nor valid Big5/CP950"));
            }
            t.into_owned()
        }
    };
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            (
                i + 1,
                split_csv_line(l.strip_suffix('\r').unwrap_or(l), b','),
            )
        })
        .collect())
}

/// The header row's index and the register column of each of its cells:
/// the first of the top rows naming the id column; it must name the name
/// column too.
fn header_row(
    rows: &RegisterRows,
    shown: &str,
) -> Result<(usize, Vec<Option<&'static RegisterColumn>>), String> {
    let Some(h) = rows.iter().take(10).position(|(_, cells)| {
        cells
            .iter()
            .any(|c| column_of(c).is_some_and(|c| c.field == "id"))
    }) else {
        return Err(format!(
            "{shown}: no header row with {} among its first 10 rows",
            COLUMNS[0].header
        ));
    };
    let header: Vec<Option<&RegisterColumn>> = rows[h].1.iter().map(|c| column_of(c)).collect();
    let missing: Vec<&str> = ["id", "name"]
        .iter()
        .filter(|f| !header.iter().flatten().any(|c| c.field == **f))
        .map(|f| {
            COLUMNS
                .iter()
                .find(|c| c.field == *f)
                .map_or(*f, |c| c.header)
        })
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{shown}: the header row has no {} column",
            missing.join(", ")
        ));
    }
    Ok((h, header))
}

/// The agency one register row (`cells`, at `place`) describes; a cell
/// its column does not take is added to `problems`.
fn agency_of_row(
    place: &Place,
    header: &[Option<&'static RegisterColumn>],
    cells: &[String],
    problems: &mut Vec<(String, String, String)>,
) -> RawAgency {
    let mut a = RawAgency {
        id: String::new(),
        name: String::new(),
        aliases: Vec::new(),
        parent: String::new(),
        requesting: false,
        purposes: Vec::new(),
        officer_email: None,
        ethics_email: None,
        attachment_password_env: None,
        attachment_unencrypted: None,
        health_bureau: false,
        chief_name: None,
        chief_email: None,
    };
    for (j, column) in header.iter().enumerate() {
        let Some(column) = column else { continue };
        let v = cells.get(j).map_or("", |c| c.trim());
        let opt = || (!v.is_empty()).then(|| v.to_owned());
        let mut flag = |target: &mut bool| match yes_no(v) {
            Some(b) => *target = b,
            None => problems.push((
                place.cell(column.field),
                v.to_owned(),
                "expected 是 or 否".to_owned(),
            )),
        };
        match column.field {
            "id" => a.id = v.to_owned(),
            "name" => a.name = v.to_owned(),
            "aliases" => a.aliases = list(v),
            "parent" => a.parent = v.to_owned(),
            "requesting" => flag(&mut a.requesting),
            "health_bureau" => flag(&mut a.health_bureau),
            "purposes" => {
                for p in list(v) {
                    match purpose_code(&p) {
                        Some(code) => a.purposes.push(code.to_owned()),
                        None => problems.push((
                            place.cell("purposes"),
                            p,
                            "not a purpose of point 3".to_owned(),
                        )),
                    }
                }
            }
            "officer_email" => a.officer_email = opt(),
            "ethics_email" => a.ethics_email = opt(),
            "attachment_password_env" => a.attachment_password_env = opt(),
            "attachment_unencrypted" => a.attachment_unencrypted = opt(),
            "chief_name" => a.chief_name = opt(),
            "chief_email" => a.chief_email = opt(),
            _ => {}
        }
    }
    a
}

fn column_of(header: &str) -> Option<&'static RegisterColumn> {
    let h = header.trim().to_lowercase();
    COLUMNS
        .iter()
        .find(|c| c.header == h || c.aliases.iter().any(|a| *a == h))
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 => format!("{f:.0}"),
        Data::Bool(true) => "是".into(),
        Data::Bool(false) => "否".into(),
        other => other.to_string(),
    }
}

fn yes_no(v: &str) -> Option<bool> {
    match v.to_lowercase().as_str() {
        "是" | "y" | "yes" | "true" | "1" | "v" | "✓" => Some(true),
        "否" | "" | "n" | "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// A cell's list: values separated by 、 , ， ; ； or line breaks.
fn list(v: &str) -> Vec<String> {
    v.split(['、', ',', '，', ';', '；', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A purpose's code from its code, label or any spelling of point 3.
fn purpose_code(p: &str) -> Option<&'static str> {
    let p = p.to_lowercase();
    PURPOSE
        .spellings()
        .into_iter()
        .find(|(s, _)| s.to_lowercase() == p)
        .map(|(_, c)| c)
}

/// One CSV line into cells, split on `sep` (quotes as RFC 4180, within
/// the line). The inbox's CSV reader uses it too, to find headers.
pub fn split_csv_line(line: &str, sep: u8) -> Vec<String> {
    let sep = sep as char;
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == sep && !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Rows of the exported register left open below the agencies, with their
/// drop-downs, for agencies added by hand.
const SPARE_ROWS: u32 = 200;

/// Writes `config`'s agencies as the register workbook: one row per
/// agency, drop-downs for the parent (the register's ids), 是/否 columns
/// and purposes, the header row protected, and a notes sheet explaining
/// each column. Reading it back ([`read`]) gives the same agencies.
/// `created` is the workbook's creation time, so the same register written
/// at the same time gives the same bytes.
pub fn write(
    config: &super::Config,
    path: &Path,
    created: chrono::NaiveDateTime,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, FormatBorder, Workbook};
    let mut wb = Workbook::new();
    wb.set_properties(
        &DocProperties::new()
            .set_creation_datetime(&ExcelDateTime::from_timestamp(
                created.and_utc().timestamp(),
            )?)
            .set_title("機關專責人員名冊")
            .set_author("webir-audit"),
    );
    let header = Format::new()
        .set_bold()
        .set_background_color("#D9E1F2")
        .set_border(FormatBorder::Thin)
        .set_text_wrap();
    let agencies: Vec<&super::Agency> = config.agencies.iter().collect();
    write_register_sheet(&mut wb, config, &agencies, &header)?;

    let codes = wb.add_worksheet();
    codes.set_name("代碼")?;
    codes.write_string_with_format(0, 0, "機關代碼", &header)?;
    for (i, a) in agencies.iter().enumerate() {
        codes.write_string(i as u32 + 1, 0, &a.id)?;
    }
    codes.set_hidden(true);

    let notes = wb.add_worksheet();
    notes.set_name("欄位說明")?;
    notes.write_string_with_format(0, 0, "欄位", &header)?;
    notes.write_string_with_format(0, 1, "說明", &header)?;
    notes.set_column_width(0, 18)?;
    notes.set_column_width(1, 90)?;
    let wrap = Format::new().set_text_wrap();
    for (i, c) in COLUMNS.iter().enumerate() {
        notes.write_string(i as u32 + 1, 0, c.header)?;
        notes.write_string_with_format(i as u32 + 1, 1, c.note, &wrap)?;
    }
    wb.save(path)
}

/// The register sheet: its header row, one row per agency, the drop-downs
/// and the protection that leaves only the cells open.
fn write_register_sheet(
    wb: &mut rust_xlsxwriter::Workbook,
    config: &super::Config,
    agencies: &[&super::Agency],
    header: &rust_xlsxwriter::Format,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, ProtectionOptions};
    let open = Format::new().set_unlocked();
    let ws = wb.add_worksheet();
    ws.set_name(SHEET)?;
    for (j, c) in COLUMNS.iter().enumerate() {
        ws.write_string_with_format(0, j as u16, c.header, header)?;
        let width = match c.field {
            "name" => 30,
            "officer_email" | "ethics_email" | "chief_email" => 30,
            "chief_name" => 12,
            "purposes" | "attachment_unencrypted" => 24,
            "aliases" | "attachment_password_env" => 18,
            "id" | "parent" => 13,
            _ => 9,
        };
        ws.set_column_width(j as u16, width)?;
        ws.set_column_format(j as u16, &open)?;
    }
    // Printed for review: landscape, one page wide, the header on every page.
    ws.set_landscape();
    ws.set_paper_size(9);
    ws.set_print_fit_to_pages(1, 0);
    ws.set_repeat_rows(0, 0)?;
    ws.set_header("&L機關專責人員名冊&R第 &P 頁，共 &N 頁");
    ws.set_row_format(0, header)?;
    // Two lines, so a wrapped header (資訊需求機關) prints whole.
    ws.set_row_height(0, 32)?;
    for (i, a) in agencies.iter().enumerate() {
        let r = i as u32 + 1;
        for (j, v) in register_row(config, a).iter().enumerate() {
            // Text as text: a value from the config is never a formula.
            ws.write_string_with_format(r, j as u16, v, &open)?;
        }
    }
    add_drop_downs(ws, agencies.len() as u32)?;
    ws.set_freeze_panes(1, 2)?;
    ws.protect_with_options(&ProtectionOptions {
        format_columns: true,
        insert_rows: true,
        delete_rows: true,
        use_autofilter: true,
        sort: true,
        ..ProtectionOptions::default()
    });
    Ok(())
}

/// An agency's cells in the register, in [`COLUMNS`]' order.
fn register_row(config: &super::Config, a: &super::Agency) -> [String; 13] {
    let yes = |b: bool| if b { "是" } else { "否" };
    let purposes: Vec<&str> = a
        .purposes
        .iter()
        .map(|p| PURPOSE.label(p).unwrap_or(p))
        .collect();
    // Only the agency's own purposes: inherited ones stay blank.
    let own = config
        .agencies
        .get(a.parent.as_deref().unwrap_or(""))
        .is_none_or(|p| p.purposes != a.purposes);
    let attachment = match &a.attachment {
        super::AttachmentProtection::Env(v) => (v.as_str(), ""),
        super::AttachmentProtection::Unencrypted(r) => ("", r.as_str()),
        super::AttachmentProtection::Issued => ("", ""),
    };
    // The chief administrator on the Health Bureau's row.
    let chief = config.chief.as_ref().filter(|_| a.health_bureau);
    [
        a.id.clone(),
        a.name.clone(),
        a.aliases.join("、"),
        a.parent.clone().unwrap_or_default(),
        yes(a.requesting).to_owned(),
        if own {
            purposes.join("、")
        } else {
            String::new()
        },
        a.officer_email.clone().unwrap_or_default(),
        a.ethics_email.clone().unwrap_or_default(),
        attachment.0.to_owned(),
        attachment.1.to_owned(),
        yes(a.health_bureau).to_owned(),
        chief.map_or(String::new(), |c| c.name.clone()),
        chief.map_or(String::new(), |c| c.email.clone()),
    ]
}

/// The drop-downs of the register's first `n` agency rows and its spare
/// rows: parents from the register's ids, 是/否, and purposes.
fn add_drop_downs(
    ws: &mut rust_xlsxwriter::Worksheet,
    n: u32,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{DataValidation, DataValidationErrorStyle, Formula};
    let last = n + SPARE_ROWS;
    let col = |f: &str| COLUMNS.iter().position(|c| c.field == f).unwrap_or(0) as u16;
    let ids = DataValidation::new()
        .allow_list_formula(Formula::new(format!("=代碼!$A$2:$A${}", n + 1)))
        .set_error_message("請由下拉選單選擇本名冊之機關代碼")?;
    ws.add_data_validation(1, col("parent"), last, col("parent"), &ids)?;
    let yes_no = DataValidation::new()
        .allow_list_strings(&["是", "否"])?
        .set_error_message("請選擇「是」或「否」")?;
    for f in ["requesting", "health_bureau"] {
        ws.add_data_validation(1, col(f), last, col(f), &yes_no)?;
    }
    // Several purposes are written 社政、公共衛生: the list suggests, and
    // a combination is accepted after a notice.
    let labels: Vec<&str> = PURPOSE.codes().filter_map(|c| PURPOSE.label(c)).collect();
    let purposes = DataValidation::new()
        .allow_list_strings(&labels)?
        .set_error_style(DataValidationErrorStyle::Information)
        .set_error_message("多個目的以「、」分隔；須為管理要點第三點之目的")?;
    ws.add_data_validation(1, col("purposes"), last, col("purposes"), &purposes)?;
    Ok(())
}

/// What a reviewer compares between two registers: per agency id, its
/// name, parent, unit, whether it requests, and its officer and ethics
/// addresses.
type Snapshot = std::collections::BTreeMap<String, [String; 5]>;

/// The register as the daemon runs with it, for [`changes`] (JSON).
pub fn snapshot(config: &super::Config) -> String {
    let s: Snapshot = config
        .agencies
        .iter()
        .map(|a| {
            (
                a.id.clone(),
                [
                    a.name.clone(),
                    a.parent.clone().unwrap_or_default(),
                    a.unit.clone(),
                    a.officer_email.clone().unwrap_or_default(),
                    a.ethics_email.clone().unwrap_or_default(),
                ],
            )
        })
        .collect();
    serde_json::to_string(&s).unwrap_or_default()
}

/// What changed from the register `before` (a [`snapshot`]) to
/// `config`'s: agencies added and removed, moved to another parent or
/// unit, renamed, and officers and ethics units changed, one line each,
/// in agency id order.
pub fn changes(before: &str, config: &super::Config) -> Vec<String> {
    let Ok(old) = serde_json::from_str::<Snapshot>(before) else {
        return vec!["the register the daemon last ran with could not be read".to_owned()];
    };
    let new: Snapshot = serde_json::from_str(&snapshot(config)).unwrap_or_default();
    let mut out = Vec::new();
    let show = |v: &str| {
        if v.is_empty() {
            "（無）".to_owned()
        } else {
            v.to_owned()
        }
    };
    for (id, n) in &new {
        match old.get(id) {
            None => out.push(format!("+ {id} {} added (unit {})", n[0], n[2])),
            Some(o) => {
                for (k, what) in [
                    (0, "name"),
                    (1, "parent"),
                    (2, "unit"),
                    (3, "officer"),
                    (4, "ethics unit"),
                ] {
                    if o[k] != n[k] {
                        out.push(format!("~ {id} {what}: {} → {}", show(&o[k]), show(&n[k])));
                    }
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            out.push(format!("- {id} {} removed", o[0]));
        }
    }
    out
}
