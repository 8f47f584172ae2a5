//! Where an output came from, for tools with and without libtorch: the command line, the git commit,
//! the machine as far as it decides numbers, the environment variables that change them, and the
//! SHA-256 of the inputs. A training run's manifest (`model::train::manifest`) adds the seed, the
//! configuration and libtorch's versions and devices to the same fields.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputHash {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// The record of a tool's output: `tool` (with its version) read `inputs`, which are hashed now; with
/// the command line, the machine, the numeric environment and the time, beside [`inputs_record`]'s.
pub fn record(tool: &str, tool_version: &str, inputs: &[&Path]) -> Result<serde_json::Value> {
    record_hashed(tool, tool_version, hash_paths(inputs)?)
}

/// [`record`] for inputs hashed earlier: a tool that needs the hashes before its work (extract's
/// journal) records the bytes it read, and hashes a model of gigabytes once, not twice.
pub fn record_hashed(
    tool: &str,
    tool_version: &str,
    inputs: Vec<InputHash>,
) -> Result<serde_json::Value> {
    let mut record = code_record(tool, tool_version)?;
    record["inputs"] = serde_json::json!(inputs);
    record["command_line"] = serde_json::json!(std::env::args().collect::<Vec<_>>());
    record["host"] = host_cpu();
    record["environment"] = serde_json::json!(numeric_environment(|k| std::env::var(k).ok()));
    record["started_at_unix"] = unix_now().into();
    if let Some(git) = working_directory_git() {
        record["working_directory_git"] = git;
    }
    Ok(record)
}

/// What decides an output that must come out byte-identical from the same inputs (a corpus's shard
/// manifest, which later runs hash as their input): the tool, its version, the git state and the inputs'
/// hashes, without [`record`]'s time, command line or machine.
pub fn inputs_record(
    tool: &str,
    tool_version: &str,
    inputs: &[&Path],
) -> Result<serde_json::Value> {
    let mut record = code_record(tool, tool_version)?;
    record["inputs"] = serde_json::json!(hash_paths(inputs)?);
    Ok(record)
}

/// [`hash_path`] of each path, in order.
pub fn hash_paths(paths: &[&Path]) -> Result<Vec<InputHash>> {
    paths.iter().map(|p| hash_path(p)).collect()
}

/// The tool, its version and the code's git state ([`code_state`]): what made an output whose inputs
/// are recorded elsewhere (a link index lists its sources' hashes itself).
pub fn code_record(tool: &str, tool_version: &str) -> Result<serde_json::Value> {
    let code = code_state()?;
    let mut record = serde_json::json!({
        "tool": tool,
        "tool_version": tool_version,
        "git_commit": code.git_commit,
        "git_dirty": code.git_dirty,
        "git_commit_from": code.git_commit_from,
    });
    // Only when it happened, so that the records of an up-to-date build keep their bytes.
    if code.checkout_changed_after_build {
        record["checkout_changed_after_build"] = true.into();
    }
    Ok(record)
}

/// Seconds since 1970 (0 on a clock before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The environment variables that change numbers or kernels, where set (threads, cuBLAS's
/// workspace, the CUDA allocator, NCCL's algorithms, TF32 overrides, visible devices).
pub const NUMERIC_ENVIRONMENT: &[&str] = &[
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_VISIBLE_DEVICES",
    "PYTORCH_CUDA_ALLOC_CONF",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "NVIDIA_TF32_OVERRIDE",
    "NCCL_ALGO",
    "NCCL_PROTO",
    "MEDQA_HOST_MEMORY",
    "LIBTORCH",
];

/// Those of [`NUMERIC_ENVIRONMENT`] that `lookup` finds.
pub fn numeric_environment(
    lookup: impl Fn(&str) -> Option<String>,
) -> std::collections::BTreeMap<String, String> {
    NUMERIC_ENVIRONMENT
        .iter()
        .filter_map(|&k| lookup(k).map(|v| (k.to_owned(), v)))
        .collect()
}

