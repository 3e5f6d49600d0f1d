//! The sample audit: the population frozen before any seed exists, one
//! draw per period (claimed, locked, numbered), and the run around it.

use anyhow::{Context, Result};

use super::LedgerEntry;
use super::ceremony;
use super::skeleton::{
    Extras, RunOutcome, RunSpec, absolute, complete, ingest_inbox, local_text, period_folder,
    run_checks, take_input_frames,
};
use crate::archive::{self, RunFolder};
use crate::checks::Scope;
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::snapshot::Reference;
use crate::ingest::{self, FileStatus, Ingested};
use crate::job::Job;
use crate::model::Table;
use crate::period::Period;
use crate::report;
use crate::sampling::manifest::{ConfigRecord, InputHash, Manifest, PeriodRecord};
use crate::sampling::spec::{SPEC_VERSION, Seed};
use crate::sampling::{self, Params, Population};
use crate::store::{FreezeRecord, Store};

/// What a sample audit produced: the run (its query check included) and
/// the manifest of the draw.
#[derive(Debug)]
pub struct SampleOutcome {
    pub run: RunOutcome,
    pub manifest: Manifest,
}

/// The population of a period and the inputs it stands on, frozen before
/// any seed exists.
#[derive(Debug)]
pub struct FrozenPopulation {
    pub period: Period,
    pub population: Population,
    pub inputs: Vec<InputHash>,
    pub ingested: Ingested,
}

/// Ingests the inbox and computes the period's population and digest.
pub fn freeze_inputs(config: &Config, period: &Period) -> Result<FrozenPopulation> {
    let ingested = ingest_inbox(
        config,
        Reference::PeriodEnd(period.last_day()),
        Job::SampleAudit,
    )?;
    let started = std::time::Instant::now();
    let population = sampling::population(
        ingested.table(Table::QueryLog),
        ingested.table(Table::Roster),
        period,
    )
    .map_err(anyhow::Error::from)
    .context("building the population")?;
    tracing::info!(elapsed = ?started.elapsed(), records = population.frame.height(), "population digested");
    let inputs = ingested.files.iter().map(InputHash::from).collect();
    Ok(FrozenPopulation {
        period: period.clone(),
        population,
        inputs,
        ingested,
    })
}

/// Appends a seed draw to the evidence chain: its digest covers the
/// period, the draw's number, the seed, its source and the population.
pub(crate) fn chain_seed(
    store: &mut Store,
    period: &str,
    draw_number: u32,
    seed: &str,
    source: &str,
    population_digest: &str,
    at: &str,
) -> Result<()> {
    let digest = seed_digest(period, draw_number, seed, source, population_digest);
    store.chain_append("seed", &format!("{period}#{draw_number}"), &digest, at)?;
    Ok(())
}

/// A seed entry's digest (docs/sampling.md § 13): SHA-256 of
/// `key LF draw_number LF seed LF source LF digest LF`.
pub fn seed_digest(key: &str, draw_number: u32, seed: &str, source: &str, digest: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(
        format!("{key}\n{draw_number}\n{seed}\n{source}\n{digest}\n").as_bytes(),
    ))
}

/// A population that misses a failed file must not be frozen or drawn
/// from: the failure would silently shrink what is sampled.
pub(super) fn refuse_failed_inputs(frozen: &FrozenPopulation, consequence: &str) -> Result<()> {
    let failed: Vec<String> = frozen
        .ingested
        .failed_files()
        .map(|f| match &f.status {
            FileStatus::Failed { error } => format!("{}: {error}", f.path),
            _ => f.path.clone(),
        })
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "the population of {} would miss what these inputs hold, so {consequence}; \
         fix or remove them and run again:\n  {}",
        frozen.period.id,
        failed.join("\n  ")
    );
    Ok(())
}

