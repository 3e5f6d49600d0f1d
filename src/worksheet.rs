//! The auditor's round trip: a completed 抽查工作底稿 comes back, is matched
//! to the run that produced it, checked against the workbook the archive
//! kept, and its answers are recorded. Rows answered 否 or 有 are the
//! confirmed anomalies the ethics unit must hear about.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use calamine::{Data, Reader, Xlsx};

use crate::archive;
use crate::report::layout::{self, Input, Layout, SAMPLE_WORKSHEET};
use crate::store::{Store, WorksheetAnswer, WorksheetReturn};

/// The sheet as `report` writes it.
const LAYOUT: Layout = SAMPLE_WORKSHEET;
/// Rows above the header: title, blank.
const HEADER_ROW: usize = layout::HEADER_ROW as usize;

/// What a returned worksheet said.
#[derive(Debug, Clone)]
pub struct Returned {
    pub run_id: String,
    pub unit_id: String,
    pub rows: usize,
    pub answered: usize,
    /// Rows answered 否 (form, approval, purpose) or 有 (anomaly).
    pub anomalies: Vec<WorksheetAnswer>,
    pub run_dir: PathBuf,
    /// SHA-256 of the returned file.
    pub file_sha256: String,
}

/// A cell as ingest reads it, trimmed: the same text for the original and
/// for a copy Excel saved again.
fn text(d: &Data) -> String {
    crate::ingest::read::cell_text(d).trim().to_owned()
}

/// A sheet's cells, row by row.
type Rows = Vec<Vec<Data>>;

/// The summary and the worksheet of a workbook.
fn sheets(path: &Path) -> Result<(Rows, Rows)> {
    let mut wb: Xlsx<_> = calamine::open_workbook(path)
        .with_context(|| format!("{}: not a workbook webir-audit can read", path.display()))?;
    let mut get = |name: &str| -> Result<Rows> {
        let range = wb
            .worksheet_range(name)
            .with_context(|| format!("{}: no sheet {name:?}", path.display()))?;
        Ok(range.rows().map(<[Data]>::to_vec).collect())
    };
    Ok((get("摘要")?, get(LAYOUT.sheet)?))
}

/// The value beside `label` in the summary sheet.
fn summary_value(summary: &[Vec<Data>], label: &str) -> Option<String> {
    summary
        .iter()
        .find(|r| r.first().map(text).as_deref() == Some(label))
        .and_then(|r| r.get(1).map(text))
}

