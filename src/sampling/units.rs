//! The external audit's draw of units (point 4(2)), docs/sampling.md § 14:
//! every requesting unit but the Health Bureau gets a ticket
//! `ticket(seed, "unit", period, unit)`; units with critical findings
//! come first (when `rules.external_audit_critical_first`), then the rest
//! by ticket, and the first `n` are drawn — every unit that comes first
//! among them. The candidates' digest, which says which come first, is
//! recorded in the seed ledger before the draw.

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
    /// What shows the seed came after the candidates were fixed (as the
    /// manifest's `seed_postdates_population`).
    pub seed_postdates_candidates: String,
    /// The ceremony the seed came by, if the daemon ran one.
    pub ceremony: Option<super::manifest::CeremonyRecord>,
    pub period_id: String,
    /// SHA-256 of the candidate unit ids, one per line, sorted.
    pub units_digest: String,
    pub units_to_select: u32,
    pub units: Vec<DrawnUnit>,
}

#[derive(Debug, Serialize)]
pub struct DrawnUnit {
    pub unit_id: String,
    /// Critical findings of the unit when drawn: a unit with any comes
    /// first (always drawn) when the config says so.
    pub critical: u32,
    /// Whether it came first for its critical findings.
    pub first: bool,
    /// ticket(seed, "unit", period_id, unit_id).
    pub ticket: String,
    pub rank: u32,
    pub selected: bool,
}

/// A unit the external audit may draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub unit_id: String,
    /// Its critical findings when drawn.
    pub critical: u32,
    /// Whether it comes before every unit without (drawn whatever its
    /// ticket).
    pub first: bool,
}

/// The candidates, sorted by id, and their digest: SHA-256 of one line
/// per unit, `<unit_id>\n`, or `<unit_id>\tfirst\n` for a unit that comes
/// first (so a draw with none digests as the plain list of ids).
/// `critical_first`: whether a unit with critical findings comes first.
pub fn candidates(
    units: impl IntoIterator<Item = (String, u32)>,
    critical_first: bool,
) -> (Vec<Candidate>, String) {
    let mut units: Vec<Candidate> = units
        .into_iter()
        .map(|(unit_id, critical)| Candidate {
            unit_id,
            critical,
            first: critical_first && critical > 0,
        })
        .collect();
    units.sort_by(|a, b| a.unit_id.as_bytes().cmp(b.unit_id.as_bytes()));
    let digest = hex::encode(Sha256::digest(
        units
            .iter()
            .map(|u| {
                if u.first {
                    format!("{}\tfirst\n", u.unit_id)
                } else {
                    format!("{}\n", u.unit_id)
                }
            })
            .collect::<String>(),
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
    (candidates, digest): (&[Candidate], &str),
    n: u32,
) -> UnitDraw {
    // Those that come first before the rest, each group by ticket.
    let mut drawn: Vec<(bool, Ticket, &Candidate)> = candidates
        .iter()
        .map(|u| {
            (
                !u.first,
                ticket(&[seed.as_str(), "unit", period_id, &u.unit_id]),
                u,
            )
        })
        .collect();
    drawn.sort_by_key(|a| (a.0, a.1));
    let first = candidates.iter().filter(|u| u.first).count() as u32;
    let n = n.max(first).min(drawn.len() as u32);
    UnitDraw {
        spec_version: SPEC_VERSION,
        seed: seed.as_str().to_owned(),
        seed_source,
        draw_number,
        seed_postdates_candidates: String::new(),
        ceremony: None,
        period_id: period_id.to_owned(),
        units_digest: digest.to_owned(),
        units_to_select: n,
        units: drawn
            .iter()
            .zip(1..)
            .map(|((_, t, u), rank)| DrawnUnit {
                unit_id: u.unit_id.clone(),
                critical: u.critical,
                first: u.first,
                ticket: ticket_hex(t),
                rank,
                selected: rank <= n,
            })
            .collect(),
    }
}
