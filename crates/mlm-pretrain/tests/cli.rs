//! The mlm-pretrain binary end to end: a run killed with SIGKILL and resumed logs bitwise the same
//! losses as an uninterrupted run; the output loads in transformers with the same logits; bad input
//! fails before any compute.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{losses, make_shards, tokens_seen, write_config};
use model::shards::ShardManifest;
use model::XlmrTokenizer;
use test_support::fixtures;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_mlm-pretrain");

/// The binary on one thread. These tests compare runs bit for bit, and libtorch's multi-threaded CPU
/// kernels do not always give the same bits from one process to the next: on an Intel Xeon VM with
/// AVX-512 some runs differed in the last bits, in PyTorch alone too (`scripts/bench/repeatability.sh`).
/// On one thread every run was the same, which is what medqa's own determinism is tested against.
fn mlm_pretrain() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("OMP_NUM_THREADS", "1");
    cmd
}

fn run(args: &[&str]) -> std::process::Output {
    mlm_pretrain()
        .args(args)
        .args(["--device", "cpu"])
        .output()
        .unwrap()
}

/// Runs with `args` (on the CPU), which must succeed.
fn run_ok(args: &[&str]) -> std::process::Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs with `--overwrite --set KEY=VALUE` and expects a failure whose message contains `needle`.
fn fails_with_override(cfg: &Path, set: &str, needle: &str) {
    let out = run(&[
        "--config",
        cfg.to_str().unwrap(),
        "--overwrite",
        "--set",
        set,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(needle),
        "--set {set}: {err}"
    );
}

/// Starts a training run of `cfg` in the background and returns once `ready` holds (2 minutes at most).
fn spawn_until(cfg: &Path, ready: impl Fn() -> bool) -> std::process::Child {
    let child = mlm_pretrain()
        .args(["--config", cfg.to_str().unwrap(), "--device", "cpu"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run did not get going"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// A 12-step run of `write_config` in `tmp/name`, the command adjusted by `adjust`: its losses, final
/// weights and manifest.
fn tiny_run(
    tmp: &Path,
    shards: &Path,
    name: &str,
    adjust: impl FnOnce(&mut Command),
) -> (Vec<(u64, u64)>, Vec<u8>, serde_json::Value) {
    let dir = tmp.join(name);
    let cfg = write_config(tmp, shards, &dir, 12);
    let mut cmd = mlm_pretrain();
    cmd.args(["--config", cfg.to_str().unwrap(), "--device", "cpu"]);
    adjust(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let weights = std::fs::read(dir.join("final/model.safetensors")).unwrap();
    (losses(&dir), weights, manifest)
}

/// Keeping freed host blocks (the binary's default) changes where tensors live, never what they hold:
/// a run with glibc's defaults (`MEDQA_HOST_MEMORY=system`) logs the same losses and writes the same
/// weights byte for byte, and each manifest says which allocator setting ran.
#[test]
fn the_host_memory_setting_leaves_every_number_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let (kept_losses, kept_weights, kept) = tiny_run(tmp.path(), &shards, "kept", |cmd| {
        cmd.env_remove(model::host_memory::OPT_OUT);
    });
    let (system_losses, system_weights, system) = tiny_run(tmp.path(), &shards, "system", |cmd| {
        cmd.env(model::host_memory::OPT_OUT, "system");
    });
    assert_eq!(kept["versions"]["host_memory"], "kept");
    // Every setting the run used, the defaults the config file left out included.
    let effective = &kept["effective_config"];
    assert_eq!(effective["train"]["adam_epsilon"], 1e-8, "{effective}");
    assert_eq!(effective["train"]["group_by_length"], false, "{effective}");
    assert!(kept["config"]["train"].get("adam_epsilon").is_none());
    assert_eq!(system["versions"]["host_memory"], "system");
    // The environment that changes numbers, and the machine, are in the manifest.
    assert_eq!(system["environment"][model::host_memory::OPT_OUT], "system");
    assert!(kept["environment"]
        .get(model::host_memory::OPT_OUT)
        .is_none());
    assert!(
        kept["host"]["cpu_cores"].as_u64().unwrap() >= 1,
        "{}",
        kept["host"]
    );
    // The code's commit: the checkout the binary was compiled in (data-prep's qa test runs a copy
    // beside a medqa-build.json, and from a project repository of its own).
    match test_support::git(&test_support::root(), &["rev-parse", "HEAD"]) {
        Some(head) => {
            assert_eq!(kept["git_commit"], head.as_str());
            assert_eq!(kept["git_commit_from"], "source checkout");
        }
        None => assert!(kept["git_commit"].is_null(), "{}", kept["git_commit"]),
    }
    assert_eq!(kept_losses.len(), 12);
    assert_eq!(kept_losses, system_losses);
    assert!(kept_weights == system_weights, "final weights differ");
}

/// Gradient checkpointing recomputes each layer in the backward with the forward's dropout masks: the
/// run logs the same losses and writes the same weights byte for byte, and its manifest says it was on.
#[test]
fn gradient_checkpointing_leaves_every_number_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let (plain_losses, plain_weights, _) = tiny_run(tmp.path(), &shards, "plain", |_| {});
    let (ckpt_losses, ckpt_weights, manifest) =
        tiny_run(tmp.path(), &shards, "checkpointed", |cmd| {
            cmd.args(["--set", "train.gradient_checkpointing=true"]);
        });
    assert_eq!(manifest["config"]["train"]["gradient_checkpointing"], true);
    assert_eq!(plain_losses.len(), 12);
    assert_eq!(plain_losses, ckpt_losses);
    assert!(plain_weights == ckpt_weights, "final weights differ");
}

/// `train.full_determinism`: libtorch's deterministic kernels exist for every op of an MLM step, and on
/// the CPU compute what the default ones do.
#[test]
fn full_determinism_leaves_every_cpu_number_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let (plain_losses, plain_weights, _) = tiny_run(tmp.path(), &shards, "plain", |_| {});
    let (losses, weights, manifest) = tiny_run(tmp.path(), &shards, "deterministic", |cmd| {
        cmd.args(["--set", "train.full_determinism=true"]);
    });
    assert_eq!(manifest["config"]["train"]["full_determinism"], true);
    assert_eq!(plain_losses, losses);
    assert!(plain_weights == weights, "final weights differ");
}

#[test]
fn sigkill_and_resume_gives_bitwise_the_same_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let steps = 60;

    let straight = tmp.path().join("straight");
    let cfg = write_config(tmp.path(), &shards, &straight, steps);
    run_ok(&["--config", cfg.to_str().unwrap()]);
    let reference = losses(&straight);
    assert_eq!(reference.len(), steps as usize);
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("eval_results.json")).unwrap())
            .unwrap();
    assert!(
        eval["eval/perplexity"].as_f64().unwrap() < 374.0,
        "learned something: {eval}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["seed"], 3);
    assert_eq!(manifest["config"]["train"]["max_steps"], steps);
    assert_eq!(manifest["inputs"].as_array().unwrap().len(), 2);

    // The same run, killed with SIGKILL once it has passed a checkpoint, then resumed.
    let killed = tmp.path().join("killed");
    let cfg = write_config(tmp.path(), &shards, &killed, steps);
    let mut child = spawn_until(&cfg, || losses(&killed).last().map_or(0, |(s, _)| *s) >= 9);
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before it could be killed"
    );
    let partial = losses(&killed).len();
    assert!(partial < steps as usize, "killed after {partial} steps");
    let log_before = std::fs::read_to_string(killed.join("train_log.jsonl")).unwrap();
    let resumed_at = model::train::checkpoint::list(&killed)
        .unwrap()
        .last()
        .unwrap()
        .0;
    // What a kill or a full disk leaves mid-write must not stop the resume.
    let stale = killed.join("checkpoints/.tmp-step-000099-4242");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"half").unwrap();

    run_ok(&["--config", cfg.to_str().unwrap(), "--resume"]);
    assert!(!stale.exists(), "the unfinished checkpoint is cleared");
    // The history up to the checkpoint resumed from stays byte for byte.
    let kept: String = log_before
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= resumed_at)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let log_after = std::fs::read_to_string(killed.join("train_log.jsonl")).unwrap();
    assert!(
        log_after.starts_with(&kept),
        "records up to step {resumed_at} were rewritten"
    );
    assert_eq!(
        losses(&killed),
        reference,
        "resumed losses differ (killed after {partial} logged steps)"
    );
    // The input tokens seen go on from the checkpoint's count.
    assert_eq!(tokens_seen(&killed), tokens_seen(&straight));
    assert_eq!(tokens_seen(&straight).len(), steps as usize);

    // The output is a Hugging Face directory that transformers loads with the same logits.
    check_with_transformers(&straight.join("final"));
    // fill-mask answers from it.
    let out = Command::new(BIN)
        .args([
            "fill-mask",
            "--model",
            straight.join("final").to_str().unwrap(),
            "--top-k",
            "3",
            "--device",
            "cpu",
        ])
        .arg("Pacientul a fost <mask> cu accident vascular.")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  ")).count(),
        3,
        "{text}"
    );
}

