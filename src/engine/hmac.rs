//! The `X-Wharf-Signature` header of callbacks: HMAC-SHA256 (RFC 2104) of the body, as hex.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The HMAC-SHA256 of `message` under `key`, as lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC takes a key of any length (a long one is hashed first), so this cannot fail.
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).map(|mac| mac.chain_update(message).finalize());
    mac.map(|tag| hex::encode(tag.into_bytes())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::hmac_sha256_hex;

    /// RFC 4231, section 4: test cases 1 (short key), 2 (key shorter than the block) and
    /// 6 (131-byte key, hashed first).
    #[test]
    fn rfc_4231_vectors() {
        let check = |key: &[u8], data: &[u8], expected: &str| {
            assert_eq!(hmac_sha256_hex(key, data), expected, "key of {} bytes", key.len());
        };
        check(&[0x0b; 20], b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        check(
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        );
        check(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        );
    }
}
