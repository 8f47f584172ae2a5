//! SQuAD-format QA sets: validated, repaired, tagged, merged, deduplicated and split by context.
//!
//! Reads SQuAD v1.1/v2.0 and BioASQ-as-SQuAD files (one big article, no `version`) with whatever extra
//! fields they carry. Every answer is checked in characters (`context[start..start+len] == text`); a
//! misaligned one moves to the nearest exact occurrence of its text (or of the text without surrounding
//! white space); one whose text is nowhere in the context goes to the rejects with the reason.
//! Output is deterministic: the same inputs give byte-identical files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use text::qa::data::{Article, Qa};

/// One `--input FILE[:lang=xx][:name=yy]`.
#[derive(Clone, Debug, PartialEq)]
pub struct QaInput {
    pub path: PathBuf,
    /// Language of every question (else each question's or article's `lang`, else "und").
    pub lang: Option<String>,
    /// Source tag (default: the file name without its last extension).
    pub name: String,
}

impl std::str::FromStr for QaInput {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut parts = s.split(':');
        let path = PathBuf::from(parts.next().unwrap_or_default());
        let mut lang = None;
        let mut name = None;
        for p in parts {
            match p.split_once('=') {
                Some(("lang", v)) if !v.is_empty() => lang = Some(v.to_owned()),
                Some(("name", v)) if !v.is_empty() => name = Some(v.to_owned()),
                _ => bail!("--input {s}: expected FILE[:lang=xx][:name=yy], got {p:?}"),
            }
        }
        let name = name.unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
        });
        Ok(Self { path, lang, name })
    }
}

/// A question as merged: its answers checked, tagged with language and source.
#[derive(Clone, Debug)]
struct Question {
    id: String,
    question: String,
    answers: Vec<(String, usize)>,
    lang: String,
    source: String,
}

/// Counts of one input file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub file: String,
    pub source: String,
    pub questions: usize,
    pub answers: usize,
    pub answers_ok: usize,
    pub answers_moved: usize,
    pub answers_trimmed: usize,
    pub answers_rejected: usize,
    /// Answerable questions left with no answer after rejection: dropped.
    pub questions_dropped: usize,
    /// Same question on the same context as one kept earlier: merged into it, its distinct answers
    /// added to the kept question's (see `Merged::merges`).
    pub questions_duplicate: usize,
    /// Answers those merges added to the kept questions.
    pub answers_merged: usize,
    /// Questions whose id was taken by an earlier question of the same source: renamed `id#N` (see
    /// `Merged::renames`).
    pub ids_renamed: usize,
}

/// A repeated (question, context) pair folded into the question kept first.
#[derive(Clone, Debug, Serialize)]
pub struct MergeNote {
    pub file: String,
    pub question_id: String,
    pub into: String,
    /// Answers (text, start) it had that the kept question lacked, now golds of the kept question.
    pub answers_added: Vec<(String, usize)>,
}

/// A question id made unique.
#[derive(Clone, Debug, Serialize)]
pub struct RenameNote {
    pub file: String,
    pub question_id: String,
    pub renamed: String,
}

/// One rejected answer or question, with where it was and why.
#[derive(Clone, Debug, Serialize)]
pub struct Reject {
    pub file: String,
    pub article: usize,
    pub paragraph: usize,
    pub question_id: String,
    pub answer: Option<String>,
    pub answer_start: Option<i64>,
    pub reason: String,
}

/// How one answer was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Ok(usize),
    Moved(usize),
    /// Found only without its surrounding white space (the text is trimmed).
    Trimmed(usize),
    NotFound,
}

/// Where `text` is in `context`, given the file's `answer_start`: `text::qa::squad::locate_answer`
/// (given offset, else nearest exact occurrence), then the same for the text without surrounding
/// white space.
pub fn place_answer(context: &str, text: &str, given: i64) -> Placement {
    use text::qa::squad::locate_answer;
    if text.is_empty() {
        return Placement::NotFound;
    }
    match locate_answer(context, text, given) {
        Some(s) if s as i64 == given => return Placement::Ok(s),
        Some(s) => return Placement::Moved(s),
        None => {}
    }
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.len() == text.len() {
        return Placement::NotFound;
    }
    locate_answer(context, trimmed, given).map_or(Placement::NotFound, Placement::Trimmed)
}

