//! webir-audit: audits how Kaohsiung City agencies use the NHI WebIR query
//! service, per the city's directions (see `ARCHITECTURE.md`).

pub mod archive; // run folders: findings.csv, rejects.csv, inputs.json, run.json (mode 0600)
pub mod checks; // audit checks: findings with stable codes, pure functions over frames
pub mod cli; // command line: argument types, one function per command, what the terminal shows
pub mod clock; // the injected clock
pub mod config; // the TOML config: raw serde types, validation, agency tree
pub mod daemon; // the daemon: schedules into the run ledger, wake-up passes, the seed ceremony's steps
pub mod evidence; // export-evidence: the encrypted bundle an auditor verifies offline
pub mod followup; // what runs asked of units, chased: reminders and escalation until the return is in
pub mod inbox; // files dropped in the inbox opened as untrusted: regular files only, capped; refused ones set aside
pub mod ingest; // exports in the inbox -> canonical polars tables, rejects, manifest
pub mod inputs; // the input store: exports moved out of the inbox once read, and their retention
pub mod job; // the jobs: one closed type with name, period rule, inputs needed
pub mod keyfile; // the key the attachment passwords are sealed under, outside the state folder
pub mod mail; // mail: templates, composing, the outbox and its transports (file, SMTP)
pub mod model; // the canonical tables, their columns and vocabularies
pub mod period; // audit periods (2026H1, 2026Q3, FROM..TO)
pub mod privacy; // masking of national IDs and names for anything a person reads
pub mod receipt; // witnessed seals: the evidence chain's new head mailed outside the server
pub mod report; // Excel workbooks: report models per unit and city-wide, and the pure renderer
pub mod run; // the run layer: one dispatcher for every job, the run skeleton, the audits, what operators do by hand
pub mod sampling; // the seeded sample audit (spec webir-audit/sample/v1): population, selection, manifest
pub mod schedule; // schedules/*.toml: when each job runs, validated against the regulation's cadence
pub mod status; // what the daemon has done and will do: the status command and the heartbeat mail
pub mod store; // the SQLite state database: seed ledger, outbox, run ledger, returns, due items
pub mod synth; // the deterministic generator of the fictional sample city
pub mod templates; // the mail templates, compiled when the config loads
pub mod verify; // re-drawing a sample audit from its manifest: MATCH or the first difference
pub mod vocab; // closed vocabularies: one macro turns an enum into text and back
pub mod worksheet; // completed sample worksheets coming back: matched, checked, recorded