/// Held while a period is drawn: `<state>/locks/draw-<period>.lock`.
pub(super) fn draw_lock(state: &std::path::Path, period: &str) -> Result<std::fs::File> {
    let dir = state.join("locks");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // `2026/external-audit` names a file `draw-2026.external-audit.lock`.
    let path = dir.join(format!("draw-{}.lock", period.replace('/', ".")));
    let file = archive::open_lock(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{period} is being drawn by another run now ({} is held); nothing was drawn",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The period's last draw, if its run died before its seal: its folder
/// is gone or unsealed while no run holds the period's draw lock.
pub(super) fn crashed_draw(store: &Store, period: &str) -> Result<Option<crate::store::SeedDraw>> {
    let Some(last) = store.draws(period)?.pop() else {
        return Ok(None);
    };
    // Its run, or one that resumed it, is sealed; or retention deleted it
    // sealed (a tombstone says so).
    let mut runs = store.draw_resumed_in(period, last.draw_number)?;
    runs.push(last.run_dir.clone());
    // The chain, not the folder, says it was sealed: a seal file deleted
    // or an archive moved does not make a sealed run a crashed one.
    let chain = store.chain()?;
    // Nor does a seal file alone make it sealed: one written by a run
    // that died before its transaction committed has no chain entry.
    let done = runs.iter().any(|d| {
        let id = archive::chain_id(std::path::Path::new(d));
        chain
            .iter()
            .any(|e| (e.kind == "tombstone" || e.kind == "seal") && e.id == id)
    });
    if done {
        return Ok(None);
    }
    // One that died after its mail was queued reached people: it is not
    // redone behind their backs.
    let told = store.outbox()?.iter().any(|m| runs.contains(&m.run));
    anyhow::ensure!(
        !told,
        "draw {} of {period} (run {}) died before its seal but after its mail was queued: it is \
         not resumed automatically; see `webir-audit outbox list`, then seal or remove that \
         folder by hand and run again with --redraw",
        last.draw_number,
        last.run_dir
    );
    Ok(Some(last))
}

/// The seed ledger's key of a draw, which is also its ceremony's: the
/// period id for a sample audit, `<period>/external-audit` for the
/// external audit's draw of units (docs/sampling.md § 13).
pub fn draw_key(job: Job, period: &str) -> String {
    match job {
        Job::ExternalAudit => format!("{period}/{job}"),
        _ => period.to_owned(),
    }
}

/// A period's draw about to be made (`ledger`: the period, or
/// `<year>/external-audit`), held under its draw lock until dropped: the
/// draw whose run died before its seal, to resume, if there is one; else
/// a first draw, or a second one the operator asked for.
pub(crate) struct DrawClaim {
    _lock: std::fs::File,
    ledger: String,
    pub(crate) crashed: Option<crate::store::SeedDraw>,
}

impl DrawClaim {
    /// Takes the draw lock and finds what the draw is: a crashed draw is
    /// resumed (its unsealed folder, personal data, removed; another seed
    /// than its own refused), else a second draw needs `redraw`.
    pub(crate) fn take(
        state: &std::path::Path,
        store: &Store,
        ledger: &str,
        job: Job,
        seed: Option<&Seed>,
        redraw: bool,
    ) -> Result<DrawClaim> {
        // Held until the run is sealed or gone: a draw of the period in
        // progress elsewhere is not mistaken for a crashed one.
        let lock = draw_lock(state, ledger)?;
        // A draw whose run died before its seal (power cut, kill -9) is
        // resumed with its recorded seed and number: never a new seed (that
        // would be seed shopping), never a draw 2 of a draw nobody saw.
        let crashed = crashed_draw(store, ledger)?;
        if let Some(d) = &crashed {
            let left = std::path::Path::new(&d.run_dir);
            tracing::warn!(period = %ledger, draw = d.draw_number, run = %d.run_dir, "a draw whose run died before its seal: resumed with its seed; its unsealed folder (personal data) is removed");
            if left.exists() {
                std::fs::remove_dir_all(left)
                    .with_context(|| format!("removing the unsealed {}", left.display()))?;
            }
            if let Some(given) = seed {
                anyhow::ensure!(
                    given.as_str() == d.seed,
                    "draw {} of {ledger} (seed {}, at {}) died before its seal; it is resumed with its recorded seed, not another: run again without --seed, or with that seed",
                    d.draw_number,
                    d.seed,
                    d.drawn_at
                );
            }
        } else {
            refuse_second_draw(store, ledger, job, redraw)?;
        }
        Ok(DrawClaim {
            _lock: lock,
            ledger: ledger.to_owned(),
            crashed,
        })
    }

    /// The seed to draw with: the crashed draw's, else `given`.
    pub(crate) fn seed(&self, given: Option<Seed>) -> Result<Option<Seed>> {
        match &self.crashed {
            Some(d) => Ok(Some(d.seed.parse::<Seed>()?)),
            None => Ok(given),
        }
    }

    /// Records the draw in the ledger and the chain (a resumed one: that
    /// its run is now `dir`, with its own number, seed and source), once
    /// the run's folder exists. Its number.
    pub(crate) fn record(
        &self,
        store: &mut Store,
        (seed, source): (&Seed, &mut &'static str),
        drawn_at: &str,
        digest: &str,
        dir: &std::path::Path,
        redraw: bool,
    ) -> Result<u32> {
        let ledger = &self.ledger;
        let run_dir = dir.display().to_string();
        let Some(d) = &self.crashed else {
            let n = store.record_draw(
                ledger,
                seed.as_str(),
                source,
                drawn_at,
                digest,
                &run_dir,
                !redraw,
            )?;
            chain_seed(store, ledger, n, seed.as_str(), source, digest, drawn_at)?;
            return Ok(n);
        };
        anyhow::ensure!(
            d.population_digest == digest,
            "draw {} of {ledger} died before its seal and the population changed since (digest {} then, {digest} now): it cannot be resumed; restore the inputs it drew from",
            d.draw_number,
            d.population_digest,
        );
        // Its seed and number stand, and are chained already.
        *source = if d.source == "os" { "os" } else { "given" };
        store.resume_draw(ledger, d.draw_number, &run_dir, drawn_at)?;
        Ok(d.draw_number)
    }
}

/// A period is drawn once. A second draw happens only when the operator
/// asks for it (`--redraw`), and is then numbered and announced in every
/// report; a draw that silently replaced an earlier one would look like
/// seed shopping.
pub(crate) fn refuse_second_draw(
    store: &Store,
    ledger_period: &str,
    job: Job,
    redraw: bool,
) -> Result<()> {
    let draws = store.draws(ledger_period)?;
    if let (Some(last), false) = (draws.last(), redraw) {
        anyhow::bail!(
            "{ledger_period} was already drawn (draw {} at {}, run {}); nothing was drawn now. \
             A second draw happens only when asked for: `run {job} --redraw`, and every report \
             of it says it is draw {}",
            last.draw_number,
            last.drawn_at,
            last.run_dir,
            last.draw_number + 1
        );
    }
    Ok(())
}

/// `freeze`: records the period's population digest and input hashes in
/// the state database, to be published before a seed ceremony.
pub fn freeze(config: &Config, period: &Period, clock: &dyn Clock) -> Result<FreezeRecord> {
    Ok(freeze_counted(config, period, clock)?.0)
}

/// [`freeze`], with the population's records and accounts in use.
pub(crate) fn freeze_counted(
    config: &Config,
    period: &Period,
    clock: &dyn Clock,
) -> Result<(FreezeRecord, usize, usize)> {
    let frozen = freeze_inputs(config, period)?;
    refuse_failed_inputs(&frozen, "nothing was frozen")?;
    let record = FreezeRecord {
        period: period.id.clone(),
        frozen_at: local_text(clock.local(config.timezone)),
        population_digest: frozen.population.digest.clone(),
        inputs: serde_json::to_string(&frozen.inputs)?,
    };
    let mut store = Store::open(&config.paths.state)?;
    store.record_freeze(&record)?;
    store.chain_append(
        "freeze",
        &record.period,
        &record.population_digest,
        &record.frozen_at,
    )?;
    Ok((
        record,
        frozen.population.frame.height(),
        frozen.population.accounts.len(),
    ))
}

/// What proves the seed came after the population, for the manifest.
/// `what` the draw is from: `population` (a sample), `candidate list` (units).
pub(crate) fn seed_timing(
    c: Option<&crate::store::Ceremony>,
    freeze: Option<&FreezeRecord>,
    source: &str,
    what: &str,
) -> String {
    match (c, freeze) {
        (Some(c), _) if ceremony::fell_back(c) => format!(
            "ceremony: the {what} was committed and mailed at {} (ceremony.commitment_messages); \
             no seed came within the wait, so the tool drew one from the OS at {}: the mails prove \
             the {what} predates it, but the seed is not public",
            c.committed_at,
            c.seed_at.as_deref().unwrap_or("?")
        ),
        (Some(c), _) => format!(
            "ceremony: the {what} was committed and mailed at {} (ceremony.commitment_messages, \
             evidence chain `commitment`), the seed was given at {} by {} (`seed-given`); the seed's \
             public source postdates the commitment",
            c.committed_at,
            c.seed_at.as_deref().unwrap_or("?"),
            c.seed_by.as_deref().unwrap_or("?")
        ),
        (None, Some(f)) => format!(
            "freeze: the population was frozen at {} (evidence chain `freeze`) before this draw; \
             only copies of the freeze published before the seed existed prove it outside the server",
            f.frozen_at
        ),
        (None, None) if source == "os" => format!(
            "none: the tool drew the seed from the OS at the draw time; \
             nothing outside the server shows the {what} before it"
        ),
        (None, None) => format!(
            "none: the seed was given at the draw with no freeze before it; nothing \
             shows the {what} was fixed before the seed was known"
        ),
    }
}

/// `run sample-audit`: ingest, freeze, check against a published freeze,
/// take or draw the seed (recorded in the seed ledger before anything is
/// selected), select, write the run folder, then run the period's query
/// check into the same folder.
pub(super) fn sample_audit(
    config: &Config,
    period: &Period,
    seed: Option<Seed>,
    redraw: bool,
    (ceremony, ledger): (Option<crate::store::Ceremony>, LedgerEntry),
    clock: &dyn Clock,
) -> Result<SampleOutcome> {
    let started = clock.local(config.timezone);
    let mut store = Store::open(&config.paths.state)?;
    let claim = DrawClaim::take(
        &config.paths.state,
        &store,
        &period.id,
        Job::SampleAudit,
        seed.as_ref(),
        redraw,
    )?;
    let frozen = freeze_inputs(config, period)?;
    refuse_failed_inputs(&frozen, "no seed was drawn")?;
    let seed = match &ceremony {
        _ if claim.crashed.is_some() => claim.seed(seed)?,
        None => seed,
        Some(c) => Some(ceremony::seed_of(
            c,
            "population",
            &frozen.population.digest,
        )?),
    };
    let freeze = published_freeze(&store, &frozen)?;
    let mut folder = period_folder(config, Job::SampleAudit, period, started)?;
    let unfinished = archive::Unfinished::new(&folder.dir);
    let (seed, mut source) = Seed::given_or_drawn(seed)
        .map_err(|e| anyhow::anyhow!("drawing a seed from the OS: {e}"))?;
    if ceremony.as_ref().is_some_and(ceremony::fell_back) {
        source = "os";
    }
    let drawn_at = local_text(clock.local(config.timezone));
    let draw_number = claim.record(
        &mut store,
        (&seed, &mut source),
        &drawn_at,
        &frozen.population.digest,
        &folder.dir,
        redraw,
    )?;
    if draw_number > 1 {
        tracing::warn!(period = %period.id, draw_number, "this period was drawn before; the reports will say so");
    }
    let units = select_writing_population(config, &mut folder, &frozen, &seed)?;
    let mut manifest = Manifest {
        seed: seed.as_str().into(),
        seed_source: source.into(),
        draw_number,
        drawn_at,
        seed_postdates_population: seed_timing(
            ceremony.as_ref(),
            freeze.as_ref(),
            source,
            "population",
        ),
        ceremony: ceremony
            .as_ref()
            .map(|c| ceremony::record(&store, c))
            .transpose()?,
        frozen_at: freeze.map(|f| f.frozen_at),
        units,
        ..manifest_of(config, &frozen)?
    };
    manifest.sample_digest = manifest.computed_sample_digest();
    archive::write_json(&manifest, &folder.file("manifest.json")?)?;
    let run = check_sampled_period(config, (folder, started, ledger), frozen, &manifest, clock)?;
    unfinished.finished();
    Ok(SampleOutcome { run, manifest })
}

/// The freeze published for the period, if any; an error if the
/// population no longer has its digest.
fn published_freeze(store: &Store, frozen: &FrozenPopulation) -> Result<Option<FreezeRecord>> {
    let period = &frozen.period;
    let freeze = store.latest_freeze(&period.id)?;
    if let Some(f) = &freeze {
        anyhow::ensure!(
            f.population_digest == frozen.population.digest,
            "the population of {} changed since it was frozen at {}: frozen digest {}, now {}; \
             the published freeze no longer describes these inputs (freeze again and publish the new digest)",
            period.id,
            f.frozen_at,
            f.population_digest,
            frozen.population.digest
        );
    }
    Ok(freeze)
}

/// The config's sampling parameters.
fn params(config: &Config) -> Params {
    Params {
        sample_account_percent: config.rules.sample_account_percent,
        sample_records_per_account: config.rules.sample_records_per_account,
    }
}

/// Selects the sample with `seed` while `population.tsv` is written: one
/// is disk, the other CPU. The file is hashed as it is written, for the
/// seal ([`archive::Written`]).
fn select_writing_population(
    config: &Config,
    folder: &mut RunFolder,
    frozen: &FrozenPopulation,
    seed: &Seed,
) -> Result<Vec<sampling::UnitSample>> {
    let started = std::time::Instant::now();
    let population = &frozen.population;
    const POPULATION: &str = "population.tsv";
    let tsv = folder.file(POPULATION)?;
    let (units, written) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| -> Result<(u64, String)> {
            let mut w = crate::ingest::Hashing::new(archive::create_private(&tsv)?)
                .with_context(|| format!("writing {}", tsv.display()))?;
            sampling::write_population(population, &mut w)
                .and_then(|()| w.finish())
                .with_context(|| format!("writing {}", tsv.display()))
        });
        let units = sampling::select(population, config, &frozen.period.id, seed, params(config));
        (units, writer.join())
    });
    let written =
        written.map_err(|_| anyhow::anyhow!("the thread writing {} panicked", tsv.display()))??;
    folder.written.insert(POPULATION.to_owned(), written);
    let units = units
        .map_err(anyhow::Error::from)
        .context("selecting the sample")?;
    tracing::info!(elapsed = ?started.elapsed(), "sample selected and population.tsv written");
    Ok(units)
}

