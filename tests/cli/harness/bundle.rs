//! Evidence bundles as an auditor gets them: exported under a password,
//! opened by 7-Zip (not our code), checked with the shipped verifiers.

use std::path::{Path, PathBuf};

pub const PASSWORD: &str = "證據包-測試-2026";

pub fn writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

/// `export-evidence` of `run_dir` under a password from the environment,
/// then opened by 7-Zip (not our code) into a fresh folder, which is
/// returned. A wrong password opens nothing, and the password appears in
/// neither the output nor the bundle's names.
pub fn open_bundle(tmp: &Path, config: &Path, run_dir: &Path, extra: &[&str]) -> PathBuf {
    use std::process::Command;
    super::ensure_tools();
    let name = format!("evidence{}", extra.concat());
    let bundle = tmp.join(format!("{name}.zip"));
    let mut args = vec![
        "export-evidence",
        run_dir.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out =
        crate::harness::run_binary_env(&args, tmp, &[("WEBIR_AUDIT_EVIDENCE_PASSWORD", PASSWORD)]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD));
    let fresh = tmp.join(format!("fresh-{name}"));
    let wrong = Command::new("7z")
        .args([
            "x",
            "-y",
            "-pwrong",
            &format!("-o{}", tmp.join("wrong").display()),
        ])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong password opened it");
    let x = Command::new("7z")
        .args([
            "x",
            "-y",
            &format!("-p{PASSWORD}"),
            &format!("-o{}", fresh.display()),
        ])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stdout));
    assert!(
        std::fs::read_dir(&fresh).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(PASSWORD))
    );
    fresh
}

/// `python3 ARGS` in `dir`: whether it succeeded, and its output.
pub fn py(dir: &Path, args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new("python3")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}
