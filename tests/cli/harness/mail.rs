//! Mail as its readers get it: each `.eml` parsed by an independent MIME
//! parser (Python's `email` package), attachments opened with a reader's
//! password.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// A message as an independent MIME parser (Python's `email` package)
/// reads it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Parsed {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    /// The decoded text/plain body.
    pub text: String,
    /// The attachment's decoded file name ("" without one).
    pub name: String,
    /// SHA-256 of the attachment's bytes ("" without one).
    pub sha: String,
    /// The attachment's bytes, written beside the message.
    pub attachment: Option<PathBuf>,
}

/// Every `.eml` in `dir` but the evidence chain's receipts, in name
/// order, parsed by Python.
pub fn parse_all(dir: &std::path::Path) -> Vec<Parsed> {
    parse_every(dir)
        .into_iter()
        .filter(|p| !is_receipt(p))
        .collect()
}

/// Whether `p` is a receipt of the evidence chain (issue 32): mail about
/// the archive, not about any run; `chain` tests what receipts say, and
/// the tests of runs' mail leave them out.
pub fn is_receipt(p: &Parsed) -> bool {
    p.subject.contains("證據鏈收據")
}

/// Every `.eml` in `dir`, receipts included, in name order, parsed by
/// Python.
pub fn parse_every(dir: &std::path::Path) -> Vec<Parsed> {
    let script = r#"
import email, email.policy, glob, hashlib, json, sys
out = []
for f in sorted(glob.glob(sys.argv[1] + "/*.eml")):
    m = email.message_from_bytes(open(f, "rb").read(), policy=email.policy.default)
    atts = list(m.iter_attachments())
    body = m.get_body(preferencelist=("plain",))
    p = {"to": str(m["To"]), "subject": str(m["Subject"]),
         "message_id": str(m["Message-ID"]),
         "text": body.get_content() if body is not None else "",
         "name": "", "sha": "", "attachment": None}
    if atts:
        data = atts[0].get_content()
        p["name"] = atts[0].get_filename()
        p["sha"] = hashlib.sha256(data).hexdigest()
        p["attachment"] = f + ".attachment"
        open(p["attachment"], "wb").write(data)
    out.append(p)
print(json.dumps(out, ensure_ascii=False))
"#;
    let out = Command::new("python3")
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Parsed>>(&out.stdout).unwrap()
}

pub fn sha256(path: &std::path::Path) -> String {
    webir_audit::ingest::hash_file(path).unwrap().1
}

/// Each unit's current issued attachment password, by the addresses its
/// mail goes to (officer and ethics unit).
pub fn passwords_by_address(config: &webir_audit::config::Config) -> BTreeMap<String, String> {
    use webir_audit::mail::{Role, password_holder};
    let mut store = webir_audit::store::Store::open(&config.paths.state).unwrap();
    let key = webir_audit::keyfile::KeyFile::open(&config.paths.key_file).unwrap();
    let mut out = BTreeMap::new();
    let mut add = |addr: Option<&String>, holder: String| {
        if let (Some(addr), Some(p)) = (addr, store.attachment_password(&holder, &key).unwrap()) {
            out.insert(addr.clone(), p.password);
        }
    };
    for a in config.agencies.iter() {
        add(
            a.officer_email.as_ref(),
            password_holder(config, &a.id, Role::Officer),
        );
        add(
            a.ethics_email.as_ref(),
            password_holder(config, &a.id, Role::Ethics),
        );
    }
    if let Some(c) = &config.chief {
        add(
            Some(&c.email),
            password_holder(config, "", Role::ChiefAdmin),
        );
    }
    out
}

/// The attachment as its reader opens it: an encrypted compound file,
/// decrypted with the password; the password itself is not in the mail.
pub fn opened(p: &Parsed, password: &str) -> Vec<u8> {
    let bytes = std::fs::read(p.attachment.as_ref().expect("an attachment")).unwrap();
    assert!(
        bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]),
        "{}: the attachment is not encrypted",
        p.to
    );
    assert!(
        !p.text.contains(password),
        "{}: the password is in the mail",
        p.to
    );
    office_crypto::decrypt_from_bytes(bytes, password)
        .unwrap_or_else(|e| panic!("{}: the unit's password does not open it: {e:?}", p.to))
}

pub fn sha256_bytes(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}
