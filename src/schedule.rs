//! The schedules: `paths.schedules/*.toml`, each holding `[[schedule]]`
//! entries (`job`, `cron`, `period`, `catch_up`, `max_lateness`,
//! `wait_for_inputs`, and for the sample audit `seed`, `seed_wait`,
//! `seed_fallback`). Loaded and validated before the daemon starts: a bad
//! cron, an unknown job, a period rule that does not fit the job or a
//! cadence slower than the regulation refuses to start, naming file, entry
//! and value.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::Deserialize;

pub use crate::job::Job;
pub use crate::period::PeriodRule;

/// Refuses schedules that leave a duty of the regulation unscheduled: a
/// duty must not be switched off by deleting a file, only by a
/// `[[suspended]]` entry that says why (and is shown wherever the daemon
/// reports).
pub fn require_duties(
    schedules: &[Schedule],
    suspended: &[Suspension],
    dir: &Path,
) -> Result<(), ScheduleError> {
    let missing: Vec<String> = Job::ALL
        .into_iter()
        .filter_map(|job| Some((job, job.duty()?)))
        .filter(|(job, _)| !schedules.iter().any(|s| s.job == *job))
        .filter(|(job, _)| !suspended.iter().any(|s| s.job == *job))
        .map(|(job, rule)| {
            format!(
                "{}: no schedule for job {:?}; {rule}. Add a [[schedule]] with job = {:?} (the shipped schedules/ has one)",
                dir.display(),
                job.as_str(),
                job.as_str()
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ScheduleError(missing))
    }
}

/// What to do with fire times that passed while the daemon was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Run the newest missed period; older ones are marked missed.
    Latest,
    /// Run every missed period, oldest first.
    All,
    /// Run none; every missed period is marked missed.
    Skip,
}

/// How a drawing job's seed is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedRule {
    /// Drawn from the OS at the due time.
    Os,
    /// A ceremony: the population is committed and mailed at the due
    /// time, and the draw waits for a seed given from outside. After
    /// `wait` without one the admin is told, and with `fallback_os` the
    /// OS's seed is used (said everywhere the seed is shown).
    Ceremony { wait: Duration, fallback_os: bool },
}

/// One validated `[[schedule]]` entry.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub job: Job,
    pub cron_text: String,
    pub cron: Cron,
    pub period: PeriodRule,
    pub catch_up: CatchUp,
    pub max_lateness: Duration,
    pub wait_for_inputs: Duration,
    pub seed: SeedRule,
    /// Where it was read from, for messages.
    pub file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    schedule: Vec<RawSchedule>,
    #[serde(default)]
    suspended: Vec<RawSuspension>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuspension {
    job: String,
    reason: String,
}

/// A duty of the regulation deliberately not run by this daemon, and why
/// (`[[suspended]] job = "...", reason = "..."`): the daemon logs it when it
/// starts and reloads, and `check-config`, `status` and the weekly status
/// mail show it, so it is never silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    pub job: Job,
    pub reason: String,
    pub file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    job: String,
    cron: String,
    period: String,
    #[serde(default = "default_catch_up")]
    catch_up: String,
    #[serde(default = "default_max_lateness")]
    max_lateness: String,
    #[serde(default = "default_wait")]
    wait_for_inputs: String,
    /// `"os"` (default) or `"ceremony"`; the sample audit only.
    seed: Option<String>,
    /// With a ceremony: how long to wait for the seed (default `"7d"`).
    seed_wait: Option<String>,
    /// With a ceremony: `"wait"` (default) or `"os"` after `seed_wait`.
    seed_fallback: Option<String>,
}

fn default_catch_up() -> String {
    "latest".into()
}
fn default_max_lateness() -> String {
    "30d".into()
}
fn default_wait() -> String {
    "14d".into()
}

/// Every problem with the schedules, each naming file, entry and value.
#[derive(Debug, thiserror::Error)]
#[error("invalid schedules:\n  {}", .0.join("\n  "))]
pub struct ScheduleError(pub Vec<String>);

/// Parses a cron expression the way `tokio-cron-scheduler` does (six
/// fields, seconds first; day of month and day of week both apply).
pub fn parse_cron(s: &str) -> Result<Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(s)
        .map_err(|e| e.to_string())
}

