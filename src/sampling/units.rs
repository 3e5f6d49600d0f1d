//! The external audit's draw of units (point 4(2)): every requesting unit
//! but the Health Bureau gets a ticket `ticket(seed, "unit", period, unit)`
//! (docs/sampling.md); the units with the smallest tickets are drawn. The
//! candidates' digest is recorded in the seed ledger before the draw.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::spec::{SPEC_VERSION, Seed, Ticket, ticket, ticket_hex};

/// `selection.json` of an external audit.
#[derive(Debug, Serialize)]
pub struct UnitDraw {
    pub spec_version: &'static str,
    pub seed: String,
    pub seed_source: &'static str,
    pub draw_number: u32,
    pub period_id: String,
    /// SHA-256 of the candidate unit ids, one per line, sorted.
    pub units_digest: String,
    pub units_to_select: u32,
    pub units: Vec<DrawnUnit>,
}

#[derive(Debug, Serialize)]
pub struct DrawnUnit {
    pub unit_id: String,
    /// ticket(seed, "unit", period_id, unit_id).
    pub ticket: String,
    pub rank: u32,
    pub selected: bool,
}

/// The candidates, sorted, and their digest.
pub fn candidates(units: impl IntoIterator<Item = String>) -> (Vec<String>, String) {
    let mut units: Vec<String> = units.into_iter().collect();
    units.sort();
    let digest = hex::encode(Sha256::digest(
        units.iter().map(|u| format!("{u}\n")).collect::<String>(),
    ));
    (units, digest)
}

/// Draws `n` of `candidates` (as [`candidates`] returns them) for
/// `period_id` with `seed`.
pub fn draw(
    seed: &Seed,
    seed_source: &'static str,
    draw_number: u32,
    period_id: &str,
    (candidates, digest): (&[String], &str),
    n: u32,
) -> UnitDraw {
    let mut drawn: Vec<(Ticket, &String)> = candidates
        .iter()
        .map(|u| (ticket(&[seed.as_str(), "unit", period_id, u]), u))
        .collect();
    drawn.sort();
    let n = n.min(drawn.len() as u32);
    UnitDraw {
        spec_version: SPEC_VERSION,
        seed: seed.as_str().to_owned(),
        seed_source,
        draw_number,
        period_id: period_id.to_owned(),
        units_digest: digest.to_owned(),
        units_to_select: n,
        units: drawn
            .iter()
            .zip(1..)
            .map(|((t, u), rank)| DrawnUnit {
                unit_id: (*u).clone(),
                ticket: ticket_hex(t),
                rank,
                selected: rank <= n,
            })
            .collect(),
    }
}
