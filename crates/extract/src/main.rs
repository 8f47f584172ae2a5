//! `extract`: concepts from medical documents into tables, by asking a fine-tuned QA model.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use extract::concepts::{Catalogue, QuestionLanguage};
use extract::documents::{self, DocOptions};
use extract::journal::Journal;
use extract::{output, Extraction, Options};
use model::device::DeviceChoice;
use model::fsutil::provenance::{hash_path, InputHash};
use model::qa::inference::QaModel;

/// Ask every concept of a catalogue of every document, in any language, and write the answers with
/// their character offsets, scores and no-answer decisions as a table.
///
/// Output by extension: .parquet, .csv, .tsv or .jsonl (one row per document × concept); beside it
/// OUT.run.json (the settings, counts, and provenance: command line, git commit, versions, SHA-256 of
/// the documents, catalogue, model files and link index) and OUT.skipped.jsonl when documents were
/// skipped. While it runs, OUT.journal/ keeps each chunk of documents' rows as it is answered, so that
/// `--resume` goes on after a kill or crash; it is removed once the table is written.
#[derive(Parser, Debug)]
#[command(name = "extract", version)]
struct Cli {
    /// A fine-tuned QA model directory (a qa-finetune run's final/, or one transformers wrote).
    #[arg(long)]
    model: PathBuf,
    /// The concept catalogue (configs/concepts-*.toml).
    #[arg(long)]
    concepts: PathBuf,
    /// A folder of .txt files, its subfolders' too (`name.xx.txt` gives the language; the id is the
    /// path below the folder; other files are listed as skipped), one .txt file, or a .jsonl, .json
    /// (an array of records, or an object whose "data" or only array they are; Label Studio tasks with
    /// their fields under "data" too), .csv, .tsv or .parquet file with id/text/lang fields.
    #[arg(long)]
    docs: PathBuf,
    /// The long table, one row per document × concept (.parquet, .csv, .tsv or .jsonl, by extension).
    #[arg(long)]
    out: PathBuf,
    /// Also write the wide table (one row per document, one column per concept).
    #[arg(long)]
    wide: Option<PathBuf>,
    /// Also write the accepted answers as linked data (.jsonld or .nt).
    #[arg(long)]
    linked_data: Option<PathBuf>,
    /// Language of the questions: `doc` (the document's, else English) or a code such as `en`.
    #[arg(long, default_value = "doc")]
    question_lang: QuestionLanguage,
    /// Language of documents that do not give theirs (default: detected).
    #[arg(long)]
    doc_lang: Option<String>,
    /// The documents' id field or column (tables and JSON Lines).
    #[arg(long, default_value = "id")]
    id_field: String,
    /// The documents' text field or column.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// The documents' language field or column (optional in the data).
    #[arg(long, default_value = "lang")]
    lang_field: String,
    /// Overrides the catalogue's min_probability for every concept.
    #[arg(long)]
    min_probability: Option<f64>,
    /// Windows per forward pass, whichever documents and questions they come from.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Documents read and answered together (their windows share batches; memory grows with it).
    #[arg(long, default_value_t = 32)]
    docs_per_chunk: usize,
    /// Go on from where an interrupted run to the same --out stopped: its journal (OUT.journal/, kept
    /// as each chunk of documents is answered) gives the chunks already answered. Refused when the
    /// documents, catalogue, model, code or a setting that decides the rows differs; without a journal,
    /// starts from the first document.
    #[arg(long)]
    resume: bool,
    /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// fp32, bf16 (autocast; for CUDA), or fp16 (autocast, for GPUs without bf16).
    #[arg(long, default_value = "fp32")]
    precision: model::autocast::Precision,
    /// With --link-index: each accepted answer's concept (id, IRI, preferred label, matched label,
    /// score, method; every candidate in link_candidates) in the long table, its IRI in the linked data.
    #[command(flatten)]
    link: link::LinkArgs,
    /// The model's windows and post-processing come from its medqa.json (run_qa.py's defaults for a
    /// model fine-tuned outside medqa); these flags set them.
    #[command(flatten)]
    settings: model::qa::inference::SettingsArgs,
}

