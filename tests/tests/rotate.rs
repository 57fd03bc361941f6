//! `gantry rotate jwt-key` on the example auth service under steady login
//! and verify traffic: no token stops verifying before it expires, no
//! request fails, and at the end only the new key verifies; a rotation
//! killed in each phase resumes; bad key sets are refused; every algorithm
//! (HS256 → EdDSA → ES256 → RS256, then RS256 kept) rotates with a relying
//! party that trusts only the JWKS and never fails.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gantry_tests::auth::{CANARY_PASSWORD, Fixture};
use gantry_tests::paused;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const OLD_SECRET: &str = "the-old-production-signing-secret-0123456789";

/// Production with a key set (one HS256 key, kid `prod-1`, by reference)
/// and 4-second tokens, deployed on two instances.
fn rotating() -> Fixture {
    let mut f = Fixture::new(2, json!({}));
    f.deployable(json!([]));
    f.sandbox.write("secrets/jwt-prod-1", OLD_SECRET);
    f.sandbox.write(
        "auth-src/auth.json",
        r#"{"token_expiry_minutes": 30, "rate_limiting_enabled": false, "rate_limit_per_minute": 100000}"#,
    );
    f.config["config_deploy"]["validators"] = json!(["auth-config-validator"]);
    let prod = &mut f.config["environments"]["production"];
    prod["jwt_keys"] = json!([{"kid": "prod-1", "alg": "HS256",
                               "secret": "${file:secrets/jwt-prod-1}", "status": "active"}]);
    prod["token_expiry_seconds"] = json!(4);
    prod["rate_limiting_enabled"] = json!(true);
    prod.as_object_mut().unwrap().remove("jwt_secret_key");
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(0);
    f
}

fn forge(kid: &str, secret: &str) -> String {
    let header =
        URL_SAFE_NO_PAD.encode(json!({"typ": "JWT", "alg": "HS256", "kid": kid}).to_string());
    let exp = chrono_now() + 3600;
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"sub": "u-forged", "tenant": "default", "iss": "gantry-example-auth", "iat": exp - 3600, "exp": exp, "jti": "forged"})
            .to_string(),
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{claims}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{claims}.{signature}")
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Logs in and verifies, and re-verifies every earlier token until a
/// second before it expires, from a thread, until stopped. It reports the
/// requests answered, the failures, and for each key id the latest expiry
/// (seconds) of a token it was given signed by that key.
struct Traffic;

type Kids = std::collections::BTreeMap<String, i64>;

/// Async work on a thread (and runtime) of its own until `finish`, which
/// tells it to stop and returns what it found.
struct Background<T> {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<T>,
}

