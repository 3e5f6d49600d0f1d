//! `export-evidence`: one encrypted archive (zip, AES-256) an auditor
//! takes away and verifies offline with Python's standard library: the
//! run folder as sealed (manifest, population, inputs' hashes, findings,
//! workbooks), the agency tree its strata used (no addresses, no
//! secrets), the evidence chain, the spec and both verifiers. The
//! password comes from an environment variable and is never written to
//! a log or a mail.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::archive::{self, RunFolder};
use crate::config::Config;
use crate::store::{ChainEntry, Store};

/// What a bundle holds.
#[derive(Debug)]
pub struct Exported {
    pub files: usize,
    pub bytes: u64,
    pub chain_entries: usize,
    /// Run files left out: they hold full national IDs.
    pub withheld: Vec<String>,
}

const README: &str = "webir-audit 證據包 / evidence bundle\n\n\
以 7-Zip 等工具輸入密碼解壓縮後，以 Python 3 執行：\n\
Extract with 7-Zip (or any tool that opens AES-256 zip archives), then run:\n\n\
  python3 verify_sample.py run        # 重新抽樣 / re-draws the sample: MATCH\n\
  python3 verify_bundle.py . [--head HEX]   # 檔案、證據鏈 / files and the chain: OK\n\n\
規格 / spec: sampling.md\n";

/// What the README adds when the population was left out.
const README_WITHHELD: &str = "\n未含 run/population.tsv 及 run/rejects.csv（可能含未遮罩之身分證號）。\
其雜湊值仍列於 run/SHA256SUMS，verify_bundle.py 據以核對；重新抽樣需以 \
export-evidence --with-personal-data 匯出之證據包。\n\
run/population.tsv and run/rejects.csv (which may hold full national IDs) \
are left out. Their hashes stay in run/SHA256SUMS, and verify_bundle.py \
accepts exactly these two missing; re-drawing the sample (verify_sample.py \
MATCH) needs a bundle exported with --with-personal-data.\n";

/// What the README adds when the exports went in.
const README_INPUTS: &str = "\ninputs/ 含本次執行讀取之原始匯出檔（與 run/inputs.json 所載雜湊值相同），\
內含未遮罩之個人資料（被查詢人身分證號、人員資料），僅供依規格重建母體之稽核人員使用，用畢請銷毀。\n\
inputs/ holds the exports the run read, byte for byte (their hashes are in \
run/inputs.json, which verify_bundle.py checks): they hold personal data in \
full (national IDs of people queried, staff records). For an auditor \
rebuilding population.tsv from the spec; destroy after use.\n";

/// The exports a run read, as ingested: `(path as run/inputs.json names
/// it, bytes)`, each found where the tool keeps it (the input store, its
/// superseded copies, or the inbox) by its recorded hash.
fn exports_of(config: &Config, run: &RunFolder) -> Result<Vec<(String, Vec<u8>)>> {
    use sha2::Digest as _;
    let listed: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(run.dir.join("inputs.json"))
            .with_context(|| format!("reading {}/inputs.json", run.dir.display()))?,
    )?;
    let store = config.paths.inputs.clone();
    let mut out = Vec::new();
    for f in &listed {
        let (Some(path), Some(sha)) = (f["path"].as_str(), f["sha256"].as_str()) else {
            continue;
        };
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let table = Path::new(path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut candidates = vec![config.paths.inbox.join(path)];
        if let Some(s) = &store {
            candidates.push(s.join(path));
            if let Some(name) = &name {
                candidates.push(
                    s.join(crate::inputs::SUPERSEDED)
                        .join(&table)
                        .join(format!("{}-{name}", &sha[..sha.len().min(12)])),
                );
            }
        }
        let found = candidates.iter().find_map(|c| {
            let bytes = std::fs::read(c).ok()?;
            (hex::encode(sha2::Sha256::digest(&bytes)) == sha).then_some(bytes)
        });
        let bytes = found.with_context(|| {
            format!(
                "{path} (sha256 {sha}) is no longer held as the run read it: replaced or deleted by retention; the bundle cannot carry it"
            )
        })?;
        out.push((path.to_owned(), bytes));
    }
    Ok(out)
}

/// The run files holding full national IDs: left out of a bundle unless
/// the export asks for personal data.
/// (`tools/verify_bundle.py` accepts exactly these missing, no others.)
pub const PERSONAL_FILES: &[&str] = &["population.tsv", "rejects.csv"];