/// The manifest's record of what was drawn from: the tool, the period,
/// the parameters, the config and the inputs. The draw's own fields
/// (seed, number, units, digest) are left empty for the caller.
fn manifest_of(config: &Config, frozen: &FrozenPopulation) -> Result<Manifest> {
    let period = &frozen.period;
    Ok(Manifest {
        spec_version: SPEC_VERSION.into(),
        tool: "webir-audit".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        seed: String::new(),
        seed_source: String::new(),
        draw_number: 0,
        drawn_at: String::new(),
        period: PeriodRecord {
            id: period.id.clone(),
            start: local_text(period.start),
            end: local_text(period.end),
            timezone: config.timezone.name().into(),
        },
        parameters: params(config),
        config: ConfigRecord {
            file: absolute(&config.file),
            sha256: ingest::hash_file(&config.file)
                .with_context(|| format!("hashing {}", config.file.display()))?
                .1,
        },
        inbox: absolute(&config.paths.inbox),
        inputs: frozen.inputs.clone(),
        population_records: frozen.population.frame.height() as u64,
        population_accounts: frozen.population.accounts.len() as u64,
        population_digest: frozen.population.digest.clone(),
        seed_postdates_population: String::new(),
        ceremony: None,
        frozen_at: None,
        units: Vec::new(),
        sample_digest: String::new(),
    })
}

