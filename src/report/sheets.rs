//! The renderer: a [`ReportModel`] into workbook bytes with
//! `rust_xlsxwriter`. One function per sheet; every table goes through
//! [`write_table`], which writes cells safely, sizes columns for CJK text,
//! freezes and filters the header, sets up printing and continues on a
//! second sheet past Excel's row limit.

use super::layout::{
    ACCOUNT_REVIEW_INPUTS, FOLLOW_UP_INPUTS, HEADER_ROW, INTERNAL_AUDIT_INPUTS, Input,
    SAMPLE_WORKSHEET, SIGN_OFF,
};
use chrono::{Datelike, Timelike};
use rust_xlsxwriter::{
    Chart, ChartFormat, ChartSolidFill, ChartType, Color, ConditionalFormatText,
    ConditionalFormatTextRule, DataValidation, DataValidationRule, DocProperties, ExcelDateTime,
    Format, FormatAlign, FormatBorder, ProtectionOptions, Workbook, Worksheet, XlsxError,
};

use super::{
    Cell, Document, Queries, ReportModel, SampleSection, SheetName, SheetTable, display_width,
    looks_like_formula,
};

/// Excel's rows per sheet; a table's sheet has a title, a blank row and a
/// header above its data.
const MAX_ROWS: usize = 1_048_576;

/// The formats every sheet uses.
struct Styles {
    title: Format,
    label: Format,
    header: Format,
    text: Format,
    /// Long text in the summary's value column.
    wrap: Format,
    /// Text Excel could take for a formula: shown as written, never run.
    risky: Format,
    int: Format,
    time: Format,
    /// Auditor input cells on a protected sheet.
    input: Format,
    input_date: Format,
    note: Format,
    /// A withheld check, at the top of the summary: red, bold, wrapped.
    warning: Format,
    /// Data rows per sheet before a table continues on the next sheet.
    rows_per_sheet: usize,
}

impl Styles {
    fn new() -> Styles {
        let base = Format::new().set_font_name("微軟正黑體").set_font_size(11);
        // Table cells align with the top of a wrapped neighbour.
        let cell = base
            .clone()
            .set_border(FormatBorder::Thin)
            .set_align(FormatAlign::Top);
        Styles {
            title: base.clone().set_bold().set_font_size(16),
            label: base.clone().set_bold().set_align(FormatAlign::Top),
            header: cell
                .clone()
                .set_bold()
                .set_background_color(Color::RGB(0xDDEBF7))
                .set_text_wrap()
                .set_align(FormatAlign::Center)
                .set_align(FormatAlign::VerticalCenter),
            text: cell.clone(),
            wrap: cell.clone().set_text_wrap().set_align(FormatAlign::Top),
            risky: cell.clone().set_quote_prefix(),
            int: cell.clone().set_num_format("#,##0"),
            time: cell.clone().set_num_format("yyyy/mm/dd hh:mm"),
            input: cell
                .clone()
                .set_unlocked()
                .set_background_color(Color::RGB(0xFFF2CC)),
            input_date: cell
                .clone()
                .set_unlocked()
                .set_background_color(Color::RGB(0xFFF2CC))
                .set_num_format("yyyy/mm/dd"),
            warning: base
                .clone()
                .set_font_color(Color::RGB(0xC00000))
                .set_bold()
                .set_text_wrap()
                .set_align(FormatAlign::Top),
            note: base
                .set_font_color(Color::RGB(0xC00000))
                .set_bold()
                .set_text_wrap()
                .set_align(FormatAlign::Top),
            rows_per_sheet: MAX_ROWS - 3,
        }
    }
}

impl Styles {
    /// The format of a blank a person fills in: a date's shows a date.
    fn input_format(&self, input: Input) -> &Format {
        if input == Input::Date {
            &self.input_date
        } else {
            &self.input
        }
    }
}

fn excel_time(t: &chrono::NaiveDateTime) -> Result<ExcelDateTime, XlsxError> {
    ExcelDateTime::from_ymd(t.year() as u16, t.month() as u8, t.day() as u8)?.and_hms(
        t.hour() as u16,
        t.minute() as u8,
        t.second(),
    )
}

/// A text cell as written: any national ID in it masked. What the tool
/// derives is masked already; free text a person typed (an answer, a
/// form's 查詢事由, a note) may hold one, and no workbook shows one whole.
fn masked(s: &str) -> String {
    crate::privacy::mask_ids_in_text(s)
}

fn put(ws: &mut Worksheet, row: u32, col: u16, cell: &Cell, st: &Styles) -> Result<(), XlsxError> {
    match cell {
        Cell::Empty => {
            ws.write_blank(row, col, &st.text)?;
        }
        Cell::Text(s) if looks_like_formula(s) => {
            ws.write_string_with_format(row, col, masked(s), &st.risky)?;
        }
        Cell::Text(s) => {
            ws.write_string_with_format(row, col, masked(s), &st.text)?;
        }
        Cell::Int(v) => {
            ws.write_number_with_format(row, col, *v as f64, &st.int)?;
        }
        Cell::Time(t) => {
            ws.write_datetime_with_format(row, col, excel_time(t)?, &st.time)?;
        }
    }
    Ok(())
}

fn cell_width(cell: &Cell) -> usize {
    match cell {
        Cell::Empty => 0,
        // A cell of several lines is as wide as its widest.
        Cell::Text(s) => s.split('\n').map(display_width).max().unwrap_or(0),
        Cell::Int(v) => v.to_string().len() + 2,
        Cell::Time(_) => 18,
    }
}

/// Extra columns after a table's own: the inputs a person fills in.
type Inputs = &'static [(&'static str, Input)];

/// The widest a table sheet prints on one A4 landscape page (narrow
/// margins), in column characters, while its type stays legible: about
/// 62 %, 7 points (measured: LibreOffice prints some 110 column
/// characters of this font across the page at 100 %).
const PRINT_FIT_WIDTH: usize = 180;

/// The widest a sheet a person fills in prints on one A4 landscape page
/// with its type at 8 points or more: LibreOffice fits some 104 column
/// characters across the page at 100 % (measured: a sheet of 144 printed
/// at 72 %, its words 10.3 points high against 14.3 unscaled), so 142
/// keeps the 11-point font at 8 points or more. Every such sheet is laid
/// out to fit it, and prints one page wide.
pub const FILL_IN_FIT_WIDTH: usize = 142;

/// The width of an input column: a drop-down as wide as its longest
/// choice (its header wraps onto up to three lines), free text and dates
/// as wide as a date.
fn input_width(header: &str, input: Input) -> usize {
    match input {
        Input::Choice(list) => list
            .iter()
            .map(|c| display_width(c))
            .chain([display_width(header).div_ceil(3)])
            .max()
            .unwrap_or(4)
            .max(4),
        Input::Text | Input::Date => 10,
    }
}

/// The widest a column of a table sheet grows (in column characters);
/// longer text wraps. Names and free text get less room than codes, so
/// that a findings sheet fits a page's width.
fn width_cap(header: &str) -> usize {
    match header {
        "查詢時間" | "被查詢人" => 10,
        // An account and its holder on a line, the holder's agency below.
        "帳號" => 13,
        // A date-time, or a span of them on two lines.
        "時間" => 17,
        "查詢項目" => 8,
        "查詢目的" => 7,
        "紀錄表" => 12,
        // An approver above a minute, each on a line.
        "核准" => 16,
        "查詢事由" => 10,
        "系統預檢" => 8,
        "機關" | "所屬機關" | "單位" => 12,
        "使用者" | "角色" => 8,
        "帳號狀態" => 12,
        "來源檔案" | "狀態" | "缺少之選用欄位" => 16,
        "說明" | "原因" => 11,
        "檔案" => 24,
        "理由" | "發現" => 25,
        "建議處理" => 16,
        "下一步" | "最嚴重項目" => 28,
        // A digest on three lines: 資料品質 prints one page wide.
        "SHA-256" => 22,
        "清冊日期" => 22,
        _ => 30,
    }
}

/// The width a header needs on two lines.
fn header_width(h: &str) -> usize {
    let w = display_width(h);
    if w > 8 { w.div_ceil(2) + 1 } else { w }
}

/// The height of a row holding `text` wrapped in `width` characters.
fn wrapped_height(text: &str, width: usize) -> f64 {
    16.0 * wrapped_lines(text, width.saturating_sub(2).max(1)) as f64
}

