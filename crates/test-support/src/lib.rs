//! What medqa's integration tests share (a dev-dependency of the crates that run binaries or Python):
//! where the workspace and its fixtures are, which Python has the reference libraries, and a command
//! that must succeed, with its output in the failure message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod fake_label_studio;
pub use fake_label_studio::{FakeLabelStudio, Seen};

/// The workspace root.
pub fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

/// The model crate's test fixtures: tiny models, a tokenizer, reference outputs.
pub fn fixtures() -> PathBuf {
    root().join("crates/model/tests/fixtures")
}

/// The Python with torch and transformers: `MEDQA_PYTHON`, else the set-up's `.venv`.
pub fn python() -> PathBuf {
    std::env::var("MEDQA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/python"))
}

/// Writes `bytes` to `path`, creating its folders: the files of a synthetic run directory.
pub fn write_file(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Runs the Python `script` with `args` under the set-up's Python, as `datasets` runs offline (its cache
/// in `dir`, no Hub); must succeed; its standard output.
pub fn run_datasets_script<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[S],
    dir: &Path,
) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .env("HF_DATASETS_CACHE", dir.join("hf-cache"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the set-up's Python (scripts/setup.sh --test)");
    ok(out)
}

/// A finished command's standard output; fails the test with both streams unless it succeeded.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// As [`ok`], with the standard error after the standard output.
pub fn ok_all(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out) + &err
}

/// Runs `cmd`, which must succeed; its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"));
    if !out.status.success() {
        eprintln!("failed: {cmd:?}");
    }
    ok(out)
}

/// Each file's SHA-256 as Python's hashlib gives it: the reference for the hashes medqa records.
pub fn python_sha256(files: &[PathBuf]) -> Vec<String> {
    let script = "import hashlib, sys\n\
                  for p in sys.argv[1:]: print(hashlib.sha256(open(p, 'rb').read()).hexdigest())";
    run_ok(Command::new(python()).args(["-c", script]).args(files))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A record's `inputs` (`[{"path", "sha256", "bytes"}]`, `fsutil::provenance`) as (path, SHA-256)
/// pairs in the order recorded.
pub fn recorded_hashes(inputs: &serde_json::Value) -> Vec<(String, String)> {
    inputs
        .as_array()
        .unwrap_or_else(|| panic!("inputs are not a list: {inputs}"))
        .iter()
        .map(|i| {
            let field = |k: &str| {
                i[k].as_str()
                    .unwrap_or_else(|| panic!("input without {k}: {i}"))
                    .to_owned()
            };
            (field("path"), field("sha256"))
        })
        .collect()
}

/// hashlib's SHA-256 of the files' bytes one after the other (a sharded checkpoint's one digest).
pub fn python_sha256_concatenated(files: &[PathBuf]) -> String {
    let script = "import hashlib, sys\nh = hashlib.sha256()\n\
                  for p in sys.argv[1:]: h.update(open(p, 'rb').read())\nprint(h.hexdigest())";
    run_ok(Command::new(python()).args(["-c", script]).args(files))
        .trim()
        .to_owned()
}

/// `git` in `dir` with a fixed identity: its trimmed output, or `None` where it fails (not a checkout).
pub fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=medqa-test",
            "-c",
            "user.email=test@medqa",
            "-C",
        ])
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("git did not start: {e}"));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A new git repository in `dir` with its existing file `file` committed: the commit.
pub fn git_repo_with(dir: &Path, file: &str) -> String {
    for args in [
        &["init", "-q"][..],
        &["add", file],
        &["commit", "-q", "-m", "a commit"],
    ] {
        git(dir, args).unwrap_or_else(|| panic!("git {args:?} in {}", dir.display()));
    }
    git(dir, &["rev-parse", "HEAD"]).expect("a commit")
}

/// `bin` as `ranks` processes under torchrun from the set-up's Python (`--standalone`: the agent picks
/// a free port and hosts the rendezvous store), each with `args`.
pub fn torchrun(ranks: usize, bin: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(python());
    cmd.args(["-m", "torch.distributed.run", "--standalone"])
        .arg(format!("--nproc-per-node={ranks}"))
        .args(["--no-python", bin])
        .args(args);
    cmd
}

/// `bin` as rank `rank` of `world` processes launched by hand (torch's `env://` variables; rank 0
/// hosts the store on `port` of the loopback).
pub fn rank_command(bin: &str, rank: usize, world: usize, port: u16) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("OMP_NUM_THREADS", "1")
        .env_remove("TORCHELASTIC_RUN_ID")
        .env_remove("TORCHELASTIC_USE_AGENT_STORE");
    cmd
}

