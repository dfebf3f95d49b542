//! Signing deliveries as the Standard Webhooks specification says: each
//! request carries `webhook-id` (the delivery, the same on every attempt),
//! `webhook-timestamp` (seconds since the epoch, of this attempt) and
//! `webhook-signature`: `v1,` and the base64 of HMAC-SHA256 over
//! `{id}.{timestamp}.{body}`, keyed with the secret's bytes. A secret is
//! `whsec_` and the base64 of its bytes. While a rotated-out secret is
//! still valid, each request carries two signatures, space-separated, so a
//! receiver may verify with either secret.

use aws_lc_rs::hmac;
use base64::{
    Engine,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};

/// Reads a secret's base64 as receivers' libraries do: padded or not, and
/// whatever the unused bits of its last character.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of a secret the gateway makes.
const SECRET_BYTES: usize = 32;

/// Fewest and most bytes of a secret a caller brings (the specification's
/// 24 to 64).
const CALLER_SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A new random secret, `whsec_...`.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source works");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// Checks a secret a caller brings: `whsec_` and the base64 of 24 to 64
/// bytes.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let bytes = secret_bytes(secret).ok_or_else(|| {
        format!("`secret` must be `{SECRET_PREFIX}` followed by the base64 of 24 to 64 bytes")
    })?;
    if !CALLER_SECRET_BYTES.contains(&bytes.len()) {
        return Err(format!(
            "`secret` must hold 24 to 64 bytes (it holds {})",
            bytes.len()
        ));
    }
    Ok(())
}

/// The key bytes of a secret; `None` when it is not `whsec_` and base64.
fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    LENIENT
        .decode(secret.strip_prefix(SECRET_PREFIX)?)
        .ok()
        .filter(|bytes| !bytes.is_empty())
}

/// The signature of one secret: `v1,<base64>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret_bytes(secret)?);
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    Some(format!("v1,{}", STANDARD.encode(context.sign().as_ref())))
}

/// The `webhook-signature` value: one signature per secret, in order,
/// space-separated. Secrets that cannot be read are left out (the store
/// holds only secrets that were checked).
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_matches_the_specifications_example() {
        // The example of the Standard Webhooks specification and its
        // reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1_614_265_330;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, timestamp, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn two_secrets_give_two_signatures_in_order() {
        let (a, b) = (new_secret(), new_secret());
        let header = signature_header(&[&a, &b], "id", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(Some(parts[0].to_owned()), sign(&a, "id", 1, b"{}"));
        assert_eq!(Some(parts[1].to_owned()), sign(&b, "id", 1, b"{}"));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn a_new_secret_is_random_and_of_the_expected_form() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(check_secret(&a).is_ok(), "{a}");
        assert_eq!(secret_bytes(&a).map(|k| k.len()), Some(SECRET_BYTES));
    }

    #[test]
    fn a_callers_secret_must_be_whsec_base64_of_24_to_64_bytes() {
        assert!(check_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(
            check_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err(),
            "no prefix"
        );
        assert!(check_secret("whsec_not base64!").is_err());
        assert!(
            check_secret(&format!("whsec_{}", STANDARD.encode([1u8; 16]))).is_err(),
            "short"
        );
        assert!(
            check_secret(&format!("whsec_{}", STANDARD.encode([1u8; 65]))).is_err(),
            "long"
        );
    }
}