/// `"30d"`, `"12h"`, `"45m"`.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok().filter(|n| *n >= 0)?;
    match unit {
        "d" => Some(Duration::days(n)),
        "h" => Some(Duration::hours(n)),
        "m" => Some(Duration::minutes(n)),
        _ => None,
    }
}

/// Loads every `*.toml` in `dir` (name order) and validates it.
pub fn load(dir: &Path, tz: Tz) -> Result<Vec<Schedule>, ScheduleError> {
    let mut problems = Vec::new();
    let mut out: Vec<Schedule> = Vec::new();
    for file in schedule_files(dir)? {
        let raw = match read_schedule_file(&file) {
            Ok(r) => r,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        for (i, r) in raw.schedule.iter().enumerate() {
            match validate_entry(r, &file, tz, &out) {
                Ok(schedule) => out.push(schedule),
                Err((key, value, why)) => problems.push(format!(
                    "{}: schedule[{i}].{key} = {value:?}: {why}",
                    file.display()
                )),
            }
        }
    }
    if out.is_empty() && problems.is_empty() {
        problems.push(format!(
            "{}: no [[schedule]] entries; the daemon would do nothing",
            dir.display()
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ScheduleError(problems))
    }
}

/// The `[[suspended]]` duties of every `*.toml` in `dir`: each a duty of
/// the regulation, with a reason, and not also scheduled.
pub fn suspended(dir: &Path, schedules: &[Schedule]) -> Result<Vec<Suspension>, ScheduleError> {
    let mut problems = Vec::new();
    let mut out: Vec<Suspension> = Vec::new();
    for file in schedule_files(dir)? {
        let Ok(raw) = read_schedule_file(&file) else {
            continue; // `load` names the problem
        };
        for (i, r) in raw.suspended.iter().enumerate() {
            let refuse = |why: String| format!("{}: suspended[{i}]: {why}", file.display());
            match r.job.parse::<Job>() {
                Err(e) => problems.push(refuse(e.to_string())),
                Ok(job) if job.duty().is_none() => problems.push(refuse(format!(
                    "{job} is no duty of the regulation: unschedule it instead"
                ))),
                Ok(job) if schedules.iter().any(|s| s.job == job) => {
                    problems.push(refuse(format!("{job} is scheduled too")))
                }
                Ok(_) if r.reason.trim().is_empty() => {
                    problems.push(refuse("reason is empty: a suspended duty says why".into()))
                }
                Ok(job) => out.push(Suspension {
                    job,
                    reason: r.reason.trim().to_owned(),
                    file: file.clone(),
                }),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ScheduleError(problems))
    }
}

/// The `*.toml` files in `dir`, in name order.
fn schedule_files(dir: &Path) -> Result<Vec<PathBuf>, ScheduleError> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) => {
            return Err(ScheduleError(vec![format!(
                "{}: cannot read the schedules folder (paths.schedules): {e}",
                dir.display()
            )]));
        }
    };
    files.sort();
    Ok(files)
}

/// The entries of one schedules file, or the problem naming it.
fn read_schedule_file(file: &Path) -> Result<RawFile, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    toml::from_str(&text)
        .map_err(|e: toml::de::Error| format!("{}: {}", file.display(), e.message()))
}