#[test]
fn a_running_run_holds_its_directory_against_a_second_one() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let dir = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &shards, &dir, 1_000_000);
    let mut child = spawn_until(&cfg, || {
        dir.join("checkpoints")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    });
    // A second run, resuming or overwriting, is refused with the holder's pid and changes nothing.
    for second in ["--resume", "--overwrite"] {
        let out = run(&["--config", cfg.to_str().unwrap(), second]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("in use by another run")
                && err.contains(&format!("pid {}", child.id())),
            "{second}: {err}"
        );
        assert!(dir.join("manifest.json").is_file() && dir.join("checkpoints").is_dir());
    }
    assert!(child.try_wait().unwrap().is_none(), "the first run goes on");
    child.kill().unwrap();
    child.wait().unwrap();
    // The OS released the lock with the process: resuming now works (and is stopped at once).
    let out = run(&[
        "--config",
        cfg.to_str().unwrap(),
        "--resume",
        "--set",
        "train.max_steps=4",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("in use"), "{err}");
}

fn check_with_transformers(dir: &Path) {
    use model::{Pretrained, XlmRobertaForMaskedLM};
    use tch::{Device, Kind, Tensor};
    let m = Pretrained::<XlmRobertaForMaskedLM>::load(dir, Device::Cpu).unwrap();
    assert!(m.report.as_ref().unwrap().is_exact());
    let tok = XlmrTokenizer::from_file(dir).unwrap();
    let ids: Vec<i64> = tok
        .encode("Пациентът е приет с инсулт.")
        .unwrap()
        .input_ids
        .iter()
        .map(|&i| i as i64)
        .collect();
    let ids = Tensor::from_slice(&ids).unsqueeze(0);
    let mask = ids.ones_like().to_kind(Kind::Int64);
    let logits = tch::no_grad(|| m.model.forward_t(&ids, &mask, None, false));
    let file = dir.parent().unwrap().join("medqa_outputs.safetensors");
    Tensor::write_safetensors(
        &[
            ("input_ids", ids),
            ("attention_mask", mask),
            ("mlm_logits", logits),
        ],
        &file,
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var("MEDQA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    let out = Command::new(python)
        .arg(root.join("scripts/check_roundtrip.py"))
        .arg(dir)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "transformers disagrees:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_inputs_fail_before_any_compute() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let out_dir = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &shards, &out_dir, 4);

    // An existing run without --resume / --overwrite.
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("manifest.json"), "{}").unwrap();
    let out = run(&["--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--resume") && err.contains("--overwrite"),
        "{err}"
    );
    assert!(!out_dir.join("train_log.jsonl").exists());

    // A tokenizer other than the shards'.
    let other = tmp.path().join("other.json");
    let mut text = std::fs::read_to_string(shards.join("tokenizer.json")).unwrap();
    text.push(' ');
    std::fs::write(&other, text).unwrap();
    fails_with_override(
        &cfg,
        &format!("data.tokenizer=\"{}\"", other.display()),
        "not the tokenizer",
    );

    // The shards' own tokenizer file, built otherwise (a tokenizer_config.json naming XLM-R's class
    // beside it).
    let rebuilt = tmp.path().join("rebuilt");
    std::fs::create_dir_all(&rebuilt).unwrap();
    std::fs::copy(
        shards.join("tokenizer.json"),
        rebuilt.join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(
        rebuilt.join(text::tokenizer_config::FILE),
        text::tokenizer_config::to_pretty(&text::tokenizer_config::xlm_roberta(64)),
    )
    .unwrap();
    fails_with_override(
        &cfg,
        &format!(
            "data.tokenizer=\"{}\"",
            rebuilt.join("tokenizer.json").display()
        ),
        "built as written, but here it is built XLMRobertaTokenizer",
    );

    // Shards whose manifest names another vocabulary size than the tokenizer's.
    let other_vocab = tmp.path().join("other-vocab");
    std::fs::create_dir_all(&other_vocab).unwrap();
    for f in std::fs::read_dir(&shards).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, other_vocab.join(f.file_name().unwrap())).unwrap();
    }
    let mut m = ShardManifest::load(&other_vocab).unwrap();
    m.vocab_size = 250_002;
    std::fs::write(
        other_vocab.join("manifest.json"),
        serde_json::to_string(&m).unwrap(),
    )
    .unwrap();
    fails_with_override(
        &cfg,
        &format!("data.shards=\"{}\"", other_vocab.display()),
        "250002-token vocabulary",
    );

    // An output directory that cannot be created.
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let set = format!("output_dir=\"{}\"", blocker.join("run").display());
    let out = run(&["--config", cfg.to_str().unwrap(), "--set", &set]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot create run directory"),
        "{err}"
    );

    // A misspelt key, and empty shards.
    fails_with_override(&cfg, "train.learnig_rate=1", "learnig_rate");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(shards.join("tokenizer.json"), empty.join("tokenizer.json")).unwrap();
    let mut m = ShardManifest::load(&shards).unwrap();
    m.shards.clear();
    std::fs::write(
        empty.join("manifest.json"),
        serde_json::to_string(&m).unwrap(),
    )
    .unwrap();
    fails_with_override(
        &cfg,
        &format!("data.shards=\"{}\"", empty.display()),
        "no tokens",
    );
}

