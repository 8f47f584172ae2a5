//! Terminologies as users bring them: term lists (CSV, TSV, Parquet), SKOS vocabularies (N-Triples,
//! Turtle) and OBO ontologies, read into concepts with labels per language. A row or stanza that
//! cannot become a label is kept in the rejects with its place and reason, never dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One name of a concept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub text: String,
    /// ISO 639-1 (`bg_BG`, `pt-BR` become `bg`, `pt`); `None` when the source does not say.
    pub lang: Option<String>,
    /// The preferred name (a term column, `skos:prefLabel`, OBO `name`), not a synonym.
    pub preferred: bool,
}

/// A concept of a terminology: its id, the IRI it has in linked data, and its labels in any language.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Concept {
    pub id: String,
    pub iri: String,
    pub labels: Vec<Label>,
    pub description: Option<String>,
    /// The source's name: concepts of sources with one name and one id are one concept.
    pub source: String,
}

/// Something that could not become a label, and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reject {
    pub file: String,
    /// Where in the file: the line a CSV/TSV row starts on (the header is line 1), the row of a Parquet
    /// table (from 1), the line of a triple or of an OBO stanza.
    pub place: usize,
    pub reason: String,
}

/// Where a label's language comes from in a term list.
#[derive(Clone, Debug, PartialEq)]
pub enum LangOf {
    Column(String),
    Fixed(String),
}

/// One terminology file and how to read it: `FILE[:key=value]…` on the command line.
///
/// Term lists: `id=COL` (default `id`), `term=COL` (default `term`) with `lang=COL` (default
/// `language`) or `language=xx`; several label columns as `terms=COL@LANGCOL,COL@=xx`; `synonyms=COL`
/// (`|`-separated; default: a `synonyms` column if there is one), `description=COL` (default likewise).
/// Every file: `name=` (default: the file's stem; files with one
/// name share concept ids, e.g. the TICO-19 lists of six language pairs), `iri=` (the base of concept
/// IRIs for ids that are not IRIs; default `urn:medqa:term:NAME:`).
#[derive(Clone, Debug, PartialEq)]
pub struct TermSource {
    pub path: PathBuf,
    pub name: String,
    pub id: String,
    pub terms: Vec<(String, LangOf)>,
    pub synonyms: Option<String>,
    pub description: Option<String>,
    pub iri_base: String,
}

impl FromStr for TermSource {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        let mut parts = spec.split(':');
        let path = PathBuf::from(parts.next().unwrap_or_default());
        if path.as_os_str().is_empty() {
            bail!("--terms {spec:?}: no file");
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut src = TermSource {
            path,
            name: stem,
            id: "id".into(),
            terms: Vec::new(),
            synonyms: None,
            description: None,
            iri_base: String::new(),
        };
        let (mut term, mut lang) = ("term".to_owned(), LangOf::Column("language".into()));
        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                bail!("--terms {spec:?}: {part:?} is not key=value");
            };
            match key {
                "name" => src.name = value.to_owned(),
                "id" => src.id = value.to_owned(),
                "term" => term = value.to_owned(),
                "lang" => lang = LangOf::Column(value.to_owned()),
                "language" => lang = LangOf::Fixed(primary_language(value)),
                "terms" => {
                    for pair in value.split(',') {
                        let (col, l) = pair.split_once('@').with_context(|| {
                            format!("--terms {spec:?}: {pair:?} is not COLUMN@LANGCOLUMN or COLUMN@=xx")
                        })?;
                        let l = match l.strip_prefix('=') {
                            Some(fixed) => LangOf::Fixed(primary_language(fixed)),
                            None => LangOf::Column(l.to_owned()),
                        };
                        src.terms.push((col.to_owned(), l));
                    }
                }
                "synonyms" => src.synonyms = Some(value.to_owned()),
                "description" => src.description = Some(value.to_owned()),
                "iri" => src.iri_base = value.to_owned(),
                other => bail!(
                    "--terms {spec:?}: unknown key {other:?} (name, id, term, lang, language, terms, synonyms, description, iri)"
                ),
            }
        }
        if src.terms.is_empty() {
            src.terms.push((term, lang));
        }
        if src.iri_base.is_empty() {
            src.iri_base = format!("urn:medqa:term:{}:", src.name);
        }
        Ok(src)
    }
}