/// The lines `text` takes wrapped in lines of `cap` display columns, as
/// a spreadsheet wraps it: at line breaks, after a space, `/` or `-`, and
/// between wide (CJK) characters; a word longer than a line is cut where
/// it must be. Counting only the width (the total over `cap`) undercounts
/// text that breaks early, such as a file path: `query_logs/` |
/// `webir_querylog_202604-` | `05_big5.csv` is three lines, not two.
fn wrapped_lines(text: &str, cap: usize) -> usize {
    lines_by(text, cap as f64, |c| {
        display_width(c.encode_utf8(&mut [0; 4])) as f64
    })
}

/// The lines `text` prints on in a table cell of `column` column
/// characters (its padding included), as LibreOffice prints the sheets'
/// font: a digit takes one column character, a letter a little more, a
/// wide (CJK) character one and a half, and half a character's room is
/// the cell's margin (measured: a column of 9 holds 5 CJK characters, not
/// 6, one of 11 holds 7, not 8). Row heights from it print
/// no empty line under the text, where [`wrapped_lines`]' width count left
/// a third of the sample worksheet's rows a line too tall.
fn printed_lines(text: &str, column: usize) -> usize {
    lines_by(text, column as f64 - 0.5, |c| {
        if display_width(c.encode_utf8(&mut [0; 4])) > 1 {
            1.5
        } else if c == ' ' {
            0.5
        } else if c.is_ascii_digit() || "/:-.,".contains(c) {
            1.0
        } else {
            1.2
        }
    })
}

/// The lines of `text` wrapped at `cap`, each character as wide as
/// `weight` says: at line breaks, after a space, `/` or `-`, and between
/// wide characters; a word longer than a line is cut where it must be.
fn lines_by(text: &str, cap: f64, weight: impl Fn(char) -> f64) -> usize {
    let mut lines = 0;
    for para in text.split('\n') {
        lines += 1;
        let mut line = 0.0;
        let mut word = 0.0;
        // A word of width `w` onto the line: on the next line if it does
        // not fit; over as many as it needs if it is longer than one.
        let place = |w: f64, line: &mut f64, lines: &mut usize| {
            if *line > 0.0 && *line + w > cap {
                *lines += 1;
                *line = 0.0;
            }
            *line += w;
            while *line > cap {
                *lines += 1;
                *line -= cap;
            }
        };
        for c in para.chars() {
            let w = weight(c);
            if display_width(c.encode_utf8(&mut [0; 4])) > 1 {
                // A wide character is a word of its own.
                place(word, &mut line, &mut lines);
                word = 0.0;
                place(w, &mut line, &mut lines);
            } else {
                word += w;
                if matches!(c, ' ' | '/' | '-') {
                    place(word, &mut line, &mut lines);
                    word = 0.0;
                }
            }
        }
        place(word, &mut line, &mut lines);
    }
    lines.max(1)
}

/// The checks that did not run, below the input files on 資料品質.
fn not_checked_block(
    wb: &mut Workbook,
    widths: &[usize],
    files: &SheetTable,
    items: &SheetTable,
    st: &Styles,
) -> Result<(), XlsxError> {
    let ws = wb.worksheet_from_name(SheetName::DataQuality.as_str())?;
    // Below the files table: title, blank, header, rows, then a gap.
    let mut row = 2 + 1 + files.rows.len().min(st.rows_per_sheet) as u32 + 2;
    ws.write_string_with_format(
        row,
        0,
        "未檢核項目（下列檢核未執行，其結果不得視為無異常）",
        &st.warning,
    )?;
    row += 1;
    for (c, h) in items.headers.iter().enumerate() {
        ws.write_string_with_format(row, c as u16, h, &st.header)?;
    }
    // The last item's text runs over the rest of the files' columns.
    let last_col = files
        .headers
        .len()
        .max(items.headers.len())
        .saturating_sub(1) as u16;
    let last = items.headers.len().saturating_sub(1) as u16;
    for r in &items.rows {
        row += 1;
        let mut lines = 1;
        for (c, cell) in r.iter().enumerate() {
            let c = c as u16;
            let text = match cell {
                Cell::Text(s) => s.as_str(),
                _ => "",
            };
            let span = if c == last { last_col + 1 } else { c + 1 };
            let width: usize = (c..span)
                .map(|k| widths.get(usize::from(k)).copied().unwrap_or(9))
                .sum();
            lines = lines.max(printed_lines(text, width));
            if c == last && last_col > last {
                ws.merge_range(row, c, row, last_col, &masked(text), &st.wrap)?;
            } else {
                ws.write_string_with_format(row, c, masked(text), &st.wrap)?;
            }
        }
        ws.set_row_height(row, 16.0 * lines as f64)?;
    }
    // On paper too: what was not checked prints under the files.
    ws.set_print_area(HEADER_ROW, 0, row, last_col)?;
    Ok(())
}

/// Writes `table` below its title on sheets named `name`, `name(2)`, …,
/// as many as Excel's row limit needs. Returns the sheets' names, each
/// with its columns' printed widths (in column characters).
fn write_table(
    wb: &mut Workbook,
    name: SheetName,
    title: &str,
    table: &SheetTable,
    inputs: Option<Inputs>,
    model: &ReportModel,
    st: &Styles,
) -> Result<Vec<(String, Vec<usize>)>, XlsxError> {
    let chunks: Vec<&[Vec<Cell>]> = if table.rows.is_empty() {
        vec![&[]]
    } else {
        table.rows.chunks(st.rows_per_sheet).collect()
    };
    let n_chunks = chunks.len();
    let mut names = Vec::new();
    for (k, rows) in chunks.into_iter().enumerate() {
        let sheet_name = if k == 0 {
            name.as_str().to_owned()
        } else {
            format!("{}({})", name.as_str(), k + 1)
        };
        let part = TablePart {
            table,
            rows,
            inputs: inputs.unwrap_or_default(),
            fill_in: inputs.is_some(),
            last_part: k + 1 == n_chunks,
        };
        let widths = write_table_part(wb, &sheet_name, title, &part, model, st)?;
        names.push((sheet_name, widths));
    }
    Ok(names)
}

/// The rows of a table that go on one sheet, and the input columns after
/// them.
struct TablePart<'a> {
    table: &'a SheetTable,
    rows: &'a [Vec<Cell>],
    inputs: &'a [(&'static str, Input)],
    /// Whether a person fills it in (it has input columns).
    fill_in: bool,
    /// Whether it is the table's last sheet (where the sign-off goes).
    last_part: bool,
}

impl TablePart<'_> {
    /// The column of the `j`th input.
    fn input_col(&self, j: usize) -> u16 {
        (self.table.headers.len() + j) as u16
    }

    fn last_col(&self) -> u16 {
        (self.table.headers.len() + self.inputs.len()).saturating_sub(1) as u16
    }

    fn last_row(&self) -> u32 {
        HEADER_ROW + self.rows.len() as u32
    }

    /// On a sheet a person fills in, the record's key columns (up to the
    /// account) stay in view beside the inputs, and print on every page.
    fn key_cols(&self) -> u16 {
        if !self.fill_in {
            return 0;
        }
        self.table
            .headers
            .iter()
            .position(|h| h == "帳號")
            .map_or(0, |i| i as u16 + 1)
    }
}

/// How a table's columns are laid out: each one's width (in column
/// characters, without the room beside its text), whether its text
/// wraps, and that room.
struct ColumnFit {
    widths: Vec<usize>,
    wraps: Vec<bool>,
    pad: usize,
}

