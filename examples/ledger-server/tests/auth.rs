//! User tokens a deployment can rely on: a long enough secret, the configured issuer and
//! audience, access tokens only, and tokens of the host's own auth server verified with its
//! public keys (a PEM file or a JWKS file; keys made with the `openssl` command).

use std::path::Path;
use std::process::Command;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use points_ledger::auth::JwtSettings;
use points_ledger::{LedgerConfig, RunningLedger, StartError};
use serde_json::{json, Value};
use uuid::Uuid;

const SECRET: &str = "a-secret-of-thirty-two-bytes-or-more";

async fn status(ledger: &RunningLedger, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/points/balance", ledger.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn claims(user: Uuid, extra: Value) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({"sub": user.to_string(), "iat": now, "exp": now + 3600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn openssl(dir: &Path, args: &[&str]) {
    let done = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command");
    assert!(done.status.success(), "openssl {args:?}: {done:?}");
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn a_short_secret_is_refused_at_start() {
    let config = LedgerConfig::ephemeral().with_secrets("sixteen-chars-ok", "admin-key-admin-key");
    match points_ledger::serve(config).await {
        Err(StartError::Auth(error)) => assert!(error.to_string().contains("32"), "{error}"),
        other => panic!("a 16-byte secret was accepted: {other:?}"),
    }
}

#[tokio::test]
async fn issuer_and_audience_are_required_when_configured() {
    let config = LedgerConfig::ephemeral()
        .with_secrets(SECRET, "admin-key-admin-key")
        .with_jwt_settings(JwtSettings {
            issuer: Some("https://auth.example".into()),
            audience: Some("points".into()),
            ..JwtSettings::default()
        });
    let ledger = points_ledger::serve(config).await.unwrap();
    let user = Uuid::new_v4();
    assert_eq!(status(&ledger, &ledger.token_for(user)).await, 200);
    let good = json!({"iss": "https://auth.example", "aud": ["other", "points"]});
    assert_eq!(status(&ledger, &hs256(&claims(user, good))).await, 200);
    for bad in [
        json!({}),
        json!({"iss": "https://auth.example"}),
        json!({"aud": "points"}),
        json!({"iss": "https://evil.example", "aud": "points"}),
        json!({"iss": "https://auth.example", "aud": "another-service"}),
    ] {
        let token = hs256(&claims(user, bad.clone()));
        assert_eq!(status(&ledger, &token).await, 401, "accepted {bad}");
    }
    ledger.shutdown().await;
}

#[tokio::test]
async fn only_access_tokens_are_accepted() {
    let config = LedgerConfig::ephemeral().with_secrets(SECRET, "admin-key-admin-key");
    let ledger = points_ledger::serve(config).await.unwrap();
    let user = Uuid::new_v4();
    for access in [
        json!({}),
        json!({"typ": "access"}),
        json!({"token_use": "access"}),
        json!({"typ": "Bearer"}),
    ] {
        let token = hs256(&claims(user, access.clone()));
        assert_eq!(status(&ledger, &token).await, 200, "refused {access}");
    }
    for other in [
        json!({"typ": "refresh"}),
        json!({"token_use": "refresh"}),
        json!({"token_use": "id"}),
        json!({"typ": "access", "token_use": "refresh"}),
    ] {
        let token = hs256(&claims(user, other.clone()));
        assert_eq!(status(&ledger, &token).await, 401, "accepted {other}");
    }
    // The header's type too.
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("refresh+jwt".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims(user, json!({})),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(status(&ledger, &token).await, 401);
    ledger.shutdown().await;
}

/// EdDSA and RS256 tokens verified with a PEM public key; the shared secret no longer opens
/// anything, and a key of the wrong kind does not either.
#[tokio::test]
async fn tokens_of_the_host_auth_server_are_verified_with_its_pem_public_key() {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"],
    );
    openssl(
        dir.path(),
        &["pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub.pem"],
    );
    openssl(
        dir.path(),
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ],
    );
    openssl(
        dir.path(),
        &["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub.pem"],
    );
    let user = Uuid::new_v4();
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let ed_token = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims(user, json!({})),
        &EncodingKey::from_ed_pem(&read("ed.pem")).unwrap(),
    )
    .unwrap();
    let rsa_token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims(user, json!({})),
        &EncodingKey::from_rsa_pem(&read("rsa.pem")).unwrap(),
    )
    .unwrap();
    for (public, good, wrong) in [
        ("ed.pub.pem", &ed_token, &rsa_token),
        ("rsa.pub.pem", &rsa_token, &ed_token),
    ] {
        let config = LedgerConfig::ephemeral()
            .with_secrets(SECRET, "admin-key-admin-key")
            .with_jwt_settings(JwtSettings {
                public_key_pem: Some(dir.path().join(public)),
                ..JwtSettings::default()
            });
        let ledger = points_ledger::serve(config).await.unwrap();
        assert_eq!(status(&ledger, good).await, 200, "{public}");
        assert_eq!(status(&ledger, wrong).await, 401, "{public}");
        assert_eq!(status(&ledger, &hs256(&claims(user, json!({})))).await, 401);
        ledger.shutdown().await;
    }
    // A file that holds no public key stops the start.
    let config = LedgerConfig::ephemeral().with_jwt_settings(JwtSettings {
        public_key_pem: Some(dir.path().join("missing.pem")),
        ..JwtSettings::default()
    });
    assert!(matches!(
        points_ledger::serve(config).await,
        Err(StartError::Auth(_))
    ));
}

/// Keys from a JWKS file, chosen by the token's `kid`.
#[tokio::test]
async fn tokens_are_verified_with_the_key_of_their_kid_in_a_jwks_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for name in ["one", "two"] {
        openssl(
            dir.path(),
            &[
                "genpkey",
                "-algorithm",
                "ed25519",
                "-out",
                &format!("{name}.pem"),
            ],
        );
        openssl(
            dir.path(),
            &[
                "pkey",
                "-in",
                &format!("{name}.pem"),
                "-pubout",
                "-outform",
                "DER",
                "-out",
                &format!("{name}.der"),
            ],
        );
        let der = std::fs::read(dir.path().join(format!("{name}.der"))).unwrap();
        // An Ed25519 SubjectPublicKeyInfo ends with the 32-byte key.
        let x = base64url(&der[der.len() - 32..]);
        keys.push(json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": name, "alg": "EdDSA", "use": "sig"}));
    }
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": keys}).to_string()).unwrap();
    let config = LedgerConfig::ephemeral().with_jwt_settings(JwtSettings {
        jwks: Some(jwks),
        ..JwtSettings::default()
    });
    let ledger = points_ledger::serve(config).await.unwrap();
    let user = Uuid::new_v4();
    let sign = |key: &str, kid: &str| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let pem = std::fs::read(dir.path().join(format!("{key}.pem"))).unwrap();
        jsonwebtoken::encode(
            &header,
            &claims(user, json!({})),
            &EncodingKey::from_ed_pem(&pem).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(status(&ledger, &sign("one", "one")).await, 200);
    assert_eq!(status(&ledger, &sign("two", "two")).await, 200);
    assert_eq!(status(&ledger, &sign("one", "two")).await, 401, "wrong kid");
    assert_eq!(
        status(&ledger, &sign("one", "three")).await,
        401,
        "unknown kid"
    );
    ledger.shutdown().await;
}
