//! An identity provider for the tests: signing keys made by the `openssl`
//! command at test time (no private key is committed), and a real HTTP
//! server on 127.0.0.1 serving OIDC discovery and a JWKS that the test
//! rotates, takes down, makes hang and counts the fetches of.
//!
//! The public JWKs are built from `openssl`'s output (RSA modulus, the EC
//! point and Ed25519 key at the end of the DER public key), not by
//! jsonwebtoken, so that the gateway reads keys as a provider publishes them.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
};

/// The kinds of signing key a test can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA-2048, for RS256.
    Rsa,
    /// EC P-256, for ES256.
    Ec,
    /// Ed25519, for `EdDSA`.
    Ed,
}

/// A provider's signing key: the private half signs tokens, the public
/// half is published as a JWK or a PEM file.
pub struct SigningKey {
    /// The `kid` its tokens name.
    pub kid: String,
    /// The algorithm its tokens are signed with.
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// The public key, PEM (`BEGIN PUBLIC KEY`).
    pub public_pem: Vec<u8>,
    /// The public key as a JWK, with its `kid`, `alg` and `use`.
    pub jwk: Value,
}

/// Runs `openssl` with `args`, returning its standard output.
fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

impl SigningKey {
    /// A new key pair of `kind`, made by `openssl genpkey`, named `kid`.
    pub fn generate(kind: KeyKind, kid: &str) -> SigningKey {
        let dir = tempfile::tempdir().expect("temp dir");
        let private = dir.path().join("private.pem");
        let private_arg = private.to_str().expect("utf-8 path");
        let mut args = vec!["genpkey", "-quiet", "-out", private_arg];
        args.extend_from_slice(match kind {
            KeyKind::Rsa => &[
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-pkeyopt",
                "rsa_keygen_pubexp:65537",
            ][..],
            KeyKind::Ec => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            KeyKind::Ed => &["-algorithm", "ed25519"][..],
        });
        openssl(&args);
        let private_pem = std::fs::read(&private).expect("read the private key");
        let public_pem = openssl(&["pkey", "-in", private_arg, "-pubout"]);
        let public_der = openssl(&["pkey", "-in", private_arg, "-pubout", "-outform", "DER"]);
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (alg, encoding, jwk) = match kind {
            KeyKind::Rsa => {
                let modulus =
                    String::from_utf8(openssl(&["rsa", "-in", private_arg, "-noout", "-modulus"]))
                        .expect("text");
                let hex = modulus
                    .trim()
                    .strip_prefix("Modulus=")
                    .expect("Modulus=HEX");
                let n: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect();
                (
                    Algorithm::RS256,
                    EncodingKey::from_rsa_pem(&private_pem).expect("RSA private key"),
                    json!({"kty": "RSA", "n": b64(&n), "e": "AQAB"}),
                )
            }
            KeyKind::Ec => {
                // The DER public key ends with the point 04 || x || y.
                let point = &public_der[public_der.len() - 65..];
                assert_eq!(point[0], 4, "an uncompressed EC point");
                (
                    Algorithm::ES256,
                    EncodingKey::from_ec_pem(&private_pem).expect("EC private key"),
                    json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])}),
                )
            }
            KeyKind::Ed => (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(&private_pem).expect("Ed25519 private key"),
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&public_der[public_der.len() - 32..])}),
            ),
        };
        let mut jwk = jwk;
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(format!("{alg:?}"));
        SigningKey {
            kid: kid.to_owned(),
            alg,
            encoding,
            public_pem,
            jwk,
        }
    }

    /// A token of `claims`, signed, its header naming this key's `alg` and
    /// `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// A token of `claims` with `header` as given, signed by this key.
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// Writes the public key PEM as `dir/name.pem` (the file stem is the
    /// `kid` the gateway answers to).
    pub fn write_public_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &self.public_pem).expect("write the public key");
        path
    }
}

/// What the provider serves, changed by the test.
struct ProviderState {
    /// Its own base URL.
    url: String,
    /// The `issuer` its discovery document names.
    issuer: Mutex<String>,
    /// The published public keys.
    keys: Mutex<Vec<Value>>,
    /// Answer 503 to everything.
    down: AtomicBool,
    /// While true, JWKS requests wait unanswered.
    held: watch::Sender<bool>,
    discovery_fetches: AtomicUsize,
    /// JWKS requests so far, watched by tests waiting for one.
    jwks_fetches: watch::Sender<usize>,
}

/// A running identity provider on 127.0.0.1.
pub struct IdentityProvider {
    state: Arc<ProviderState>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl IdentityProvider {
    /// A provider publishing `keys`, serving until dropped or stopped.
    pub async fn start(keys: &[&SigningKey]) -> IdentityProvider {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the provider");
        let url = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("address").port()
        );
        let state = Arc::new(ProviderState {
            issuer: Mutex::new(url.clone()),
            url,
            keys: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            down: AtomicBool::new(false),
            held: watch::Sender::new(false),
            discovery_fetches: AtomicUsize::new(0),
            jwks_fetches: watch::Sender::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(jwks))
            .with_state(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the provider serves");
        });
        IdentityProvider {
            state,
            server: Some((stop, task)),
        }
    }

    /// Its issuer URL (what `--oidc-issuer` names and tokens' `iss` say).
    pub fn issuer(&self) -> String {
        self.state.url.clone()
    }

    /// The URL of its JWKS.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.state.url)
    }

    /// Publishes `key` beside the keys already published.
    pub fn publish(&self, key: &SigningKey) {
        self.state.keys.lock().expect("keys").push(key.jwk.clone());
    }

    /// Stops publishing the key named `kid`.
    pub fn withdraw(&self, kid: &str) {
        self.state
            .keys
            .lock()
            .expect("keys")
            .retain(|jwk| jwk["kid"] != kid);
    }

    /// Makes its discovery document name `issuer` instead of itself.
    pub fn claim_issuer(&self, issuer: &str) {
        *self.state.issuer.lock().expect("issuer") = issuer.to_owned();
    }

    /// Whether it answers every request with 503.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Makes JWKS requests wait unanswered (a provider that hangs) until
    /// [`IdentityProvider::release`].
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    /// Answers the JWKS requests held, and those to come, with the keys
    /// published then.
    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    /// Waits until the JWKS has been requested `n` times in all.
    pub async fn jwks_fetched(&self, n: usize) {
        let mut fetches = self.state.jwks_fetches.subscribe();
        fetches
            .wait_for(|fetches| *fetches >= n)
            .await
            .expect("the provider's state lives");
    }

    /// Stops it: its port answers no more.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.await.expect("the provider stops");
        }
    }

    /// Requests for its JWKS so far, answered or not.
    pub fn jwks_fetches(&self) -> usize {
        *self.state.jwks_fetches.borrow()
    }

    /// Requests for its discovery document so far, answered or not.
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }
}

impl Drop for IdentityProvider {
    fn drop(&mut self) {
        if let Some((stop, _)) = self.server.take() {
            let _ = stop.send(());
        }
    }
}

async fn discovery(State(state): State<Arc<ProviderState>>) -> impl IntoResponse {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let issuer = state.issuer.lock().expect("issuer").clone();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/jwks.json", state.url),
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["code"],
    }))
    .into_response()
}

async fn jwks(State(state): State<Arc<ProviderState>>) -> impl IntoResponse {
    state.jwks_fetches.send_modify(|fetches| *fetches += 1);
    let mut held = state.held.subscribe();
    let _ = held.wait_for(|held| !held).await;
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = state.keys.lock().expect("keys").clone();
    Json(json!({ "keys": keys })).into_response()
}