#[test]
fn continues_from_a_hugging_face_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let out_dir = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &shards, &out_dir, 3);
    // tiny-h32-l2 has the fixture tokenizer's vocabulary and 64 positions; without its LM head here, so
    // that the head is drawn fresh (from the seed: two runs must give the same losses).
    let fixture = fixtures().join("models/tiny-h32-l2");
    let init = tmp.path().join("headless");
    std::fs::create_dir(&init).unwrap();
    std::fs::copy(fixture.join("config.json"), init.join("config.json")).unwrap();
    let weights: Vec<(String, tch::Tensor)> =
        tch::Tensor::read_safetensors(fixture.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("lm_head."))
            .collect();
    tch::Tensor::write_safetensors(&weights, init.join("model.safetensors")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[model.shape]\nhidden_size = 64\nnum_hidden_layers = 2\nnum_attention_heads = 4\nintermediate_size = 128\n",
        &format!("[model]\ninit_from = \"{}\"\n", init.display()),
    );
    std::fs::write(&cfg, text).unwrap();
    let out = run(&["--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The fixture holds a QA head too: reported as unused, as transformers does.
    assert!(
        stderr.contains("qa_outputs.weight") && stderr.contains("not used"),
        "{stderr}"
    );
    assert!(stderr.contains("lm_head.dense.weight"), "{stderr}");
    let again = tmp.path().join("again");
    run_ok(&[
        "--config",
        cfg.to_str().unwrap(),
        "--set",
        &format!("output_dir={}", again.display()),
    ]);
    assert!(!losses(&out_dir).is_empty());
    assert_eq!(
        losses(&out_dir),
        losses(&again),
        "same seed, different losses"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("manifest.json")).unwrap())
            .unwrap();
    let inputs = manifest["inputs"].as_array().unwrap();
    assert_eq!(
        inputs.len(),
        3,
        "shards, tokenizer and the initial weights are hashed"
    );
    let cfg_out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("final/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg_out["hidden_size"], 32);
    assert_eq!(cfg_out["architectures"][0], "XLMRobertaForMaskedLM");
}

/// SIGTERM (SLURM's warning before a time limit or preemption): the run checkpoints the step it is on
/// and exits with 75 and no final model; `--auto-resume` goes on from that step and logs bitwise the
/// losses of a run never stopped, does nothing to a finished run, and starts one where there is none.
#[test]
fn sigterm_checkpoints_the_current_step_and_resume_goes_on_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let steps = 60;
    let straight = tmp.path().join("straight");
    let cfg = write_config(tmp.path(), &shards, &straight, steps);
    run_ok(&["--config", cfg.to_str().unwrap()]);
    let reference = losses(&straight);

    // Checkpoints every 4 steps; the signal comes once step 9 is logged.
    let stopped = tmp.path().join("stopped");
    let cfg = write_config(tmp.path(), &shards, &stopped, steps);
    let child = spawn_until(&cfg, || losses(&stopped).last().map_or(0, |(s, _)| *s) >= 9);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75), "exit status of a stopped run");
    let logged = losses(&stopped);
    let last = logged.last().unwrap().0;
    assert!(last < steps, "the run finished before the signal");
    let saved: Vec<u64> = model::train::checkpoint::list(&stopped)
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(
        saved.last(),
        Some(&last),
        "a checkpoint at the step it stopped on (not only every 4): {saved:?}"
    );
    assert!(!stopped.join("final").exists(), "no final model");
    assert!(!stopped.join("eval_results.json").exists());

    // --auto-resume: the same command line whether or not there is a checkpoint (a requeued job).
    run_ok(&["--config", cfg.to_str().unwrap(), "--auto-resume"]);
    assert_eq!(losses(&stopped), reference, "stopped at step {last}");

    // Once more on the finished run: nothing to train; the final model and its evaluation are the
    // same as before, the history untouched.
    let files = |dir: &Path| {
        [
            "eval_results.json",
            "train_results.json",
            "final/model.safetensors",
            "train_log.jsonl",
        ]
        .map(|f| std::fs::read(dir.join(f)).unwrap())
    };
    let before = files(&stopped);
    let out = run(&["--config", cfg.to_str().unwrap(), "--auto-resume"]);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("nothing left to train"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(files(&stopped) == before, "a finished run changed");

    // A fresh directory: --auto-resume starts a new run.
    let fresh = tmp.path().join("fresh");
    let cfg = write_config(tmp.path(), &shards, &fresh, 12);
    run_ok(&["--config", cfg.to_str().unwrap(), "--auto-resume"]);
    assert_eq!(losses(&fresh).len(), 12);
}