fn main() -> Result<()> {
    // Before the first tensor: large host blocks freed from here on are kept for reuse.
    model::host_memory::keep_freed_blocks();
    let cli = Cli::parse();
    let out_format = tables::TableFormat::from_path(&cli.out)?;
    let wide_format = cli
        .wide
        .as_deref()
        .map(tables::TableFormat::from_path)
        .transpose()?;
    // Every output location is checked before the model loads and the questions run.
    let record_file = cli.out.with_extension("run.json");
    let skipped_file = cli.out.with_extension("skipped.jsonl");
    model::fsutil::check_output_file(&cli.out)?;
    for path in cli
        .wide
        .iter()
        .chain(&cli.linked_data)
        .chain([&record_file, &skipped_file])
    {
        model::fsutil::check_output_file(path)?;
    }
    // The table and the files beside it come from one run: two extractions to the same --out would
    // leave one's table beside the other's record.
    let _held = model::fsutil::lock::lock_output_file(&cli.out, "extraction")?;
    let mut catalogue = Catalogue::load(&cli.concepts)?;
    if let Some(p) = cli.min_probability {
        catalogue.override_min_probability(p)?;
    }
    let opts = DocOptions {
        id_field: cli.id_field.clone(),
        text_field: cli.text_field.clone(),
        lang_field: cli.lang_field.clone(),
        lang: cli.doc_lang.clone(),
    };
    let documents::Documents {
        docs,
        skipped,
        renamed,
        unnamed,
    } = documents::read(&cli.docs, &opts)?;
    if unnamed > 0 {
        eprintln!(
            "{unnamed} document(s) have no '{}' of their own and are named by their place (row-N, \
             line-N); --id-field names another field or column",
            cli.id_field
        );
    }
    for s in &skipped {
        eprintln!("skipped {}:{}: {}", s.file, s.line, s.reason);
    }
    for r in &renamed {
        eprintln!(
            "renamed: {}:{} document '{}' is '{}' (its id was taken)",
            r.file, r.line, r.id, r.renamed
        );
    }
    if docs.is_empty() {
        bail!(
            "{}: no usable documents ({} skipped)",
            cli.docs.display(),
            skipped.len()
        );
    }
    // The index is read before the model runs: a wrong path fails in a second, not after extraction.
    let linker = cli.link.load()?;
    let device = cli.device.resolve()?;
    let qa = QaModel::load_with(&cli.model, device, &cli.settings)?;
    let opts = Options {
        question_lang: cli.question_lang.clone(),
        batch_size: cli.batch_size,
        precision: cli.precision,
        docs_per_chunk: cli.docs_per_chunk.max(1),
    };
    let inputs = Inputs::hash(&cli)?;
    let opened = Journal::open(
        &cli.out,
        &decides_the_rows(&cli, &qa, device, &inputs)?,
        cli.resume,
    )?;
    let resumed_chunks = opened.chunks.len();
    let resumed_documents = (resumed_chunks * opts.docs_per_chunk).min(docs.len());
    let mut rows: Vec<Extraction> = opened.chunks.into_iter().flatten().collect();
    let resumed_rows = rows.len();
    if resumed_chunks > 0 {
        eprintln!(
            "resuming after {resumed_documents} of {} documents ({resumed_rows} rows) from {}",
            docs.len(),
            extract::journal::dir_for(&cli.out).display()
        );
    }
    let journal = opened.journal;
    let bar =
        model::train::log::progress_bar(docs.len() as u64, resumed_documents as u64, "documents");
    let clock = std::time::Instant::now();
    extract::extract_chunks(
        &qa,
        &catalogue,
        &docs,
        &opts,
        resumed_chunks,
        |index, n, chunk| {
            journal.record(index, &chunk)?;
            rows.extend(chunk);
            bar.inc(n as u64);
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    let seconds = clock.elapsed().as_secs_f64();
    let asked = rows.len() - resumed_rows;

    let links = linker
        .as_ref()
        .map(|index| extract::link_answers(index, &rows, &cli.link.options()));
    if let Some(links) = &links {
        let answered = rows.iter().filter(|r| r.answer.is_some()).count();
        let linked = links.iter().filter(|l| !l.is_empty()).count();
        eprintln!("linked {linked} of {answered} answers to a concept");
    }
    let mut long = output::long_table(&rows, links.as_deref())?;
    model::fsutil::write_atomic(&cli.out, |w| tables::write(&mut long, out_format, w))
        .with_context(|| format!("writing {}", cli.out.display()))?;
    if let (Some(path), Some(format)) = (&cli.wide, wide_format) {
        let mut wide = output::wide_table(&rows, &catalogue)?;
        model::fsutil::write_atomic(path, |w| tables::write(&mut wide, format, w))?;
    }
    if let Some(path) = &cli.linked_data {
        let text = output::linked_data(&rows, links.as_deref(), &catalogue, path)?;
        model::fsutil::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
    }
    if skipped.is_empty() {
        // A previous run's skipped documents would otherwise read as this run's.
        match std::fs::remove_file(&skipped_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| {
                    format!("removing the earlier run's {}", skipped_file.display())
                })
            }
            _ => {}
        }
    } else {
        model::fsutil::write_json_lines(&skipped_file, &skipped)?;
        eprintln!(
            "{} document(s) skipped: {}",
            skipped.len(),
            skipped_file.display()
        );
    }
    let answered = rows.iter().filter(|r| r.answer.is_some()).count();
    // What produced the tables, so that a published figure can be traced and repeated.
    let record = serde_json::json!({
        "model": cli.model,
        "concepts": cli.concepts,
        "docs": cli.docs,
        "documents": docs.len(),
        "skipped_documents": skipped.len(),
        "skipped_file": (!skipped.is_empty()).then_some(&skipped_file),
        "renamed_ids": renamed,
        "documents_named_by_place": unnamed,
        "questions": rows.len(),
        "resumed": (resumed_chunks > 0).then(|| serde_json::json!({
            "documents": resumed_documents, "questions": resumed_rows,
        })),
        "answered": answered,
        "seconds": seconds,
        "settings_from": qa.resolved.origin,
        "set_on_the_command_line": qa.resolved.overridden,
        "settings": qa.resolved.settings,
        "question_lang": match &cli.question_lang {
            QuestionLanguage::Document => "doc".to_owned(),
            QuestionLanguage::Fixed(code) => code.clone(),
        },
        "doc_lang": cli.doc_lang,
        "fields": {"id": cli.id_field, "text": cli.text_field, "lang": cli.lang_field},
        "min_probability": cli.min_probability,
        "batch_size": cli.batch_size,
        "docs_per_chunk": cli.docs_per_chunk,
        "precision": cli.precision,
        "device": model::device::describe(device),
        "link": cli.link.link_index.as_ref().map(|index| serde_json::json!({
            "index": index, "top_k": cli.link.link_top_k, "min_score": cli.link.link_min_score,
        })),
        "provenance": model::train::manifest::provenance_hashed(
            "extract",
            env!("CARGO_PKG_VERSION"),
            device,
            inputs.in_order(),
        )?,
    });
    model::fsutil::write_json(&record_file, &record)?;
    // Everything is written: nothing is left to resume.
    journal.finish()?;
    println!(
        "{} documents × {} concepts = {} questions ({asked} asked in {seconds:.1} s, {:.1} questions/s); \
         {answered} answered, {} no answer; table: {}",
        docs.len(),
        catalogue.concepts.len(),
        rows.len(),
        asked as f64 / seconds.max(1e-9),
        rows.len() - answered,
        cli.out.display()
    );
    println!("settings and provenance: {}", record_file.display());
    Ok(())
}

