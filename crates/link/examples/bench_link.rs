//! Linking quality and speed, medqa's linker against plain exact matching in the same run
//! (`scripts/bench/link.sh`):
//!
//! - `sample`: the shipped sample terminology (`data/sample/terms/stroke-values.csv`) and every answer
//!   value the sample notes use, with the concept each should link to (`answers-gold.jsonl`): drugs
//!   appear with doses and schedules ("apixaban 5 mg twice daily" → apixaban);
//! - `tico19-perturbed`: the TICO-19 lists of one provider (`f_*`, six language pairs, one concept per
//!   English term) indexed; queried with every non-English label written as clinicians write: a typo
//!   (one letter dropped), an inflected last word, an abbreviated longest word, upper case without
//!   diacritics, words in reverse order;
//! - `tico19-other-provider`: the other provider's translations (`g_*`) of English terms the first
//!   provider also has, as they are: another translator's wording of the same concept.
//!
//! Prints one JSON line per (set, language, variant) with accuracy@1/@5 of both and their
//! throughput. `--shared DIR` is `../shared/data` (the TICO-19 parts are skipped without it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use link::normalize::normalize;
use link::terms::TermSource;
use link::{Index, LinkOptions};

struct Query {
    text: String,
    lang: String,
    gold: String,
    variant: &'static str,
}

/// Plain exact matching: the concepts with a label equal to the query, case aside.
struct Exact(HashMap<String, Vec<String>>);

impl Exact {
    fn new(index: &Index) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for c in &index.concepts {
            for l in &c.labels {
                let ids = map.entry(l.text.trim().to_lowercase()).or_default();
                if !ids.contains(&c.id) {
                    ids.push(c.id.clone());
                }
            }
        }
        Self(map)
    }

    fn link(&self, text: &str) -> Vec<String> {
        self.0
            .get(&text.trim().to_lowercase())
            .cloned()
            .unwrap_or_default()
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let shared = args
        .iter()
        .position(|a| a == "--shared")
        .map(|i| PathBuf::from(&args[i + 1]));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let terms = root.join("data/sample/terms");
    let sample = index_of(&[format!(
        "{}:name=stroke-sample",
        terms.join("stroke-values.csv").display()
    )])?;
    let queries = sample_queries(&terms.join("answers-gold.jsonl"))?;
    report("sample", &sample, &queries);
    match shared.map(|d| d.join("corpus/tico19-terms")) {
        Some(dir) if dir.is_dir() => {
            let langs = ["bg_BG", "cs_CZ", "el_GR", "es_XX", "pl_PL", "ro_RO"];
            let specs: Vec<String> = langs
                .iter()
                .map(|l| {
                    format!(
                        "{}:name=tico19:id=sourceString:terms=sourceString@sourceLang,targetString@targetLang",
                        dir.join(format!("f_en-{l}.csv")).display()
                    )
                })
                .collect();
            let tico = index_of(&specs)?;
            report("tico19-perturbed", &tico, &perturbed(&tico));
            report(
                "tico19-other-provider",
                &tico,
                &other_provider(&dir, &tico)?,
            );
        }
        _ => eprintln!(
            "bench_link: no --shared data dir with corpus/tico19-terms: TICO-19 parts skipped"
        ),
    }
    Ok(())
}

fn index_of(specs: &[String]) -> Result<Index> {
    let sources: Vec<TermSource> = specs.iter().map(|s| s.parse()).collect::<Result<_>>()?;
    Ok(link::build_index(&sources, 3)?.0)
}

fn sample_queries(gold: &Path) -> Result<Vec<Query>> {
    let text =
        std::fs::read_to_string(gold).with_context(|| format!("cannot read {}", gold.display()))?;
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            Ok(Query {
                text: s("answer"),
                lang: s("lang"),
                gold: s("concept_id"),
                variant: if s("concept_id").starts_with("drug/") {
                    "drug with dose"
                } else {
                    "as written"
                },
            })
        })
        .collect()
}

/// A deterministic choice from a text (the same queries every run).
fn pick(text: &str, n: usize) -> usize {
    let h = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    (h % n.max(1) as u64) as usize
}

