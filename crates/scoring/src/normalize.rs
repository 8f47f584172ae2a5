//! Answer normalisation: the official SQuAD rules, MLQA's multilingual rules, and our extension of the
//! latter to the European languages MLQA rejects (see `docs/normalisation.md` for the reasoning).
//!
//! Character classes follow Python's `str` semantics, which the official scripts run on: `lower()`
//! (full Unicode case mapping, final sigma included), `split()` (Unicode white space plus U+001C–U+001F)
//! and `re`'s `\b` (word characters are letters, numbers and `_`).

use unicode_general_category::{get_general_category, GeneralCategory as G};
use unicode_normalization::UnicodeNormalization;

/// How answers are normalised before comparing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rules {
    /// `evaluate-v1.1.py` / `evaluate-v2.0.py`: ASCII punctuation, English articles.
    Squad,
    /// MLQA's rules for a language (ours where MLQA has none).
    Lang(Lang),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lang {
    pub code: String,
    articles: &'static [&'static str],
    /// Apostrophes split words (French/Italian elision: `l'hôpital` → `l hôpital`).
    split_apostrophes: bool,
    /// Romanian: s/t with cedilla are the comma-below letters.
    romanian_letters: bool,
    /// Greek: final sigma compares as sigma.
    greek_sigma: bool,
    /// Chinese: every CJK character and punctuation mark is a token (MLQA's mixed segmentation).
    mixed_segmentation: bool,
    /// Arabic: MLQA's rule for the prefixed article `ال`.
    arabic_article: bool,
}

impl Lang {
    /// Rules for an ISO 639-1 code; `None` for a language without rules (the caller falls back to
    /// `Lang::neutral()` and says so).
    pub fn new(code: &str) -> Option<Self> {
        let code = code.trim().to_ascii_lowercase();
        let mut lang = Self::neutral();
        lang.code = code.clone();
        match code.as_str() {
            // MLQA's own lists.
            "en" => lang.articles = &["a", "an", "the"],
            "es" => lang.articles = &["un", "una", "unos", "unas", "el", "la", "los", "las"],
            "vi" => lang.articles = &["của", "là", "cái", "chiếc", "những"],
            "de" => {
                lang.articles = &[
                    "ein", "eine", "einen", "einem", "eines", "einer", "der", "die", "das", "den",
                    "dem", "des",
                ]
            }
            "ar" => lang.arabic_article = true,
            "zh" => lang.mixed_segmentation = true,
            "hi" => {}
            // Ours.
            "el" => {
                lang.articles = &[
                    "ο", "η", "το", "οι", "τα", "του", "της", "των", "τον", "την", "τους", "τις",
                    "ένας", "ενός", "έναν", "ένα", "μια", "μία", "μιας", "μίας",
                ];
                lang.greek_sigma = true;
            }
            "ro" => {
                lang.articles = &[
                    "un", "o", "niște", "unui", "unei", "unor", "al", "a", "ai", "ale",
                ];
                lang.romanian_letters = true;
            }
            "fr" => {
                lang.articles = &["le", "la", "les", "l", "un", "une", "des", "du"];
                lang.split_apostrophes = true;
            }
            "it" => {
                lang.articles = &["il", "lo", "la", "i", "gli", "le", "l", "un", "uno", "una"];
                lang.split_apostrophes = true;
            }
            "pt" => lang.articles = &["o", "a", "os", "as", "um", "uma", "uns", "umas"],
            // No free-standing articles (Bulgarian's are suffixes, which a word list cannot remove).
            "bg" | "cs" | "pl" | "ru" | "uk" | "sk" | "sl" | "hr" | "sr" | "hu" | "fi" | "et"
            | "lt" | "lv" => {}
            _ => return None,
        }
        Some(lang)
    }

    /// Unicode punctuation, white-space tokens, no articles: for languages without rules.
    pub fn neutral() -> Self {
        Self {
            code: "neutral".to_owned(),
            articles: &[],
            split_apostrophes: false,
            romanian_letters: false,
            greek_sigma: false,
            mixed_segmentation: false,
            arabic_article: false,
        }
    }
}

/// Python's `str.isspace()`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A character `re`'s `\w` matches in a `str` pattern.
fn is_py_word(c: char) -> bool {
    c == '_'
        || matches!(
            get_general_category(c),
            G::UppercaseLetter
                | G::LowercaseLetter
                | G::TitlecaseLetter
                | G::ModifierLetter
                | G::OtherLetter
                | G::DecimalNumber
                | G::LetterNumber
                | G::OtherNumber
        )
}

fn is_unicode_punct(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            G::ConnectorPunctuation
                | G::DashPunctuation
                | G::OpenPunctuation
                | G::ClosePunctuation
                | G::InitialPunctuation
                | G::FinalPunctuation
                | G::OtherPunctuation
        )
}

