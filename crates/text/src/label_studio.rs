//! How Label Studio holds a note in a task: its `<Text encoding=…>` setting, shared by `serve`'s ML
//! backend (tasks to pre-annotate) and `data-prep labelstudio` (exports to train on). Offsets in both
//! count the characters of the decoded note, as Label Studio's editor does.

use std::str::FromStr;

use anyhow::{bail, Context, Result};
use base64::Engine as _;

/// The `Text` object's `encoding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextEncoding {
    /// The text itself (`none`, the default).
    #[default]
    Plain,
    /// `base64`: decoded as the browser's `atob` does, every byte one character (Latin-1).
    Base64,
    /// `base64unicode`: the decoded bytes are UTF-8.
    Base64Unicode,
}

impl FromStr for TextEncoding {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Self::Plain,
            "base64" => Self::Base64,
            "base64unicode" => Self::Base64Unicode,
            other => {
                bail!("encoding \"{other}\": Label Studio knows none, base64 and base64unicode")
            }
        })
    }
}

impl TextEncoding {
    /// The note a task's data value holds.
    pub fn decode(self, value: &str) -> Result<String> {
        if self == Self::Plain {
            return Ok(value.to_owned());
        }
        // `atob` passes over ASCII white space and takes missing padding.
        let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let bytes = engine
            .decode(compact)
            .context("the text is not base64, as its encoding says")?;
        Ok(match self {
            Self::Base64Unicode => String::from_utf8(bytes)
                .context("the text decoded from base64 is not UTF-8 (encoding base64unicode)")?,
            _ => bytes.into_iter().map(char::from).collect(),
        })
    }
}

/// Whether a plain note looks like base64 (one long run of its alphabet), to say why its spans do not
/// fit: the project's `<Text>` decodes it.
pub fn looks_base64(text: &str) -> bool {
    let t = text.trim_end_matches('=');
    t.len() >= 16
        && text.len().is_multiple_of(4)
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_texts_are_decoded_as_the_editor_decodes_them() {
        let note = "Пациентът е на 61 години. Glicemia 7,1 mmol/l.";
        let encoded = base64::engine::general_purpose::STANDARD.encode(note);
        let unicode: TextEncoding = "base64unicode".parse().unwrap();
        assert_eq!(unicode.decode(&encoded).unwrap(), note);
        assert!(looks_base64(&encoded) && !looks_base64(note));
        // atob's leniency: line breaks inside, padding left off.
        let wrapped = format!(
            "{}\n{}",
            &encoded[..20],
            encoded[20..].trim_end_matches('=')
        );
        assert_eq!(unicode.decode(&wrapped).unwrap(), note);
        // Plain base64 is atob's string: a character per byte, so UTF-8 shows as Latin-1.
        let latin: TextEncoding = "base64".parse().unwrap();
        assert_eq!(latin.decode("Y2Fmw6k=").unwrap(), "caf\u{c3}\u{a9}");
        assert_eq!(latin.decode("Zm9v").unwrap(), "foo");
        assert_eq!(TextEncoding::Plain.decode("Zm9v").unwrap(), "Zm9v");
        let why = |e: anyhow::Error| format!("{e:#}");
        assert!(why(unicode.decode("not base64!").unwrap_err()).contains("not base64"));
        let latin1 = base64::engine::general_purpose::STANDARD.encode([0x63, 0xe9]);
        assert!(why(unicode.decode(&latin1).unwrap_err()).contains("not UTF-8"));
        assert!(why("rot13".parse::<TextEncoding>().unwrap_err()).contains("\"rot13\""));
    }
}