fn perturbed(index: &Index) -> Vec<Query> {
    let mut out = Vec::new();
    for c in &index.concepts {
        for l in c.labels.iter().filter(|l| l.lang.as_deref() != Some("en")) {
            let lang = l.lang.clone().unwrap_or_default();
            let words: Vec<&str> = l.text.split_whitespace().collect();
            let mut add = |variant: &'static str, text: String| {
                if text != l.text && !text.trim().is_empty() {
                    out.push(Query {
                        text,
                        lang: lang.clone(),
                        gold: c.id.clone(),
                        variant,
                    });
                }
            };
            // One letter dropped inside the longest word.
            let longest = words
                .iter()
                .copied()
                .max_by_key(|w| w.chars().count())
                .unwrap_or("");
            let chars: Vec<char> = longest.chars().collect();
            if chars.len() >= 5 {
                let at = 1 + pick(longest, chars.len() - 2);
                let typo: String = chars
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != at)
                    .map(|(_, c)| c)
                    .collect();
                add("typo", l.text.replacen(longest, &typo, 1));
            }
            // The last word's ending changed as a case or number ending would change it.
            if let Some(last) = words.last() {
                let stem: String = {
                    let cs: Vec<char> = last.chars().collect();
                    cs[..cs.len().saturating_sub(1).max(1)].iter().collect()
                };
                let ending = match lang.as_str() {
                    "bg" => "ата",
                    "cs" => "ou",
                    "el" => "ες",
                    "es" => "es",
                    "pl" => "ami",
                    "ro" => "ele",
                    _ => "s",
                };
                add(
                    "inflection",
                    format!("{}{stem}{ending}", &l.text[..l.text.len() - last.len()]),
                );
            }
            // The longest word cut to its first five letters and a dot.
            if chars.len() >= 8 {
                let short: String = chars[..5].iter().collect::<String>() + ".";
                add("abbreviation", l.text.replacen(longest, &short, 1));
            }
            // Upper case without diacritics.
            add("case+diacritics", normalize(&l.text).to_uppercase());
            if words.len() >= 2 {
                let mut rev = words.clone();
                rev.reverse();
                add("word order", rev.join(" "));
            }
        }
    }
    out
}

/// The `g_*` lists' translations of English terms the `f_*` lists also have.
fn other_provider(dir: &Path, index: &Index) -> Result<Vec<Query>> {
    let known: HashSet<&str> = index.concepts.iter().map(|c| c.id.as_str()).collect();
    let mut out = Vec::new();
    for lang in ["bg", "cs", "el", "es", "pl", "ro"] {
        // `g_en_es-419.csv`: a regional tag after the language.
        let Some(path) = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name == format!("g_en_{lang}.csv") || name.starts_with(&format!("g_en_{lang}-"))
            })
        else {
            continue;
        };
        let cols = tables::read_text_columns(&path, &["sourceString", "targetString"])?;
        for (en, target) in cols[0].iter().zip(&cols[1]) {
            if let (Some(en), Some(target)) = (en, target) {
                if known.contains(en.as_str()) {
                    out.push(Query {
                        text: target.clone(),
                        lang: lang.into(),
                        gold: en.clone(),
                        variant: "other translator",
                    });
                }
            }
        }
    }
    Ok(out)
}

#[derive(Default)]
struct Tally {
    n: usize,
    ours1: usize,
    ours5: usize,
    exact1: usize,
}

fn report(set: &str, index: &Index, queries: &[Query]) {
    // The command line's defaults (top 5, least cosine 0.5).
    let opts = LinkOptions::default();
    let started = Instant::now();
    let ours: Vec<Vec<String>> = queries
        .iter()
        .map(|q| {
            index
                .link(&q.text, Some(&q.lang), &opts)
                .into_iter()
                .map(|c| c.concept_id)
                .collect()
        })
        .collect();
    let ours_rate = queries.len() as f64 / started.elapsed().as_secs_f64();
    let exact = Exact::new(index);
    let started = Instant::now();
    let plain: Vec<Vec<String>> = queries.iter().map(|q| exact.link(&q.text)).collect();
    let exact_rate = queries.len() as f64 / started.elapsed().as_secs_f64();
    let mut tallies: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for ((q, o), p) in queries.iter().zip(&ours).zip(&plain) {
        for key in [
            (q.lang.clone(), q.variant.to_owned()),
            (q.lang.clone(), "all".to_owned()),
            ("all".to_owned(), q.variant.to_owned()),
            ("all".to_owned(), "all".to_owned()),
        ] {
            let t = tallies.entry(key).or_default();
            t.n += 1;
            t.ours1 += usize::from(o.first() == Some(&q.gold));
            t.ours5 += usize::from(o.iter().take(5).any(|c| *c == q.gold));
            // Exact matching has no ranking: right at 1 only when the gold is its one answer.
            t.exact1 += usize::from(p.len() == 1 && p[0] == q.gold);
        }
    }
    for ((lang, variant), t) in &tallies {
        let pct = |k: usize| (1000.0 * k as f64 / t.n as f64).round() / 10.0;
        println!(
            "{}",
            serde_json::json!({
                "set": set, "lang": lang, "variant": variant, "queries": t.n,
                "link_acc1": pct(t.ours1), "link_acc5": pct(t.ours5), "exact_acc1": pct(t.exact1),
                "link_queries_per_sec": ours_rate.round(), "exact_queries_per_sec": exact_rate.round(),
                "concepts": index.concepts.len(), "min_score": opts.min_score,
            })
        );
    }
}