/// This machine's processor, from `/proc/cpuinfo`.
pub fn host_cpu() -> serde_json::Value {
    cpu_of(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
}

/// The processor's name, widest vector instructions (libtorch picks kernels by them, which round
/// differently) and cores from `/proc/cpuinfo`'s text.
pub fn cpu_of(cpuinfo: &str) -> serde_json::Value {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let vector = [
        ("avx512_bf16", "AVX-512 BF16"),
        ("avx512f", "AVX-512"),
        ("avx2", "AVX2"),
    ]
    .into_iter()
    .find(|(flag, _)| has(flag))
    .map(|(_, name)| name);
    serde_json::json!({
        "cpu": field("model name"),
        "cpu_vector_instructions": vector,
        "cpu_cores": cpuinfo.lines().filter(|l| l.starts_with("processor")).count(),
    })
}

/// SHA-256 of a file, or of a directory's files in name order (path and content both count).
pub fn hash_path(path: &Path) -> Result<InputHash> {
    let mut hasher = Sha256::new();
    let mut bytes = 0;
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    files.sort();
    for file in &files {
        if path.is_dir() {
            hasher.update(
                file.strip_prefix(path)
                    .unwrap_or(file)
                    .to_string_lossy()
                    .as_bytes(),
            );
        }
        bytes += crate::hash_file_into(&mut hasher, file)?;
    }
    let digest = hasher.finalize();
    Ok(InputHash {
        path: path.display().to_string(),
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        bytes,
    })
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            let entry = entry?;
            // A lock some medqa process took holds its pid, which says nothing of the data.
            if !crate::lock::is_lock_file(&entry.file_name()) {
                collect_files(&entry.path(), out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// The file beside an executable that says which commit it was built from, where the executable was
/// copied out of its checkout (the GPU bundles of `scripts/bench/gpu.sh` and
/// `scripts/experiment-e5-gpu.sh` write it): `{"git_commit": "…", "git_dirty": false}`.
pub const BUILD_INFO_FILE: &str = "medqa-build.json";

/// The code that ran, as far as git can tell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeState {
    pub git_commit: Option<String>,
    /// Tracked files differ from the commit.
    pub git_dirty: Option<bool>,
    /// Where the two were read: [`BUILD_INFO_FILE`] beside the executable, or the source checkout the
    /// executable was compiled from (its state now: a checkout that moved on since the build reads as
    /// its new commit, which [`Self::checkout_changed_after_build`] then says).
    pub git_commit_from: Option<String>,
    /// Read from the source checkout, and it changed after the executable was built: HEAD moved (a
    /// commit, checkout or pull) or a modified tracked file is newer than the executable. The commit
    /// recorded may then not be the code that ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checkout_changed_after_build: bool,
}

/// [`CodeState`] of the running executable: its [`BUILD_INFO_FILE`] where one lies beside it, else the
/// checkout this crate was compiled in. Not the working directory's: a user runs medqa from a project
/// directory of their own, often a git repository of its own, whose commit says nothing of the code
/// (that commit is [`working_directory_git`]'s).
///
/// An executable built before its checkout changed (built, then `git pull` without rebuilding) gets
/// the checkout's new commit, which is not the code that runs: that is flagged in the record and
/// said once on stderr, rather than recorded as if it were exact. (Compiling the commit in instead
/// would rebuild every binary on each commit or source edit.)
pub fn code_state() -> Result<CodeState> {
    let exe = std::env::current_exe().ok();
    let exe_dir = exe.as_ref().and_then(|p| p.parent().map(Path::to_path_buf));
    let built = exe
        .as_ref()
        .and_then(|p| p.metadata().ok())
        .and_then(|m| m.modified().ok());
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = code_state_from(exe_dir.as_deref(), source, built)?;
    if state.checkout_changed_after_build {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            eprintln!(
                "warning: the checkout {} changed after this executable ({}) was built; records name \
                 its commit {} (\"checkout_changed_after_build\": true), which may not be the code \
                 that runs: rebuild to record exactly",
                git_toplevel(source).unwrap_or_else(|| source.display().to_string()),
                exe.as_deref().unwrap_or(Path::new("?")).display(),
                state.git_commit.as_deref().unwrap_or("?"),
            );
        });
    }
    Ok(state)
}

fn code_state_from(
    exe_dir: Option<&Path>,
    source: &Path,
    built: Option<std::time::SystemTime>,
) -> Result<CodeState> {
    if let Some(file) = exe_dir
        .map(|d| d.join(BUILD_INFO_FILE))
        .filter(|f| f.is_file())
    {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let mut state: CodeState = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not {{\"git_commit\": …, \"git_dirty\": …}}",
                file.display()
            )
        })?;
        state.git_commit_from = Some(BUILD_INFO_FILE.to_owned());
        return Ok(state);
    }
    let (git_commit, git_dirty) = git_state_in(source);
    let checkout_changed_after_build = match (&git_commit, built) {
        (Some(_), Some(built)) => changed_since(source, built),
        _ => false,
    };
    Ok(CodeState {
        git_commit_from: git_commit.as_ref().map(|_| "source checkout".to_owned()),
        git_commit,
        git_dirty,
        checkout_changed_after_build,
    })
}

