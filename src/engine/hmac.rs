//! HMAC-SHA256 (RFC 2104) over `sha2`, for the `X-Wharf-Signature` header of callbacks.
//! Small enough to write out rather than add a crate for it.

use sha2::{Digest, Sha256};

/// SHA-256 works on 64-byte blocks; RFC 2104 pads or hashes the key to that size.
const BLOCK: usize = 64;

/// The HMAC-SHA256 of `message` under `key`, as lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad = block.map(|b| b ^ 0x36);
    let outer_pad = block.map(|b| b ^ 0x5c);
    let inner = Sha256::new().chain_update(inner_pad).chain_update(message).finalize();
    let outer = Sha256::new().chain_update(outer_pad).chain_update(inner).finalize();
    hex::encode(outer)
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