/// The merged set, in input order, with per-file counts and rejects.
pub struct Merged {
    /// (source, article title, context, questions), in input order.
    paragraphs: Vec<(String, String, String, Vec<Question>)>,
    pub files: Vec<FileReport>,
    pub rejects: Vec<Reject>,
    pub merges: Vec<MergeNote>,
    pub renames: Vec<RenameNote>,
    /// Some input is SQuAD 2.0 (its version, or unanswerable questions): the output is too.
    pub v2: bool,
}

/// Reads, checks and merges `inputs`. With `strict`, any rejected answer is an error.
pub fn merge(inputs: &[QaInput], strict: bool) -> Result<Merged> {
    let mut merger = Merger {
        strict,
        merged: Merged {
            paragraphs: Vec::new(),
            files: Vec::new(),
            rejects: Vec::new(),
            merges: Vec::new(),
            renames: Vec::new(),
            v2: false,
        },
        kept_at: HashMap::new(),
        seen_ids: HashSet::new(),
    };
    for input in inputs {
        merger.file(input)?;
    }
    let mut merged = merger.merged;
    // Paragraphs left without questions (all dropped or merged) are not written; their indices in
    // `kept_at` are no longer needed.
    merged.paragraphs.retain(|p| !p.3.is_empty());
    Ok(merged)
}

/// What `merge` keeps while it reads the files.
struct Merger {
    strict: bool,
    merged: Merged,
    /// (question, context) → (paragraph, question) of the question kept first.
    kept_at: HashMap<(String, String), (usize, usize)>,
    seen_ids: HashSet<String>,
}

/// The file, article and paragraph a question is read from.
struct Site<'a> {
    input: &'a QaInput,
    file: &'a str,
    v2_file: bool,
    article: &'a Article,
    ai: usize,
    pi: usize,
    /// Its paragraph's index in `Merged::paragraphs`.
    here: usize,
    context: &'a str,
}

impl Merger {
    fn file(&mut self, input: &QaInput) -> Result<()> {
        let file = input.path.display().to_string();
        let squad = read_set(&input.path)?;
        let v2_file = text::qa::data::version_is_v2(squad.version.as_ref());
        self.merged.v2 |= v2_file;
        let mut report = FileReport {
            file: file.clone(),
            source: input.name.clone(),
            ..Default::default()
        };
        for (ai, article) in squad.data.iter().enumerate() {
            let title = article.title.clone().unwrap_or_else(|| ai.to_string());
            for (pi, para) in article.paragraphs.iter().enumerate() {
                let Some(context) = para.context.as_deref() else {
                    bail!("{file}: article {ai}, paragraph {pi} has no \"context\" string");
                };
                let qas = &para.qas;
                let (source, title) = (input.name.clone(), title.clone());
                self.merged
                    .paragraphs
                    .push((source, title, context.to_owned(), Vec::new()));
                let site = Site {
                    input,
                    file: &file,
                    v2_file,
                    article,
                    ai,
                    pi,
                    here: self.merged.paragraphs.len() - 1,
                    context,
                };
                for (qi, qa) in qas.iter().enumerate() {
                    self.question(&site, qi, qa, &mut report)?;
                }
            }
        }
        self.merged.files.push(report);
        Ok(())
    }