/// `include_num_input_tokens_seen`: "non_padding" over two epochs counts the training split twice
/// (every document with `<s>` and `</s>`, as the shards' manifest gives them); "all" adds each batch's
/// padding, in steps of the pad multiple; the last record's count is train_results.json's.
#[test]
fn input_tokens_seen_count_what_the_steps_read() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let manifest = ShardManifest::load(&shards).unwrap();
    let split_tokens: u64 = manifest
        .shards
        .iter()
        .filter(|s| s.split == "train")
        .map(|s| s.tokens + 2 * s.documents)
        .sum();
    let sequences = split_tokens.div_ceil(32);
    let count = |mode: &str| {
        let dir = tmp.path().join(mode);
        let cfg = write_config(tmp.path(), &shards, &dir, 1);
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("max_steps = 1\n", "num_train_epochs = 2\n")
            .replace("= \"all\"", &format!("= \"{mode}\""));
        std::fs::write(&cfg, text).unwrap();
        run_ok(&["--config", cfg.to_str().unwrap()]);
        let seen = tokens_seen(&dir);
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("train_results.json")).unwrap())
                .unwrap();
        let last = seen.last().unwrap().1;
        assert_eq!(results["num_input_tokens_seen"], last, "{mode}");
        let mut before = 0;
        for &(step, n) in &seen {
            assert!(n > before, "{mode}: step {step} counts {n} after {before}");
            if mode == "all" {
                assert_eq!((n - before) % 8, 0, "step {step}: whole padded batches");
            }
            before = n;
        }
        last
    };
    let real = count("non_padding");
    assert_eq!(real, 2 * split_tokens);
    let all = count("all");
    assert!(
        all >= real && all <= 2 * 32 * sequences,
        "{all} positions for {real} tokens in {sequences} sequences"
    );
}