/// Writes one sheet of a table; returns its columns' printed widths.
fn write_table_part(
    wb: &mut Workbook,
    sheet_name: &str,
    title: &str,
    part: &TablePart<'_>,
    model: &ReportModel,
    st: &Styles,
) -> Result<Vec<usize>, XlsxError> {
    let ws = wb.add_worksheet();
    ws.set_name(sheet_name)?;
    ws.write_string_with_format(0, 0, title, &st.title)?;
    let headers = write_table_headers(ws, part, st)?;
    // A long header wraps onto two lines rather than widen its column.
    let header_widths = part
        .table
        .headers
        .iter()
        .map(|h| header_width(h))
        .chain(part.inputs.iter().map(|(h, input)| input_width(h, *input)))
        .collect();
    let fit = fit_columns(part, header_widths);
    // The header row as tall as its most wrapped header.
    let header_lines = headers
        .iter()
        .zip(&fit.widths)
        .map(|(h, w)| wrapped_lines(h, *w))
        .max()
        .unwrap_or(1)
        .max(2);
    ws.set_row_height(HEADER_ROW, 16.0 * header_lines as f64)?;
    write_table_rows(ws, part, &fit, st)?;
    for (c, w) in fit.widths.iter().enumerate() {
        ws.set_column_width(c as u16, (*w + fit.pad) as f64)?;
    }
    set_up_table_print(ws, sheet_name, part, &fit, st)?;
    ws.set_header(table_page_header(model, sheet_name));
    ws.set_footer(FOOTER);
    if part.fill_in && !part.rows.is_empty() {
        protect_inputs(ws, part)?;
    }
    colour_severities(ws, &part.table.headers, part.last_row())?;
    Ok(fit.widths.iter().map(|w| w + fit.pad).collect())
}

/// Every page's footer: the page count and the data's classification.
const FOOTER: &str = "&C第 &P 頁，共 &N 頁&R機密：個人資料，限公務使用";

/// Writes the header row, the table's then the inputs'; returns them.
fn write_table_headers<'a>(
    ws: &mut Worksheet,
    part: &TablePart<'a>,
    st: &Styles,
) -> Result<Vec<&'a str>, XlsxError> {
    let headers: Vec<&str> = part
        .table
        .headers
        .iter()
        .map(String::as_str)
        .chain(part.inputs.iter().map(|(h, _)| *h))
        .collect();
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(HEADER_ROW, c as u16, *h, &st.header)?;
    }
    Ok(headers)
}

/// Column widths from the headers' (`widths`) and the first rows'; a
/// column whose text is longer than its cap wraps within the cap, and
/// its rows get the height their text needs (no application grows a row
/// for wrapped text it did not lay out itself).
fn fit_columns(part: &TablePart<'_>, mut widths: Vec<usize>) -> ColumnFit {
    let (headers, rows) = (&part.table.headers, part.rows);
    for row in rows.iter().take(2000) {
        for (c, cell) in row.iter().enumerate() {
            widths[c] = widths[c].max(cell_width(cell));
        }
    }
    let caps: Vec<usize> = headers.iter().map(|h| width_cap(h)).collect();
    // A column wraps when its text is wider than its cap or breaks lines
    // of its own; a date-time column is never narrower than its value
    // (it cannot wrap).
    let multi_line = (0..headers.len()).map(|c| {
        rows.iter()
            .any(|r| matches!(r.get(c), Some(Cell::Text(s)) if s.contains('\n')))
    });
    let wraps: Vec<bool> = widths
        .iter()
        .zip(&caps)
        .zip(multi_line)
        .map(|((w, cap), multi)| w > cap || multi)
        .collect();
    for (c, (w, cap)) in widths.iter_mut().zip(&caps).enumerate() {
        let timed = rows.iter().any(|r| matches!(r.get(c), Some(Cell::Time(_))));
        let floor = if timed { 17 } else { 4 };
        *w = (*w).clamp(floor, (*cap).max(floor));
    }
    ColumnFit {
        widths,
        wraps,
        // Room beside a column's text: a sheet filled in gives one
        // character less, to print one page wide at legible size.
        pad: if part.fill_in { 1 } else { 2 },
    }
}

/// Writes a table's data rows, each as tall as its wrapped text, and
/// their blank input cells.
fn write_table_rows(
    ws: &mut Worksheet,
    part: &TablePart<'_>,
    fit: &ColumnFit,
    st: &Styles,
) -> Result<(), XlsxError> {
    for (i, row) in part.rows.iter().enumerate() {
        let r = HEADER_ROW + 1 + i as u32;
        let mut height = 0.0_f64;
        for (c, cell) in row.iter().enumerate() {
            match cell {
                Cell::Text(s) if fit.wraps[c] && !looks_like_formula(s) => {
                    ws.write_string_with_format(r, c as u16, masked(s), &st.wrap)?;
                    if cell_width(cell) > fit.widths[c] || s.contains('\n') {
                        let lines = printed_lines(s, fit.widths[c] + fit.pad);
                        height = height.max(16.0 * lines as f64);
                    }
                }
                _ => put(ws, r, c as u16, cell, st)?,
            }
        }
        if height > 0.0 {
            ws.set_row_height(r, height)?;
        }
        write_input_blanks(ws, r, part.input_col(0), part.inputs, st)?;
    }
    Ok(())
}

