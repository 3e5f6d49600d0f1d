//! Draining the outbox: each due message goes to the transport once per
//! attempt; transient failures are retried with exponential backoff and a
//! jitter derived from the message (no RNG, so a drain is reproducible);
//! permanent ones, and messages out of attempts or past the retry window,
//! fail and are reported to `mail.admin`.
//!
//! Exactly once: a message is marked `sending` (committed) just before its
//! data goes to the server. If the connection is lost after that, or the
//! process dies, nobody knows whether the server took it: it becomes
//! `unknown`, the admin is told, and it is sent again only when the
//! operator says so (`outbox retry`, or `outbox confirm` if it arrived) or
//! after `mail.unknown_resend_after`. One drain at a time holds
//! `paths.state/outbox.lock`, so a `sending` row a drain finds belongs to a
//! dead process.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::config::{Config, Transport};
use crate::store::{MailState, OutboxRow, Store};

/// Why an attempt did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying: 4xx replies, refused or dropped connections, timeouts
    /// before the data was sent.
    Transient(String),
    /// Not worth retrying: 5xx replies, a malformed address.
    Permanent(String),
    /// The data was sent but no reply came: the server may have it.
    Unknown(String),
}

/// Something that delivers a message.
pub trait Deliver {
    /// Delivers `eml` from `from` to `to`. `committing` is called once,
    /// right before the data leaves; an error from it aborts the attempt.
    fn deliver(
        &mut self,
        from: &str,
        to: &str,
        message_id: &str,
        eml: &[u8],
        committing: &mut dyn FnMut() -> Result<(), Failure>,
    ) -> Result<(), Failure>;

    /// The batch is over (an SMTP transport says QUIT).
    fn finish(&mut self) {}
}

/// `transport = "file"`: each message becomes `<dir>/<message id>.eml`.
/// Writing the same message again is a no-op, so a crash between writing
/// and recording never duplicates it.
#[derive(Debug)]
pub struct FileTransport {
    pub dir: PathBuf,
}

impl Deliver for FileTransport {
    fn deliver(
        &mut self,
        _from: &str,
        _to: &str,
        id: &str,
        eml: &[u8],
        committing: &mut dyn FnMut() -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let io = |e: std::io::Error| Failure::Transient(format!("{}: {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let path = delivered_file(&self.dir, id).map_err(|e| Failure::Permanent(e.to_string()))?;
        committing()?;
        match crate::archive::create_private(&path) {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(eml)
                    .map_err(|e| Failure::Unknown(format!("{}: {e}", path.display())))
            }
            Err(_) if path.exists() => Ok(()),
            Err(e) => Err(Failure::Transient(format!("{e:#}"))),
        }
    }
}

/// `transport = "smtp"`: `lettre` over STARTTLS (587) or implicit TLS (465),
/// TLS required, AUTH with the password from the environment or a file.
/// One connection per drain (a fresh one after any error).
pub struct SmtpTransport {
    host: String,
    port: u16,
    implicit: bool,
    tls: lettre::transport::smtp::client::TlsParameters,
    credentials: Option<lettre::transport::smtp::authentication::Credentials>,
    hello: lettre::transport::smtp::extension::ClientId,
    timeout: std::time::Duration,
    conn: Option<lettre::transport::smtp::client::SmtpConnection>,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpTransport({}:{})", self.host, self.port)
    }
}

