//! Language identification of documents (whatlang), with ISO 639-1 codes as the rest of medqa uses,
//! for corpus assembly and concept extraction.

/// ISO 639-3 (whatlang) → ISO 639-1 for the languages whatlang knows that have a two-letter code;
/// the others keep their three letters.
const TWO_LETTER: &[(&str, &str)] = &[
    ("afr", "af"),
    ("aka", "ak"),
    ("amh", "am"),
    ("ara", "ar"),
    ("aze", "az"),
    ("bel", "be"),
    ("ben", "bn"),
    ("bul", "bg"),
    ("cat", "ca"),
    ("ces", "cs"),
    ("cmn", "zh"),
    ("dan", "da"),
    ("deu", "de"),
    ("ell", "el"),
    ("eng", "en"),
    ("epo", "eo"),
    ("est", "et"),
    ("fin", "fi"),
    ("fra", "fr"),
    ("guj", "gu"),
    ("heb", "he"),
    ("hin", "hi"),
    ("hrv", "hr"),
    ("hun", "hu"),
    ("hye", "hy"),
    ("ind", "id"),
    ("ita", "it"),
    ("jav", "jv"),
    ("jpn", "ja"),
    ("kan", "kn"),
    ("kat", "ka"),
    ("khm", "km"),
    ("kor", "ko"),
    ("lat", "la"),
    ("lav", "lv"),
    ("lit", "lt"),
    ("mal", "ml"),
    ("mar", "mr"),
    ("mkd", "mk"),
    ("mya", "my"),
    ("nep", "ne"),
    ("nld", "nl"),
    ("nob", "nb"),
    ("ori", "or"),
    ("pan", "pa"),
    ("pes", "fa"),
    ("pol", "pl"),
    ("por", "pt"),
    ("ron", "ro"),
    ("rus", "ru"),
    ("sin", "si"),
    ("slk", "sk"),
    ("slv", "sl"),
    ("sna", "sn"),
    ("spa", "es"),
    ("srp", "sr"),
    ("swe", "sv"),
    ("tam", "ta"),
    ("tel", "te"),
    ("tgl", "tl"),
    ("tha", "th"),
    ("tuk", "tk"),
    ("tur", "tr"),
    ("ukr", "uk"),
    ("urd", "ur"),
    ("uzb", "uz"),
    ("vie", "vi"),
    ("yid", "yi"),
    ("zul", "zu"),
];

/// The detected language of `text` and whatlang's confidence in it (0 to 1); `None` when whatlang
/// finds nothing to go on (no letters).
pub fn detect(text: &str) -> Option<(String, f64)> {
    let info = whatlang::detect(text)?;
    let code = info.lang().code();
    let two = TWO_LETTER
        .iter()
        .find(|(three, _)| *three == code)
        .map_or(code, |(_, two)| two);
    Some((two.to_owned(), info.confidence()))
}

/// `es-419` → `es`, `ro_RO` → `ro`: the primary language subtag, lower-cased.
pub fn primary_language(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or(tag)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_languages_are_recognised_with_two_letter_codes() {
        let samples = [
            ("bg", "Пациентът е приет с остър исхемичен мозъчен инсулт и артериална хипертония."),
            ("cs", "Pacient byl přijat s akutní ischemickou cévní mozkovou příhodou a hypertenzí."),
            ("el", "Ο ασθενής εισήχθη με οξύ ισχαιμικό αγγειακό εγκεφαλικό επεισόδιο."),
            ("en", "The patient was admitted with acute ischaemic stroke and high blood pressure."),
            ("es", "El paciente ingresó con un ictus isquémico agudo y presión arterial elevada."),
            ("pl", "Pacjent został przyjęty z ostrym udarem niedokrwiennym mózgu i nadciśnieniem."),
            ("ro", "Pacientul a fost internat cu accident vascular cerebral ischemic acut și hipertensiune."),
        ];
        for (lang, text) in samples {
            let (got, confidence) = detect(text).unwrap();
            assert_eq!(got, lang, "{text}");
            assert!(confidence > 0.0);
        }
        assert_eq!(detect("12345 !!!"), None);
    }
}
