//! The benchmark examples' command lines, which take only `--key value` pairs.

/// `--key value` pairs of the process's arguments; a later pair overrides an earlier one.
pub fn flag_pairs() -> std::collections::HashMap<String, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    raw.chunks(2)
        .filter_map(|c| Some((c[0].trim_start_matches("--").to_owned(), c.get(1)?.clone())))
        .collect()
}
