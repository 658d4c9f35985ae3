//! Random tokens (sessions, CSRF, API tokens) and the hashes stored in their place.

use sha2::{Digest, Sha256};

/// 32 random bytes from the operating system, as 64 hex characters.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut bytes) {
        // Without an OS random source no token can be safe: stop rather than make weak ones.
        panic!("the operating system's random number source failed: {e}");
    }
    hex(&bytes)
}

/// The SHA-256 of a token: what the database keeps.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Compare two strings in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new API token for `user`: the token (shown once) and its id.
pub async fn issue_api_token(
    tx: &mut drover_store::Tx,
    user: &str,
    label: &str,
) -> Result<(String, i64), drover_store::StoreError> {
    let token = format!("drv_{}", random_token());
    let id = tx
        .create_api_token(user, label, &token_hash(&token))
        .await?;
    Ok((token, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_compare_exactly() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same("abc", "abcd"));
        assert_eq!(token_hash("x").len(), 32);
    }
}