impl SmtpTransport {
    pub fn new(config: &Config) -> Result<SmtpTransport> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, TlsParameters};
        use lettre::transport::smtp::extension::ClientId;
        let m = &config.mail;
        let host = m.smtp_host.clone().context("mail.smtp_host is not set")?;
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(ca) = &m.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            tls = tls.add_root_certificate(
                Certificate::from_pem(&pem)
                    .with_context(|| format!("{}: not a PEM certificate", ca.display()))?,
            );
        }
        let implicit = m.smtp_security.as_deref() == Some("tls");
        let credentials = match &m.smtp_username {
            Some(user) => Some(Credentials::new(user.clone(), password(config)?)),
            None => None,
        };
        let domain = super::domain_of(&m.from);
        Ok(SmtpTransport {
            port: m.smtp_port.unwrap_or(if implicit { 465 } else { 587 }),
            host,
            implicit,
            tls: tls.build().context("TLS parameters")?,
            credentials,
            hello: ClientId::Domain(domain.to_owned()),
            timeout: std::time::Duration::from_secs(60),
            conn: None,
        })
    }

    /// A connection that is encrypted and authenticated, or why not.
    fn connect(&self) -> Result<lettre::transport::smtp::client::SmtpConnection, Failure> {
        use lettre::transport::smtp::authentication::Mechanism;
        use lettre::transport::smtp::client::SmtpConnection;
        let mut conn = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            self.implicit.then_some(&self.tls),
            None,
        )
        .map_err(|e| classify(&e, "connecting"))?;
        if !self.implicit {
            if !conn.can_starttls() {
                conn.abort();
                return Err(Failure::Transient(format!(
                    "{}:{} does not offer STARTTLS; refusing to send without TLS",
                    self.host, self.port
                )));
            }
            conn.starttls(&self.tls, &self.hello)
                .map_err(|e| classify(&e, "STARTTLS"))?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .map_err(|e| classify(&e, "AUTH"))?;
        }
        Ok(conn)
    }
}

/// A reply or error before the data was sent: the message did not go.
fn classify(e: &lettre::transport::smtp::Error, step: &str) -> Failure {
    if e.is_permanent() {
        Failure::Permanent(format!("{step}: {e}"))
    } else {
        Failure::Transient(format!("{step}: {e}"))
    }
}

/// The SMTP password: from `mail.password_env` or `mail.password_file`,
/// never from the config itself, never logged.
fn password(config: &Config) -> Result<String> {
    let m = &config.mail;
    if let Some(var) = &m.password_env {
        return std::env::var(var)
            .with_context(|| format!("environment variable {var} (mail.password_env) is not set"));
    }
    if let Some(file) = &m.password_file {
        return Ok(std::fs::read_to_string(file)
            .with_context(|| format!("reading {} (mail.password_file)", file.display()))?
            .trim_end()
            .to_owned());
    }
    anyhow::bail!("mail.smtp_username is set but neither mail.password_env nor mail.password_file")
}

impl Deliver for SmtpTransport {
    fn deliver(
        &mut self,
        from: &str,
        to: &str,
        _id: &str,
        eml: &[u8],
        committing: &mut dyn FnMut() -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
        use lettre::transport::smtp::extension::{MailBodyParameter, MailParameter};
        let addr = |s: &str| {
            s.parse::<lettre::message::Mailbox>()
                .map(|m| m.email)
                .map_err(|e| Failure::Permanent(format!("{s:?}: {e}")))
        };
        let (from, to) = (addr(from)?, addr(to)?);
        let mut conn = match self.conn.take() {
            Some(c) if !c.has_broken() => c,
            _ => self.connect()?,
        };
        let params = if eml.is_ascii() {
            vec![]
        } else {
            vec![MailParameter::Body(MailBodyParameter::EightBitMime)]
        };
        let envelope = conn
            .command(Mail::new(Some(from), params))
            .map_err(|e| classify(&e, "MAIL FROM"))
            .and_then(|_| {
                conn.command(Rcpt::new(to, vec![]))
                    .map_err(|e| classify(&e, "RCPT TO"))
            })
            .and_then(|_| conn.command(Data).map_err(|e| classify(&e, "DATA")));
        if let Err(f) = envelope {
            conn.abort();
            return Err(f);
        }
        if let Err(f) = committing() {
            conn.abort();
            return Err(f);
        }
        match conn.message(eml) {
            Ok(_) => {
                self.conn = Some(conn);
                Ok(())
            }
            Err(e) => {
                conn.abort();
                Err(if e.is_permanent() {
                    Failure::Permanent(format!("after the data: {e}"))
                } else if e.is_transient() {
                    Failure::Transient(format!("after the data: {e}"))
                } else {
                    Failure::Unknown(format!("no reply after the data was sent: {e}"))
                })
            }
        }
    }

    fn finish(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.quit();
        }
    }
}

/// Where the file transport delivers: `<state>/outbox-files`.
pub fn file_transport_dir(config: &Config) -> PathBuf {
    config.paths.state.join("outbox-files")
}