/// After the draw: `sample.csv`, then the period's query check into the
/// same folder, its workbooks showing the sample.
fn check_sampled_period(
    config: &Config,
    (folder, started, ledger): (RunFolder, chrono::NaiveDateTime, LedgerEntry),
    mut frozen: FrozenPopulation,
    manifest: &Manifest,
    clock: &dyn Clock,
) -> Result<RunOutcome> {
    let period = frozen.period.clone();
    let sample = sampling::sample_frame(
        &frozen.population,
        &manifest.units,
        frozen.ingested.table(Table::QueryLog),
    )?;
    // The raw subject stays in memory only, to match request forms.
    archive::write_csv(&sample.drop("subject_id")?, &folder.file("sample.csv")?)?;
    drop(frozen.population);
    let by_month = report::build::monthly_queries(frozen.ingested.table(Table::QueryLog), &period)?;
    let roster = frozen.ingested.table(Table::Roster).clone();
    let forms = frozen.ingested.table(Table::RequestForms).clone();
    ingest::release_freed_memory();
    let tables = take_input_frames(&mut frozen.ingested);
    let checked = run_checks(
        config,
        &frozen.ingested,
        tables,
        Scope::Queries,
        started.date(),
        Some(period.clone()),
    )?;
    let details =
        report::build::sample_details(config, &sample, &roster, &forms, &checked.findings)?;
    complete(
        config,
        RunSpec {
            job: Job::SampleAudit,
            period: Some(period),
            as_of: started.date(),
            started,
            ledger,
        },
        folder,
        (checked, frozen.ingested),
        &roster,
        Extras {
            sample: Some((manifest, &details)),
            queries_by_month: Some(&by_month),
            orphans: true,
            ..Extras::default()
        },
        clock,
    )
}