/// `bg_BG`, `pt-BR`, `EN` → `bg`, `pt`, `en`.
pub fn primary_language(tag: &str) -> String {
    text::language::primary_language(tag.trim())
}

/// The concepts of every source, merged by (source name, id) in reading order, and what was rejected.
pub fn read_all(sources: &[TermSource]) -> Result<(Vec<Concept>, Vec<Reject>)> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut merged: BTreeMap<(String, String), Concept> = BTreeMap::new();
    let mut rejects = Vec::new();
    for source in sources {
        for c in read(source, &mut rejects)? {
            let key = (c.source.clone(), c.id.clone());
            match merged.get_mut(&key) {
                Some(known) => {
                    for l in c.labels {
                        if !known.labels.contains(&l) {
                            known.labels.push(l);
                        }
                    }
                    known.description = known.description.take().or(c.description);
                }
                None => {
                    order.push(key.clone());
                    merged.insert(key, c);
                }
            }
        }
    }
    let concepts = order
        .into_iter()
        .filter_map(|k| merged.remove(&k))
        .collect();
    Ok((concepts, rejects))
}

/// One source's concepts (not yet merged with other sources').
pub fn read(source: &TermSource, rejects: &mut Vec<Reject>) -> Result<Vec<Concept>> {
    let ext = source
        .path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "csv" | "tsv" | "parquet" => read_table(source, rejects),
        "nt" | "ttl" => read_skos(source, ext == "ttl", rejects),
        "obo" => read_obo(source, rejects),
        _ => bail!(
            "{}: unknown terminology format (.csv, .tsv, .parquet, .nt, .ttl or .obo)",
            source.path.display()
        ),
    }
}