/// The file the file transport delivers message `id` as, in `dir`.
pub fn delivered_file(dir: &Path, id: &str) -> Result<PathBuf, crate::archive::UnsafeName> {
    let name: String = id
        .trim_matches(['<', '>'])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    crate::archive::inside(dir, &format!("{name}.eml"))
}

/// The transport the config names.
pub fn transport(config: &Config) -> Result<Box<dyn Deliver>> {
    Ok(match config.mail.transport {
        Transport::File => Box::new(FileTransport {
            dir: file_transport_dir(config),
        }),
        Transport::Smtp => Box::new(SmtpTransport::new(config)?),
    })
}

/// What a drain did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
    /// Messages whose outcome is unknown: the operator decides.
    pub unknown: usize,
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The wait before attempt `n + 1`: 5 minutes doubled per attempt, at most
/// 6 hours, plus up to a quarter more, derived from the message.
pub fn backoff(message_id: &str, attempts: u32) -> Duration {
    let base = (5 * 60i64) << attempts.min(12);
    let base = base.min(6 * 3600);
    let h = Sha256::digest(format!("{message_id}/{attempts}").as_bytes());
    let jitter = i64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]])) % (base / 4 + 1);
    Duration::seconds(base + jitter)
}

/// Holds `outbox.lock` beside the state database for as long as it lives:
/// one drain at a time, across processes.
#[derive(Debug)]
pub struct DrainLock(#[allow(dead_code)] std::fs::File);

impl DrainLock {
    /// Waits for the lock.
    pub fn acquire(store: &Store) -> Result<DrainLock> {
        let path = store.dir().join("outbox.lock");
        let file = crate::archive::open_lock(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(DrainLock(file))
    }
}

/// Sends every due message once. Failures that end a message, and
/// messages whose outcome is unknown, queue an alert to `mail.admin` (an
/// alert that fails is only logged).
pub fn drain(
    config: &Config,
    store: &mut Store,
    to: &mut dyn Deliver,
    now: DateTime<Utc>,
) -> Result<Drained> {
    let _lock = DrainLock::acquire(store)?;
    let mut out = Drained::default();
    for row in store.interrupted()? {
        let e = "the process stopped while this message was being sent; the server may have it";
        mark_unknown(config, store, &row, e, now)?;
        out.unknown += 1;
    }
    let window = Duration::hours(i64::from(config.mail.retry_window_hours));
    for row in store.due(&stamp(now))? {
        let eml = store.eml(row.id)?;
        let result = {
            let mut committing = || {
                store
                    .mark_sending(row.id)
                    .map_err(|e| Failure::Transient(e.to_string()))
            };
            to.deliver(
                &config.mail.from,
                &row.recipient,
                &row.message_id,
                &eml,
                &mut committing,
            )
        };
        let queued = DateTime::parse_from_rfc3339(&row.queued_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now);
        match result {
            Ok(()) => {
                store.record_attempt(
                    row.id,
                    MailState::Sent,
                    &stamp(now),
                    &row.next_attempt_at,
                    None,
                )?;
                out.sent += 1;
            }
            Err(Failure::Unknown(e)) => {
                tracing::error!(to = %row.recipient, error = %e, "delivery outcome unknown");
                mark_unknown(config, store, &row, &e, now)?;
                out.unknown += 1;
            }
            Err(Failure::Transient(e))
                if row.attempts + 1 < config.mail.max_attempts && now - queued < window =>
            {
                let next = now + backoff(&row.message_id, row.attempts);
                tracing::warn!(to = %row.recipient, error = %e, next = %stamp(next), "delivery failed; will retry");
                store.record_attempt(
                    row.id,
                    MailState::Pending,
                    &stamp(now),
                    &stamp(next),
                    Some(&e),
                )?;
                out.retrying += 1;
            }
            Err(Failure::Transient(e) | Failure::Permanent(e)) => {
                tracing::error!(to = %row.recipient, error = %e, "delivery failed for good");
                store.record_attempt(
                    row.id,
                    MailState::Failed,
                    &stamp(now),
                    &row.next_attempt_at,
                    Some(&e),
                )?;
                out.failed += 1;
                if !row.report.starts_with("alert:") {
                    alert(config, store, &row, row.attempts + 1, &e, false, now)?;
                }
            }
        }
    }
    to.finish();
    Ok(out)
}

/// Queues copies of the messages `run` sent to `to`, each under a new
/// report key (`<report>#resend<n>`) and Message-ID, for the next drain.
/// Refuses when the run sent nothing to `to`: a resend never reaches anyone
/// a run's routing did not choose.
pub fn resend(
    config: &Config,
    store: &mut Store,
    run: &str,
    to: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    let rows = store.outbox()?;
    let of_run = |r: &&OutboxRow| {
        r.run == run || std::path::Path::new(&r.run).file_name() == Some(run.as_ref())
    };
    let originals: Vec<&OutboxRow> = rows
        .iter()
        .filter(of_run)
        .filter(|r| r.recipient.eq_ignore_ascii_case(to) && !r.report.contains('#'))
        .filter(|r| !r.report.starts_with("alert:"))
        .collect();
    if originals.is_empty() {
        let mut sent: Vec<&str> = rows
            .iter()
            .filter(of_run)
            .map(|r| r.recipient.as_str())
            .collect();
        sent.sort_unstable();
        sent.dedup();
        anyhow::bail!("run {run} sent nothing to {to}; its recipients: {sent:?}");
    }
    let mut ids = Vec::new();
    for o in originals {
        let n = 1 + rows
            .iter()
            .filter(|r| r.run == o.run && r.recipient == o.recipient)
            .filter(|r| r.report.starts_with(&format!("{}#resend", o.report)))
            .count();
        if store.dropped_body_sha256(o.id)?.is_some() {
            anyhow::bail!(
                "message {} to {} was delivered and its body dropped after rules.outbox_keep_days = {}: \
                 its workbook is in the sealed run {}; send it from there",
                o.id,
                o.recipient,
                config.rules.outbox_keep_days,
                o.run
            );
        }
        let report = format!("{}#resend{n}", o.report);
        let id = super::message_id(config, &o.run, &report, &o.recipient);
        let eml = with_message_id(&store.eml(o.id)?, &o.message_id, &id)
            .with_context(|| format!("message {} has no Message-ID header", o.id))?;
        ids.push(store.requeue_copy(o.id, &report, &id, &eml, &stamp(now))?);
    }
    Ok(ids)
}

/// `eml` with its Message-ID header's value `old` replaced by `new`.
fn with_message_id(eml: &[u8], old: &str, new: &str) -> Option<Vec<u8>> {
    let header_end = eml
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(eml.len());
    let needle = format!("Message-ID: {old}");
    let at = eml[..header_end]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))?;
    let mut out = eml[..at].to_vec();
    out.extend_from_slice(format!("Message-ID: {new}").as_bytes());
    out.extend_from_slice(&eml[at + needle.len()..]);
    Some(out)
}

