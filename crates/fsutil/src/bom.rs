//! The UTF-8 byte-order mark (U+FEFF, bytes EF BB BF) that Windows tools put before a file's text:
//! Notepad before Windows 10 1903, Excel's "CSV UTF-8", PowerShell 5's `Out-File -Encoding utf8`,
//! many hospital systems' exports. It marks the encoding and is not part of the text, so every reader
//! of a file a person may have saved takes it off, as Python's `encoding="utf-8-sig"` does: without
//! that, serde_json rejects the file at line 1 column 1, a JSON Lines file loses its first record and
//! a plain-text document's offsets count an invisible character.

use std::io::BufRead;
use std::path::Path;

/// The byte-order mark as UTF-8 bytes.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `text` without a leading byte-order mark.
pub fn strip(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// `bytes` without a leading byte-order mark.
pub fn strip_bytes(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// Takes a leading byte-order mark off an owned string in place.
pub fn strip_owned(mut text: String) -> String {
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    text
}

/// The encoding a UTF-16 or UTF-32 byte-order mark at the start of `bytes` names. Windows tools save
/// "Unicode" text that way (Excel's "Unicode Text", Notepad's "UTF-16 LE", PowerShell 5's `>`); medqa
/// reads UTF-8 only, and such a file must be refused as a whole: its ASCII lines, split at the byte
/// `\n`, are valid UTF-8 full of NUL characters and would pass for text.
pub fn other_encoding(bytes: &[u8]) -> Option<&'static str> {
    // UTF-32LE's mark begins with UTF-16LE's, so it is looked for first.
    [
        (&b"\xFF\xFE\0\0"[..], "UTF-32LE"),
        (b"\0\0\xFE\xFF", "UTF-32BE"),
        (b"\xFF\xFE", "UTF-16LE"),
        (b"\xFE\xFF", "UTF-16BE"),
    ]
    .into_iter()
    .find(|(mark, _)| bytes.starts_with(mark))
    .map(|(_, name)| name)
}

/// Why `bytes` (a file's start) cannot be read as UTF-8, when a byte-order mark says it is another
/// encoding: the reason a reject or an error gives, with the command that converts it.
pub fn not_utf8_reason(bytes: &[u8]) -> Option<String> {
    other_encoding(bytes).map(|name| {
        format!("the file is {name} (its byte-order mark says so), not UTF-8: convert it, e.g. `iconv -f {name} -t UTF-8`")
    })
}

/// `std::fs::read_to_string` without the byte-order mark; a UTF-16 or UTF-32 file is an error that
/// says so ([`not_utf8_reason`]).
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    if let Some(reason) = not_utf8_reason(&bytes) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, reason));
    }
    if let Some(reason) = not_utf8_at(&bytes) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, reason));
    }
    String::from_utf8(bytes)
        .map(strip_owned)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Where `bytes` stop being UTF-8 (line and byte) and the way out, or `None` when they are UTF-8:
/// exports from Excel's plain "CSV" and hospital systems are often in a Windows code page (1250 for
/// Czech, Polish and Romanian, 1251 Bulgarian, 1253 Greek, 1252 Spanish and English).
pub fn not_utf8_at(bytes: &[u8]) -> Option<String> {
    let valid = std::str::from_utf8(bytes).err()?.valid_up_to();
    let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
    Some(format!(
        "not UTF-8 at line {line} (byte {valid}): saved in another encoding, such as a Windows code \
         page; convert it, e.g. `iconv -f CP1250 -t UTF-8` (Excel: save as \"CSV UTF-8\")"
    ))
}

/// Consumes a byte-order mark at the start of a reader, so that a streaming parser never sees it.
/// Looks at the reader's first buffer, which for a file holds the whole mark unless the file is shorter.
pub fn skip(reader: &mut impl BufRead) -> std::io::Result<()> {
    if reader.fill_buf()?.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_off_a_leading_mark_only() {
        assert_eq!(strip("\u{feff}Fever"), "Fever");
        assert_eq!(strip("Fever\u{feff}"), "Fever\u{feff}");
        assert_eq!(strip("\u{feff}\u{feff}x"), "\u{feff}x");
        assert_eq!(strip_bytes(b"\xEF\xBB\xBF{}"), b"{}");
        assert_eq!(strip_bytes(b"\xEF\xBB{}"), b"\xEF\xBB{}");
        assert_eq!(strip_owned("\u{feff}Febră".into()), "Febră");
        assert_eq!(strip_owned("Febră".into()), "Febră");
        assert_eq!(other_encoding(b"\xFF\xFE\0\0{\0\0\0"), Some("UTF-32LE"));
        assert_eq!(other_encoding(b"\xFF\xFE{\0"), Some("UTF-16LE"));
        assert_eq!(other_encoding(b"\xFE\xFF\0{"), Some("UTF-16BE"));
        assert_eq!(other_encoding(b"\0\0\xFE\xFF"), Some("UTF-32BE"));
        assert_eq!(other_encoding(b"\xEF\xBB\xBF{}"), None);
        assert_eq!(other_encoding("{}".as_bytes()), None);
    }

    #[test]
    fn reads_files_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let with = dir.path().join("with.txt");
        std::fs::write(&with, b"\xEF\xBB\xBFline 1\nline 2\n").unwrap();
        assert_eq!(read_to_string(&with).unwrap(), "line 1\nline 2\n");
        let mut reader = std::io::BufReader::new(std::fs::File::open(&with).unwrap());
        skip(&mut reader).unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
        assert_eq!(rest, "line 1\nline 2\n");
        // A UTF-16 file is refused by name, with the conversion.
        let utf16 = dir.path().join("utf16.json");
        let text: Vec<u8> = "{}\n".encode_utf16().flat_map(u16::to_le_bytes).collect();
        std::fs::write(&utf16, [&b"\xFF\xFE"[..], &text].concat()).unwrap();
        let err = read_to_string(&utf16).unwrap_err().to_string();
        assert!(err.contains("UTF-16LE") && err.contains("iconv"), "{err}");
        std::fs::write(&utf16, b"{\n\"a\": \"caf\xe9\"}").unwrap();
        let err = read_to_string(&utf16).unwrap_err().to_string();
        assert!(err.starts_with("not UTF-8 at line 2 (byte 11): "), "{err}");
        // Text that merely starts like the mark, or is shorter than it, is left whole.
        for bytes in [&b"\xEF\xBB"[..], b"", "été".as_bytes()] {
            let file = dir.path().join("other.txt");
            std::fs::write(&file, bytes).unwrap();
            let mut reader = std::io::BufReader::new(std::fs::File::open(&file).unwrap());
            skip(&mut reader).unwrap();
            let mut rest = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut rest).unwrap();
            assert_eq!(rest, bytes);
        }
    }
}