impl<T: Send + 'static> Background<T> {
    fn start<F: std::future::Future<Output = T>>(
        work: impl FnOnce(Arc<AtomicBool>) -> F + Send + 'static,
    ) -> Background<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(work(flag))
        });
        Background { stop, thread }
    }

    fn finish(self) -> T {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

impl Traffic {
    fn start(base: String) -> Background<(u64, Vec<String>, Kids)> {
        Background::start(move |flag| async move {
            let client = reqwest::Client::new();
            let mut tokens: Vec<(String, i64)> = Vec::new();
            let (mut ok, mut failed, mut kids) = (0u64, Vec::new(), Kids::new());
            while !flag.load(Ordering::Relaxed) {
                let login = client
                    .post(format!("{base}/login"))
                    .json(&json!({"username": "canary", "password": CANARY_PASSWORD}))
                    .send()
                    .await;
                match login {
                    Ok(r) if r.status().is_success() => {
                        let body: Value = r.json().await.unwrap();
                        let token = body["access_token"].as_str().unwrap().to_string();
                        let header: Value = serde_json::from_slice(
                            &URL_SAFE_NO_PAD
                                .decode(token.split('.').next().unwrap())
                                .unwrap(),
                        )
                        .unwrap();
                        let exp = body["expires_at"].as_i64().unwrap();
                        let kid = header["kid"].as_str().unwrap_or_default().to_string();
                        let latest = kids.entry(kid).or_insert(exp);
                        *latest = (*latest).max(exp);
                        tokens.push((token, exp));
                        ok += 1;
                    }
                    Ok(r) => failed.push(format!("login: {}", r.status())),
                    Err(e) => failed.push(format!("login: {e}")),
                }
                let now = chrono_now();
                tokens.retain(|(_, exp)| *exp - now >= 2);
                for (token, exp) in &tokens {
                    let answer = client
                        .get(format!("{base}/verify"))
                        .bearer_auth(token)
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => ok += 1,
                        Ok(r) => failed.push(format!(
                            "verify of a token expiring in {} s: {}",
                            exp - chrono_now(),
                            r.status()
                        )),
                        Err(e) => failed.push(format!("verify: {e}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (ok, failed, kids)
        })
    }
}

fn verify(f: &Fixture, token: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(f.url("/verify"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn rotation(f: &Fixture) -> Value {
    f.gantry(&["status", "--json"]).json()["key_rotations"][0].clone()
}

fn wait_due(f: &Fixture) {
    let due = rotation(f)["next_after_ms"].as_i64().unwrap();
    let now = chrono_now() * 1000;
    if due > now {
        std::thread::sleep(Duration::from_millis((due - now) as u64 + 200));
    }
}

/// The login traffic's failures: none, or each named.
fn assert_none_failed(ok: u64, failed: &[String]) {
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        ok + failed.len() as u64
    );
}

#[test]
fn a_full_rotation_under_traffic_logs_nobody_out_and_leaves_only_the_new_key() {
    let f = rotating();
    assert_eq!(
        verify(&f, &forge("prod-1", OLD_SECRET)),
        200,
        "the old key verifies"
    );
    let traffic = Traffic::start(f.url(""));
    std::thread::sleep(Duration::from_secs(1));

    let run = f
        .gantry(&["rotate", "jwt-key", "-e", "production", "--kid", "prod-2"])
        .expect(0);
    assert!(
        run.stdout.contains("`prod-2`") && run.stdout.contains("fingerprint"),
        "{}",
        run.stdout
    );
    let rot = rotation(&f);
    assert_eq!(rot["state"], "waiting", "{rot:#}");
    assert_eq!(rot["phase"], 2);
    let new_file = f
        .sandbox
        .path()
        .join(".gantry/keys/production/prod-2.secret");
    let new_secret = std::fs::read_to_string(&new_file).unwrap();
    assert_eq!(gantry_tests::mode(&new_file), 0o600);
    assert!(!run.stdout.contains(&new_secret) && !run.stderr.contains(&new_secret));
    // Both verify now; the new one signs.
    assert_eq!(verify(&f, &forge("prod-1", OLD_SECRET)), 200);
    assert_eq!(verify(&f, &forge("prod-2", &new_secret)), 200);
    let status = f.gantry(&["status"]);
    assert!(
        status
            .stdout
            .contains("phase 3 (remove `prod-1`) may run after"),
        "{}",
        status.stdout
    );

    // Too early: refused, nothing changed.
    let early = f
        .gantry(&["rotate", "jwt-key", "-e", "production", "--finish"])
        .expect(2);
    assert!(early.stderr.contains("may run after"), "{}", early.stderr);

    wait_due(&f);
    let finished_at = chrono_now();
    f.gantry(&["rotate", "jwt-key", "-e", "production", "--finish"])
        .expect(0);
    std::thread::sleep(Duration::from_secs(1));
    let (ok, failed, kids) = traffic.finish();
    // Phase 3 waited out the old key's longest-lived token: the last token
    // the old key signed had expired when gantry let the old key go.
    let last_old = kids["prod-1"];
    assert!(
        finished_at >= last_old,
        "phase 3 ran at {finished_at}, before the last `prod-1` token expired ({last_old})"
    );
    assert_none_failed(ok, &failed);
    assert!(
        kids.contains_key("prod-1") && kids.contains_key("prod-2"),
        "tokens from both keys: {kids:?}"
    );
    assert_eq!(rotation(&f)["state"], "done");
    assert_eq!(
        verify(&f, &forge("prod-1", OLD_SECRET)),
        401,
        "the old key no longer verifies"
    );
    assert_eq!(verify(&f, &forge("prod-2", &new_secret)), 200);

    // No material in the state store, the logs or the deployed journal.
    let state = std::fs::read(f.sandbox.path().join(".gantry/state.db")).unwrap();
    for secret in [OLD_SECRET, new_secret.as_str()] {
        assert!(
            !state.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "key material in the state store"
        );
        let log = std::fs::read_to_string(f.sandbox.path().join("deployment_logs/update_log.json"))
            .unwrap();
        assert!(!log.contains(secret), "key material in update_log.json");
    }
    // A later plain deploy keeps the rotated key set.
    f.gantry(&["deploy", "-e", "production"]).expect(0);
    assert_eq!(verify(&f, &forge("prod-1", OLD_SECRET)), 401);
}

#[test]
fn a_rotation_killed_in_each_phase_resumes_and_traffic_never_fails() {
    let f = rotating();
    let traffic = Traffic::start(f.url(""));
    // Each phase: the process stops itself as the phase is recorded, runs
    // on into the phase's deployment for a moment, and is killed there;
    // status explains it, and the next run resumes it (the run resuming
    // phase 1 goes on into phase 2 and is killed there in turn).
    let started = Instant::now();
    let rotate = ["rotate", "jwt-key", "-e", "production"];
    let finish = ["rotate", "jwt-key", "-e", "production", "--finish"];
    for phase in 1..=3 {
        if phase == 3 {
            f.gantry(&rotate).expect(0);
            assert_eq!(rotation(&f)["state"], "waiting", "{:#}", rotation(&f));
            wait_due(&f);
        }
        let args: &[&str] = if phase == 3 { &finish } else { &rotate };
        let mut child = f
            .sandbox
            .gantry()
            .args(args)
            .env("GANTRY_PAUSE_AT", format!("rotate:phase-{phase}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        paused::wait_paused(&mut child, &format!("rotate:phase-{phase}"));
        paused::signal(&child, libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(300));
        paused::signal(&child, libc::SIGKILL);
        child.wait().unwrap();
        let rot = rotation(&f);
        assert_eq!(rot["state"], "running", "phase {phase}: {rot:#}");
        assert_eq!(rot["phase"], phase, "{rot:#}");
        let st = f.gantry(&["status"]).expect(1);
        assert!(st.stdout.contains("resumes it"), "{}", st.stdout);
    }
    f.gantry(&finish).expect(0);
    assert_eq!(rotation(&f)["state"], "done");
    assert!(started.elapsed() < Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed, _) = traffic.finish();
    assert_none_failed(ok, &failed);
    assert_eq!(verify(&f, &forge("prod-1", OLD_SECRET)), 401);
}

#[test]
fn bad_key_sets_are_refused_with_the_key_at_fault_and_nothing_deployed() {
    let mut f = rotating();
    let before = std::fs::read_to_string(f.sandbox.path().join("config/auth.json")).unwrap();
    let secret = "${file:secrets/jwt-prod-1}";
    for (keys, expect) in [
        (
            json!([{"kid": "a", "secret": secret, "status": "verify"}]),
            "exactly one active",
        ),
        (
            json!([{"kid": "a", "secret": secret, "status": "active"},
                   {"kid": "b", "secret": secret, "status": "active"}]),
            "exactly one active",
        ),
        (
            json!([{"kid": "a", "secret": secret, "status": "active"},
                   {"kid": "a", "secret": secret, "status": "verify"}]),
            "appears twice",
        ),
        (
            json!([{"kid": "a", "secret": secret, "status": "active"},
                   {"kid": "b", "secret": secret, "status": "retired"}]),
            "retired but still carries signing material",
        ),
    ] {
        f.config["environments"]["production"]["jwt_keys"] = keys.clone();
        f.save();
        let run = f.gantry(&["deploy", "-e", "production"]).expect(2);
        assert!(
            run.stderr.contains(expect) && run.stderr.contains("/jwt_keys"),
            "{keys}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains(OLD_SECRET), "no secret in the error");
        let rot = f
            .gantry(&["rotate", "jwt-key", "-e", "production"])
            .expect(2);
        assert!(rot.stderr.contains("key set"), "{}", rot.stderr);
    }
    let after = std::fs::read_to_string(f.sandbox.path().join("config/auth.json")).unwrap();
    assert_eq!(before, after, "nothing deployed");
}

/// A rotation its first deployment refuses (here the config validator:
/// rate limiting off in production) leaves nothing behind: no pending
/// rotation for `gantry up` to retry, no key file.
#[test]
fn a_rotation_refused_before_its_first_deployment_leaves_nothing() {
    let mut f = rotating();
    f.config["environments"]["production"]["rate_limiting_enabled"] = json!(false);
    f.save();
    let run = f.gantry(&["rotate", "jwt-key", "-e", "production"]);
    assert_ne!(run.code, 0, "{run:?}");
    let keys = f.sandbox.path().join(".gantry/keys/production");
    let left: Vec<_> = std::fs::read_dir(&keys)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "key files left behind: {left:?}");
    let status = f.gantry(&["status", "--json"]).json();
    assert!(
        status["key_rotations"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "a rotation is left pending: {status:#}"
    );
    // With the config fixed, the rotation runs.
    f.config["environments"]["production"]["rate_limiting_enabled"] = json!(true);
    f.save();
    f.gantry(&["rotate", "jwt-key", "-e", "production"])
        .expect(0);
    assert_eq!(rotation(&f)["state"], "waiting", "{:#}", rotation(&f));
}

/// A relying party that trusts only the service's JWKS, as a client
/// would: it fetches `/.well-known/jwks.json`, keeps it for the
/// `Cache-Control: max-age` the service sends, and verifies every token it
/// is given (logging in itself, and checking each earlier token again
/// until just before it expires) against the key the token's `kid` names
/// there. HS256 tokens it cannot verify (the key is a shared secret) are
/// only counted.
struct JwksParty;

impl JwksParty {
    fn start(base: String) -> Background<(u64, u64, Vec<String>)> {
        Background::start(move |flag| async move {
            let client = reqwest::Client::new();
            let mut cache: Option<(jsonwebtoken::jwk::JwkSet, Instant)> = None;
            let mut tokens: Vec<(String, i64)> = Vec::new();
            let (mut verified, mut symmetric, mut failed) = (0u64, 0u64, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                if let Ok(r) = client
                    .post(format!("{base}/login"))
                    .json(&json!({"username": "canary", "password": CANARY_PASSWORD}))
                    .send()
                    .await
                    && r.status().is_success()
                {
                    let body: Value = r.json().await.unwrap();
                    tokens.push((
                        body["access_token"].as_str().unwrap().to_string(),
                        body["expires_at"].as_i64().unwrap(),
                    ));
                }
                let now = chrono_now();
                tokens.retain(|(_, exp)| *exp - now >= 2);
                if cache
                    .as_ref()
                    .is_none_or(|(_, until)| Instant::now() >= *until)
                {
                    match client
                        .get(format!("{base}/.well-known/jwks.json"))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {
                            let max_age = r
                                .headers()
                                .get("cache-control")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| {
                                    v.split(',').find_map(|d| {
                                        d.trim().strip_prefix("max-age=")?.parse::<u64>().ok()
                                    })
                                });
                            let Some(max_age) = max_age else {
                                failed.push("the JWKS has no max-age".to_string());
                                break;
                            };
                            let set = r.json().await.unwrap();
                            cache = Some((set, Instant::now() + Duration::from_secs(max_age)));
                        }
                        other => failed.push(format!("jwks: {other:?}")),
                    }
                }
                let Some((set, _)) = &cache else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                for (token, _) in &tokens {
                    let header = jsonwebtoken::decode_header(token).unwrap();
                    if header.alg == jsonwebtoken::Algorithm::HS256 {
                        symmetric += 1;
                        continue;
                    }
                    let kid = header.kid.clone().unwrap_or_default();
                    let Some(jwk) = set.find(&kid) else {
                        failed.push(format!(
                            "{:?} token: kid {kid} is not in the JWKS",
                            header.alg
                        ));
                        continue;
                    };
                    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
                    let mut validation = jsonwebtoken::Validation::new(header.alg);
                    validation.set_issuer(&["gantry-example-auth"]);
                    match jsonwebtoken::decode::<Value>(token, &key, &validation) {
                        Ok(_) => verified += 1,
                        Err(e) => failed.push(format!("{:?} token {kid}: {e}", header.alg)),
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (verified, symmetric, failed)
        })
    }
}

fn jwks_kids(f: &Fixture) -> Vec<(String, String)> {
    let (_, body) = gantry_tests::monitor::get(&f.url("/.well-known/jwks.json"));
    let set: Value = serde_json::from_str(&body).unwrap();
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(k["use"], "sig", "{k}");
            (
                k["kid"].as_str().unwrap().to_string(),
                k["alg"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_algorithm_rotates_under_traffic_and_a_jwks_relying_party_never_fails() {
    let mut f = rotating();
    // The service tells JWKS clients to keep the set 2 s.
    f.config["environments"]["production"]["jwks_max_age_seconds"] = json!(2);
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(0);
    assert!(jwks_kids(&f).is_empty(), "an HS256 key is never published");
    let traffic = Traffic::start(f.url(""));
    let party = JwksParty::start(f.url(""));
    std::thread::sleep(Duration::from_secs(1));
    // HS256 → EdDSA → ES256 → RS256 (`--alg`), then RS256 again (kept).
    let steps = [
        ("prod-1", Some("EdDSA"), "ed-1"),
        ("ed-1", Some("ES256"), "es-1"),
        ("es-1", Some("RS256"), "rs-1"),
        ("rs-1", None, "rs-2"),
    ];
    for (old, alg, new) in steps {
        let mut args = vec![
            "--json",
            "rotate",
            "jwt-key",
            "-e",
            "production",
            "--kid",
            new,
        ];
        if let Some(alg) = alg {
            args.extend(["--alg", alg]);
        }
        let report = f.gantry(&args).expect(0).json();
        let rot = rotation(&f);
        assert_eq!(rot["state"], "waiting", "{rot:#}");
        // Phase 1 published the new key, and phase 2 began no sooner than
        // the JWKS's max-age after phase 1 was over.
        let steps = |d: &Value, field: &str| -> Vec<i64> {
            d["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s[field].as_i64())
                .collect()
        };
        let deployments = report["deployments"].as_array().unwrap();
        assert_eq!(deployments.len(), 2, "{report:#}");
        let phase_1_over = *steps(&deployments[0], "finished_ms").iter().max().unwrap();
        let phase_2_began = *steps(&deployments[1], "started_ms").iter().min().unwrap();
        assert!(
            phase_2_began - phase_1_over >= 2000,
            "{new}: phase 2 began {} ms after phase 1 (max-age 2 s)",
            phase_2_began - phase_1_over
        );
        let want = alg.unwrap_or("RS256");
        let published = jwks_kids(&f);
        assert!(
            published.contains(&(new.to_string(), want.to_string())),
            "{new} not published as {want}: {published:?}"
        );
        if old != "prod-1" {
            assert!(
                published.iter().any(|(k, _)| k == old),
                "the old public key left the JWKS before phase 3: {published:?}"
            );
        }
        let status = f
            .gantry(&["rotate", "jwt-key", "-e", "production", "--status"])
            .expect(0);
        assert!(
            status.stdout.contains(new)
                && status.stdout.contains(want)
                && status.stdout.contains("phase 3"),
            "{}",
            status.stdout
        );
        wait_due(&f);
        f.gantry(&["rotate", "jwt-key", "-e", "production", "--finish"])
            .expect(0);
        let published = jwks_kids(&f);
        assert_eq!(published, vec![(new.to_string(), want.to_string())]);
        // The private key is a 0600 PKCS#8 file; its text is nowhere else.
        let file = f
            .sandbox
            .path()
            .join(format!(".gantry/keys/production/{new}.private"));
        assert_eq!(gantry_tests::mode(&file), 0o600);
        let private = std::fs::read_to_string(&file).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        let line = private.lines().nth(1).unwrap();
        for file in ["state.db", "state.db-wal"] {
            let state =
                std::fs::read(f.sandbox.path().join(".gantry").join(file)).unwrap_or_default();
            assert!(
                !state.windows(line.len()).any(|w| w == line.as_bytes()),
                "private key material in {file}"
            );
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let (ok, failed, kids) = traffic.finish();
    let (verified, symmetric, refused) = party.finish();
    assert_none_failed(ok, &failed);
    assert!(
        refused.is_empty(),
        "the JWKS relying party failed {} times: {refused:?}",
        refused.len()
    );
    assert!(
        verified > 50 && symmetric > 0,
        "{verified} verified, {symmetric} HS256"
    );
    for kid in ["prod-1", "ed-1", "es-1", "rs-1", "rs-2"] {
        assert!(kids.contains_key(kid), "no token signed by {kid}: {kids:?}");
    }
    // Back to HS256 would leave JWKS clients nothing to verify with.
    let back = f
        .gantry(&["rotate", "jwt-key", "-e", "production", "--alg", "HS256"])
        .expect(2);
    assert!(back.stderr.contains("JWKS"), "{}", back.stderr);
    // A kid that is not a plain name never becomes a path.
    let bad = f
        .gantry(&["rotate", "jwt-key", "-e", "production", "--kid", "../../x"])
        .expect(2);
    assert!(bad.stderr.contains("key id"), "{}", bad.stderr);
}

/// `gantry up` beside a rotation another gantry is running notes it once,
/// not on every tick; when that gantry is killed mid-phase, `up` resumes
/// the phase and carries the rotation to its end.
#[test]
fn gantry_up_notes_a_running_rotation_once_and_finishes_a_killed_one() {
    use std::process::Stdio;
    let mut f = rotating();
    let port = gantry_tests::auth::free_port();
    f.config["monitoring"]["api"]["listen"] = json!(format!("127.0.0.1:{port}"));
    f.save();
    let log = f.sandbox.path().join("up.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut up = f
        .sandbox
        .gantry()
        .args(["up", "-e", "production"])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("hosting")
    {
        assert!(Instant::now() < deadline, "up did not start hosting");
        assert!(up.try_wait().unwrap().is_none(), "up exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A rotation stopped inside its phase-1 deployment: its gantry lives.
    let mut rotate = f
        .sandbox
        .gantry()
        .args(["rotate", "jwt-key", "-e", "production"])
        .env("GANTRY_PAUSE_AT", "rotate:phase-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    paused::wait_paused(&mut rotate, "rotate:phase-1");
    paused::signal(&rotate, libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(300));
    paused::signal(&rotate, libc::SIGSTOP);
    // Several of up's ticks (every 2 s) find it running.
    std::thread::sleep(Duration::from_secs(7));
    let text = std::fs::read_to_string(&log).unwrap();
    let noted = text
        .lines()
        .filter(|l| l.contains("key rotation") && l.contains("running"))
        .count();
    assert_eq!(
        noted, 1,
        "the running rotation noted {noted} times:\n{text}"
    );
    // Killed: up resumes its phase, runs phase 2 and, once due, phase 3.
    paused::signal(&rotate, libc::SIGKILL);
    rotate.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rot = rotation(&f);
        if rot["state"] == "done" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "up did not finish the rotation: {rot:#}\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(verify(&f, &forge("prod-1", OLD_SECRET)), 401);
    paused::signal(&up, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    while up.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A phase refused after the first (here phase 2: the new key's file is
/// gone when its deployment renders) changes nothing of what runs, says
/// which phase and why, and the next `gantry rotate` carries on once the
/// cause is mended.
#[test]
fn a_phase_refused_after_the_first_leaves_the_last_phase_running_and_says_so() {
    use std::process::Stdio;
    let f = rotating();
    f.sandbox.write(
        "secrets/jwt-next",
        "the-next-production-signing-secret-9876543210",
    );
    let mut child = f
        .sandbox
        .gantry()
        .args([
            "rotate",
            "jwt-key",
            "-e",
            "production",
            "--kid",
            "prod-2",
            "--key",
            "${file:secrets/jwt-next}",
        ])
        .env("GANTRY_PAUSE_AT", "rotate:phase-2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    paused::wait_paused(&mut child, "rotate:phase-2");
    std::fs::remove_file(f.sandbox.path().join("secrets/jwt-next")).unwrap();
    paused::signal(&child, libc::SIGCONT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("phase 2"), "{stderr}");
    assert!(stderr.contains("secrets/jwt-next"), "{stderr}");
    // Phase 1 stands: the old key signs, the new one verifies.
    assert_eq!(verify(&f, &forge("prod-1", OLD_SECRET)), 200);
    let status = f.gantry(&["status"]);
    assert!(status.stdout.contains("phase 2"), "{}", status.stdout);
    // Mended, the next run carries on.
    f.sandbox.write(
        "secrets/jwt-next",
        "the-next-production-signing-secret-9876543210",
    );
    f.gantry(&["rotate", "jwt-key", "-e", "production"])
        .expect(0);
    assert_eq!(rotation(&f)["state"], "waiting");
    assert_eq!(
        verify(
            &f,
            &forge("prod-2", "the-next-production-signing-secret-9876543210")
        ),
        200
    );
}
