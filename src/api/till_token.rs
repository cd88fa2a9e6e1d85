//! Machine credentials for tills: a 256-bit random secret, stored in the
//! users file only as its SHA-256. Such a secret cannot be guessed or
//! brute-forced offline, so it needs no slow hash: checking one costs a
//! microsecond instead of an argon2 verification, which is what lets
//! thousands of tills reconnect at once after a deploy.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Marks a secret as a till token (and lets secret scanners find leaked ones).
pub const PREFIX: &str = "lt1_";
const SECRET_BYTES: usize = 32;
/// 32 bytes in unpadded base64url.
pub const ENCODED_LEN: usize = 43;

/// A new token and the SHA-256 (hex) the users file stores.
pub fn issue() -> (String, String) {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hex = to_hex(&digest(&token));
    (token, hex)
}

/// Token-shaped secrets are checked only as tokens, everything else only as
/// a password: the cost of a check then depends on the secret's shape, never
/// on whether the login exists or which credential it has.
pub fn looks_like_token(secret: &str) -> bool {
    secret.len() == PREFIX.len() + ENCODED_LEN
        && secret.starts_with(PREFIX)
        && secret[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant time: a timing side channel must not reveal how many leading
/// bytes of the stored digest a guess got right.
pub fn verify(secret: &str, stored: &[u8; 32]) -> bool {
    bool::from(digest(secret).ct_eq(stored))
}

/// The users file's `token_sha256`: 64 hex digits.
pub fn parse_hex_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_verifies_against_its_published_digest_only() {
        let (token, hex) = issue();
        assert!(looks_like_token(&token), "{token}");
        let stored = parse_hex_digest(&hex).unwrap();
        assert!(verify(&token, &stored));
        let (other, _) = issue();
        assert_ne!(token, other);
        assert!(!verify(&other, &stored));
        assert!(!verify(&token[..token.len() - 1], &stored));
    }

    #[test]
    fn shapes() {
        assert!(!looks_like_token("pos-demo"));
        assert!(!looks_like_token(&format!("{PREFIX}{}", "a".repeat(42))));
        assert!(!looks_like_token(&format!("{PREFIX}{}!", "a".repeat(42))));
        assert!(looks_like_token(&format!("{PREFIX}{}", "a".repeat(43))));
        assert_eq!(parse_hex_digest("zz"), None);
        assert_eq!(parse_hex_digest(&"g".repeat(64)), None);
        assert_eq!(parse_hex_digest(&"0f".repeat(32)), Some([0x0f; 32]));
    }
}
