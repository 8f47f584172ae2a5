//! medqa's QA training against transformers' Trainer, step for step: the same initial model (QA head
//! included, dropout off), the same windows, every window in every step (a batch larger than the set, so
//! the order of examples cannot matter), the same hyperparameters. Each step's loss and gradient norm and the
//! weights after the last step must agree to float rounding: any difference in the loss, the schedule,
//! weight decay, clipping or AdamW shows here, apart from the randomness of a real run.
//!
//! Twice: medqa's default loss leaves padding out of the start/end softmax, against the reference told to
//! do the same (`qa_trainer_reference.py --mask-padding`); and medqa with `data.pad_to_max_length` and
//! `data.padding_in_loss`, against run_qa.py's own loss (windows padded to `max_seq_length`, padding in the
//! softmax).

use std::process::Command;
use test_support::{python, root, run_ok as run};

const BIN: &str = env!("CARGO_BIN_EXE_qa-finetune");
const STEPS: usize = 8;

/// Four short notes in four languages, one longer than a window, three questions each.
fn questions() -> serde_json::Value {
    let notes = [
        ("en", "Patient admitted with chest pain. Troponin was 0.8 ng/mL and the ECG showed ST elevation. Aspirin 300 mg was given. Later that evening the blood pressure fell to 90/60 mmHg and noradrenaline was started at a low dose, then stopped the next morning.",
         [("What was the troponin?", "0.8 ng/mL"), ("What did the ECG show?", "ST elevation"), ("Which drug was started?", "noradrenaline")]),
        ("es", "Paciente con fiebre de 39 grados y tos. La radiografía mostró una neumonía basal derecha.",
         [("¿Qué temperatura tenía?", "39 grados"), ("¿Qué mostró la radiografía?", "una neumonía basal derecha"), ("¿Qué síntoma tenía además de fiebre?", "tos")]),
        ("pl", "Pacjent z cukrzycą typu 2, glukoza 14 mmol/L, leczony metforminą.",
         [("Jaka była glukoza?", "14 mmol/L"), ("Jak leczono pacjenta?", "metforminą"), ("Jaka cukrzyca?", "cukrzycą typu 2")]),
        ("bg", "Пациентът има хипертония и хемоглобин 95 g/L.",
         [("Какво е хемоглобинът?", "95 g/L"), ("Какво заболяване има?", "хипертония"), ("Кой има хипертония?", "Пациентът")]),
    ];
    let articles: Vec<_> = notes
        .iter()
        .enumerate()
        .map(|(i, (lang, context, qas))| {
            let qas: Vec<_> = qas
                .iter()
                .enumerate()
                .map(|(j, (q, a))| {
                    let start = context[..context.find(a).expect("answer in context")]
                        .chars()
                        .count();
                    serde_json::json!({"id": format!("{lang}{i}-{j}"), "question": q,
                        "answers": [{"text": a, "answer_start": start}]})
                })
                .collect();
            serde_json::json!({"title": lang, "paragraphs": [{"context": context, "qas": qas}]})
        })
        .collect();
    serde_json::json!({"version": "1.1", "data": articles})
}

