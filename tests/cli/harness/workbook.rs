//! Workbooks as an officer returns them: a sheet refilled and re-saved the
//! way Excel would, answers typed, the sign-off signed; and a member of
//! the `.xlsx` zip read as XML.

use std::io::Read;
use std::path::Path;

use std::collections::BTreeMap;

use calamine::{Data, Reader, Xlsx, open_workbook};

/// A workbook's sheets by name, as calamine reads their cells.
pub type Sheets = BTreeMap<String, Vec<Vec<Data>>>;

/// A workbook's sheet names, in order, and its sheets.
pub fn read(path: &Path) -> (Vec<String>, Sheets) {
    let mut wb: Xlsx<_> = open_workbook(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let names = wb.sheet_names().to_vec();
    let mut sheets = BTreeMap::new();
    for n in &names {
        let range = wb.worksheet_range(n).unwrap();
        let rows: Vec<Vec<Data>> = range.rows().map(|r| r.to_vec()).collect();
        sheets.insert(n.clone(), rows);
    }
    (names, sheets)
}

pub fn xml(path: &Path, member: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut s = String::new();
    zip.by_name(member).unwrap().read_to_string(&mut s).unwrap();
    s
}

/// Re-saves `original` as an officer's Excel would, after `edit` changed
/// the worksheet's rows (cell values only: that is all that comes back).
pub fn refill(original: &Path, out: &Path, edit: impl Fn(&mut Vec<Vec<Data>>)) {
    refill_sheet(original, out, "抽查工作底稿", edit);
}

/// `original` written again to `out` as an officer's Excel would save it,
/// with `sheet` edited.
pub fn refill_sheet(original: &Path, out: &Path, sheet: &str, edit: impl Fn(&mut Vec<Vec<Data>>)) {
    refill_sheet_as(original, original, out, sheet, edit);
}

/// [`refill_sheet`], the workbook's properties (its return token) those
/// of `properties_of`: another unit's workbook made to read as this one.
pub fn refill_sheet_as(
    original: &Path,
    properties_of: &Path,
    out: &Path,
    sheet: &str,
    edit: impl Fn(&mut Vec<Vec<Data>>),
) {
    rewrite(original, properties_of, out, sheet, edit, |_| ());
}

/// [`refill_sheet`], then `formula` (cached as `shows`) written over the
/// sheet's cell at (`row`, `col`), 0-based: what Excel saves when the
/// returner types a formula.
pub fn refill_sheet_with_formula(
    original: &Path,
    out: &Path,
    sheet: &str,
    edit: impl Fn(&mut Vec<Vec<Data>>),
    (row, col, formula, shows): (u32, u16, &str, &str),
) {
    rewrite(original, original, out, sheet, edit, |wb| {
        wb.worksheet_from_name(sheet)
            .unwrap()
            .write_formula(
                row,
                col,
                rust_xlsxwriter::Formula::new(formula).set_result(shows),
            )
            .unwrap();
    });
}

fn rewrite(
    original: &Path,
    properties_of: &Path,
    out: &Path,
    sheet: &str,
    edit: impl Fn(&mut Vec<Vec<Data>>),
    then: impl Fn(&mut rust_xlsxwriter::Workbook),
) {
    let (names, mut sheets) = read(original);
    edit(sheets.get_mut(sheet).unwrap());
    let mut wb = rust_xlsxwriter::Workbook::new();
    // Saved again as Excel saves it: with the workbook's properties.
    if let Some(t) = webir_audit::worksheet::token_in(&std::fs::read(properties_of).unwrap()) {
        wb.set_properties(
            &rust_xlsxwriter::DocProperties::new()
                .set_custom_property(webir_audit::worksheet::TOKEN_PROPERTY, t.as_str()),
        );
    }
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy/mm/dd hh:mm");
    for n in &names {
        let ws = wb.add_worksheet();
        ws.set_name(n).unwrap();
        for (r, row) in sheets[n].iter().enumerate() {
            for (c, d) in row.iter().enumerate() {
                let (r, c) = (r as u32, c as u16);
                match d {
                    Data::String(s) => {
                        ws.write_string(r, c, s).unwrap();
                    }
                    Data::Float(f) => {
                        ws.write_number(r, c, *f).unwrap();
                    }
                    Data::Int(i) => {
                        ws.write_number(r, c, *i as f64).unwrap();
                    }
                    Data::DateTime(t) => {
                        ws.write_number_with_format(r, c, t.as_f64(), &date)
                            .unwrap();
                    }
                    _ => {}
                }
            }
        }
    }
    then(&mut wb);
    wb.save(out).unwrap();
}

/// The column of a sheet's table whose header (the third row) is `name`.
pub fn table_column(rows: &[Vec<Data>], name: &str) -> usize {
    let header: Vec<String> = rows[2].iter().map(|c| c.to_string()).collect();
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

/// The rows of a sheet's table, after its header to its first blank row:
/// what an officer answers (the sign-off follows the blank row).
pub fn table_rows(rows: &mut [Vec<Data>]) -> &mut [Vec<Data>] {
    let after = &mut rows[3..];
    let n = after
        .iter()
        .take_while(|r| r.iter().any(|c| *c != Data::Empty))
        .count();
    &mut after[..n]
}

/// Answers a sample-worksheet row: its five inputs, in the layout's order.
pub fn answer(row: &mut Vec<Data>, answers: [&str; 5]) {
    use webir_audit::report::layout::SAMPLE_WORKSHEET as L;
    row.resize(L.headers().len(), Data::Empty);
    for (k, a) in answers.iter().enumerate() {
        row[L.tool.len() + k] = Data::String((*a).to_owned());
    }
}

/// A worksheet filled in by `who` on 20 July: the first row a confirmed
/// anomaly (no prior approval), every other row in order; signed.
pub fn one_anomaly(rows: &mut [Vec<Data>], who: &str) {
    for (i, r) in table_rows(rows).iter_mut().enumerate() {
        if i == 0 {
            answer(r, ["是", "否", "是", "有", "未經主管核可"]);
        } else {
            answer(r, ["是", "是", "是", "無", ""]);
        }
    }
    sign(rows, who, "2026/07/20");
}

/// Signs a sheet's sign-off: who filled it in and the day (the unit head's
/// line left for a hand signature).
pub fn sign(rows: &mut [Vec<Data>], who: &str, day: &str) {
    use webir_audit::report::layout::SIGN_OFF;
    for (label, value) in [(SIGN_OFF[0].0, who), (SIGN_OFF[2].0, day)] {
        let r = rows
            .iter_mut()
            .find(|r| r.first().is_some_and(|c| *c == label))
            .unwrap_or_else(|| panic!("no sign-off line {label}"));
        r.resize(r.len().max(3), Data::Empty);
        r[2] = Data::String(value.to_owned());
    }
}