/// The SHA-256 of what an extraction reads, taken once before the first question: the journal's
/// description and the record share them (a model of gigabytes is read once for this, not twice), and
/// they are of the bytes this run read, not of what the files hold when it ends hours later.
struct Inputs {
    documents: InputHash,
    concepts: InputHash,
    model: Vec<InputHash>,
    link_index: Option<InputHash>,
}

impl Inputs {
    fn hash(cli: &Cli) -> Result<Self> {
        Ok(Self {
            documents: hash_path(&cli.docs)?,
            concepts: hash_path(&cli.concepts)?,
            model: QaModel::files(&cli.model)
                .iter()
                .map(|f| hash_path(f))
                .collect::<Result<_>>()?,
            link_index: cli.link.link_index.as_deref().map(hash_path).transpose()?,
        })
    }

    /// The record's order: documents, catalogue, model files, link index.
    fn in_order(&self) -> Vec<InputHash> {
        [&self.documents, &self.concepts]
            .into_iter()
            .chain(&self.model)
            .chain(&self.link_index)
            .cloned()
            .collect()
    }
}

/// What decides an extraction's rows, which a resumed run must share with the run it goes on from:
/// the inputs' hashes, the code, the model's windows and post-processing, and every option that
/// changes a row or the documents' chunks (batches change padding, the device and precision the
/// arithmetic).
fn decides_the_rows(
    cli: &Cli,
    qa: &QaModel,
    device: tch::Device,
    inputs: &Inputs,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let model_files: Vec<&str> = inputs.model.iter().map(|h| h.sha256.as_str()).collect();
    let code = model::fsutil::provenance::code_state()?;
    let what = serde_json::json!({
        "documents_sha256": inputs.documents.sha256,
        "concepts_sha256": inputs.concepts.sha256,
        "model_sha256": model_files,
        "code": [env!("CARGO_PKG_VERSION"), code.git_commit, code.git_dirty],
        "settings": qa.resolved.settings,
        "question_lang": match &cli.question_lang {
            QuestionLanguage::Document => "doc".to_owned(),
            QuestionLanguage::Fixed(code) => code.clone(),
        },
        "doc_lang": cli.doc_lang,
        "fields": [cli.id_field, cli.text_field, cli.lang_field],
        "min_probability": cli.min_probability,
        "batch_size": cli.batch_size,
        "docs_per_chunk": cli.docs_per_chunk.max(1),
        "precision": cli.precision,
        "device": if device.is_cuda() { "cuda" } else { "cpu" },
    });
    Ok(what.as_object().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_argument_has_help() {
        test_support::assert_every_arg_has_help(<super::Cli as clap::CommandFactory>::command());
    }
}