/// Writes the bundle of the sealed run `run_dir` to `out` (created new,
/// mode 0600), every entry encrypted with `password`. The files holding
/// full national IDs ([`PERSONAL_FILES`]) go in only `with_personal_data`;
/// otherwise `bundle.json` names them with their sealed hash.
pub fn export(
    config: &Config,
    run_dir: &Path,
    out: &Path,
    password: &str,
    with_personal_data: bool,
    with_inputs: bool,
) -> Result<Exported> {
    anyhow::ensure!(!password.is_empty(), "the bundle's password is empty");
    let (run, chain) = sealed_run_in_chain(config, run_dir)?;
    let files =
        archive::files_under(&run.dir).with_context(|| format!("listing {}", run.dir.display()))?;
    let (run_files, withheld): (Vec<String>, Vec<String>) = files
        .into_iter()
        .partition(|rel| with_personal_data || !PERSONAL_FILES.contains(&rel.as_str()));
    let withheld_json = withheld_json(&run, &withheld)?;
    let mut readme = README.to_owned();
    if !withheld_json.is_empty() {
        readme.push_str(README_WITHHELD);
    }
    let exports = if with_inputs {
        readme.push_str(README_INPUTS);
        exports_of(config, &run)?
    } else {
        Vec::new()
    };
    let bundle_json = serde_json::json!({
        "run": archive::chain_id(&run.dir),
        "chain_head": chain.last().map(|e| &e.hash),
        "chain_entries": chain.len(),
        "withheld": withheld_json,
        "inputs": exports.iter().map(|(p, _)| format!("inputs/{p}")).collect::<Vec<_>>(),
    });
    let mut entries = fixed_entries(config, readme, &bundle_json, &chain)?;
    for (path, bytes) in exports {
        entries.push((format!("inputs/{path}"), bytes));
    }
    for rel in run_files {
        let bytes = std::fs::read(run.dir.join(&rel))
            .with_context(|| format!("reading {}", run.dir.join(&rel).display()))?;
        entries.push((format!("run/{rel}"), bytes));
    }
    let bytes = write_encrypted_zip(out, password, &entries)?;
    Ok(Exported {
        files: entries.len(),
        bytes,
        chain_entries: chain.len(),
        withheld,
    })
}

/// The run folder `run_dir`, if sealed and its seal is in the evidence
/// chain, with the chain.
fn sealed_run_in_chain(config: &Config, run_dir: &Path) -> Result<(RunFolder, Vec<ChainEntry>)> {
    let run = RunFolder::parse(run_dir)
        .with_context(|| format!("{}: not a run folder", run_dir.display()))?;
    anyhow::ensure!(
        run.is_sealed(),
        "{}: not sealed: only a finished run is evidence",
        run_dir.display()
    );
    let store = Store::open(&config.paths.state)?;
    let chain = store.chain()?;
    let id = archive::chain_id(&run.dir);
    anyhow::ensure!(
        chain.iter().any(|e| e.kind == "seal" && e.id == id),
        "{id} is not in the evidence chain: it cannot be proven"
    );
    Ok((run, chain))
}

/// `bundle.json`'s note of each run file left out, with its sealed hash.
fn withheld_json(run: &RunFolder, withheld: &[String]) -> Result<Vec<serde_json::Value>> {
    let sealed = sealed_hashes(&run.dir)?;
    Ok(withheld
        .iter()
        .map(|rel| {
            serde_json::json!({
                "file": format!("run/{rel}"),
                "sha256": sealed.get(rel),
                "why": "may hold full national IDs: exported only with --with-personal-data",
            })
        })
        .collect())
}

/// The entries every bundle starts with: the README, `bundle.json`, the
/// agency tree (no addresses, no secrets), the chain, the spec and both
/// verifiers.
fn fixed_entries(
    config: &Config,
    readme: String,
    bundle_json: &serde_json::Value,
    chain: &[ChainEntry],
) -> Result<Vec<(String, Vec<u8>)>> {
    let agencies: Vec<serde_json::Value> = config
        .agencies
        .iter()
        .map(|a| {
            serde_json::json!({
                "id": a.id, "name": a.name, "parent": a.parent,
                "unit": a.unit, "requesting": a.requesting,
            })
        })
        .collect();
    let mut chain_lines = String::new();
    for e in chain {
        chain_lines.push_str(&serde_json::to_string(e)?);
        chain_lines.push('\n');
    }
    let text = |s: &str| s.as_bytes().to_vec();
    Ok(vec![
        ("README.txt".into(), readme.into_bytes()),
        (
            "bundle.json".into(),
            serde_json::to_vec_pretty(bundle_json)?,
        ),
        (
            "agencies.json".into(),
            serde_json::to_vec_pretty(&agencies)?,
        ),
        ("chain.jsonl".into(), chain_lines.into_bytes()),
        (
            "sampling.md".into(),
            text(include_str!("../docs/sampling.md")),
        ),
        (
            "verify_sample.py".into(),
            text(include_str!("../tools/verify_sample.py")),
        ),
        (
            "verify_bundle.py".into(),
            text(include_str!("../tools/verify_bundle.py")),
        ),
    ])
}

/// Writes `entries` into a new zip at `out` (mode 0600), each encrypted
/// with `password` (AES-256); returns the bytes put in.
fn write_encrypted_zip(out: &Path, password: &str, entries: &[(String, Vec<u8>)]) -> Result<u64> {
    let file = archive::create_private(out)?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .with_aes_encryption(zip::AesMode::Aes256, password);
    let mut bytes = 0u64;
    for (name, data) in entries {
        zip.start_file(name.as_str(), options)
            .with_context(|| format!("writing {name} into {}", out.display()))?;
        zip.write_all(data)
            .with_context(|| format!("writing {name} into {}", out.display()))?;
        bytes += data.len() as u64;
    }
    zip.finish()
        .with_context(|| format!("finishing {}", out.display()))?;
    Ok(bytes)
}

/// The hash `SHA256SUMS` seals each file of a run folder with.
fn sealed_hashes(dir: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    let path = dir.join(archive::SEAL);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(sha, name)| (name.to_owned(), sha.to_owned()))
        .collect())
}