/// Reads a returned worksheet, checks it against the archived original and
/// records its answers. Unknown or altered workbooks are refused.
pub fn ingest_returned(
    file: &Path,
    archive_dir: &Path,
    store: &mut Store,
    received_at: &str,
) -> Result<Returned> {
    let sheet = LAYOUT.sheet;
    let (summary, rows) = sheets(file)?;
    let run_id = summary_value(&summary, "執行編號").with_context(|| {
        format!(
            "{}: no 執行編號 on the summary: not a webir-audit worksheet",
            file.display()
        )
    })?;
    let unit_cell = summary_value(&summary, "機關").unwrap_or_default();
    let unit_id = unit_cell
        .rsplit_once('（')
        .and_then(|(_, r)| r.strip_suffix('）'))
        .with_context(|| {
            format!(
                "{}: cannot read the agency from {unit_cell:?}",
                file.display()
            )
        })?
        .to_owned();
    let run_dir = archive::RunFolder::find(archive_dir, crate::job::Job::SampleAudit, &run_id)?
        .map(|r| r.dir)
        .with_context(|| {
            format!(
                "{}: no sample-audit run {run_id} in {}: unknown workbook",
                file.display(),
                archive_dir.display()
            )
        })?;
    let original = run_dir.join("reports").join(format!("{unit_id}.xlsx"));
    let (orig_summary, orig_rows) = sheets(&original)?;
    let digest = summary_value(&summary, "樣本摘要值");
    if digest != summary_value(&orig_summary, "樣本摘要值") {
        bail!(
            "{}: its sample digest {:?} is not that of run {run_id} ({:?}): the workbook was altered",
            file.display(),
            digest,
            summary_value(&orig_summary, "樣本摘要值")
        );
    }
    let header: Vec<String> = rows
        .get(HEADER_ROW)
        .map(|r| r.iter().map(text).collect())
        .unwrap_or_default();
    let orig_header: Vec<String> = orig_rows
        .get(HEADER_ROW)
        .map(|r| r.iter().map(text).collect())
        .unwrap_or_default();
    if header != orig_header {
        bail!(
            "{}: the columns of {sheet} were changed: {header:?}, expected {orig_header:?}",
            file.display()
        );
    }
    let data = &rows[HEADER_ROW + 1..];
    let orig = &orig_rows[HEADER_ROW + 1..];
    let data: Vec<&Vec<Data>> = data
        .iter()
        .filter(|r| r.iter().any(|c| !matches!(c, Data::Empty)))
        .collect();
    if data.len() != orig.len() {
        bail!(
            "{}: {sheet} has {} rows, the run sent {}: rows were added or removed",
            file.display(),
            data.len(),
            orig.len()
        );
    }
    let mut answers = Vec::new();
    // Columns are found by their header in the workbook the run sent, so
    // a worksheet written before a column was added still reads back.
    let input = |h: &str| LAYOUT.inputs.iter().any(|(i, _)| *i == h);
    let col = |got: &Vec<Data>, header: &str| {
        orig_header
            .iter()
            .position(|h| h == header)
            .and_then(|c| got.get(c))
            .map(text)
            .unwrap_or_default()
    };
    for (i, (got, want)) in data.iter().zip(orig).enumerate() {
        for c in (0..orig_header.len()).filter(|c| !input(&orig_header[*c])) {
            let (g, w) = (
                got.get(c).map(text).unwrap_or_default(),
                want.get(c).map(text).unwrap_or_default(),
            );
            if g != w {
                bail!(
                    "{}: {sheet} row {}, column {}: was {w:?}, now {g:?}: sample rows must not be changed",
                    file.display(),
                    HEADER_ROW + 2 + i,
                    orig_header.get(c).map_or("", String::as_str)
                );
            }
        }
        for (header, input) in LAYOUT.inputs {
            let v = col(got, header);
            if let Input::Choice(ok) = input
                && !v.is_empty()
                && !ok.contains(&v.as_str())
            {
                bail!(
                    "{}: {sheet} row {}, {header}: {v:?} is not one of {:?}",
                    file.display(),
                    HEADER_ROW + 2 + i,
                    ok
                );
            }
        }
        answers.push(WorksheetAnswer {
            seq: i as u32 + 1,
            account_id: col(got, "帳號"),
            queried_at: col(got, "查詢時間"),
            query_item: col(got, "查詢項目"),
            subject: col(got, "被查詢人"),
            form_filled: col(got, "紀錄表已填具"),
            approved: col(got, "主管事前核可"),
            matches: col(got, "事由與查詢相符"),
            anomaly: col(got, "異常"),
            note: col(got, "說明"),
            auditor: col(got, "稽核人員"),
            audit_date: col(got, "稽核日期"),
        });
    }
    let answered = answers.iter().filter(|a| !a.anomaly.is_empty()).count();
    let anomalies: Vec<WorksheetAnswer> = answers
        .iter()
        .filter(|a| {
            a.anomaly == "有"
                || [&a.form_filled, &a.approved, &a.matches]
                    .iter()
                    .any(|v| *v == "否")
        })
        .cloned()
        .collect();
    let (_, sha) =
        crate::ingest::hash_file(file).with_context(|| format!("hashing {}", file.display()))?;
    store.record_worksheet(
        &WorksheetReturn {
            run_id: run_id.clone(),
            unit_id: unit_id.clone(),
            received_at: received_at.to_owned(),
            file_sha256: sha.clone(),
            rows: answers.len() as u32,
            answered: answered as u32,
            anomalies: anomalies.len() as u32,
        },
        &answers,
    )?;
    Ok(Returned {
        run_id,
        unit_id,
        rows: answers.len(),
        answered,
        anomalies,
        run_dir,
        file_sha256: sha,
    })
}