/// Whether the checkout at `dir` changed after `built`: HEAD moved (its reflog, or HEAD itself where
/// there is no reflog, was written later) or a modified tracked file is newer. The index is left out:
/// `git status` itself rewrites it.
fn changed_since(dir: &Path, built: std::time::SystemTime) -> bool {
    let newer = |path: &Path| {
        path.metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > built)
    };
    let git_path = |name: &str| {
        git(
            dir,
            &["rev-parse", "--path-format=absolute", "--git-path", name],
        )
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o).trim()))
    };
    if ["logs/HEAD", "HEAD"]
        .iter()
        .filter_map(|n| git_path(n))
        .any(|p| newer(&p))
    {
        return true;
    }
    let (Some(top), Some(status)) = (
        git_toplevel(dir),
        git(
            dir,
            &["status", "--porcelain", "-z", "--untracked-files=no"],
        ),
    ) else {
        return false;
    };
    // `XY path` entries, NUL-separated; a rename's entry is followed by its old path, which is gone.
    status
        .split(|&b| b == 0)
        .filter(|e| e.len() > 3)
        .any(|e| newer(&Path::new(&top).join(String::from_utf8_lossy(&e[3..]).as_ref())))
}

/// The working directory's git commit and state, where it lies in a checkout other than the code's
/// (a project repository holding the configs): `{"commit", "dirty", "toplevel"}`.
pub fn working_directory_git() -> Option<serde_json::Value> {
    working_directory_git_in(
        &std::env::current_dir().ok()?,
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
}

fn working_directory_git_in(dir: &Path, source: &Path) -> Option<serde_json::Value> {
    let top = git_toplevel(dir)?;
    if git_toplevel(source).as_ref() == Some(&top) {
        return None;
    }
    let (commit, dirty) = git_state_in(dir);
    Some(serde_json::json!({"commit": commit, "dirty": dirty, "toplevel": top}))
}

fn git(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| o.stdout)
}

fn git_toplevel(dir: &Path) -> Option<String> {
    git(dir, &["rev-parse", "--show-toplevel"])
        .map(|o| String::from_utf8_lossy(&o).trim().to_owned())
}

