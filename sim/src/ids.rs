//! Random identifiers in the forms the services use.

use uuid::Uuid;

/// 32 lowercase hex digits (Keystone ids).
pub(crate) fn hex_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// `req-<uuid4>` (`x-openstack-request-id`).
pub(crate) fn request_id() -> String {
    format!("req-{}", Uuid::new_v4())
}

/// An opaque token: long and random like a Fernet token, not decodable.
pub(crate) fn token() -> String {
    format!(
        "gAAAAA{}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

/// A Keystone audit id: 16 random bytes, URL-safe base64 without padding (22 chars).
pub(crate) fn audit_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(char::from(ALPHABET[((bits >> nbits) & 63) as usize]));
        }
    }
    if nbits > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - nbits)) & 63) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn forms() {
        assert_eq!(super::hex_id().len(), 32);
        assert_eq!(super::audit_id().len(), 22);
        assert!(super::request_id().starts_with("req-"));
    }
}