/// Writes the blank cells a person fills in on `row`, from column
/// `first`: unlocked, dates formatted as dates.
fn write_input_blanks(
    ws: &mut Worksheet,
    row: u32,
    first: u16,
    inputs: &[(&'static str, Input)],
    st: &Styles,
) -> Result<(), XlsxError> {
    for (j, (_, input)) in inputs.iter().enumerate() {
        ws.write_blank(row, first + j as u16, st.input_format(*input))?;
    }
    Ok(())
}

/// A table sheet's page setup. On paper a sheet fits the page's width
/// while its type stays legible; a wider one spans pages in width with
/// the key columns on every page rather than shrinking to unreadable
/// type.
fn set_up_table_print(
    ws: &mut Worksheet,
    sheet_name: &str,
    part: &TablePart<'_>,
    fit: &ColumnFit,
    st: &Styles,
) -> Result<(), XlsxError> {
    let (first_row, last_row, last_col) = (HEADER_ROW, part.last_row(), part.last_col());
    let key_cols = part.key_cols();
    ws.set_freeze_panes(first_row + 1, key_cols)?;
    ws.autofilter(first_row, 0, last_row.max(first_row), last_col)?;
    ws.set_landscape();
    ws.set_paper_size(9); // A4
    ws.set_margins(0.25, 0.25, 0.6, 0.6, 0.25, 0.25);
    // A sheet filled in is signed once, below its table (on its last
    // part): who filled it in, the unit's head, the day. An empty one
    // asks nothing.
    let mut print_last = last_row.max(first_row);
    if part.fill_in && part.last_part && !part.rows.is_empty() {
        print_last = sign_off(ws, print_last, last_col, st)?;
    }
    // The page header names unit, kind and period: the title rows
    // above the table do not print (cut across column strips).
    ws.set_print_area(first_row, 0, print_last, last_col)?;
    let printed: usize = fit.widths.iter().map(|w| w + fit.pad).sum();
    tracing::debug!(sheet = %sheet_name, printed, widths = ?fit.widths, "print width");
    let fit_width = if part.fill_in {
        FILL_IN_FIT_WIDTH
    } else {
        PRINT_FIT_WIDTH
    };
    if printed > fit_width {
        // The columns that identify a row print on every page: up to
        // the account, or the first.
        ws.set_repeat_columns(0, key_cols.max(1) - 1)?;
    } else {
        ws.set_print_fit_to_pages(1, 0);
    }
    ws.set_repeat_rows(first_row, first_row)?;
    Ok(())
}

/// A table sheet's page header: the unit, the period, and in the centre
/// the workbook's kind and the sheet when it is another name; a second
/// review says so on every page.
fn table_page_header(model: &ReportModel, sheet_name: &str) -> String {
    let centre = if let Some(doc) = model.chief_document() {
        if sheet_name.starts_with(doc) {
            escape_header(sheet_name)
        } else {
            format!("{} {}", escape_header(doc), escape_header(sheet_name))
        }
    } else if model.second_review().is_some() {
        format!("專責人員本人帳號覆核 {}", escape_header(sheet_name))
    } else if sheet_name.starts_with(model.kind.title()) {
        escape_header(sheet_name)
    } else {
        format!(
            "{} {}",
            escape_header(model.kind.title()),
            escape_header(sheet_name)
        )
    };
    format!(
        "&L{}&C{centre}&R{}",
        escape_header(&model.unit_name),
        escape_header(&model.period_label)
    )
}

/// The drop-down or date check of an input column; free text has none.
fn input_validation(input: Input) -> Result<Option<DataValidation>, XlsxError> {
    Ok(match input {
        Input::Choice(list) => Some(
            DataValidation::new()
                .allow_list_strings(list)?
                .set_error_message("請由下拉選單選擇")?,
        ),
        Input::Date => Some(
            DataValidation::new().allow_date(DataValidationRule::GreaterThan(
                ExcelDateTime::from_ymd(2000, 1, 1)?,
            )),
        ),
        Input::Text => None,
    })
}

/// Validates a table's input columns and protects the rest of the sheet;
/// sorting and filtering stay possible.
fn protect_inputs(ws: &mut Worksheet, part: &TablePart<'_>) -> Result<(), XlsxError> {
    for (j, (_, input)) in part.inputs.iter().enumerate() {
        if let Some(dv) = input_validation(*input)? {
            let c = part.input_col(j);
            ws.add_data_validation(HEADER_ROW + 1, c, part.last_row(), c, &dv)?;
        }
    }
    let options = ProtectionOptions {
        use_autofilter: true,
        sort: true,
        format_columns: true,
        ..ProtectionOptions::default()
    };
    ws.protect_with_options(&options);
    Ok(())
}

/// Severity colours wherever a 嚴重度 column is.
fn colour_severities(
    ws: &mut Worksheet,
    headers: &[String],
    last_row: u32,
) -> Result<(), XlsxError> {
    let Some(c) = headers.iter().position(|h| h == "嚴重度") else {
        return Ok(());
    };
    for (word, rgb) in SEVERITY_COLOURS {
        let cf = ConditionalFormatText::new()
            .set_rule(ConditionalFormatTextRule::BeginsWith(word.into()))
            .set_format(Format::new().set_background_color(Color::RGB(rgb)));
        let c = c as u16;
        ws.add_conditional_format(HEADER_ROW + 1, c, last_row.max(HEADER_ROW + 1), c, &cf)?;
    }
    Ok(())
}

/// The label on 摘要 of the unit a workbook is for, beside [`unit_cell`].
pub const UNIT_LABEL: &str = "機關";

/// The label on 摘要 of the run that made a workbook: a return is matched
/// to its run by it.
pub const RUN_ID_LABEL: &str = "執行編號";

/// The label on 摘要 of the sample's digest: a returned worksheet must
/// carry its run's.
pub const SAMPLE_DIGEST_LABEL: &str = "樣本摘要值";

/// The unit as 摘要 shows it beside [`UNIT_LABEL`]: `name（id）`.
pub fn unit_cell(name: &str, id: &str) -> String {
    format!("{name}（{id}）")
}

/// The unit's id in a [`unit_cell`], if the cell is one.
pub fn unit_id_in(cell: &str) -> Option<&str> {
    cell.rsplit_once('（')
        .and_then(|(_, r)| r.strip_suffix('）'))
}

/// The label on 摘要 of who audits the worksheet: the officer, or (a
/// second review) someone else, of the officers' own accounts. A return is
/// matched to the workbook it answers by it.
pub const REVIEW_LABEL: &str = "抽查人";

/// What [`REVIEW_LABEL`] says of a second review, before who reviews
/// which accounts.
pub const SECOND_REVIEW: &str = "覆核";

/// The label on 摘要 of who fills in a workbook the chief administrator
/// returns (the officer review, an external audit's record): a return is
/// filed under the chief's key by it.
pub const CHIEF_LABEL: &str = "填復人";

/// What [`CHIEF_LABEL`] says.
pub const CHIEF_FILLS: &str = "衛生局總管理者";

/// The queries of an item on 異常查詢明細 that print: the first few show
/// what the item is; a person reads the rest on screen, where they are
/// grouped and collapsed (one account's 279 queries printed 10 pages).
pub const DETAILS_PRINTED: usize = 5;

/// Collapses the rows of each item (a run of rows with the same type and
/// account) after its first [`DETAILS_PRINTED`] on the detail sheets
/// `names` (hidden rows do not print; the outline's ＋ shows them).
fn collapse_details(
    wb: &mut Workbook,
    names: &[(String, Vec<usize>)],
    d: &SheetTable,
    st: &Styles,
) -> Result<(), XlsxError> {
    let key = |r: &Vec<Cell>| (r.first().cloned(), r.get(1).cloned());
    for ((name, _), rows) in names.iter().zip(d.rows.chunks(st.rows_per_sheet.max(1))) {
        let ws = wb.worksheet_from_name(name)?;
        let mut start = 0;
        while start < rows.len() {
            let k = key(&rows[start]);
            let len = rows[start..].iter().take_while(|r| key(r) == k).count();
            if len > DETAILS_PRINTED {
                let first = HEADER_ROW + 1 + (start + DETAILS_PRINTED) as u32;
                let last = HEADER_ROW + (start + len) as u32;
                ws.group_rows_collapsed(first, last)?;
            }
            start += len;
        }
    }
    Ok(())
}

/// `&` starts a code in Excel headers and footers.
fn escape_header(s: &str) -> String {
    s.replace('&', "&&")
}

/// Writes a `label: value` list from `row`; returns the next free row.
fn write_pairs(
    ws: &mut Worksheet,
    mut row: u32,
    pairs: &[(&str, Cell)],
    st: &Styles,
) -> Result<u32, XlsxError> {
    for (label, value) in pairs {
        ws.write_string_with_format(row, 0, *label, &st.label)?;
        match value {
            Cell::Text(s) if !looks_like_formula(s) => {
                ws.write_string_with_format(row, 1, masked(s), &st.wrap)?;
                // Long text wraps in the value column (70 to 90 characters
                // wide where pairs are written) with the height it needs.
                if display_width(s) > PAIR_WIDTH {
                    ws.set_row_height(row, wrapped_height(s, PAIR_WIDTH))?;
                }
            }
            other => put(ws, row, 1, other, st)?,
        }
        row += 1;
    }
    Ok(row)
}

/// The narrowest value column `write_pairs` writes into.
const PAIR_WIDTH: usize = 70;

/// Writes a small table at (`row`, `col`); returns the next free row.
fn write_block(
    ws: &mut Worksheet,
    row: u32,
    col: u16,
    table: &SheetTable,
    st: &Styles,
) -> Result<u32, XlsxError> {
    for (c, h) in table.headers.iter().enumerate() {
        ws.write_string_with_format(row, col + c as u16, h, &st.header)?;
    }
    for (i, r) in table.rows.iter().enumerate() {
        for (c, cell) in r.iter().enumerate() {
            put(ws, row + 1 + i as u32, col + c as u16, cell, st)?;
        }
    }
    Ok(row + 1 + table.rows.len() as u32)
}

fn summary(wb: &mut Workbook, m: &ReportModel, st: &Styles) -> Result<(), XlsxError> {
    let ws = wb.add_worksheet();
    ws.set_name(SheetName::Summary.as_str())?;
    // It prints one landscape page wide, whatever it holds.
    print_one_page_wide(ws);
    ws.set_column_width(0, 36)?;
    ws.set_column_width(1, 80)?;
    ws.set_column_width(2, 10)?;
    ws.set_column_width(3, 8)?;
    ws.write_string_with_format(0, 0, summary_title(m), &st.title)?;
    let row = write_warnings_and_actions(ws, m, st)?;
    let row = write_identity(ws, row, m, st)?;
    // A workbook the chief administrator fills in holds that alone: the
    // run's findings and data quality are the city-wide workbook's.
    if m.chief_document().is_some() {
        return Ok(());
    }
    let row = write_findings_and_quality(ws, row, m, st)?;
    summary_charts(ws, row, m)
}

/// The summary's title: the workbook's kind (or the chief's document) and
/// whose it is.
fn summary_title(m: &ReportModel) -> String {
    if let Some(doc) = m.chief_document() {
        format!("健保WebIR查詢稽核 {doc}：{}", m.unit_name)
    } else if m.city_wide() {
        format!(
            "健保WebIR查詢稽核 {} 全市彙整（{}）",
            m.kind.title(),
            m.unit_name
        )
    } else {
        format!("健保WebIR查詢稽核 {}：{}", m.kind.title(), m.unit_name)
    }
}

/// The withheld checks in red, then what the reader must do and by when;
/// returns the next free row.
fn write_warnings_and_actions(
    ws: &mut Worksheet,
    m: &ReportModel,
    st: &Styles,
) -> Result<u32, XlsxError> {
    let mut row = 2;
    for w in &m.warnings {
        ws.merge_range(row, 0, row, 3, &masked(w), &st.warning)?;
        ws.set_row_height(row, wrapped_height(w, 36 + 80 + 10 + 8))?;
        row += 1;
    }
    if !m.warnings.is_empty() {
        row += 1;
    }
    ws.write_string_with_format(row, 0, "應辦事項", &st.label)?;
    row += 1;
    for (i, a) in m.actions.iter().enumerate() {
        ws.write_string_with_format(row, 0, format!("{}.", i + 1), &st.text)?;
        ws.write_string_with_format(row, 1, masked(a), &st.wrap)?;
        ws.set_row_height(row, wrapped_height(a, 80))?;
        row += 1;
    }
    Ok(row + 1)
}

/// Who fills in or audits a workbook, where the summary says it: a
/// unit's sample worksheet, its second review, or the chief
/// administrator's.
fn auditor_pair(d: &Document) -> Option<(&'static str, Cell)> {
    match d {
        Document::SampleAudit { .. } => Some((REVIEW_LABEL, Cell::from("專責人員"))),
        Document::SecondReview { review: r, .. } => Some((
            REVIEW_LABEL,
            Cell::Text(format!(
                "{SECOND_REVIEW}：由{}覆核專責人員本人帳號 {}",
                r.reviewer,
                r.accounts.join("、")
            )),
        )),
        // The chief administrator fills it in and returns it.
        Document::OfficerReview { .. } | Document::ExternalRecord { .. } => {
            Some((CHIEF_LABEL, Cell::from(CHIEF_FILLS)))
        }
        Document::QueryCheck { .. }
        | Document::AccountReview { .. }
        | Document::PasswordCheck { .. }
        | Document::InternalAudit { .. }
        | Document::CityWide(_) => None,
    }
}

/// Whose workbook it is, of which run, on what rule, and its notes;
/// returns the next free row.
fn write_identity(
    ws: &mut Worksheet,
    row: u32,
    m: &ReportModel,
    st: &Styles,
) -> Result<u32, XlsxError> {
    let chain = m.chain_head.clone().map_or_else(
        || "（尚無紀錄）".to_owned(),
        |h| format!("{h}（製作本工作簿時之最新紀錄，稽核人員可向衛生局查驗證據鏈）"),
    );
    let pairs: Vec<(&str, Cell)> = [
        (UNIT_LABEL, Cell::Text(unit_cell(&m.unit_name, &m.unit_id))),
        ("期間", Cell::Text(m.period_label.clone())),
        (RUN_ID_LABEL, Cell::Text(m.run_id.clone())),
    ]
    .into_iter()
    .chain(auditor_pair(&m.document))
    .chain([
        ("產製時間", Cell::Time(m.generated_at)),
        ("依據", Cell::Text(m.rule().into())),
        ("證據鏈", Cell::Text(chain)),
    ])
    .collect();
    let mut row = write_pairs(ws, row, &pairs, st)?;
    for n in &m.notes {
        ws.write_string_with_format(row, 0, "注意", &st.note)?;
        ws.write_string_with_format(row, 1, masked(n), &st.note)?;
        // A long note wraps in its column and prints whole.
        ws.set_row_height(row, wrapped_height(n, 80))?;
        row += 1;
    }
    Ok(row)
}

/// The sample's seed and digests, the findings' counts, the city-wide
/// units' pointer and the inputs' quality; returns the next free row.
fn write_findings_and_quality(
    ws: &mut Worksheet,
    mut row: u32,
    m: &ReportModel,
    st: &Styles,
) -> Result<u32, XlsxError> {
    if let Some(s) = m.sample() {
        row += 1;
        ws.write_string_with_format(row, 0, "抽樣", &st.label)?;
        row = write_pairs(
            ws,
            row + 1,
            &[
                (
                    "種子",
                    Cell::Text(format!("{}（{}）", s.seed, s.source_text())),
                ),
                ("抽籤次數", Cell::Int(i64::from(s.draw_number))),
                ("母體摘要值", Cell::Text(s.population_digest.clone())),
                (SAMPLE_DIGEST_LABEL, Cell::Text(s.sample_digest.clone())),
            ],
            st,
        )?;
    }
    row += 1;
    ws.write_string_with_format(row, 0, "發現統計", &st.label)?;
    row = write_block(ws, row + 1, 0, &m.by_severity, st)? + 1;
    row = write_block(ws, row, 0, &m.by_code, st)? + 1;
    if let Document::CityWide(c) = &m.document {
        // The units' table is wide: it has a sheet of its own, where its
        // columns get their width and it prints with page setup.
        ws.write_string_with_format(row, 0, SheetName::Units.as_str(), &st.label)?;
        ws.write_string_with_format(
            row,
            1,
            format!(
                "{} 個單位之帳號、發現、最近抽查及回收情形，見「各單位」工作表",
                c.units.rows.len()
            ),
            &st.wrap,
        )?;
        row += 2;
    }
    ws.write_string_with_format(row, 0, "資料品質", &st.label)?;
    ws.write_string_with_format(row, 1, masked(&m.quality), &st.wrap)?;
    // Neither Excel nor LibreOffice grows a row for wrapped text it did
    // not lay out itself: give the line the height it needs to print.
    ws.set_row_height(row, wrapped_height(&m.quality, 80))?;
    Ok(row + 2)
}

/// The counts among `cells` (a chart's data), other cells counting none.
fn counts(cells: &[Cell]) -> impl Iterator<Item = i64> + '_ {
    cells
        .iter()
        .map(|c| if let Cell::Int(n) = c { *n } else { 0 })
}

/// The summary's charts from `row`, on a page of their own; their data
/// is on the 圖表資料 sheet, written after this one.
fn summary_charts(ws: &mut Worksheet, mut row: u32, m: &ReportModel) -> Result<(), XlsxError> {
    let sev = &m.severity_by_agency;
    // The most findings of one agency: no chart of nothing, and a count
    // axis in whole numbers.
    let most = sev.rows.iter().map(|r| counts(r).sum::<i64>()).max();
    let most = most.unwrap_or(0);
    if most <= 0 {
        return Ok(());
    }
    let data = CHART_DATA;
    let (end, top) = chart_rows(m);
    ws.set_page_breaks(&[row])?;
    let mut chart = Chart::new(ChartType::ColumnStacked);
    chart.title().set_name("各機關發現件數（依嚴重度）");
    for s in 1..sev.headers.len() as u16 {
        let series = chart
            .add_series()
            .set_name((data, 0, s))
            .set_categories((data, 1, 0, end, 0))
            .set_values((data, 1, s, end, s));
        if let Some((_, rgb)) = SEVERITY_COLOURS
            .iter()
            .find(|(w, _)| *w == sev.headers[usize::from(s)])
        {
            series.set_format(
                ChartFormat::new()
                    .set_solid_fill(ChartSolidFill::new().set_color(Color::RGB(*rgb))),
            );
        }
    }
    whole_numbers(chart.y_axis(), most);
    ws.insert_chart(row, 0, &chart)?;
    row += 16;
    let q = &m.queries_by_month;
    if q.rows.is_empty() || q.headers.len() <= 1 {
        return Ok(());
    }
    let end2 = top + q.rows.len() as u32;
    let mut chart = Chart::new(ChartType::Line);
    chart.title().set_name("各機關每月查詢次數");
    for s in 1..q.headers.len() as u16 {
        chart
            .add_series()
            .set_name((data, top, s))
            .set_categories((data, top + 1, 0, end2, 0))
            .set_values((data, top + 1, s, end2, s));
    }
    let peak = q.rows.iter().flat_map(|r| counts(r)).max().unwrap_or(0);
    whole_numbers(chart.y_axis(), peak);
    ws.insert_chart(row, 0, &chart)?;
    Ok(())
}

/// A count axis labelled in whole numbers: a step of one where the counts
/// are few (an axis of 0, 0.5, 1, 1.5 counted half findings).
fn whole_numbers(axis: &mut rust_xlsxwriter::ChartAxis, most: i64) {
    axis.set_num_format("#,##0").set_min(0);
    if most <= 10 {
        axis.set_major_unit(1);
    }
}

/// Each severity's colour, the same in every sheet's 嚴重度 column and in
/// the summary's chart.
const SEVERITY_COLOURS: [(&str, u32); 4] = [
    ("嚴重", 0xE06666),
    ("高", 0xF6B26B),
    ("中", 0xFFD966),
    ("低", 0xB7B7B7),
];

/// The sheet holding the summary charts' numbers.
const CHART_DATA: &str = SheetName::ChartData.as_str();

/// Where the blocks of 圖表資料 are (0-based rows): the findings block's
/// header is row 0 and its last data row is the first value returned; the
/// monthly block's header is the second, after one blank row. The charts
/// and the sheet both take their rows from here.
fn chart_rows(m: &ReportModel) -> (u32, u32) {
    let last = m.severity_by_agency.rows.len() as u32;
    (last, last + 2)
}

fn chart_data(wb: &mut Workbook, m: &ReportModel, st: &Styles) -> Result<(), XlsxError> {
    if m.severity_by_agency.rows.is_empty() {
        return Ok(());
    }
    let ws = wb.add_worksheet();
    ws.set_name(CHART_DATA)?;
    ws.set_column_width(0, 40)?;
    // Agency names head the month block's columns: they wrap in a
    // column wide enough for a number, and the sheet prints one page wide.
    let cols = m
        .severity_by_agency
        .headers
        .len()
        .max(m.queries_by_month.headers.len());
    for c in 1..cols {
        ws.set_column_width(c as u16, 14)?;
    }
    print_one_page_wide(ws);
    ws.set_header(format!(
        "&L{}&C{}&R{}",
        escape_header(&m.unit_name),
        CHART_DATA,
        escape_header(&m.period_label)
    ));
    let (_, months) = chart_rows(m);
    write_block(ws, 0, 0, &m.severity_by_agency, st)?;
    if !m.queries_by_month.rows.is_empty() {
        write_block(ws, months, 0, &m.queries_by_month, st)?;
        let widest = m
            .queries_by_month
            .headers
            .iter()
            .map(|h| display_width(h))
            .max()
            .unwrap_or(0);
        ws.set_row_height(
            months,
            wrapped_height(&"字".repeat(widest.div_ceil(2)), 14 * 11 / 10 + 2),
        )?;
    }
    Ok(())
}

/// How a ceremony's seed reached the tool, in words.
fn via_text(via: &str) -> &'static str {
    match via {
        "command" => "以 webir-audit seed 指令登錄",
        "inbox" => "收件匣種子檔",
        _ => "逾時未登錄，系統亂數備援",
    }
}

