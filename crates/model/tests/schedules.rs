//! Every learning-rate schedule against `transformers` itself: each case is a `[train]` table as a user
//! writes it, read into `TrainConfig`; the same settings go to `TrainingArguments`, and the rates are
//! those of `Trainer.create_scheduler` (`get_scheduler` with `get_warmup_steps` and
//! `lr_scheduler_kwargs`) stepping a torch optimizer, one past the end of the run included.

mod common;

use std::process::Command;

use model::train::TrainConfig;

/// (total steps, the `[train]` keys)
const CASES: &[(u64, &str)] = &[
    (95, "learning_rate = 5e-5\nwarmup_ratio = 0.1"),
    (200, "learning_rate = 5e-5\nwarmup_steps = 0.06"),
    (100, "lr_scheduler_type = \"cosine\"\nwarmup_steps = 10"),
    (
        100,
        "lr_scheduler_type = \"cosine\"\nwarmup_steps = 10\nlr_scheduler_kwargs = { num_cycles = 1.5 }",
    ),
    (60, "lr_scheduler_type = \"cosine_with_restarts\"\nwarmup_steps = 12.0"),
    (
        60,
        "lr_scheduler_type = \"cosine_with_restarts\"\nwarmup_steps = 5\nlr_scheduler_kwargs = { num_cycles = 3 }",
    ),
    (
        100,
        "learning_rate = 5e-4\nlr_scheduler_type = \"polynomial\"\nwarmup_steps = 10",
    ),
    (
        100,
        "learning_rate = 5e-4\nlr_scheduler_type = \"polynomial\"\nwarmup_ratio = 0.06\n\
         lr_scheduler_kwargs = { power = 2.0, lr_end = 1e-5 }",
    ),
    (50, "lr_scheduler_type = \"constant\"\nwarmup_steps = 10"),
    (50, "lr_scheduler_type = \"constant_with_warmup\"\nwarmup_steps = 7"),
    (80, "lr_scheduler_type = \"inverse_sqrt\"\nwarmup_steps = 10"),
    (80, "lr_scheduler_type = \"inverse_sqrt\""),
    (
        80,
        "lr_scheduler_type = \"inverse_sqrt\"\nwarmup_steps = 10\nlr_scheduler_kwargs = { timescale = 50 }",
    ),
    (
        100,
        "learning_rate = 3e-4\nlr_scheduler_type = \"cosine_with_min_lr\"\nwarmup_steps = 10\n\
         lr_scheduler_kwargs = { min_lr = 1e-6 }",
    ),
    (
        100,
        "lr_scheduler_type = \"cosine_with_min_lr\"\nwarmup_ratio = 0.1\n\
         lr_scheduler_kwargs = { min_lr_rate = 0.1, num_cycles = 0.4 }",
    ),
    (
        100,
        "lr_scheduler_type = \"cosine_warmup_with_min_lr\"\nwarmup_steps = 10\n\
         lr_scheduler_kwargs = { min_lr_rate = 0.05 }",
    ),
    (
        100,
        "learning_rate = 2e-4\nlr_scheduler_type = \"cosine_warmup_with_min_lr\"\nwarmup_steps = 10\n\
         lr_scheduler_kwargs = { min_lr = 1e-5, warmup_lr_rate = 0.1 }",
    ),
    (
        100,
        "lr_scheduler_type = \"warmup_stable_decay\"\nwarmup_steps = 10\n\
         lr_scheduler_kwargs = { num_decay_steps = 20 }",
    ),
    (
        100,
        "lr_scheduler_type = \"warmup_stable_decay\"\nwarmup_steps = 10\n\
         lr_scheduler_kwargs = { num_decay_steps = 30, warmup_type = \"cosine\", decay_type = \"1-sqrt\", \
         min_lr_ratio = 0.1 }",
    ),
    (
        100,
        "lr_scheduler_type = \"warmup_stable_decay\"\nwarmup_steps = 10\n\
         lr_scheduler_kwargs = { num_stable_steps = 40, num_decay_steps = 20, warmup_type = \"1-sqrt\", \
         decay_type = \"linear\" }",
    ),
];

/// Builds `TrainingArguments` from each case's keys and prints the learning rate of every step.
const REFERENCE: &str = r#"
import json, sys, tempfile, warnings
import torch
from transformers import TrainingArguments
from transformers.optimization import get_scheduler

warnings.simplefilter("ignore")
out = []
for case in json.load(sys.stdin):
    keys = dict(case["train"])
    # transformers 5 has no warmup_ratio: a fraction in warmup_steps means the same.
    if "warmup_ratio" in keys:
        keys["warmup_steps"] = keys.pop("warmup_ratio")
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[], **keys)
    total = case["total"]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=args.learning_rate)
    sched = get_scheduler(args.lr_scheduler_type, opt, num_warmup_steps=args.get_warmup_steps(total),
                          num_training_steps=total, scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    rates = []
    for _ in range(total + 3):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out.append(rates)
print(json.dumps(out))
"#;

#[test]
fn every_schedule_gives_transformers_learning_rates_to_the_bit() {
    let cases: Vec<serde_json::Value> = CASES
        .iter()
        .map(|(total, keys)| {
            let train: toml::Table = toml::from_str(keys).unwrap();
            serde_json::json!({"total": total, "train": train})
        })
        .collect();
    let mut child = Command::new(common::venv_python())
        .arg("-c")
        .arg(REFERENCE)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &cases).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
    for ((total, keys), expected) in CASES.iter().zip(&reference) {
        let cfg: TrainConfig = toml::from_str(keys).unwrap();
        cfg.validate().unwrap();
        let schedule = cfg.schedule(*total).unwrap();
        let ours: Vec<f64> = (0..expected.len() as u64)
            .map(|step| schedule.learning_rate_at(step))
            .collect();
        for (step, (a, b)) in ours.iter().zip(expected).enumerate() {
            assert!(
                a == b,
                "{keys:?} over {total} steps, step {step}: medqa {a:e}, transformers {b:e}"
            );
        }
        println!(
            "{:<70} {total} steps: {} rates equal",
            keys.replace('\n', "; "),
            ours.len()
        );
    }
}
