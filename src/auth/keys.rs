//! Where the keys that verify callers' tokens come from, always from the
//! configuration, never from the token: a shared secret (HS256/384/512),
//! PEM public keys (RSA, EC, Ed25519), a JWKS URL, or an OIDC issuer whose
//! discovery document names the JWKS.
//!
//! JWKS keys are cached. A token with an unknown `kid` triggers a refresh,
//! but refreshes are rate-limited (`min_refresh`): a flood of random `kid`s
//! costs the identity provider at most one fetch per interval. The last good
//! key set is kept while the provider is down, and the provider's
//! `Cache-Control: max-age` decides when the set is refreshed anyway,
//! within bounds.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{Jwk, JwkSet, PublicKeyUse},
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::AuthError;

/// Shortest and longest time a JWKS is trusted without a refresh, whatever
/// its `Cache-Control` says.
const MIN_MAX_AGE: Duration = Duration::from_secs(60);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Trust of a JWKS whose answer names no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Time limit of one fetch from the identity provider.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS or discovery document read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Where verification keys come from.
pub enum KeySource {
    /// A shared secret (HS256/384/512).
    Secret(DecodingKey),
    /// PEM public keys, each with the `kid` it answers to (its file stem)
    /// when the token names one.
    Static(Vec<(String, DecodingKey)>),
    /// A JWKS fetched from an identity provider.
    Jwks(Box<JwksCache>),
}

impl KeySource {
    /// The shared secret's source.
    pub fn secret(secret: &SecretString) -> KeySource {
        KeySource::Secret(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
    }

    /// PEM public keys from files; the message names the file that fails.
    pub fn pem_files(paths: &[PathBuf]) -> anyhow::Result<KeySource> {
        let mut keys = Vec::new();
        for path in paths {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("--jwt-public-key {}: {e}", path.display()))?;
            // A private key would be read as its public half, but it has no
            // business on this side: refuse it rather than hold it.
            if !String::from_utf8_lossy(&pem).contains("PUBLIC KEY-----") {
                anyhow::bail!(
                    "--jwt-public-key {}: not a PEM public key (`-----BEGIN PUBLIC KEY-----`); give the public half only",
                    path.display()
                );
            }
            let key = DecodingKey::from_rsa_pem(&pem)
                .or_else(|_| DecodingKey::from_ec_pem(&pem))
                .or_else(|_| DecodingKey::from_ed_pem(&pem))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--jwt-public-key {}: not a PEM RSA, EC or Ed25519 public key",
                        path.display()
                    )
                })?;
            let kid = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            keys.push((kid, key));
        }
        Ok(KeySource::Static(keys))
    }

    /// The keys a token's header may be signed with (the one its `kid`
    /// names; without a `kid`, every key of the algorithm's type, as during
    /// a rotation two are published), or why there is none.
    pub async fn keys(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<DecodingKey>, AuthError> {
        let family = alg.family();
        let wrong_type =
            || AuthError::Invalid("the key type does not match the token's `alg`".into());
        match self {
            KeySource::Secret(key) if key.family() == family => Ok(vec![key.clone()]),
            KeySource::Secret(_) => Err(wrong_type()),
            KeySource::Static(keys) => {
                let named: Vec<&DecodingKey> = keys
                    .iter()
                    .filter(|(name, _)| kid.is_none_or(|kid| kid == name))
                    .map(|(_, key)| key)
                    .collect();
                if named.is_empty() {
                    return Err(AuthError::Invalid("unknown `kid`".into()));
                }
                let usable: Vec<DecodingKey> = named
                    .into_iter()
                    .filter(|key| key.family() == family)
                    .cloned()
                    .collect();
                if usable.is_empty() {
                    return Err(wrong_type());
                }
                Ok(usable)
            }
            KeySource::Jwks(cache) => cache.keys(kid, alg).await,
        }
    }
}

/// Where a JWKS is found.
#[derive(Debug, Clone)]
pub enum JwksLocation {
    /// The JWKS itself.
    Url(String),
    /// An OIDC issuer: its discovery document names the JWKS, and its
    /// `issuer` must be this one.
    Issuer(String),
}