/// How a seed came, in words (`given` or `os`).
pub fn seed_source(s: &str) -> &'static str {
    match s {
        "given" => "公開抽籤提供",
        _ => "系統亂數產生",
    }
}

fn sampling_record(wb: &mut Workbook, s: &SampleSection, st: &Styles) -> Result<(), XlsxError> {
    let ws = wb.add_worksheet();
    ws.set_name(SheetName::SamplingRecord.as_str())?;
    print_one_page_wide(ws);
    // Column A holds the labels and, below, the strata's agency names and
    // the input files' paths: wide enough for both. B and D hold the
    // 64-character digests.
    ws.set_column_width(0, 42)?;
    ws.set_column_width(1, 68)?;
    ws.set_column_width(2, 12)?;
    ws.set_column_width(3, 68)?;
    ws.write_string_with_format(0, 0, "抽樣紀錄（可依公開種子重現）", &st.title)?;
    let mut row = write_pairs(
        ws,
        2,
        &[
            ("規格版本", Cell::Text(s.spec_version.clone())),
            ("種子", Cell::Text(s.seed.clone())),
            ("種子來源", Cell::Text(s.source_text())),
            ("抽籤次數", Cell::Int(i64::from(s.draw_number))),
            ("抽籤時間", Cell::Text(s.drawn_at.clone())),
            (
                "母體凍結時間",
                Cell::Text(s.frozen_at.clone().unwrap_or_else(|| "未凍結".into())),
            ),
            (
                "母體承諾寄出時間",
                Cell::Text(s.ceremony.as_ref().map_or_else(
                    || "未辦理抽籤儀式（種子於抽籤時產生或提供）".into(),
                    |c| format!("{}（寄衛生局總管理者及政風單位）", c.committed_at),
                )),
            ),
            (
                "種子登錄",
                Cell::Text(s.ceremony.as_ref().map_or_else(
                    || "—".into(),
                    |c| format!("{}，{}（{}）", c.seed_given_at, c.seed_given_by, via_text(&c.via)),
                )),
            ),
            ("期間起", Cell::Text(s.period_start.clone())),
            ("期間迄（不含）", Cell::Text(s.period_end.clone())),
            ("時區", Cell::Text(s.timezone.clone())),
            ("帳號抽樣比例（%）", Cell::Int(i64::from(s.percent))),
            ("每帳號抽查筆數", Cell::Int(i64::from(s.per_account))),
            (
                "母體筆數（貴機關）",
                s.unit_population_records
                    .map_or(Cell::Text("—".into()), |n| Cell::Int(n as i64)),
            ),
            ("母體筆數（全市）", Cell::Int(s.population_records as i64)),
            ("母體摘要值 SHA-256", Cell::Text(s.population_digest.clone())),
            ("樣本摘要值 SHA-256", Cell::Text(s.sample_digest.clone())),
            (
                "重現方式",
                Cell::Text(
                    "任何人得依公開之種子及抽樣規格（規格版本如上）重新抽樣，所得樣本摘要值應與上列相同；證據包（含驗證程式）請向衛生局申請"
                        .into(),
                ),
            ),
        ],
        st,
    )?;
    row += 1;
    ws.write_string_with_format(row, 0, "分層（各機關）", &st.label)?;
    row = write_block(ws, row + 1, 0, &s.strata, st)? + 1;
    ws.write_string_with_format(row, 0, "輸入檔案", &st.label)?;
    write_block(ws, row + 1, 0, &s.inputs, st)?;
    Ok(())
}