    /// One question: checked, its answers placed, then kept, merged into an earlier one, or dropped.
    fn question(&mut self, site: &Site, qi: usize, qa: &Qa, report: &mut FileReport) -> Result<()> {
        let (ai, pi) = (site.ai, site.pi);
        report.questions += 1;
        let local_id = qa.id_at(ai, pi, qi);
        let Some(question) = qa.question.as_deref() else {
            bail!(
                "{}: question {local_id} (article {ai}, paragraph {pi}) has no \"question\" string",
                site.file
            );
        };
        let impossible = qa.is_impossible == Some(true);
        self.merged.v2 |= impossible;
        let at = text::qa::data::QuestionAt {
            file: &site.input.path,
            id: &local_id,
            article: ai,
            paragraph: pi,
        };
        let given =
            text::qa::data::gold_answers(qa.answers.as_ref(), impossible, site.v2_file, true, &at)?;
        let answers = if impossible {
            Vec::new()
        } else {
            self.place_answers(site, &at, &given, report)?
        };
        if !impossible && answers.is_empty() && !given.is_empty() {
            report.questions_dropped += 1;
            self.merged.rejects.push(Reject {
                file: site.file.to_owned(),
                article: ai,
                paragraph: pi,
                question_id: local_id.clone(),
                answer: None,
                answer_start: None,
                reason: "question dropped: none of its answers occurs in the context".into(),
            });
            return Ok(());
        }
        let key = (question.trim().to_lowercase(), site.context.to_owned());
        if let Some(&(p, q)) = self.kept_at.get(&key) {
            // The same question on the same context: one question holding every distinct gold
            // answer, as SQuAD's dev set has several.
            let kept = &mut self.merged.paragraphs[p].3[q];
            let added: Vec<(String, usize)> = answers
                .into_iter()
                .filter(|a| !kept.answers.contains(a))
                .collect();
            kept.answers.extend(added.iter().cloned());
            report.questions_duplicate += 1;
            report.answers_merged += added.len();
            self.merged.merges.push(MergeNote {
                file: site.file.to_owned(),
                question_id: local_id.clone(),
                into: kept.id.clone(),
                answers_added: added,
            });
            return Ok(());
        }
        let id = self.unique_id(site, &local_id, report);
        let lang = site
            .input
            .lang
            .clone()
            .or_else(|| qa.lang.clone())
            .or_else(|| site.article.lang.clone())
            .unwrap_or_else(|| "und".to_owned());
        let questions = &mut self.merged.paragraphs[site.here].3;
        self.kept_at.insert(key, (site.here, questions.len()));
        questions.push(Question {
            id,
            question: question.to_owned(),
            answers,
            lang,
            source: site.input.name.clone(),
        });
        Ok(())
    }

    /// Each gold answer at its place in the context: as given, moved to the nearest occurrence, trimmed,
    /// or rejected (an error with `strict`).
    fn place_answers(
        &mut self,
        site: &Site,
        at: &text::qa::data::QuestionAt,
        given: &[text::qa::data::GoldAnswer],
        report: &mut FileReport,
    ) -> Result<Vec<(String, usize)>> {
        let mut answers = Vec::new();
        for a in given {
            report.answers += 1;
            let start = a.answer_start.expect("checked by gold_answers");
            match place_answer(site.context, &a.text, start) {
                Placement::Ok(s) => {
                    report.answers_ok += 1;
                    answers.push((a.text.clone(), s));
                }
                Placement::Moved(s) => {
                    report.answers_moved += 1;
                    answers.push((a.text.clone(), s));
                }
                Placement::Trimmed(s) => {
                    report.answers_trimmed += 1;
                    answers.push((a.text.trim().to_owned(), s));
                }
                Placement::NotFound => {
                    report.answers_rejected += 1;
                    let reason = "answer text does not occur in the context".to_owned();
                    if self.strict {
                        bail!("{at}: {reason}: {:?}", a.text);
                    }
                    self.merged.rejects.push(Reject {
                        file: site.file.to_owned(),
                        article: site.ai,
                        paragraph: site.pi,
                        question_id: at.id.to_owned(),
                        answer: Some(a.text.clone()),
                        answer_start: Some(start),
                        reason,
                    });
                }
            }
        }
        Ok(answers)
    }

    /// `source:id`, with `#2`, `#3`, … when that id was taken (reported as a rename).
    fn unique_id(&mut self, site: &Site, local_id: &str, report: &mut FileReport) -> String {
        let name = &site.input.name;
        let mut id = format!("{name}:{local_id}");
        let mut n = 1;
        while !self.seen_ids.insert(id.clone()) {
            n += 1;
            id = format!("{name}:{local_id}#{n}");
        }
        if n > 1 {
            report.ids_renamed += 1;
            self.merged.renames.push(RenameNote {
                file: site.file.to_owned(),
                question_id: local_id.to_owned(),
                renamed: id.clone(),
            });
        }
        id
    }
}

