//! Text cleaning: Unicode NFC, control characters, white space.

use unicode_normalization::UnicodeNormalization;

/// NFC; control characters become spaces; runs of white space within a line collapse to one space;
/// lines are trimmed and empty lines dropped (paragraph structure is kept as single newlines).
pub fn clean(text: &str) -> String {
    let nfc: String = text.nfc().collect();
    let mut out = String::with_capacity(nfc.len());
    for line in nfc.split(['\n', '\u{2028}', '\u{2029}']) {
        let mut cleaned = String::with_capacity(line.len());
        let mut space = false;
        for c in line.chars() {
            // Zero-width and byte-order marks carry nothing for a language model.
            if matches!(c, '\u{200B}' | '\u{FEFF}' | '\u{00AD}') {
                continue;
            }
            if c.is_whitespace() || c.is_control() {
                space = !cleaned.is_empty();
            } else {
                if space {
                    cleaned.push(' ');
                    space = false;
                }
                cleaned.push(c);
            }
        }
        if !cleaned.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&cleaned);
        }
    }
    out
}

/// The key two documents share when they are the same text up to case and white space.
pub fn dedup_key(cleaned: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for word in cleaned.split_whitespace() {
        h.update(word.to_lowercase().as_bytes());
        h.update(b" ");
    }
    let d = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&d[..16]);
    key
}

/// A number in 0..1000 fixed by the text alone: the same document always lands in the same split.
pub fn split_bucket(key: &[u8; 16], salt: u64) -> u32 {
    let v = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"))
        ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (v % 1000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_normalises_and_collapses() {
        // "e" + combining acute → "é" (NFC); tabs, NBSP and control chars collapse; empty lines go.
        let raw =
            "  Pacient\u{0065}\u{0301}\t\tX\u{00A0}Y\u{0007}Z  \n\n \r\n second\u{200B} line ";
        assert_eq!(clean(raw), "Pacienté X Y Z\nsecond line");
        assert_eq!(clean(" \n\t "), "");
    }

    #[test]
    fn dedup_ignores_case_and_spacing_only() {
        assert_eq!(dedup_key("Acute  Stroke"), dedup_key("acute stroke"));
        assert_ne!(dedup_key("acute stroke"), dedup_key("acute strokes"));
        let k = dedup_key("x");
        assert_eq!(split_bucket(&k, 1), split_bucket(&k, 1));
        assert!(split_bucket(&k, 1) < 1000);
    }
}