fn iri_of(source: &TermSource, id: &str) -> String {
    if id.starts_with("http://") || id.starts_with("https://") || id.starts_with("urn:") {
        return id.to_owned();
    }
    // An IRI may not hold spaces, quotes or angle brackets: those become percent escapes.
    let mut out = source.iri_base.clone();
    for c in id.chars() {
        match c {
            ' ' => out.push('_'),
            '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}' | '%' => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn read_table(source: &TermSource, rejects: &mut Vec<Reject>) -> Result<Vec<Concept>> {
    // `synonyms` and `description` columns are read when the file has them and the spec names none.
    let present = tables::columns_of(&source.path)?;
    let default = |given: &Option<String>, name: &str| {
        given
            .clone()
            .or_else(|| present.iter().any(|c| c == name).then(|| name.to_owned()))
    };
    let source = &TermSource {
        synonyms: default(&source.synonyms, "synonyms"),
        description: default(&source.description, "description"),
        ..source.clone()
    };
    let mut columns: Vec<&str> = vec![source.id.as_str()];
    for (term, lang) in &source.terms {
        columns.push(term);
        if let LangOf::Column(c) = lang {
            columns.push(c);
        }
    }
    columns.extend(source.synonyms.as_deref());
    columns.extend(source.description.as_deref());
    columns.sort_unstable();
    columns.dedup();
    let read = tables::read_text_rows(&source.path, &columns)?;
    let file = source.path.display().to_string();
    // A CSV/TSV row whose fields do not match the header: a term with a comma and no quotes (two of
    // TICO-19's Bulgarian terms), which a columnar read cut at the comma.
    for (line, reason) in &read.bad {
        rejects.push(Reject {
            file: file.clone(),
            place: *line,
            reason: reason.clone(),
        });
    }
    let data = &read.columns;
    let col = |name: &str| &data[columns.iter().position(|c| *c == name).expect("listed")];
    let rows = read.places.len();
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        // The line the row starts on in CSV/TSV (the header is line 1), its number in Parquet.
        let reject = |reason: String| Reject {
            file: file.clone(),
            place: read.places[row],
            reason,
        };
        let Some(id) = col(&source.id)[row].clone() else {
            rejects.push(reject(format!("no id in column '{}'", source.id)));
            continue;
        };
        let mut labels = Vec::new();
        for (term, lang) in &source.terms {
            let Some(text) = col(term)[row].clone() else {
                continue;
            };
            let lang = match lang {
                LangOf::Fixed(l) => Some(l.clone()),
                LangOf::Column(c) => col(c)[row].as_deref().map(primary_language),
            };
            let synonyms = source
                .synonyms
                .as_deref()
                .and_then(|s| col(s)[row].clone())
                .unwrap_or_default();
            labels.push(Label {
                text: text.trim().to_owned(),
                lang: lang.clone(),
                preferred: true,
            });
            labels.extend(
                synonyms
                    .split('|')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Label {
                        text: s.to_owned(),
                        lang: lang.clone(),
                        preferred: false,
                    }),
            );
        }
        if labels.is_empty() {
            rejects.push(reject(format!("id '{id}' has no term")));
            continue;
        }
        out.push(Concept {
            iri: iri_of(source, &id),
            id,
            labels,
            description: source
                .description
                .as_deref()
                .and_then(|d| col(d)[row].clone()),
            source: source.name.clone(),
        });
    }
    Ok(out)
}

const SKOS: &str = "http://www.w3.org/2004/02/skos/core#";
const RDFS_LABEL: &str = "http://www.w3.org/2000/01/rdf-schema#label";

/// SKOS labels (`prefLabel`; `altLabel`, `hiddenLabel` and `rdfs:label` as synonyms) and definitions;
/// a subject with none of them is not a concept here.
fn read_skos(source: &TermSource, turtle: bool, rejects: &mut Vec<Reject>) -> Result<Vec<Concept>> {
    use oxrdf::Term;
    let file = std::fs::File::open(&source.path)
        .with_context(|| format!("cannot open {}", source.path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let start = std::io::BufRead::fill_buf(&mut reader)
        .with_context(|| format!("cannot read {}", source.path.display()))?;
    if let Some(reason) = text::bom::not_utf8_reason(start) {
        bail!("{}: {reason}", source.path.display());
    }
    text::bom::skip(&mut reader)
        .with_context(|| format!("cannot read {}", source.path.display()))?;
    let triples: Box<dyn Iterator<Item = Result<oxrdf::Triple>>> = if turtle {
        Box::new(
            oxttl::TurtleParser::new()
                .for_reader(reader)
                .map(|t| t.map_err(anyhow::Error::from)),
        )
    } else {
        Box::new(
            oxttl::NTriplesParser::new()
                .lenient()
                .for_reader(reader)
                .map(|t| t.map_err(anyhow::Error::from)),
        )
    };
    let mut order: Vec<String> = Vec::new();
    let mut concepts: BTreeMap<String, Concept> = BTreeMap::new();
    for (i, triple) in triples.enumerate() {
        let triple = match triple {
            Ok(t) => t,
            Err(e) => {
                rejects.push(Reject {
                    file: source.path.display().to_string(),
                    place: i + 1,
                    reason: format!("unreadable triple: {e}"),
                });
                continue;
            }
        };
        let predicate = triple.predicate.as_str();
        let kind = match predicate.strip_prefix(SKOS) {
            Some("prefLabel") => Some(true),
            Some("altLabel") | Some("hiddenLabel") => Some(false),
            Some("definition") => None,
            _ if predicate == RDFS_LABEL => Some(false),
            _ => continue,
        };
        let Term::Literal(literal) = &triple.object else {
            continue;
        };
        let subject = match &triple.subject {
            oxrdf::NamedOrBlankNode::NamedNode(n) => n.as_str().to_owned(),
            other => other.to_string(),
        };
        let concept = concepts.entry(subject.clone()).or_insert_with(|| {
            order.push(subject.clone());
            Concept {
                id: subject.clone(),
                iri: iri_of(source, &subject),
                labels: Vec::new(),
                description: None,
                source: source.name.clone(),
            }
        });
        match kind {
            Some(preferred) => concept.labels.push(Label {
                text: literal.value().trim().to_owned(),
                lang: literal.language().map(primary_language),
                preferred,
            }),
            None => {
                concept
                    .description
                    .get_or_insert_with(|| literal.value().to_owned());
            }
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|s| concepts.remove(&s))
        .filter(|c| !c.labels.is_empty())
        .collect())
}

/// OBO 1.4 `[Term]` stanzas: `id`, `name` (preferred), `synonym: "text" SCOPE […]` (any scope),
/// `def`; obsolete terms are rejected with their stanza. Other stanzas and tags are not labels.
fn read_obo(source: &TermSource, rejects: &mut Vec<Reject>) -> Result<Vec<Concept>> {
    let text = text::bom::read_to_string(&source.path)
        .with_context(|| format!("cannot read {}", source.path.display()))?;
    let file = source.path.display().to_string();
    let mut out = Vec::new();
    let mut stanza: Option<(usize, Concept, bool)> = None;
    let mut finish = |stanza: Option<(usize, Concept, bool)>, out: &mut Vec<Concept>| {
        if let Some((line, c, obsolete)) = stanza {
            if obsolete {
                rejects.push(Reject {
                    file: file.clone(),
                    place: line,
                    reason: format!("{} is obsolete", c.id),
                });
            } else if c.id.is_empty() || c.labels.is_empty() {
                rejects.push(Reject {
                    file: file.clone(),
                    place: line,
                    reason: "[Term] without an id or a name".into(),
                });
            } else {
                out.push(c);
            }
        }
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            finish(stanza.take(), &mut out);
            if line == "[Term]" {
                let concept = Concept {
                    id: String::new(),
                    iri: String::new(),
                    labels: Vec::new(),
                    description: None,
                    source: source.name.clone(),
                };
                stanza = Some((n + 1, concept, false));
            }
            continue;
        }
        let Some((_, c, obsolete)) = stanza.as_mut() else {
            continue;
        };
        let Some((tag, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match tag.trim() {
            "id" => {
                c.id = value.to_owned();
                c.iri = obo_iri(source, value);
            }
            "name" => c.labels.push(Label {
                text: value.to_owned(),
                lang: None,
                preferred: true,
            }),
            "synonym" => {
                if let Some(quoted) = quoted(value) {
                    c.labels.push(Label {
                        text: quoted,
                        lang: None,
                        preferred: false,
                    });
                }
            }
            "def" => c.description = quoted(value),
            "is_obsolete" => *obsolete = value == "true",
            _ => {}
        }
    }
    finish(stanza.take(), &mut out);
    Ok(out)
}

/// `HP:0001250` → the OBO Foundry PURL `http://purl.obolibrary.org/obo/HP_0001250`, unless the
/// source gives its own IRI base.
fn obo_iri(source: &TermSource, id: &str) -> String {
    if source.iri_base.starts_with("urn:medqa:term:") && id.contains(':') && !id.contains(' ') {
        format!(
            "http://purl.obolibrary.org/obo/{}",
            id.replacen(':', "_", 1)
        )
    } else {
        iri_of(source, id)
    }
}

/// The text of a leading `"…"` with OBO's backslash escapes.
fn quoted(value: &str) -> Option<String> {
    let rest = value.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

/// The source files' SHA-256, for the index's record of what it was built from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceHash {
    pub path: String,
    pub name: String,
    pub sha256: String,
}

pub fn hash_sources(sources: &[TermSource]) -> Result<Vec<SourceHash>> {
    sources
        .iter()
        .map(|s| {
            Ok(SourceHash {
                path: s.path.display().to_string(),
                name: s.name.clone(),
                sha256: fsutil::sha256_file(&s.path)?,
            })
        })
        .collect()
}

/// Whether `path` looks like a terminology file this module reads.
pub fn is_terminology(path: &Path) -> bool {
    matches!(
        path.extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref(),
        Some("csv" | "tsv" | "parquet" | "nt" | "ttl" | "obo")
    )
}