/// A QA set: SQuAD JSON (nested or `datasets`' flat records), or `datasets`' records as Parquet (what
/// the Hugging Face Hub holds and `Dataset.to_parquet` writes).
fn read_set(path: &std::path::Path) -> Result<text::qa::data::SquadFile> {
    if tables::TableFormat::from_path(path).ok() != Some(tables::TableFormat::Parquet) {
        return text::qa::data::read_squad(path);
    }
    let rows = tables::read_as_json_lines(path)?;
    match text::qa::flat::parse(&rows, path)? {
        Some(set) => Ok(set),
        None => bail!(
            "{}: a Parquet QA set needs datasets' SQuAD columns (context, question, answers; id and \
             title optional), found {:?}",
            path.display(),
            tables::columns_of(path)?
        ),
    }
}

/// The permille bucket of a context: the split depends on the text alone, never on the order.
fn bucket(context: &str) -> u64 {
    let h = Sha256::digest(context.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) % 1000
}

impl Merged {
    /// SQuAD v2.0-format JSON of the paragraphs whose context falls in (or out of) the dev buckets.
    fn to_squad(&self, keep: impl Fn(&str) -> bool) -> Value {
        let mut articles: Vec<Value> = Vec::new();
        let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (source, title, context, questions) in &self.paragraphs {
            if !keep(context) {
                continue;
            }
            let qas: Vec<Value> = questions
                .iter()
                .map(|q| {
                    json!({
                        "id": q.id, "question": q.question,
                        "answers": q.answers.iter().map(|(t, s)| json!({"text": t, "answer_start": s})).collect::<Vec<_>>(),
                        "is_impossible": q.answers.is_empty(), "lang": q.lang, "source": q.source,
                    })
                })
                .collect();
            let key = (source.clone(), title.clone());
            let at = *index.entry(key).or_insert_with(|| {
                articles.push(json!({"title": format!("{source}/{title}"), "paragraphs": []}));
                articles.len() - 1
            });
            articles[at]["paragraphs"]
                .as_array_mut()
                .expect("paragraphs is a list")
                .push(json!({"context": context, "qas": qas}));
        }
        // A set made of v1.1 inputs stays v1.1, so that scoring keeps v1.1 semantics.
        let version = if self.v2 { "v2.0" } else { "1.1" };
        json!({"version": version, "data": articles})
    }

    /// (train, dev): contexts with bucket < `dev_permille` go to dev.
    pub fn split(&self, dev_permille: u64) -> (Value, Value) {
        (
            self.to_squad(|c| bucket(c) >= dev_permille),
            self.to_squad(|c| bucket(c) < dev_permille),
        )
    }

    /// Every question of the merged set with its context, for statistics.
    fn questions(&self) -> impl Iterator<Item = (&str, &Question)> {
        self.paragraphs
            .iter()
            .flat_map(|(_, _, c, qs)| qs.iter().map(move |q| (c.as_str(), q)))
    }
}

/// Statistics of one language × source.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GroupStats {
    pub lang: String,
    pub source: String,
    pub questions: usize,
    pub answerable: usize,
    pub answerable_share: f64,
    /// Context length in tokens (mean, max); absent without a tokenizer.
    pub context_tokens_mean: Option<f64>,
    pub context_tokens_max: Option<usize>,
    /// Windows the questions need at the given max length and stride.
    pub windows: Option<usize>,
}