/// Writes the sign-off ([`SIGN_OFF`]) below a table ending on row
/// `after`, its answers merged up to column `last_col` (at most the
/// sixth); returns its last row.
fn sign_off(ws: &mut Worksheet, after: u32, last_col: u16, st: &Styles) -> Result<u32, XlsxError> {
    let value_last = last_col.min(5);
    let mut last = after;
    for (r, (label, input)) in (after + 2..).zip(SIGN_OFF) {
        ws.set_row_height(r, 30)?;
        ws.merge_range(r, 0, r, 1, label, &st.header)?;
        ws.merge_range(r, 2, r, value_last, "", st.input_format(input))?;
        if let Some(dv) = input_validation(input)? {
            ws.add_data_validation(r, 2, r, 2, &dv)?;
        }
        last = r;
    }
    Ok(last)
}

/// The investigation record: 摘要 (title, what to do, 執行編號, 機關) and
/// 調查紀錄, its input columns unlocked, with drop-downs, on a protected
/// sheet that prints one page wide with its header on every page.
pub fn investigation(i: &super::Investigation<'_>) -> Result<Vec<u8>, XlsxError> {
    let st = Styles::new();
    let mut wb = Workbook::new();
    wb.set_properties(
        &DocProperties::new()
            .set_author("webir-audit")
            .set_custom_property(super::TOKEN_PROPERTY, i.return_token.as_str()),
    );
    investigation_summary(&mut wb, i, &st)?;
    investigation_record(&mut wb, i, &st)?;
    wb.save_to_buffer()
}

/// The investigation record's 摘要: its title, what to do, and whose it
/// is (機關, 期間, 執行編號, 期限).
fn investigation_summary(
    wb: &mut Workbook,
    i: &super::Investigation<'_>,
    st: &Styles,
) -> Result<(), XlsxError> {
    let ws = wb.add_worksheet();
    ws.set_name(SheetName::Summary.as_str())?;
    print_one_page_wide(ws);
    ws.set_column_width(0, 20)?;
    ws.set_column_width(1, 90)?;
    ws.write_string_with_format(
        0,
        0,
        format!("健保WebIR查詢稽核 {}：{}", i.title, i.unit_name),
        &st.title,
    )?;
    let todo = &i.todo;
    ws.write_string_with_format(2, 0, "應辦事項", &st.label)?;
    ws.write_string_with_format(2, 1, todo, &st.wrap)?;
    ws.set_row_height(2, wrapped_height(todo, 90))?;
    write_pairs(
        ws,
        3,
        &[
            (UNIT_LABEL, Cell::Text(unit_cell(i.unit_name, i.unit_id))),
            ("期間", Cell::Text(i.period_label.to_owned())),
            (RUN_ID_LABEL, Cell::Text(i.run_id.to_owned())),
            ("期限", Cell::Text(i.due_on.to_owned())),
        ],
        st,
    )?;
    Ok(())
}