/// `re.sub(r'\b(w1|w2|…)\b', ' ', text)`: every maximal run of word characters equal to a listed word
/// becomes a space.
fn remove_words(text: &str, words: &[&str]) -> String {
    if words.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if words.contains(&run.as_str()) {
            out.push(' ');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_py_word(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fa5}').contains(&c)
}

/// The tokens of a normalised answer (what F1 counts).
pub fn tokens(text: &str, rules: &Rules) -> Vec<String> {
    normalize(text, rules)
        .split(is_py_space)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The normalised answer (what exact match compares).
pub fn normalize(text: &str, rules: &Rules) -> String {
    match rules {
        Rules::Squad => {
            let lower = text.to_lowercase();
            let no_punct: String = lower
                .chars()
                .filter(|c| !c.is_ascii_punctuation())
                .collect();
            join_tokens(remove_words(&no_punct, &["a", "an", "the"]).split(is_py_space))
        }
        Rules::Lang(lang) => normalize_lang(text, lang),
    }
}

fn join_tokens<'a>(tokens: impl Iterator<Item = &'a str>) -> String {
    tokens
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn normalize_lang(text: &str, lang: &Lang) -> String {
    let mut s: String = text.nfc().collect::<String>().to_lowercase();
    if lang.romanian_letters {
        s = s.replace('ş', "ș").replace('ţ', "ț");
    }
    if lang.split_apostrophes {
        s = s.replace(['\'', '’', 'ʼ'], " ");
    }
    let no_punct: String = s.chars().filter(|&c| !is_unicode_punct(c)).collect();
    let mut no_articles = if lang.arabic_article {
        remove_arabic_article(&no_punct)
    } else {
        remove_words(&no_punct, lang.articles)
    };
    // After the article lists (which spell the final sigma), so that a word compares the same whether
    // its last sigma was written ς or σ.
    if lang.greek_sigma {
        no_articles = no_articles.replace('ς', "σ");
    }
    if lang.mixed_segmentation {
        join_tokens(mixed_segmentation(&no_articles).iter().map(String::as_str))
    } else {
        join_tokens(no_articles.split(is_py_space))
    }
}

/// MLQA's `re.sub('\sال^|ال', ' ', text)`: the first alternative can never match (`^` after text), so
/// every `ال` becomes a space.
fn remove_arabic_article(text: &str) -> String {
    text.replace("ال", " ")
}

/// MLQA's mixed segmentation for Chinese: CJK characters and punctuation are tokens of their own, the
/// rest splits on white space.
fn mixed_segmentation(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for c in text.chars() {
        if is_cjk(c) || is_unicode_punct(c) {
            out.extend(
                pending
                    .split(is_py_space)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            );
            pending.clear();
            out.push(c.to_string());
        } else {
            pending.push(c);
        }
    }
    out.extend(
        pending
            .split(is_py_space)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(code: &str) -> Rules {
        Rules::Lang(Lang::new(code).unwrap())
    }

    #[test]
    fn squad_rules_are_the_official_ones() {
        let r = Rules::Squad;
        assert_eq!(normalize("The  Cat's hat, a-b!", &r), "cats hat ab");
        // Articles only as whole words; `\b` does not split at `_` or digits.
        assert_eq!(normalize("an anthem theater a1 a", &r), "anthem theater a1");
        // `_` is ASCII punctuation, gone before articles are looked for.
        assert_eq!(normalize("the_end", &r), "theend");
        // Only ASCII punctuation goes; Unicode dashes and quotes stay.
        assert_eq!(normalize("«Nice» – “quote”", &r), "«nice» – “quote”");
        assert_eq!(normalize("A", &r), "");
        assert_eq!(
            normalize("x\u{1f}y", &r),
            "x y",
            "Python's split() breaks at U+001F"
        );
    }

    #[test]
    fn european_languages() {
        assert_eq!(normalize("Η ΟΔΟΣ", &lang("el")), "οδοσ");
        assert_eq!(normalize("της καρδιάς", &lang("el")), "καρδιάσ");
        assert_eq!(
            normalize("o Tensiune arterială", &lang("ro")),
            "tensiune arterială"
        );
        assert_eq!(
            normalize("Ţesut ş", &lang("ro")),
            normalize("Țesut ș", &lang("ro"))
        );
        assert_eq!(normalize("l'hôpital", &lang("fr")), "hôpital");
        assert_eq!(normalize("«Инсулт» — остър.", &lang("bg")), "инсулт остър");
        assert_eq!(
            normalize("Udar (niedokrwienny)", &lang("pl")),
            "udar niedokrwienny"
        );
        // NFC: a decomposed é equals the composed one.
        assert_eq!(
            normalize("cafe\u{301}", &lang("es")),
            normalize("café", &lang("es"))
        );
        assert_eq!(normalize("el ictus", &lang("es")), "ictus");
        assert!(Lang::new("xx").is_none());
    }

    #[test]
    fn chinese_mixed_segmentation() {
        // Punctuation goes first (as in MLQA), so "abc，de" becomes one token.
        assert_eq!(
            tokens("脑卒中 abc，de", &lang("zh")),
            vec!["脑", "卒", "中", "abcde"]
        );
    }
}