/// Per language × source statistics; token counts and windows with a tokenizer.
pub fn statistics(
    merged: &Merged,
    tokenizer: Option<&text::XlmrTokenizer>,
    max_seq_length: usize,
    doc_stride: usize,
) -> Result<Vec<GroupStats>> {
    use rayon::prelude::*;
    let maker = tokenizer
        .map(|t| text::qa::features::FeatureMaker::new(t, max_seq_length, doc_stride, 64))
        .transpose()?;
    let rows: Vec<(&str, &Question)> = merged.questions().collect();
    let measured: Vec<Option<(usize, usize)>> = rows
        .par_iter()
        .map(|(context, q)| -> Result<Option<(usize, usize)>> {
            let (Some(tok), Some(maker)) = (tokenizer, maker.as_ref()) else {
                return Ok(None);
            };
            let tokens = tok.encode_ids(context)?.len();
            let ex = text::qa::squad::QaExample {
                id: q.id.clone(),
                question: q.question.clone(),
                context: (*context).to_owned(),
                answers: vec![],
                unlocated: vec![],
                lang: None,
            };
            Ok(Some((tokens, maker.features(0, &ex)?.len())))
        })
        .collect::<Result<_>>()?;
    let mut groups: BTreeMap<(String, String), (GroupStats, usize)> = BTreeMap::new();
    for ((_, q), m) in rows.iter().zip(&measured) {
        let (g, token_sum) = groups
            .entry((q.lang.clone(), q.source.clone()))
            .or_insert_with(|| {
                (
                    GroupStats {
                        lang: q.lang.clone(),
                        source: q.source.clone(),
                        ..Default::default()
                    },
                    0,
                )
            });
        g.questions += 1;
        g.answerable += usize::from(!q.answers.is_empty());
        if let Some((tokens, windows)) = m {
            *token_sum += tokens;
            g.context_tokens_max = Some(g.context_tokens_max.unwrap_or(0).max(*tokens));
            g.windows = Some(g.windows.unwrap_or(0) + windows);
        }
    }
    Ok(groups
        .into_values()
        .map(|(mut g, token_sum)| {
            g.answerable_share = g.answerable as f64 / g.questions as f64;
            if g.windows.is_some() {
                g.context_tokens_mean = Some(token_sum as f64 / g.questions as f64);
            }
            g
        })
        .collect())
}

pub use fsutil::write_json;

/// How `data-prep qa` writes its sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// SQuAD's nested JSON (v2.0 when a question has no answer, else 1.1).
    #[default]
    Squad,
    /// `datasets`' one record per question, as `run_qa.py --train_file` reads it: JSON Lines for a
    /// `.jsonl` path (`Dataset.to_json`'s layout), else `{"version": …, "data": [records]}`.
    Flat,
}

/// Writes a set made by [`Merged::split`] in `layout`, atomically.
pub fn write_set(path: &std::path::Path, squad: &Value, layout: Layout) -> Result<()> {
    if layout == Layout::Squad {
        return write_json(path, squad);
    }
    let records = text::qa::flat::records(squad)?;
    if path.extension().is_some_and(|e| e == "jsonl") {
        return fsutil::write_json_lines(path, &records);
    }
    write_json(path, &json!({"version": squad["version"], "data": records}))
}

/// The printed summary: per file, then per language × source.
pub fn summary(merged: &Merged, stats: &[GroupStats]) -> String {
    let mut out = String::from(
        "file                                        questions  answers  moved  trimmed  rejected  dropped  merged (answers added)  renamed\n",
    );
    for f in &merged.files {
        out += &format!(
            "{:<42} {:>10} {:>8} {:>6} {:>8} {:>9} {:>8} {:>23} {:>8}\n",
            f.source,
            f.questions,
            f.answers,
            f.answers_moved,
            f.answers_trimmed,
            f.answers_rejected,
            f.questions_dropped,
            format!("{} ({})", f.questions_duplicate, f.answers_merged),
            f.ids_renamed
        );
    }
    out += "\nlang/source                                 questions  answerable  context tokens (mean/max)  windows\n";
    for g in stats {
        let tokens = match (g.context_tokens_mean, g.context_tokens_max) {
            (Some(m), Some(x)) => format!("{m:.0}/{x}"),
            _ => "-".to_owned(),
        };
        out += &format!(
            "{:<42} {:>10} {:>10.1}% {:>26} {:>8}\n",
            format!("{}/{}", g.lang, g.source),
            g.questions,
            100.0 * g.answerable_share,
            tokens,
            g.windows.map_or("-".to_owned(), |w| w.to_string())
        );
    }
    out
}