/// The investigation record's sheet of its layout: one row per finding,
/// the inputs validated, signed below, protected.
fn investigation_record(
    wb: &mut Workbook,
    i: &super::Investigation<'_>,
    st: &Styles,
) -> Result<(), XlsxError> {
    let l = i.layout;
    let ws = wb.add_worksheet();
    ws.set_name(l.sheet)?;
    ws.write_string_with_format(
        0,
        0,
        format!("{} {} {}", i.unit_name, i.period_label, l.sheet),
        &st.title,
    )?;
    let first = HEADER_ROW;
    for (c, h) in l.headers().iter().enumerate() {
        ws.write_string_with_format(first, c as u16, *h, &st.header)?;
        ws.set_column_width(c as u16, 14)?;
    }
    // What was found and what is written of it: the long texts.
    ws.set_column_width((l.tool.len() - 1) as u16, 30)?;
    for (j, (_, input)) in l.inputs.iter().enumerate() {
        if *input == Input::Text {
            ws.set_column_width((l.tool.len() + j) as u16, 24)?;
        }
    }
    write_investigation_rows(ws, i, st)?;
    let last = first + i.rows.len() as u32;
    if !i.rows.is_empty() {
        for (j, (_, input)) in l.inputs.iter().enumerate() {
            if let Some(dv) = input_validation(*input)? {
                let c = (l.tool.len() + j) as u16;
                ws.add_data_validation(first + 1, c, last, c, &dv)?;
            }
        }
    }
    // Signed once, below the table, as every sheet filled in.
    sign_off(ws, last, (l.headers().len() - 1) as u16, st)?;
    ws.set_freeze_panes(first + 1, 2)?;
    print_one_page_wide(ws);
    ws.set_repeat_rows(first, first)?;
    ws.set_header(format!(
        "&L{}&C{}&R{}",
        escape_header(i.unit_name),
        escape_header(i.title),
        escape_header(i.period_label)
    ));
    ws.set_footer(FOOTER);
    ws.protect_with_options(&ProtectionOptions {
        format_columns: true,
        format_rows: true,
        ..ProtectionOptions::default()
    });
    Ok(())
}

/// The investigation record's rows: its number, the tool's columns (what
/// was found wraps in its column, the row as tall as it needs), and the
/// blank inputs.
fn write_investigation_rows(
    ws: &mut Worksheet,
    i: &super::Investigation<'_>,
    st: &Styles,
) -> Result<(), XlsxError> {
    let l = i.layout;
    let width = |c: usize| {
        if c + 1 == l.tool.len() { 30 } else { 14 }
    };
    for (n, r) in i.rows.iter().enumerate() {
        let row = HEADER_ROW + 1 + n as u32;
        ws.write_number_with_format(row, 0, (n + 1) as f64, &st.int)?;
        let mut lines = 1;
        for (c, v) in r.iter().enumerate() {
            let c = c + 1;
            if looks_like_formula(v) {
                put(ws, row, c as u16, &Cell::Text(v.clone()), st)?;
            } else {
                ws.write_string_with_format(row, c as u16, masked(v), &st.wrap)?;
            }
            lines = lines.max(printed_lines(v, width(c)));
        }
        ws.set_row_height(row, 16.0 * lines as f64)?;
        write_input_blanks(ws, row, l.tool.len() as u16, l.inputs, st)?;
    }
    Ok(())
}

/// Prints a sheet landscape on A4, one page wide.
fn print_one_page_wide(ws: &mut Worksheet) {
    ws.set_landscape();
    ws.set_paper_size(9); // A4
    ws.set_print_fit_to_pages(1, 0);
}

pub fn render(m: &ReportModel) -> Result<Vec<u8>, XlsxError> {
    render_with(m, Styles::new())
}

/// [`render`] with tables split every `rows` rows (tests use a small one).
#[cfg(test)]
pub fn render_split(m: &ReportModel, rows: usize) -> Result<Vec<u8>, XlsxError> {
    render_with(
        m,
        Styles {
            rows_per_sheet: rows,
            ..Styles::new()
        },
    )
}

