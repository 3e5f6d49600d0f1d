//! A real SMTP server for the mail tests: `tests/smtp_server.py` (Python's
//! aiosmtpd) over TCP with STARTTLS required and AUTH, on a certificate
//! issued here by a throwaway CA (the config's `mail.ca_file`). aiosmtpd is
//! installed once into the target folder if Python does not have it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::harness::repo;

pub const USER: &str = "webir-audit";
pub const PASSWORD: &str = "s3cret-不可外流";

/// A folder on `PYTHONPATH` holding aiosmtpd (empty when Python already has
/// it).
fn python_path() -> &'static str {
    static DIR: OnceLock<String> = OnceLock::new();
    DIR.get_or_init(|| {
        let has = |path: &str| {
            Command::new("python3")
                .args(["-c", "import aiosmtpd"])
                .env("PYTHONPATH", path)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if has("") {
            return String::new();
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pydeps");
        let dir = dir.to_str().expect("utf-8 path").to_owned();
        if !has(&dir) {
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(["--target", &dir, "aiosmtpd==1.4.6"])
                .status()
                .expect("python3 -m pip runs");
            assert!(status.success(), "installing aiosmtpd failed");
            assert!(has(&dir), "aiosmtpd installed but not importable");
        }
        dir
    })
}

/// What the server kept of one message.
#[derive(Debug, Clone)]
pub struct Received {
    pub rcpt_tos: Vec<String>,
    pub eml: PathBuf,
}

pub struct Smtp {
    pub port: u16,
    pub ca: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    implicit_tls: bool,
}

impl Smtp {
    /// Starts a server (with the fault script `faults`, see the script)
    /// keeping its files under `dir`.
    pub fn start(dir: &Path, faults: &str) -> Smtp {
        Smtp::start_with(dir, faults, false)
    }

    /// A server speaking TLS from the first byte (port 465 style).
    pub fn start_implicit_tls(dir: &Path) -> Smtp {
        Smtp::start_with(dir, "", true)
    }

    fn start_with(dir: &Path, faults: &str, implicit_tls: bool) -> Smtp {
        std::fs::create_dir_all(dir).unwrap();
        let ca = certificates(dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Smtp {
            port,
            ca,
            dir: dir.to_owned(),
            child: None,
            implicit_tls,
        };
        s.restart(faults);
        s
    }

    /// (Re)starts the server on the same port and mail folder.
    pub fn restart(&mut self, faults: &str) {
        self.stop();
        let d = |f: &str| self.dir.join(f).to_str().unwrap().to_owned();
        let mut child = Command::new("python3")
            .arg(repo().join("tests/smtp_server.py"))
            .args(["--port", &self.port.to_string()])
            .args(["--cert", &d("server.pem"), "--key", &d("server.key")])
            .args(["--maildir", &d("received")])
            .args(["--user", USER, "--password", PASSWORD])
            .args(["--faults", faults])
            .args(self.implicit_tls.then_some("--implicit-tls"))
            .env("PYTHONPATH", python_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("READY"), "SMTP server: {line:?}");
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message the server kept, in order.
    pub fn received(&self) -> Vec<Received> {
        let dir = self.dir.join("received");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                Received {
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_owned())
                        .collect(),
                    eml: p.with_extension("eml"),
                }
            })
            .collect()
    }

    /// Waits until the server holds a message it was told to be slow with.
    pub fn wait_for_slow(&self) {
        let start = Instant::now();
        loop {
            let slow = std::fs::read_dir(self.dir.join("received"))
                .map(|d| {
                    d.flatten()
                        .any(|e| e.path().extension().is_some_and(|x| x == "slow"))
                })
                .unwrap_or(false);
            if slow {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no slow message arrived"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `[mail]` section pointing at this server.
    pub fn mail_config(&self, extra: &str) -> String {
        format!(
            r#"[mail]
transport = "smtp"
from = "webir-audit <w@example.gov.tw>"
admin = "admin@example.gov.tw"
allowed_domains = ["example.gov.tw"]
smtp_host = "localhost"
smtp_port = {}
smtp_security = "{}"
smtp_username = "{USER}"
password_env = "WEBIR_AUDIT_TEST_SMTP_PASSWORD"
ca_file = "{}"
{extra}
"#,
            self.port,
            if self.implicit_tls { "tls" } else { "starttls" },
            self.ca.display()
        )
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA, and a server certificate for localhost and 127.0.0.1 issued by
/// it; returns the CA's PEM file.
fn certificates(dir: &Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "webir-audit test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    ca
}
