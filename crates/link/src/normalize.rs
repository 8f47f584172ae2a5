//! How a surface form becomes comparable: clinicians and term lists differ in case, diacritics,
//! punctuation and spacing (`Hypertension,arterial` / `arterial hypertension`), rarely in meaning.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Lower case, no diacritics (compatibility decomposition, combining marks dropped), every run of
/// characters that are not letters or digits one space, trimmed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else {
            space = true;
        }
    }
    out
}

/// The words of a normalised form in sorted order: word order no longer counts.
pub fn unordered(normalized: &str) -> String {
    let mut words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
    words.sort_unstable();
    words.join(" ")
}

/// The character n-grams of a normalised form, padded with a space at each end so that word starts
/// and ends count (` hy`, `hyp`, …, `on `), as scispaCy's linker does with 3-grams.
pub fn char_ngrams(normalized: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = std::iter::once(' ')
        .chain(normalized.chars())
        .chain(std::iter::once(' '))
        .collect();
    if chars.len() < n {
        return vec![chars.iter().collect()];
    }
    chars.windows(n).map(|w| w.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_diacritics_punctuation_and_spacing_do_not_count() {
        assert_eq!(
            normalize("  Hipertensión  ARTERIAL, "),
            "hipertension arterial"
        );
        assert_eq!(normalize("Ischémie—cérébrale"), "ischemie cerebrale");
        assert_eq!(normalize("ΟΞΎ ισχαιμικό"), "οξυ ισχαιμικο");
        assert_eq!(normalize("Диабет тип-2"), "диабет тип 2");
        assert_eq!(normalize("ﬁbrillation"), "fibrillation");
        assert_eq!(normalize("!?"), "");
    }

    #[test]
    fn word_order_and_ngrams() {
        assert_eq!(unordered("hypertension arterial"), "arterial hypertension");
        assert_eq!(char_ngrams("ab", 3), vec![" ab", "ab "]);
        assert_eq!(char_ngrams("", 3), vec!["  "]);
    }
}
