//! Every learning-rate schedule against `transformers` itself: each case is a `[train]` table as a user
//! writes it, read into `TrainConfig`; the same settings go to `TrainingArguments`, and the rates are
//! those of `Trainer.create_scheduler` (`get_scheduler` with `get_warmup_steps` and
//! `lr_scheduler_kwargs`) stepping a torch optimizer, one past the end of the run included.

mod common;

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
    let reference = reference(REFERENCE, &cases);
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

/// (`[train]` keys, the metric of each evaluation in turn)
const PLATEAU_CASES: &[(&str, &[f64])] = &[
    (
        "learning_rate = 1e-3\nlr_scheduler_kwargs = { mode = \"min\", patience = 2 }",
        &[2.0, 1.9, 1.9, 1.95, 1.9, 1.8999, 1.7, 1.7, 1.7, 1.71, 1.7, 1.7, 1.7, 1.69999],
    ),
    (
        "learning_rate = 5e-4\nwarmup_steps = 3\nlr_scheduler_kwargs = { mode = \"max\", patience = 1, factor = 0.5, cooldown = 2 }",
        &[10.0, 12.0, 11.0, 11.5, 11.9, 12.0, 12.0, 13.0, 12.9, 12.0, 11.0, 10.0, 9.0, 8.0],
    ),
    (
        "learning_rate = 2e-5\nlr_scheduler_kwargs = { mode = \"min\", threshold_mode = \"abs\", threshold = 0.05, \
         patience = 0, min_lr = 1e-6, factor = 0.3 }",
        &[1.0, 0.97, 0.9, 0.88, 0.8, 0.79, 0.78, -0.5, -0.52, -0.6, -0.61, -0.62],
    ),
    (
        "learning_rate = 1e-3\nlr_scheduler_kwargs = { mode = \"min\", patience = 0, eps = 2e-4, factor = 0.5 }",
        &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    ),
    (
        "learning_rate = 1e-3",
        &[
            3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0,
            3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0,
        ],
    ),
];

/// `reduce_lr_on_plateau` built as `Trainer.create_scheduler` builds it, stepped with each metric.
const PLATEAU_REFERENCE: &str = r#"
import json, sys, tempfile, warnings
import torch
from transformers import TrainingArguments
from transformers.optimization import get_scheduler

warnings.simplefilter("ignore")
out = []
for case in json.load(sys.stdin):
    keys = dict(case["train"])
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[], eval_strategy="steps", eval_steps=1,
                             lr_scheduler_type="reduce_lr_on_plateau", **keys)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=args.learning_rate)
    sched = get_scheduler(args.lr_scheduler_type, opt, num_warmup_steps=args.get_warmup_steps(100),
                          num_training_steps=100, scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    rates = [opt.param_groups[0]["lr"]]
    for m in case["metrics"]:
        sched.step(m)
        rates.append(opt.param_groups[0]["lr"])
    out.append(rates)
print(json.dumps(out))
"#;

fn reference(script: &str, cases: &[serde_json::Value]) -> Vec<Vec<f64>> {
    common::python_json(script, &cases)
}

#[test]
fn reduce_lr_on_plateau_follows_the_metrics_as_torch() {
    use model::train::Plateau;
    let cases: Vec<serde_json::Value> = PLATEAU_CASES
        .iter()
        .map(|(keys, metrics)| {
            let train: toml::Table = toml::from_str(keys).unwrap();
            serde_json::json!({"train": train, "metrics": metrics})
        })
        .collect();
    for ((keys, metrics), expected) in PLATEAU_CASES
        .iter()
        .zip(reference(PLATEAU_REFERENCE, &cases))
    {
        let mut cfg: TrainConfig = toml::from_str(keys).unwrap();
        cfg.lr_scheduler_type = model::train::ScheduleKind::ReduceLrOnPlateau;
        cfg.eval_steps = 1.0;
        cfg.validate().unwrap();
        let schedule = cfg.schedule(100).unwrap();
        let mut plateau = Plateau::start(&schedule);
        let mut ours = vec![plateau.learning_rate];
        for &m in *metrics {
            plateau.observe(&schedule, m, cfg.greater_is_better);
            ours.push(plateau.learning_rate);
        }
        assert_eq!(ours, expected, "{keys:?}");
        assert!(
            ours.windows(2).any(|w| w[1] < w[0]) || keys.contains("eps"),
            "{keys:?}: the case never reduces the rate: {ours:?}"
        );
        println!("{:<70} rates equal: {ours:?}", keys.replace('\n', "; "));
    }
}