/// The commit checked out at `dir` and whether tracked files differ from it.
fn git_state_in(dir: &Path) -> (Option<String>, Option<bool>) {
    let commit =
        git(dir, &["rev-parse", "HEAD"]).map(|o| String::from_utf8_lossy(&o).trim().to_owned());
    let dirty = commit.as_ref().and_then(|_| {
        git(dir, &["status", "--porcelain", "--untracked-files=no"]).map(|o| !o.is_empty())
    });
    (commit, dirty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_and_the_numeric_environment_are_read() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\
                       processor\t: 1\nmodel name\t: AMD EPYC 9R14\n";
        assert_eq!(
            cpu_of(cpuinfo),
            serde_json::json!({"cpu": "AMD EPYC 9R14", "cpu_vector_instructions": "AVX-512 BF16", "cpu_cores": 2})
        );
        assert_eq!(
            cpu_of("flags : sse avx2")["cpu_vector_instructions"],
            "AVX2"
        );
        let env = numeric_environment(|k| (k == "OMP_NUM_THREADS").then(|| "1".to_owned()));
        assert_eq!(
            env.into_iter().collect::<Vec<_>>(),
            vec![("OMP_NUM_THREADS".to_owned(), "1".to_owned())]
        );
    }

    #[test]
    fn a_directory_hashes_its_files_names_and_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("b.txt"), "bb").unwrap();
        std::fs::create_dir(tmp.path().join("a")).unwrap();
        std::fs::write(tmp.path().join("a/x.txt"), "x").unwrap();
        let dir = hash_path(tmp.path()).unwrap();
        assert_eq!(dir.bytes, 3);
        // "a/x.txt", its bytes, then "b.txt" and its: names in order, contents after each.
        let mut h = Sha256::new();
        for part in ["a/x.txt", "x", "b.txt", "bb"] {
            h.update(part.as_bytes());
        }
        assert_eq!(dir.sha256, format!("{:x}", h.finalize()));
        // A lock some process holds or held there (with its pid) changes nothing.
        let _held = crate::lock::lock_dir(tmp.path(), "directory", "process").unwrap();
        assert!(tmp.path().join(crate::lock::LOCK_FILE).is_file());
        assert_eq!(hash_path(tmp.path()).unwrap().sha256, dir.sha256);
        let _file_held = crate::lock::lock_output_file(&tmp.path().join("b.txt"), "run").unwrap();
        assert!(tmp.path().join(".b.txt.medqa.lock").is_file());
        assert_eq!(hash_path(tmp.path()).unwrap().sha256, dir.sha256);
        // A file: its bytes alone.
        let file = hash_path(&tmp.path().join("b.txt")).unwrap();
        assert_eq!(
            file.sha256,
            crate::sha256_file(&tmp.path().join("b.txt")).unwrap()
        );
    }

    #[test]
    fn the_code_is_the_build_files_or_the_source_checkouts_never_the_working_directorys() {
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("a.txt"), "a").unwrap();
        let commit = test_support::git_repo_with(source.path(), "a.txt");
        let exe = tempfile::tempdir().unwrap();
        // An executable in no checkout and without a build file: the source checkout's state.
        let code = code_state_from(Some(exe.path()), source.path(), None).unwrap();
        assert_eq!(
            code,
            CodeState {
                git_commit: Some(commit.clone()),
                git_dirty: Some(false),
                git_commit_from: Some("source checkout".into()),
                checkout_changed_after_build: false,
            }
        );
        std::fs::write(source.path().join("a.txt"), "changed").unwrap();
        let code = code_state_from(None, source.path(), None).unwrap();
        assert_eq!(code.git_dirty, Some(true));
        // A build file beside the executable wins.
        std::fs::write(
            exe.path().join(BUILD_INFO_FILE),
            r#"{"git_commit": "0123abc", "git_dirty": false}"#,
        )
        .unwrap();
        let code = code_state_from(Some(exe.path()), source.path(), None).unwrap();
        assert_eq!(
            (
                code.git_commit.as_deref(),
                code.git_dirty,
                code.git_commit_from.as_deref()
            ),
            (Some("0123abc"), Some(false), Some(BUILD_INFO_FILE))
        );
        // A broken one is an error naming it, not a silent guess.
        std::fs::write(exe.path().join(BUILD_INFO_FILE), "0123abc").unwrap();
        let err = format!(
            "{:#}",
            code_state_from(Some(exe.path()), source.path(), None).unwrap_err()
        );
        assert!(err.contains(BUILD_INFO_FILE), "{err}");
        // No checkout anywhere: nothing is claimed.
        let nowhere = tempfile::tempdir().unwrap();
        assert_eq!(
            code_state_from(None, nowhere.path(), Some(std::time::SystemTime::now())).unwrap(),
            CodeState::default()
        );
        // The working directory's own repository is recorded apart, and only when it is not the code's.
        let project = tempfile::tempdir().unwrap();
        std::fs::write(project.path().join("a.txt"), "a").unwrap();
        let project_commit = test_support::git_repo_with(project.path(), "a.txt");
        let wd = working_directory_git_in(project.path(), source.path()).unwrap();
        assert_eq!(wd["commit"], project_commit.as_str());
        assert_eq!(wd["dirty"], false);
        assert_eq!(working_directory_git_in(source.path(), source.path()), None);
        assert_eq!(
            working_directory_git_in(nowhere.path(), source.path()),
            None
        );
    }

    /// An executable built, then its checkout moved on (a commit, a pull) or edited: flagged, not
    /// recorded as exact; an executable built after both is not.
    #[test]
    fn a_checkout_that_changed_after_the_build_is_flagged() {
        use std::time::{Duration, SystemTime};
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("a.rs"), "fn a() {}").unwrap();
        test_support::git_repo_with(source.path(), "a.rs");
        let changed = |built| {
            code_state_from(None, source.path(), Some(built))
                .unwrap()
                .checkout_changed_after_build
        };
        // Modification times are coarse on some file systems: "later" is a second apart here.
        let second = Duration::from_secs(1);
        let later = |t: SystemTime| t + second;
        let built = later(SystemTime::now());
        assert!(!changed(built), "built after the commit");
        assert!(
            changed(SystemTime::now() - 5 * second),
            "built before the commit"
        );
        // Built, then a source edited: flagged; built after the edit: not.
        std::thread::sleep(2 * second);
        std::fs::write(source.path().join("a.rs"), "fn a() { 1; }").unwrap();
        assert!(changed(built));
        assert!(!changed(later(SystemTime::now())));
        // Built, then a new commit (the edit committed): flagged by HEAD's move alone.
        let built = later(SystemTime::now());
        std::thread::sleep(2 * second);
        test_support::git(source.path(), &["commit", "-qam", "edit"]).unwrap();
        let code = code_state_from(None, source.path(), Some(built)).unwrap();
        assert_eq!(code.git_dirty, Some(false));
        assert!(code.checkout_changed_after_build);
        // The flag reaches the record only when set, so up-to-date records keep their bytes.
        let json = serde_json::to_value(&code).unwrap();
        assert_eq!(json["checkout_changed_after_build"], true);
        let fresh = code_state_from(None, source.path(), Some(later(SystemTime::now()))).unwrap();
        assert!(serde_json::to_value(&fresh)
            .unwrap()
            .get("checkout_changed_after_build")
            .is_none());
    }
}