/// A sheet a kind of workbook has besides the summary, the data-quality
/// sheets and the chart data every workbook has.
enum Sheet<'a> {
    Units(&'a SheetTable),
    Collection(&'a SheetTable),
    /// The sample worksheet; `true`: a second review's.
    Worksheet(&'a SampleSection, bool),
    /// 帳號清查; `true`: the city-wide review of officer accounts.
    Accounts(&'a SheetTable, bool),
    StalePasswords(&'a SheetTable),
    Evidence(&'a SheetTable),
    /// 外部稽核紀錄: the chief administrator's record of one unit.
    ExternalRecord(&'a SheetTable),
    Selection(&'a SheetTable),
    ByAccount(&'a SheetTable),
    /// 異常查詢; `true`: a unit's, to fill in.
    Queries(&'a Queries, bool),
    AskedBefore(&'a SheetTable),
    Details(&'a SheetTable),
    Rejects(&'a SheetTable),
    SamplingRecord(&'a SampleSection),
}

/// The sheets of `d` in the order they print: those before the
/// data-quality sheets and those after.
fn sheets_of(d: &Document) -> (Vec<Sheet<'_>>, Vec<Sheet<'_>>) {
    fn queries(q: &Queries, fill: bool) -> Vec<Sheet<'_>> {
        std::iter::once(Sheet::Queries(q, fill))
            .chain(q.details.as_ref().map(Sheet::Details))
            .collect()
    }
    match d {
        Document::SampleAudit { sample, queries: q } => {
            let mut before = vec![Sheet::Worksheet(sample, false)];
            before.extend(queries(q, true));
            (before, vec![Sheet::SamplingRecord(sample)])
        }
        Document::SecondReview { sample, .. } => (
            vec![Sheet::Worksheet(sample, true)],
            vec![Sheet::SamplingRecord(sample)],
        ),
        Document::QueryCheck { queries: q } => (queries(q, true), vec![]),
        Document::AccountReview { accounts } => (vec![Sheet::Accounts(accounts, false)], vec![]),
        Document::PasswordCheck { stale_passwords } => {
            (vec![Sheet::StalePasswords(stale_passwords)], vec![])
        }
        Document::InternalAudit {
            evidence,
            queries: q,
            asked_before,
        } => {
            let mut before = vec![Sheet::Evidence(evidence), Sheet::Queries(q, true)];
            before.extend(asked_before.as_ref().map(Sheet::AskedBefore));
            before.extend(q.details.as_ref().map(Sheet::Details));
            (before, vec![])
        }
        Document::OfficerReview { accounts } => (vec![Sheet::Accounts(accounts, true)], vec![]),
        Document::ExternalRecord { record } => (vec![Sheet::ExternalRecord(record)], vec![]),
        Document::CityWide(c) => {
            let mut before = vec![Sheet::Units(&c.units)];
            before.extend(c.collection.as_ref().map(Sheet::Collection));
            before.extend(c.selection.as_ref().map(Sheet::Selection));
            before.push(Sheet::ByAccount(&c.by_account));
            if let Some(q) = &c.queries {
                before.extend(queries(q, false));
            }
            let mut after = vec![Sheet::Rejects(&c.rejects)];
            after.extend(c.sample.as_ref().map(Sheet::SamplingRecord));
            (before, after)
        }
    }
}

/// A sheet's title: whose, which period, what.
fn heading(m: &ReportModel, sheet: &str) -> String {
    format!("{} {} {}", m.unit_name, m.period_label, sheet)
}

fn write_sheet(
    wb: &mut Workbook,
    sheet: &Sheet<'_>,
    m: &ReportModel,
    st: &Styles,
) -> Result<(), XlsxError> {
    let table = |wb: &mut Workbook, name, title: &str, t: &SheetTable, inputs: Option<Inputs>| {
        write_table(wb, name, &heading(m, title), t, inputs, m, st).map(|_| ())
    };
    match sheet {
        Sheet::Units(t) => {
            let title = "各單位（帳號、發現、最近抽查及回收情形）";
            table(wb, SheetName::Units, title, t, None)
        }
        Sheet::Collection(t) => {
            let title = "回收狀況（各單位應回傳事項、期限及回傳情形）";
            table(wb, SheetName::Collection, title, t, None)
        }
        Sheet::Worksheet(s, review) => {
            let title = if *review {
                "抽查工作底稿（專責人員本人帳號之覆核：黃色欄位由覆核人員填寫）"
            } else {
                "抽查工作底稿（黃色欄位由稽核人員填寫）"
            };
            let inputs = Some(SAMPLE_WORKSHEET.inputs);
            table(wb, SheetName::SampleWorksheet, title, &s.worksheet, inputs)
        }
        Sheet::Accounts(t, officers) => {
            let (name, title) = if *officers {
                let title = "專責人員帳號清查（管理要點第四點第五款）";
                (SheetName::OfficerAccounts, title)
            } else {
                let title = "帳號清查（請逐一確認並填寫處理結果）";
                (SheetName::AccountReview, title)
            };
            table(wb, name, title, t, Some(ACCOUNT_REVIEW_INPUTS))
        }
        Sheet::StalePasswords(t) => {
            let title = "密碼逾期帳號（請通知持有人立即變更密碼）";
            table(wb, SheetName::StalePasswords, title, t, None)
        }
        Sheet::Evidence(t) => {
            let title = "內部稽核（系統查得資料，請逐項查核）";
            table(
                wb,
                SheetName::InternalAudit,
                title,
                t,
                Some(INTERNAL_AUDIT_INPUTS),
            )
        }
        Sheet::ExternalRecord(t) => {
            let title = "外部稽核紀錄（系統查得資料，請逐項查核）";
            table(
                wb,
                SheetName::ExternalRecord,
                title,
                t,
                Some(INTERNAL_AUDIT_INPUTS),
            )
        }
        Sheet::Selection(t) => {
            let name = SheetName::ExternalSelection;
            table(wb, name, name.as_str(), t, None)
        }
        Sheet::ByAccount(t) => {
            let title = "帳號彙整（依嚴重程度排序，含下一步）";
            table(wb, SheetName::ByAccount, title, t, None)
        }
        // The city-wide copy is the Health Bureau's reading copy; units
        // write down what they did.
        Sheet::Queries(q, fill) => {
            let name = SheetName::Queries;
            // Where a kind has more than the sheet lists, its title says so.
            let title = if q.not_listed.is_empty() {
                name.as_str().to_owned()
            } else {
                format!("{}（{}）", name.as_str(), q.not_listed.join("；"))
            };
            table(
                wb,
                name,
                &title,
                &q.findings,
                fill.then_some(FOLLOW_UP_INPUTS),
            )
        }
        Sheet::AskedBefore(t) => {
            let title = "已列管異常查詢（先前工作底稿已詢問，本表不再詢問）";
            table(wb, SheetName::AskedBefore, title, t, None)
        }
        Sheet::Details(t) => query_details(wb, t, m, st),
        Sheet::Rejects(t) => {
            let name = SheetName::Rejects;
            table(wb, name, name.as_str(), t, None)
        }
        Sheet::SamplingRecord(s) => sampling_record(wb, s, st),
    }
}

/// 異常查詢明細: the queries behind each rolled-up finding, the first few
/// of each printed and the rest collapsed.
fn query_details(
    wb: &mut Workbook,
    t: &SheetTable,
    m: &ReportModel,
    st: &Styles,
) -> Result<(), XlsxError> {
    let title = format!(
        "異常查詢明細（「異常查詢」逐帳號彙整之各筆查詢，供查閱；每項列印前 {DETAILS_PRINTED} 筆，其餘按左側「＋」展開）"
    );
    let name = SheetName::QueryDetails;
    let names = write_table(wb, name, &heading(m, &title), t, None, m, st)?;
    collapse_details(wb, &names, t, st)
}

fn render_with(m: &ReportModel, st: Styles) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let mut props = DocProperties::new()
        .set_title(format!(
            "健保WebIR查詢稽核 {} {}",
            m.kind.title(),
            m.unit_name
        ))
        .set_subject(m.period_label.clone())
        .set_company("高雄市政府")
        .set_author("webir-audit")
        // The run's time, not the moment of writing: the same run gives
        // the same bytes, so the seal and the evidence chain do too.
        .set_creation_datetime(&excel_time(&m.generated_at)?)
        .set_custom_property("webir_run_id", m.run_id.as_str())
        .set_custom_property("webir_unit_id", m.unit_id.as_str())
        .set_custom_property("webir_kind", m.kind.title());
    if let Some(t) = &m.return_token {
        props = props.set_custom_property(super::TOKEN_PROPERTY, t.as_str());
    }
    if let Some(s) = m.sample() {
        props = props
            .set_custom_property("webir_sample_digest", s.sample_digest.as_str())
            .set_custom_property("webir_seed", s.seed.as_str());
    }
    wb.set_properties(&props);

    summary(&mut wb, m, &st)?;
    let (before, after) = sheets_of(&m.document);
    for sheet in &before {
        write_sheet(&mut wb, sheet, m, &st)?;
    }
    if m.chief_document().is_some() {
        return wb.save_to_buffer();
    }
    let quality = write_table(
        &mut wb,
        SheetName::DataQuality,
        &heading(m, "資料品質：輸入檔案"),
        &m.files,
        None,
        m,
        &st,
    )?;
    if !m.not_checked.rows.is_empty() {
        let widths = quality.first().map_or(&[][..], |(_, w)| w.as_slice());
        not_checked_block(&mut wb, widths, &m.files, &m.not_checked, &st)?;
    }
    if let Some(o) = &m.orphans {
        // Asked here only where no 異常查詢 asks it (its row
        // 以不在帳號清冊之帳號查詢 is the same decision).
        let asked_here = match &m.document {
            Document::AccountReview { .. } | Document::PasswordCheck { .. } => true,
            Document::OfficerReview { .. } | Document::ExternalRecord { .. } => false,
            Document::SampleAudit { .. }
            | Document::SecondReview { .. }
            | Document::QueryCheck { .. }
            | Document::InternalAudit { .. }
            | Document::CityWide(_) => false,
        };
        write_table(
            &mut wb,
            SheetName::Orphans,
            &heading(m, "資料品質：查詢紀錄中有、帳號清冊中無之帳號"),
            o,
            asked_here.then_some(FOLLOW_UP_INPUTS),
            m,
            &st,
        )?;
    }
    for sheet in &after {
        write_sheet(&mut wb, sheet, m, &st)?;
    }
    chart_data(&mut wb, m, &st)?;
    wb.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::{printed_lines, wrapped_lines};

    #[test]
    fn wrapped_text_takes_the_lines_a_spreadsheet_gives_it() {
        // A path breaks after `/` and `-`: three lines in 24 columns,
        // though its 45 columns of width would fill two.
        assert_eq!(
            wrapped_lines("query_logs/webir_querylog_202604-05_big5.csv", 24),
            3
        );
        // Wide characters break anywhere: 12 of them (24 columns) in 10.
        assert_eq!(wrapped_lines(&"查".repeat(12), 10), 3);
        // A word longer than a line is cut; a line break starts a line.
        assert_eq!(wrapped_lines(&"x".repeat(25), 10), 3);
        assert_eq!(wrapped_lines("a\nb", 10), 2);
        assert_eq!(wrapped_lines("", 10), 1);
        assert_eq!(wrapped_lines("short", 10), 1);
    }

    #[test]
    fn printed_text_takes_the_lines_libreoffice_prints() {
        // Measured on the sample worksheet: 9 columns hold 5 CJK
        // characters, 11 hold 7; a minute under its approver fits 17.
        assert_eq!(printed_lines("毒品使用者追蹤輔導", 9), 2);
        assert_eq!(printed_lines("業務需求人員", 9), 2);
        assert_eq!(printed_lines("毒品使用者", 9), 1);
        assert_eq!(printed_lines("毒品使用者追蹤輔導", 11), 2);
        assert_eq!(printed_lines("毒品使用者追蹤", 11), 1);
        assert_eq!(printed_lines("蔡惠雅\n2026/05/12 10:08", 17), 2);
        // A query's second under its day, in 11.
        assert_eq!(printed_lines("2026/03/16 14:26:21", 11), 2);
    }
}