/// The initial model both sides load: the tiny fixture with a QA head drawn by torch, dropout off.
const INIT: &str = r#"
import json, os, shutil, sys, torch
from transformers import XLMRobertaForQuestionAnswering
src, dst, tok = sys.argv[1:4]
torch.manual_seed(0)
m = XLMRobertaForQuestionAnswering.from_pretrained(src, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
m.save_pretrained(dst)
shutil.copy(tok, os.path.join(dst, "tokenizer.json"))
"#;

/// Per tensor of the two final models, the largest absolute difference; prints the largest of all, its
/// tensor, and how far training moved the weights. Left out: the tensors whose gradient is zero in exact
/// arithmetic, which AdamW moves by about the learning rate in the direction of rounding noise, differently
/// on any two machines: the key biases (softmax is unchanged by a shift of all of a query's scores), the QA
/// head's bias and the last LayerNorm's bias (cross-entropy is unchanged by a shift of all start or end
/// logits, and a window's start/end gradients sum to zero).
const COMPARE: &str = r#"
import re, sys
from safetensors.torch import load_file
def load(p):
    return {k.removeprefix("roberta."): v for k, v in load_file(p).items()}
ours, theirs, init = (load(p) for p in sys.argv[1:4])
assert set(ours) == set(theirs), sorted(set(ours) ^ set(theirs))
last = max(int(m.group(1)) for k in ours if (m := re.match(r"encoder\.layer\.(\d+)\.", k)))
noise = {"qa_outputs.bias", f"encoder.layer.{last}.output.LayerNorm.bias"}
compared = [k for k in ours if k not in noise and not k.endswith("attention.self.key.bias")]
assert len(compared) >= len(ours) - last - 3, compared
worst = max(((ours[k] - theirs[k]).abs().max().item(), k) for k in compared)
moved = max((ours[k] - init[k]).abs().max().item() for k in compared)
print(worst[0], worst[1], moved)
"#;

#[test]
fn a_training_run_matches_transformers_trainer_step_for_step() {
    parity(false, false, 1);
}

#[test]
fn with_run_qa_padding_a_training_run_matches_run_qa_step_for_step() {
    parity(true, false, 1);
}

/// Gradient accumulation: each step two micro-batches of half the windows on both sides. QA's loss is a
/// mean over windows and both loops average the micro-batches' means (the Trainer: a batch without
/// `labels` has no `num_items_in_batch`, so it divides by the accumulation steps); with halves of equal
/// size that is the mean over the whole set, whichever windows each half holds.
#[test]
fn with_gradient_accumulation_a_training_run_matches_transformers_trainer_step_for_step() {
    parity(false, false, 2);
}

/// `precision = "fp16"` against the Trainer's `fp16=True`: autocast to fp16 and GradScaler's loss scale
/// on both sides (on the CPU here; the same code runs on CUDA).
#[test]
fn in_fp16_a_training_run_matches_transformers_trainer_step_for_step() {
    parity(true, true, 1);
}

/// `run_qa_padding`: medqa pads to `max_seq_length` and keeps padding in the loss, the reference computes
/// run_qa.py's loss; otherwise both leave padding out. `fp16`: both train in fp16 with a loss scale.
/// `accum` > 1: each step is `accum` micro-batches of an equal share of the windows (else one batch of
/// all of them).
fn parity(run_qa_padding: bool, fp16: bool, accum: usize) {
    let dir = std::env::temp_dir().join(format!(
        "medqa-trainer-parity-{}-{run_qa_padding}-{fp16}-{accum}",
        std::process::id()
    ));
    let precision = if fp16 { "fp16" } else { "fp32" };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let train = dir.join("train.json");
    std::fs::write(&train, questions().to_string()).unwrap();
    let fixtures = root().join("crates/model/tests/fixtures");
    let init = dir.join("init");
    run(Command::new(python()).args(["-c", INIT]).args([
        fixtures.join("models/tiny-h32-l2"),
        init.clone(),
        fixtures.join("tokenizer/tokenizer.json"),
    ]));

    // Large enough a learning rate and weight decay that a wrong schedule, decay rule or clip would move
    // the weights by far more than rounding does.
    let (lr, wd, warmup, seq, stride) = (5e-3, 0.1, 2, 64, 16);
    let history = dir.join("reference-log.json");
    // The reference run of `steps` steps of `accum` micro-batches of `batch` windows into `out`; returns
    // its report line.
    let reference = |batch: usize, accum: usize, steps: usize, out: &str| {
        let mut cmd = Command::new(python());
        cmd.arg(root().join("scripts/tools/qa_trainer_reference.py"))
            .args(["train", "--model", init.to_str().unwrap()])
            .args(["--train", train.to_str().unwrap()])
            .args(["--out", dir.join(out).to_str().unwrap()])
            .args(["--seed", "1", "--learning-rate", &lr.to_string()])
            .args(["--epochs", "1000", "--max-steps", &steps.to_string()])
            .args(["--batch", &batch.to_string()])
            .args(["--gradient-accumulation-steps", &accum.to_string()])
            .args(["--warmup-steps", &warmup.to_string()])
            .args(["--weight-decay", &wd.to_string()])
            .args(["--max-seq-length", &seq.to_string()])
            .args(["--doc-stride", &stride.to_string()])
            .args(["--log-history", history.to_str().unwrap()])
            .args(["--threads", "2"]);
        if !run_qa_padding {
            cmd.arg("--mask-padding");
        }
        if fp16 {
            cmd.arg("--fp16");
        }
        run(&mut cmd)
    };
    // One batch of every window (256 is more than there are), or `accum` equal shares of them.
    let batch = if accum == 1 {
        256
    } else {
        let report = reference(256, 1, 1, "count");
        let line = report.lines().last().unwrap();
        let windows = serde_json::from_str::<serde_json::Value>(line).unwrap()["windows"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(
            windows % accum,
            0,
            "{windows} windows do not split into {accum} equal shares"
        );
        windows / accum
    };
    let cfg = dir.join("qa.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"output_dir = "{out}"
init_from = "{init}"
[data]
train = [{{ path = "{train}" }}]
max_seq_length = {seq}
doc_stride = {stride}
max_query_length = {seq}
pad_to_max_length = {run_qa_padding}
padding_in_loss = {run_qa_padding}
[train]
precision = "{precision}"
seed = 1
learning_rate = {lr}
max_steps = {STEPS}
per_device_train_batch_size = {batch}
gradient_accumulation_steps = {accum}
warmup_steps = {warmup}
weight_decay = {wd}
logging_steps = 1
eval_steps = 0
save_steps = 0
"#,
            out = dir.join("medqa").display(),
            init = init.display(),
            train = train.display(),
        ),
    )
    .unwrap();
    run(Command::new(BIN)
        .args(["--config"])
        .arg(&cfg)
        .args(["--device", "cpu"]));
    reference(batch, accum, STEPS, "reference");

    let ours: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("medqa/train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r.get("train/loss").is_some())
        .collect();
    let theirs: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    assert_eq!(ours.len(), STEPS, "{ours:?}");
    assert_eq!(theirs.len(), STEPS, "{theirs:?}");
    for (step, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        let pairs = [
            ("loss", o["train/loss"].as_f64(), t["loss"].as_f64()),
            (
                "grad_norm",
                o["grad_norm"].as_f64(),
                t["grad_norm"].as_f64(),
            ),
        ];
        for (what, a, b) in pairs {
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "step {}: {what} {a} (medqa) vs {b} (transformers)\nmedqa {ours:?}\ntransformers {theirs:?}",
                step + 1
            );
        }
    }
    let out = run(Command::new(python()).args(["-c", COMPARE]).args([
        dir.join("medqa/final/model.safetensors"),
        dir.join("reference/final/model.safetensors"),
        init.join("model.safetensors"),
    ]));
    let mut fields = out.split_whitespace();
    let worst: f64 = fields.next().unwrap().parse().unwrap();
    let tensor = fields.next().unwrap().to_owned();
    let moved: f64 = fields.next().unwrap().parse().unwrap();
    assert!(moved > 1e-2, "training moved the weights by only {moved}");
    // In fp16 the step-for-step losses and norms above are the check: AdamW turns the fp16 rounding
    // noise of a near-zero gradient element into a step of about the learning rate either way, so single
    // weights part by a fraction of the learning rate × steps however alike the two sides compute.
    let bound = if fp16 { 0.25 * moved } else { 1e-5 };
    assert!(
        worst < bound,
        "after {STEPS} steps {tensor} differs by {worst} (weights moved by up to {moved})"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
