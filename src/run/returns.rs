//! A completed worksheet coming back (`ingest-worksheet`): matched to its
//! run and checked by `worksheet`, its answers recorded, and the anomalies
//! it confirms sent to the unit's ethics unit. The CLI and (later) the
//! daemon call [`ingest_worksheet`].

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::Config;
use crate::mail;
use crate::store::Store;
use crate::worksheet::Returned;

/// What ingesting a returned worksheet did.
#[derive(Debug)]
pub struct Ingested {
    pub returned: Returned,
    /// Whether the ethics unit was queued a notice of the anomalies.
    pub notice_queued: bool,
}

/// Reads `file` back, records its answers and queues the ethics unit's
/// notice of the anomalies it confirms (sent at the next drain).
pub fn ingest_worksheet(config: &Config, file: &Path, clock: &dyn Clock) -> Result<Ingested> {
    let mut store = Store::open(&config.paths.state)?;
    let now = clock
        .local(config.timezone)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let returned =
        crate::worksheet::ingest_returned(file, &config.paths.archive, &mut store, &now)?;
    let notice_queued = queue_anomalies(
        config,
        &mut store,
        &returned,
        &returned.file_sha256,
        clock.now(),
    )?;
    Ok(Ingested {
        returned,
        notice_queued,
    })
}

/// Queues, for the unit's ethics unit, the anomalies a returned worksheet
/// confirmed (point 6(3)). Nothing when there are none or the unit has no
/// ethics address. Returns whether a message was queued.
fn queue_anomalies(
    config: &Config,
    store: &mut Store,
    returned: &Returned,
    file_sha256: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    #[derive(Serialize)]
    struct Cx<'a> {
        unit_name: &'a str,
        run_id: &'a str,
        anomalies: Vec<std::collections::BTreeMap<&'static str, String>>,
    }
    let Some(unit) = config.agencies.get(&returned.unit_id) else {
        return Ok(false);
    };
    let (Some(ethics), false) = (&unit.ethics_email, returned.anomalies.is_empty()) else {
        return Ok(false);
    };
    let anomalies = returned
        .anomalies
        .iter()
        .map(|a| {
            [
                ("seq", a.seq.to_string()),
                ("account_id", a.account_id.clone()),
                ("queried_at", a.queried_at.clone()),
                ("query_item", a.query_item.clone()),
                ("subject", a.subject.clone()),
                ("form_filled", a.form_filled.clone()),
                ("approved", a.approved.clone()),
                ("matches", a.matches.clone()),
                ("anomaly", a.anomaly.clone()),
                ("note", a.note.clone()),
            ]
            .into_iter()
            .collect()
        })
        .collect();
    let body = config.templates.render(
        "anomalies.txt.j2",
        &Cx {
            unit_name: &unit.name,
            run_id: &returned.run_id,
            anomalies,
        },
    )?;
    let message = mail::plain(
        config,
        &returned.run_dir.display().to_string(),
        &format!("anomalies:{}:{file_sha256}", returned.unit_id),
        ethics,
        &format!(
            "【健保WebIR稽核】{} 抽查工作底稿確認異常 {} 筆",
            unit.name,
            returned.anomalies.len()
        ),
        body,
        now,
    )?;
    Ok(store.queue(&[message], &mail::outbox::stamp(now))? == 1)
}