/// `bin` as task `rank` of `world` as `srun` starts it (SLURM's variables, with the `MASTER_ADDR` and
/// `MASTER_PORT` a batch script exports; rank 0 hosts the store).
pub fn slurm_rank_command(bin: &str, rank: usize, world: usize, port: u16) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("SLURM_PROCID", rank.to_string())
        .env("SLURM_NTASKS", world.to_string())
        .env("SLURM_LOCALID", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("OMP_NUM_THREADS", "1");
    for torchrun in [
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "TORCHELASTIC_RUN_ID",
        "TORCHELASTIC_USE_AGENT_STORE",
    ] {
        cmd.env_remove(torchrun);
    }
    cmd
}

/// A port of the loopback that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on the loopback")
}

/// A fine-tuned-QA model directory in `dir/qa-model` made of the fixture checkpoint `checkpoint`
/// (`tiny-h40-l3`, `tiny-h64-l1`: random weights with a QA head), the fixture tokenizer and the
/// window and post-processing settings `medqa_json` (`medqa.json`).
pub fn fixture_qa_model(dir: &Path, checkpoint: &str, medqa_json: &str) -> PathBuf {
    let m = dir.join("qa-model");
    std::fs::create_dir_all(&m).expect("a writable test directory");
    for f in ["config.json", "model.safetensors"] {
        let from = fixtures().join("models").join(checkpoint).join(f);
        std::fs::copy(&from, m.join(f)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
    std::fs::copy(
        fixtures().join("tokenizer/tokenizer.json"),
        m.join("tokenizer.json"),
    )
    .expect("the fixture tokenizer");
    std::fs::write(m.join("medqa.json"), medqa_json).expect("a writable test directory");
    m
}

/// The QA model directory `model` saved again by transformers in `dest` in shards of at most
/// `max_shard_size` (`model.safetensors.index.json` and `model-0000N-of-0000M.safetensors`), with
/// `model`'s other files copied beside them; returns the shards in name order.
pub fn sharded_copy(model: &Path, dest: &Path, max_shard_size: &str) -> Vec<PathBuf> {
    let script = "import os, shutil, sys\n\
                  from transformers import AutoModelForQuestionAnswering as M\n\
                  src, dst, size = sys.argv[1:4]\n\
                  M.from_pretrained(src).save_pretrained(dst, max_shard_size=size)\n\
                  for f in os.listdir(src):\n    \
                  if not os.path.exists(os.path.join(dst, f)) and f != 'model.safetensors':\n        \
                  shutil.copy(os.path.join(src, f), dst)";
    run_ok(
        Command::new(python())
            .args(["-c", script])
            .arg(model)
            .arg(dest)
            .arg(max_shard_size),
    );
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dest)
        .unwrap_or_else(|e| panic!("{}: {e}", dest.display()))
        .map(|e| e.expect("a readable directory").path())
        .filter(|p| p.to_string_lossy().ends_with(".safetensors"))
        .collect();
    shards.sort();
    assert!(
        shards.len() > 1 && !dest.join("model.safetensors").exists(),
        "transformers wrote no shards: {shards:?}"
    );
    shards
}

/// A copy of the QA model directory `model` in `dest` without its `medqa.json`: the same model as
/// transformers would leave it, for the fallback to run_qa.py's settings.
pub fn without_medqa_json(model: &Path, dest: &Path) -> PathBuf {
    std::fs::create_dir_all(dest).expect("a writable test directory");
    for entry in std::fs::read_dir(model).unwrap_or_else(|e| panic!("{}: {e}", model.display())) {
        let path = entry.expect("a readable model directory").path();
        let name = path.file_name().expect("a file name");
        if name != "medqa.json" {
            std::fs::copy(&path, dest.join(name))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    dest.to_path_buf()
}

/// Checks a binary's command line with clap's own consistency checks, then that every argument of it
/// and of its subcommands says what it is for in `--help`: a user reads the help, not the source.
pub fn assert_every_arg_has_help(mut cmd: clap::Command) {
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    cmd.build();
    cmd.clone().debug_assert();
    let mut missing = Vec::new();
    undocumented(&cmd, cmd.get_name(), &mut missing);
    assert!(missing.is_empty(), "arguments without help: {missing:?}");
}