/// A JWKS kept in memory and refreshed at a bounded rate. A caller whose
/// key is known never waits for a refresh (a stale set is refreshed in the
/// background); only a caller naming an unknown `kid` waits for the one
/// fetch that may find it.
pub struct JwksCache {
    inner: Arc<Inner>,
}

struct Inner {
    location: JwksLocation,
    http: reqwest::Client,
    min_refresh: Duration,
    /// The keys; held only for a look or an update, never across a fetch.
    state: std::sync::Mutex<JwksState>,
    /// One fetch at a time.
    fetching: Mutex<()>,
}

#[derive(Default)]
struct JwksState {
    /// Keys by `kid` (keys without one under ""); several may share one.
    keys: HashMap<String, Vec<(Jwk, DecodingKey)>>,
    /// True once a fetch succeeded: then a missing key is the token's
    /// fault, not the provider's.
    fetched: bool,
    /// When the current set stops being trusted without a refresh.
    fresh_until: Option<Instant>,
    /// The last fetch attempt, good or not: refreshes are at most one per
    /// `min_refresh`.
    last_attempt: Option<Instant>,
    /// The discovered `jwks_uri` of an OIDC issuer.
    jwks_uri: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl JwksCache {
    /// A cache of the JWKS at `location`, refreshed at most once per
    /// `min_refresh`.
    pub fn new(location: JwksLocation, min_refresh: Duration) -> anyhow::Result<JwksCache> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            // A redirect could lead anywhere; the configured URLs are final.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("backup-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(JwksCache {
            inner: Arc::new(Inner {
                location,
                http,
                min_refresh,
                state: std::sync::Mutex::new(JwksState::default()),
                fetching: Mutex::new(()),
            }),
        })
    }

    /// The keys a token may be signed with; a refresh (rate permitting)
    /// when its `kid` is unknown, in the background when the set is stale.
    async fn keys(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<DecodingKey>, AuthError> {
        let (known, stale) = {
            let state = self.inner.lock();
            let stale = state.fresh_until.is_none_or(|t| Instant::now() >= t);
            (find(&state, kid, alg), stale)
        };
        if !known.is_empty() {
            if stale && self.inner.may_fetch() {
                let inner = self.inner.clone();
                tokio::spawn(async move { inner.refresh().await });
            }
            return Ok(known);
        }
        // Unknown here: wait for the one fetch that may find it (another
        // caller's fetch counts), if the rate allows one.
        let guard = self.inner.fetching.lock().await;
        let known = find(&self.inner.lock(), kid, alg);
        if known.is_empty() && self.inner.may_fetch() {
            self.inner.fetch_now().await;
        }
        drop(guard);
        let state = self.inner.lock();
        let known = if known.is_empty() {
            find(&state, kid, alg)
        } else {
            known
        };
        match known {
            known if !known.is_empty() => Ok(known),
            _ if !state.fetched => Err(AuthError::KeysUnavailable),
            _ => Err(AuthError::Invalid(
                "unknown `kid`, or no key for the token's `alg`".into(),
            )),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, JwksState> {
        // Replaced whole on each fetch: never seen half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True, and the attempt recorded, when the rate allows a fetch now.
    fn may_fetch(&self) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        let allowed = state
            .last_attempt
            .is_none_or(|t| now.duration_since(t) >= self.min_refresh);
        if allowed {
            state.last_attempt = Some(now);
        }
        allowed
    }

    /// A background refresh: one fetch at a time.
    async fn refresh(&self) {
        let _guard = self.fetching.lock().await;
        self.fetch_now().await;
    }

    /// Fetches the set; on failure the last good one stays.
    async fn fetch_now(&self) {
        let jwks_uri = self.lock().jwks_uri.clone();
        match self.fetch(jwks_uri).await {
            Ok((keys, max_age, jwks_uri)) => {
                let mut state = self.lock();
                state.keys = keys;
                state.fetched = true;
                state.fresh_until = Some(Instant::now() + max_age.clamp(MIN_MAX_AGE, MAX_MAX_AGE));
                state.jwks_uri = jwks_uri;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh the JWKS; keeping the keys known");
                // The issuer may have moved its JWKS: discover it again.
                self.lock().jwks_uri = None;
            }
        }
    }

    /// The key set and how long to trust it, and the discovered JWKS URL.
    async fn fetch(
        &self,
        jwks_uri: Option<String>,
    ) -> anyhow::Result<(
        HashMap<String, Vec<(Jwk, DecodingKey)>>,
        Duration,
        Option<String>,
    )> {
        let url = match (&self.location, jwks_uri) {
            (JwksLocation::Url(url), _) => url.clone(),
            (JwksLocation::Issuer(_), Some(uri)) => uri,
            (JwksLocation::Issuer(issuer), None) => {
                let discovery_url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let (body, _) = self.get(&discovery_url).await?;
                let discovery: Discovery = serde_json::from_slice(&body)
                    .map_err(|e| anyhow::anyhow!("OIDC discovery document: {e}"))?;
                if discovery.issuer != *issuer {
                    anyhow::bail!(
                        "the OIDC discovery document names issuer `{}`, not the configured `{issuer}`",
                        discovery.issuer
                    );
                }
                discovery.jwks_uri
            }
        };
        let (body, max_age) = self.get(&url).await?;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| anyhow::anyhow!("JWKS: {e}"))?;
        let mut keys: HashMap<String, Vec<(Jwk, DecodingKey)>> = HashMap::new();
        for jwk in set.keys {
            // A key published for encryption never checks a signature.
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                continue;
            }
            match DecodingKey::from_jwk(&jwk) {
                Ok(key) => {
                    let kid = jwk.common.key_id.clone().unwrap_or_default();
                    keys.entry(kid).or_default().push((jwk, key));
                }
                Err(e) => tracing::info!(error = %e, "skipping a JWKS key this gateway cannot use"),
            }
        }
        tracing::info!(
            keys = keys.values().map(Vec::len).sum::<usize>(),
            "fetched the JWKS"
        );
        let discovered = matches!(self.location, JwksLocation::Issuer(_)).then_some(url);
        Ok((keys, max_age, discovered))
    }

    /// GETs a document, at most [`MAX_DOCUMENT_BYTES`], with its max-age.
    async fn get(&self, url: &str) -> anyhow::Result<(Vec<u8>, Duration)> {
        let mut response = self.http.get(url).send().await?.error_for_status()?;
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                anyhow::bail!("{url}: the document is larger than {MAX_DOCUMENT_BYTES} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

/// The keys for `kid` (every key when the token names none) usable with
/// `alg`.
fn find(state: &JwksState, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
    let usable = |(jwk, key): &(Jwk, DecodingKey)| {
        key.family() == alg.family()
            && jwk
                .common
                .key_algorithm
                .is_none_or(|a| a.to_string().parse::<Algorithm>().is_ok_and(|a| a == alg))
    };
    let named: Box<dyn Iterator<Item = &(Jwk, DecodingKey)>> = match kid {
        Some(kid) => Box::new(state.keys.get(kid).into_iter().flatten()),
        None => Box::new(state.keys.values().flatten()),
    };
    named
        .filter(|k| usable(k))
        .map(|(_, k)| k.clone())
        .collect()
}

/// How long a `Cache-Control` value lets the set be trusted: its
/// `max-age`, or nothing at all for `no-cache` and `no-store` (the lower
/// bound then applies). Directive names are case-insensitive.
fn max_age(value: &str) -> Option<Duration> {
    let mut no_cache = false;
    for part in value.split(',') {
        let part = part.trim().to_ascii_lowercase();
        if let Some(n) = part.strip_prefix("max-age=") {
            if let Ok(n) = n.trim_matches('"').parse::<u64>() {
                return Some(Duration::from_secs(n));
            }
        } else if part == "no-cache" || part == "no-store" {
            no_cache = true;
        }
    }
    no_cache.then_some(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    #[test]
    fn max_age_is_read_from_cache_control() {
        use std::time::Duration;
        assert_eq!(
            super::max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(super::max_age("no-cache"), Some(Duration::ZERO));
        assert_eq!(
            super::max_age("Public, MAX-AGE=30"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(super::max_age("public"), None);
    }
}
