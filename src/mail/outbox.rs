//! Draining the outbox: each due message goes to the transport once per
//! attempt; transient failures are retried with exponential backoff and a
//! jitter derived from the message (no RNG, so a drain is reproducible);
//! permanent ones, and messages out of attempts or past the retry window,
//! fail and are reported to `mail.admin`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::config::{Config, Transport};
use crate::store::{OutboxRow, Store};

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying: 4xx replies, refused or dropped connections, timeouts.
    Transient(String),
    /// Not worth retrying: 5xx replies, a malformed address.
    Permanent(String),
}

/// Something that delivers a message.
pub trait Deliver {
    fn deliver(
        &mut self,
        from: &str,
        to: &str,
        message_id: &str,
        eml: &[u8],
    ) -> Result<(), Failure>;
}

/// `transport = "file"`: each message becomes `<dir>/<message id>.eml`.
/// Writing the same message again is a no-op, so a crash between writing
/// and recording never duplicates it.
#[derive(Debug)]
pub struct FileTransport {
    pub dir: PathBuf,
}

impl Deliver for FileTransport {
    fn deliver(&mut self, _from: &str, _to: &str, id: &str, eml: &[u8]) -> Result<(), Failure> {
        let io = |e: std::io::Error| Failure::Transient(format!("{}: {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
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
        let path = self.dir.join(format!("{name}.eml"));
        match crate::archive::create_private(&path) {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(eml)
                    .map_err(|e| Failure::Transient(format!("{}: {e}", path.display())))
            }
            Err(_) if path.exists() => Ok(()),
            Err(e) => Err(Failure::Transient(format!("{e:#}"))),
        }
    }
}

/// `transport = "smtp"`: `lettre` over STARTTLS (587) or implicit TLS (465),
/// TLS required, AUTH with the password from the environment or a file.
pub struct SmtpTransport {
    inner: lettre::SmtpTransport,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpTransport")
    }
}

impl SmtpTransport {
    pub fn new(config: &Config) -> Result<SmtpTransport> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
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
        let tls = tls.build().context("TLS parameters")?;
        let implicit = m.smtp_security.as_deref() == Some("tls");
        let port = m.smtp_port.unwrap_or(if implicit { 465 } else { 587 });
        let mut b = lettre::SmtpTransport::builder_dangerous(&host)
            .port(port)
            .tls(if implicit {
                Tls::Wrapper(tls)
            } else {
                Tls::Required(tls)
            })
            .timeout(Some(std::time::Duration::from_secs(60)));
        if let Some(user) = &m.smtp_username {
            b = b.credentials(Credentials::new(user.clone(), password(config)?));
        }
        Ok(SmtpTransport { inner: b.build() })
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
    fn deliver(&mut self, from: &str, to: &str, _id: &str, eml: &[u8]) -> Result<(), Failure> {
        use lettre::Transport as _;
        let addr = |s: &str| {
            s.parse::<lettre::message::Mailbox>()
                .map(|m| m.email)
                .map_err(|e| Failure::Permanent(format!("{s:?}: {e}")))
        };
        let envelope = lettre::address::Envelope::new(Some(addr(from)?), vec![addr(to)?])
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        match self.inner.send_raw(&envelope, eml) {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(Failure::Permanent(e.to_string())),
            Err(e) => Err(Failure::Transient(e.to_string())),
        }
    }
}

/// The transport the config names.
pub fn transport(config: &Config) -> Result<Box<dyn Deliver>> {
    Ok(match config.mail.transport {
        Transport::File => Box::new(FileTransport {
            dir: config.paths.state.join("outbox-files"),
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

/// Sends every due message once. Failures that end a message queue an
/// alert to `mail.admin` (an alert that fails is only logged).
pub fn drain(
    config: &Config,
    store: &mut Store,
    to: &mut dyn Deliver,
    now: DateTime<Utc>,
) -> Result<Drained> {
    let mut out = Drained::default();
    let window = Duration::hours(i64::from(config.mail.retry_window_hours));
    for row in store.due(&stamp(now))? {
        let eml = store.eml(row.id)?;
        let result = to.deliver(&config.mail.from, &row.recipient, &row.message_id, &eml);
        let queued = DateTime::parse_from_rfc3339(&row.queued_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now);
        match result {
            Ok(()) => {
                store.record_attempt(row.id, "sent", &stamp(now), &row.next_attempt_at, None)?;
                out.sent += 1;
            }
            Err(Failure::Transient(e))
                if row.attempts + 1 < config.mail.max_attempts && now - queued < window =>
            {
                let next = now + backoff(&row.message_id, row.attempts);
                tracing::warn!(to = %row.recipient, error = %e, next = %stamp(next), "delivery failed; will retry");
                store.record_attempt(row.id, "pending", &stamp(now), &stamp(next), Some(&e))?;
                out.retrying += 1;
            }
            Err(Failure::Transient(e) | Failure::Permanent(e)) => {
                tracing::error!(to = %row.recipient, error = %e, "delivery failed for good");
                store.record_attempt(
                    row.id,
                    "failed",
                    &stamp(now),
                    &row.next_attempt_at,
                    Some(&e),
                )?;
                out.failed += 1;
                if !row.report.starts_with("alert:") {
                    alert(config, store, &row, row.attempts + 1, &e, now)?;
                }
            }
        }
    }
    Ok(out)
}

/// Queues a plain-text alert to `mail.admin` about a message that failed.
fn alert(
    config: &Config,
    store: &mut Store,
    row: &OutboxRow,
    attempts: u32,
    error: &str,
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
        },
    )?;
    let message = super::plain(
        config,
        &row.run,
        &format!("alert:{}", row.message_id),
        &config.mail.admin,
        &format!("【健保WebIR稽核】信件無法送達：{}", row.recipient),
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
        fn deliver(&mut self, _: &str, to: &str, _: &str, _: &[u8]) -> Result<(), Failure> {
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
        assert_eq!((row.state.as_str(), row.attempts), ("sent", 2));
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
                .map(|r| (r.state.clone(), r.attempts))
                .unwrap()
        };
        assert_eq!(state("gone@example.gov.tw"), ("failed".into(), 1));
        assert_eq!(
            state("flaky@example.gov.tw"),
            ("failed".into(), 3),
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