/// Records that nobody knows whether `row` arrived: it waits for the
/// operator, or for `mail.unknown_resend_after`, and the admin is told.
fn mark_unknown(
    config: &Config,
    store: &mut Store,
    row: &OutboxRow,
    error: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let next = match config.mail.unknown_resend_after_hours {
        Some(h) => stamp(now + Duration::hours(i64::from(h))),
        None => NEVER.to_owned(),
    };
    store.record_attempt(row.id, MailState::Unknown, &stamp(now), &next, Some(error))?;
    if !row.report.starts_with("alert:") {
        alert(config, store, row, row.attempts + 1, error, true, now)?;
    }
    Ok(())
}

/// `next_attempt_at` of a message nothing will send again by itself.
const NEVER: &str = "9999-12-31T00:00:00Z";

/// Queues a plain-text alert to `mail.admin` about a message that failed
/// or whose outcome is `unknown`; one per such event (the attempt count is
/// part of its key).
#[allow(clippy::too_many_arguments)]
fn alert(
    config: &Config,
    store: &mut Store,
    row: &OutboxRow,
    attempts: u32,
    error: &str,
    unknown: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    #[derive(serde::Serialize)]
    struct Cx<'a> {
        recipient: &'a str,
        failed_subject: &'a str,
        message_id: &'a str,
        attempts: u32,
        error: &'a str,
        id: i64,
        unknown: bool,
        resend_after: Option<String>,
    }
    let body = config.templates.render(
        "alert.txt.j2",
        &Cx {
            recipient: &row.recipient,
            failed_subject: &row.subject,
            message_id: &row.message_id,
            attempts,
            error,
            id: row.id,
            unknown,
            resend_after: config
                .mail
                .unknown_resend_after_hours
                .map(|h| format!("{h} 小時")),
        },
    )?;
    let what = if unknown {
        "信件送達狀態不明"
    } else {
        "信件無法送達"
    };
    let message = super::plain(
        config,
        &row.run,
        &format!("alert:{}:{attempts}", row.message_id),
        &config.mail.admin,
        &format!("【健保WebIR稽核】{what}：{}", row.recipient),
        body,
        now,
    )?;
    store.queue(&[message], &stamp(now))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport that answers from a script, and counts what it accepted.
    struct Scripted {
        answers: Vec<Result<(), Failure>>,
        delivered: Vec<String>,
    }

    impl Deliver for Scripted {
        fn deliver(
            &mut self,
            _: &str,
            to: &str,
            _: &str,
            _: &[u8],
            committing: &mut dyn FnMut() -> Result<(), Failure>,
        ) -> Result<(), Failure> {
            committing()?;
            let a = if self.answers.is_empty() {
                Ok(())
            } else {
                self.answers.remove(0)
            };
            if a.is_ok() {
                self.delivered.push(to.to_owned());
            }
            a
        }
    }

    fn config(dir: &std::path::Path) -> Config {
        let toml = r#"
[paths]
inbox = "i"
archive = "a"
state = "s"
[mail]
from = "webir-audit <w@example.gov.tw>"
admin = "admin@example.gov.tw"
max_attempts = 3
[[agencies]]
id = "KHB"
name = "衛生局"
requesting = true
purposes = ["other"]
officer_email = "o@example.gov.tw"
health_bureau = true
"#;
        crate::config::validate(toml::from_str(toml).unwrap(), &dir.join("c.toml")).unwrap()
    }

    fn message(to: &str) -> crate::mail::Outgoing {
        crate::mail::Outgoing {
            run: "r".into(),
            report: "KHB.xlsx".into(),
            recipient: to.into(),
            message_id: format!("<{to}@x>"),
            subject: "s".into(),
            eml: b"Subject: s\r\n\r\nbody\r\n".to_vec(),
        }
    }

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-07-05T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::hours(h)
    }

    #[test]
    fn transient_failures_retry_later_and_nothing_is_sent_twice() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store
                .queue(&[message("o@example.gov.tw")], &stamp(at(0)))
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .queue(&[message("o@example.gov.tw")], &stamp(at(0)))
                .unwrap(),
            0,
            "queued once"
        );
        let mut t = Scripted {
            answers: vec![Err(Failure::Transient("421 busy".into()))],
            delivered: vec![],
        };
        let d = drain(&cfg, &mut store, &mut t, at(0)).unwrap();
        assert_eq!((d.sent, d.retrying, d.failed), (0, 1, 0));
        // Not due again until the backoff has passed.
        assert_eq!(
            drain(&cfg, &mut store, &mut t, at(0)).unwrap(),
            Drained::default()
        );
        let d = drain(&cfg, &mut store, &mut t, at(1)).unwrap();
        assert_eq!(d.sent, 1);
        assert_eq!(
            drain(&cfg, &mut store, &mut t, at(2)).unwrap(),
            Drained::default()
        );
        assert_eq!(t.delivered, ["o@example.gov.tw"]);
        let row = &store.outbox().unwrap()[0];
        assert_eq!((row.state, row.attempts), (MailState::Sent, 2));
    }

    #[test]
    fn permanent_failures_and_exhausted_retries_fail_and_alert_the_admin() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let mut store = Store::open(dir.path()).unwrap();
        store
            .queue(
                &[
                    message("gone@example.gov.tw"),
                    message("flaky@example.gov.tw"),
                ],
                &stamp(at(0)),
            )
            .unwrap();
        let mut t = Scripted {
            answers: vec![
                Err(Failure::Permanent("550 no such user".into())),
                Err(Failure::Transient("450".into())),
            ],
            delivered: vec![],
        };
        drain(&cfg, &mut store, &mut t, at(0)).unwrap();
        for h in 1..10 {
            t.answers.push(Err(Failure::Transient("450".into())));
            let _ = drain(&cfg, &mut store, &mut t, at(h));
        }
        let rows = store.outbox().unwrap();
        let state = |to: &str| {
            rows.iter()
                .find(|r| r.recipient == to)
                .map(|r| (r.state, r.attempts))
                .unwrap()
        };
        assert_eq!(state("gone@example.gov.tw"), (MailState::Failed, 1));
        assert_eq!(
            state("flaky@example.gov.tw"),
            (MailState::Failed, 3),
            "max_attempts = 3"
        );
        let alerts: Vec<_> = rows
            .iter()
            .filter(|r| r.report.starts_with("alert:"))
            .collect();
        assert_eq!(alerts.len(), 2);
        assert!(alerts.iter().all(|a| a.recipient == "admin@example.gov.tw"));
    }

    #[test]
    fn unknown_outcomes_wait_for_the_operator_and_interrupted_sends_become_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let mut store = Store::open(dir.path()).unwrap();
        store
            .queue(
                &[
                    message("cut@example.gov.tw"),
                    message("dead@example.gov.tw"),
                ],
                &stamp(at(0)),
            )
            .unwrap();
        // A process died while sending the second one.
        let dead = store.outbox().unwrap()[1].id;
        store.mark_sending(dead).unwrap();
        let mut t = Scripted {
            answers: vec![Err(Failure::Unknown("connection reset".into()))],
            delivered: vec![],
        };
        let d = drain(&cfg, &mut store, &mut t, at(0)).unwrap();
        assert_eq!(d.unknown, 2, "{d:?}");
        // Neither is sent again by itself, however long we wait; the admin
        // hears of each once.
        for h in 1..100 {
            drain(&cfg, &mut store, &mut t, at(h)).unwrap();
        }
        assert_eq!(t.delivered, ["admin@example.gov.tw"; 2]);
        let rows = store.outbox().unwrap();
        assert!(rows[..2].iter().all(|r| r.state == MailState::Unknown));
        // The operator: the first never arrived, the second did.
        assert!(store.retry(rows[0].id, &stamp(at(100))).unwrap());
        assert!(store.confirm_sent(rows[1].id, &stamp(at(100))).unwrap());
        drain(&cfg, &mut store, &mut t, at(100)).unwrap();
        assert_eq!(t.delivered.last().unwrap(), "cut@example.gov.tw");
        let rows = store.outbox().unwrap();
        assert_eq!(rows[0].state, MailState::Sent);
        assert_eq!(rows[1].state, MailState::Sent);
    }

    #[test]
    fn an_unknown_outcome_is_resent_once_after_the_configured_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.mail.unknown_resend_after_hours = Some(24);
        let mut store = Store::open(dir.path()).unwrap();
        store
            .queue(&[message("cut@example.gov.tw")], &stamp(at(0)))
            .unwrap();
        let mut t = Scripted {
            answers: vec![Err(Failure::Unknown("timeout".into()))],
            delivered: vec![],
        };
        drain(&cfg, &mut store, &mut t, at(0)).unwrap();
        drain(&cfg, &mut store, &mut t, at(23)).unwrap();
        assert!(!t.delivered.contains(&"cut@example.gov.tw".to_owned()));
        drain(&cfg, &mut store, &mut t, at(25)).unwrap();
        drain(&cfg, &mut store, &mut t, at(50)).unwrap();
        let n = t
            .delivered
            .iter()
            .filter(|d| *d == "cut@example.gov.tw")
            .count();
        assert_eq!(n, 1);
    }

    #[test]
    fn backoff_grows_is_capped_and_is_reproducible() {
        let a: Vec<i64> = (0..15).map(|n| backoff("<m@x>", n).num_seconds()).collect();
        assert!(a[0] >= 300 && a[0] <= 375);
        assert!(a.windows(2).take(6).all(|w| w[1] > w[0]));
        assert!(a.iter().all(|s| *s <= 6 * 3600 * 5 / 4));
        assert_eq!(
            a,
            (0..15)
                .map(|n| backoff("<m@x>", n).num_seconds())
                .collect::<Vec<_>>()
        );
    }
}