/// Why an entry is refused: its key, the value and why.
type Refusal = (&'static str, String, String);

/// Entry `r` of `file` validated, or its first problem; `scheduled` are
/// the entries accepted before it (a job is scheduled once).
fn validate_entry(
    r: &RawSchedule,
    file: &Path,
    tz: Tz,
    scheduled: &[Schedule],
) -> Result<Schedule, Refusal> {
    let Some(job) = Job::parse(&r.job).filter(|j| !j.periods().is_empty()) else {
        let known: Vec<_> = Job::ALL
            .iter()
            .filter(|j| !j.periods().is_empty())
            .map(|j| j.as_str())
            .collect();
        let why = format!("unknown job; known: {}", known.join(", "));
        return Err(("job", r.job.clone(), why));
    };
    let cron = parse_cron(&r.cron).map_err(|e| {
        let why = format!("{e} (six fields: sec min hour day month weekday)");
        ("cron", r.cron.clone(), why)
    })?;
    let period = match PeriodRule::parse(&r.period) {
        Some(p) if job.periods().contains(&p) => p,
        _ => {
            let why = format!("{} takes {}", job.as_str(), period_names(job.periods()));
            return Err(("period", r.period.clone(), why));
        }
    };
    let catch_up = match r.catch_up.as_str() {
        "latest" => CatchUp::Latest,
        "all" => CatchUp::All,
        "skip" => CatchUp::Skip,
        other => {
            let why = "allowed values: latest, all, skip".to_owned();
            return Err(("catch_up", other.to_owned(), why));
        }
    };
    let (Some(max_lateness), Some(wait_for_inputs)) = (
        parse_duration(&r.max_lateness),
        parse_duration(&r.wait_for_inputs),
    ) else {
        return Err((
            "max_lateness/wait_for_inputs",
            format!("{} / {}", r.max_lateness, r.wait_for_inputs),
            "expected a duration such as \"30d\", \"12h\" or \"45m\"".to_owned(),
        ));
    };
    let seed = seed_rule(job, r)?;
    cadence(job, &cron, tz).map_err(|why| ("cron", r.cron.clone(), why))?;
    if let Some(other) = scheduled.iter().find(|s| s.job == job) {
        let why = format!("already scheduled in {}", other.file.display());
        return Err(("job", r.job.clone(), why));
    }
    Ok(Schedule {
        job,
        cron_text: r.cron.clone(),
        cron,
        period,
        catch_up,
        max_lateness,
        wait_for_inputs,
        seed,
        file: file.to_path_buf(),
    })
}

/// The seed rule of an entry, or the key, value and why it is refused.
fn seed_rule(job: Job, r: &RawSchedule) -> Result<SeedRule, Refusal> {
    let ceremony_only = || {
        r.seed_wait
            .as_ref()
            .map(|v| ("seed_wait", v))
            .or(r.seed_fallback.as_ref().map(|v| ("seed_fallback", v)))
    };
    match r.seed.as_deref() {
        None | Some("os") => match ceremony_only() {
            Some((key, v)) => Err((key, v.clone(), "only with seed = \"ceremony\"".into())),
            None => Ok(SeedRule::Os),
        },
        Some("ceremony") if job.draws() => {
            let wait_text = r.seed_wait.as_deref().unwrap_or("7d");
            let Some(wait) = parse_duration(wait_text) else {
                return Err((
                    "seed_wait",
                    wait_text.into(),
                    "expected a duration such as \"7d\"".into(),
                ));
            };
            let fallback_os = match r.seed_fallback.as_deref().unwrap_or("wait") {
                "wait" => false,
                "os" => true,
                other => {
                    return Err((
                        "seed_fallback",
                        other.into(),
                        "allowed values: wait (keep waiting, the admin is told), os (draw the OS's seed, said in every report)".into(),
                    ));
                }
            };
            Ok(SeedRule::Ceremony { wait, fallback_os })
        }
        Some("ceremony") => Err((
            "seed",
            "ceremony".into(),
            format!(
                "the daemon runs a seed ceremony for a job that draws (sample-audit, external-audit), not {}",
                job.as_str()
            ),
        )),
        Some(other) => Err(("seed", other.into(), "allowed values: os, ceremony".into())),
    }
}

fn period_names(rules: &[PeriodRule]) -> String {
    rules
        .iter()
        .map(|r| match r {
            PeriodRule::PreviousHalfYear => "previous-half-year",
            PeriodRule::PreviousYear => "previous-year",
            PeriodRule::PreviousQuarter => "previous-quarter",
            PeriodRule::Day => "day",
            PeriodRule::Week => "week",
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Checks that `cron` fires at all, and never leaves a gap longer than the
/// regulation allows over four years (leap years and month lengths
/// included).
fn cadence(job: Job, cron: &Cron, tz: Tz) -> Result<(), String> {
    let start = tz
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .earliest()
        .ok_or("no start")?;
    let end = start + Duration::days(4 * 366);
    let mut last = start;
    let mut fired = false;
    let mut gap = Duration::zero();
    for t in cron.iter_after(start).take(20_000) {
        if t > end {
            break;
        }
        fired = true;
        gap = gap.max(t - last);
        last = t;
    }
    if !fired {
        return Err("never fires".into());
    }
    gap = gap.max(end - last);
    if let Some((days, rule)) = job.slowest()
        && gap > Duration::days(days)
    {
        return Err(format!(
            "leaves {} days between runs; {rule} (at most {days} days)",
            gap.num_days()
        ));
    }
    Ok(())
}

impl Schedule {
    /// Fire times after `after` up to and including `now`, oldest first
    /// (at most 1,000: a catch-up over a longer gap keeps the newest).
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Vec<DateTime<Utc>> {
        let mut out: Vec<DateTime<Utc>> = Vec::new();
        for t in self.cron.iter_after(after.with_timezone(&tz)) {
            let t = t.with_timezone(&Utc);
            if t > now {
                break;
            }
            out.push(t);
            if out.len() > 1000 {
                out.remove(0);
            }
        }
        out
    }

    /// The next fire time after `now`.
    pub fn next_after(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&now.with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// The first instant after `period` (local midnight) for the ids the
/// period rules make; `None` for a day or a week.
pub fn period_end(id: &str) -> Option<NaiveDateTime> {
    id.parse::<crate::period::Period>().ok().map(|p| p.end)
}

/// The last day inside `period`.
pub fn period_last_day(id: &str) -> Option<NaiveDate> {
    period_end(id).and_then(|e| e.date().pred_opt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn periods_of_fire_times() {
        let h = PeriodRule::PreviousHalfYear;
        assert_eq!(h.period_for(local("2026-07-05 08:00:00")), "2026H1");
        assert_eq!(h.period_for(local("2026-01-05 08:00:00")), "2025H2");
        assert_eq!(h.period_for(local("2026-06-30 23:59:59")), "2025H2");
        assert_eq!(h.period_for(local("2026-07-01 00:00:00")), "2026H1");
        let q = PeriodRule::PreviousQuarter;
        assert_eq!(q.period_for(local("2026-01-02 00:00:00")), "2025Q4");
        assert_eq!(q.period_for(local("2026-10-02 00:00:00")), "2026Q3");
        assert_eq!(
            PeriodRule::PreviousYear.period_for(local("2026-01-10 08:00:00")),
            "2025"
        );
        assert_eq!(
            PeriodRule::Week.period_for(local("2026-01-01 08:00:00")),
            "2026-W01"
        );
    }

    fn write(dir: &Path, text: &str) -> Result<Vec<Schedule>, ScheduleError> {
        std::fs::write(dir.join("s.toml"), text).unwrap();
        load(dir, chrono_tz::Asia::Taipei)
    }

    /// A duty is left out only by a `[[suspended]]` entry with a reason; a
    /// job that is no duty, or is scheduled too, or a blank reason, is
    /// refused, naming the entry.
    #[test]
    fn a_duty_is_left_out_only_by_a_suspension_that_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let one = "[[schedule]]\njob = \"sample-audit\"\ncron = \"0 0 8 5 1,7 *\"\nperiod = \"previous-half-year\"\n";
        let suspend = |jobs: &[&str], reason: &str| -> String {
            jobs.iter()
                .map(|j| format!("[[suspended]]\njob = \"{j}\"\nreason = \"{reason}\"\n"))
                .collect()
        };
        let others = [
            "account-review",
            "password-check",
            "internal-audit",
            "external-audit",
            "retention",
        ];
        let schedules = write(tmp.path(), one).unwrap();
        let missing = require_duties(&schedules, &[], tmp.path())
            .unwrap_err()
            .to_string();
        assert!(missing.contains("retention"), "{missing}");

        let schedules = write(
            tmp.path(),
            &format!("{one}{}", suspend(&others, "a test city")),
        )
        .unwrap();
        let off = suspended(tmp.path(), &schedules).unwrap();
        assert_eq!(off.len(), 5);
        assert_eq!(off[0].reason, "a test city");
        require_duties(&schedules, &off, tmp.path()).unwrap();

        for (bad, why) in [
            (suspend(&["heartbeat"], "x"), "no duty"),
            (suspend(&["sample-audit"], "x"), "scheduled too"),
            (suspend(&["retention"], "  "), "reason is empty"),
            (suspend(&["retension"], "x"), "unknown job \"retension\""),
        ] {
            let schedules = write(tmp.path(), &format!("{one}{bad}")).unwrap();
            let e = suspended(tmp.path(), &schedules).unwrap_err().to_string();
            assert!(e.contains("suspended[0]") && e.contains(why), "{e}");
        }
    }

    #[test]
    fn the_shipped_schedules_are_valid() {
        let s = load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules"),
            chrono_tz::Asia::Taipei,
        )
        .unwrap();
        let jobs: Vec<_> = s.iter().map(|s| s.job).collect();
        for j in Job::ALL.into_iter().filter(|j| !j.periods().is_empty()) {
            assert!(jobs.contains(&j), "{} is not scheduled", j.as_str());
        }
    }

    #[test]
    fn the_seed_rule_is_a_drawing_job_s_and_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let sample = "[[schedule]]\njob = \"sample-audit\"\ncron = \"0 0 8 5 1,7 *\"\nperiod = \"previous-half-year\"\n";
        let ok = write(dir.path(), &format!("{sample}seed = \"ceremony\"\n")).unwrap();
        assert_eq!(
            ok[0].seed,
            SeedRule::Ceremony {
                wait: Duration::days(7),
                fallback_os: false
            }
        );
        assert_eq!(write(dir.path(), sample).unwrap()[0].seed, SeedRule::Os);
        for (extra, says) in [
            (
                "seed = \"dice\"\n",
                "seed = \"dice\": allowed values: os, ceremony",
            ),
            (
                "seed_wait = \"3d\"\n",
                "seed_wait = \"3d\": only with seed = \"ceremony\"",
            ),
            (
                "seed = \"ceremony\"\nseed_fallback = \"maybe\"\n",
                "seed_fallback = \"maybe\": allowed values: wait",
            ),
            (
                "seed = \"ceremony\"\nseed_wait = \"a week\"\n",
                "seed_wait = \"a week\"",
            ),
        ] {
            let e = write(dir.path(), &format!("{sample}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{extra}: {e}");
        }
        // The external audit's draw of units has its ceremony too; a job
        // that draws nothing has none.
        let external = write(
            dir.path(),
            "[[schedule]]\njob = \"external-audit\"\ncron = \"0 0 8 1 3 *\"\nperiod = \"previous-year\"\nseed = \"ceremony\"\n",
        )
        .unwrap();
        assert!(matches!(external[0].seed, SeedRule::Ceremony { .. }));
        let e = write(
            dir.path(),
            "[[schedule]]\njob = \"internal-audit\"\ncron = \"0 0 8 15 1 *\"\nperiod = \"previous-year\"\nseed = \"ceremony\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("a job that draws"), "{e}");
    }

    #[test]
    fn bad_schedules_are_refused_with_their_place_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let e = write(
            dir.path(),
            "[[schedule]]\njob = \"sample-audit\"\ncron = \"0 0 8 5 1 *\"\nperiod = \"previous-half-year\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("schedule[0].cron") && e.contains("six months"),
            "{e}"
        );
        let e = write(
            dir.path(),
            "[[schedule]]\njob = \"sample-audit\"\ncron = \"0 0 8 5 1,7\"\nperiod = \"previous-half-year\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cron = \"0 0 8 5 1,7\""), "{e}");
        let e = write(
            dir.path(),
            "[[schedule]]\njob = \"audit\"\ncron = \"0 0 8 5 1,7 *\"\nperiod = \"previous-half-year\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown job"), "{e}");
        let e = write(
            dir.path(),
            "[[schedule]]\njob = \"internal-audit\"\ncron = \"0 0 8 10 1 *\"\nperiod = \"previous-half-year\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("internal-audit takes previous-year"), "{e}");
        let e = write(
            dir.path(),
            "[[schedule]]\njob = \"account-review\"\ncron = \"0 0 8 30 2 *\"\nperiod = \"previous-year\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("never fires"), "{e}");
        assert!(
            write(
                dir.path(),
                "[[schedule]]\njob = \"sample-audit\"\ncron = \"0 0 8 5 1,7 *\"\nperiod = \"previous-half-year\"\n",
            )
            .is_ok()
        );
    }
}
