//! `zkcredits gateway init-config` and `zkcredits gateway check` as an operator runs them:
//! the real binary, no chain. The example it writes is then broken in two places, and
//! `check` must name both lines and keys and exit non-zero.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn zkcredits(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zkcredits"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("ZKCREDITS_GATEWAY_CONFIG")
        .output()
        .expect("the zkcredits binary runs")
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("the needle is in the config")
        + 1
}

#[test]
fn check_names_the_line_and_key_of_every_error_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let written = Command::new(env!("CARGO_BIN_EXE_zkcredits"))
        .args(["gateway", "init-config", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(written.status.success(), "{written:?}");
    // init-config refuses to overwrite.
    let again = Command::new(env!("CARGO_BIN_EXE_zkcredits"))
        .args(["gateway", "init-config", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!again.status.success());

    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("verify_batch_max = 32", "verify_batch_max = 0")
        .replace("\n[chain]\n", "realmm = \"typo\"\n\n[chain]\n");
    std::fs::write(&path, &text).unwrap();
    let out = zkcredits(&["gateway", "check"], &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // A shape error (the unknown key) is reported with its line.
    let file = path.display().to_string();
    let want = format!("{file}:{}: `admission.realmm`", line_of(&text, "realmm"));
    assert!(stderr.contains(&want), "no {want} in:\n{stderr}");

    // Fixed shape: now every value error is named, with the effective settings printed.
    let text = text.replace("realmm = \"typo\"\n", "");
    std::fs::write(&path, &text).unwrap();
    let out = zkcredits(&["gateway", "check"], &path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for (key, needle) in [
        ("admission.verify_batch_max", "verify_batch_max = 0"),
        ("deployment", "deployment = "),
        ("provider.key_file", "key_file = "),
    ] {
        let want = format!("{file}:{}: `{key}`", line_of(&text, needle));
        assert!(stderr.contains(&want), "no {want} in:\n{stderr}");
    }
    assert!(stderr.contains("[config_invalid]"), "{stderr}");
    assert!(
        stdout.contains("admission.verify_batch_max = 0"),
        "{stdout}"
    );
    assert!(stdout.contains("tls.platform_roots = true"), "{stdout}");
}
