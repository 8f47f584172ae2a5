//! Files: writing so that a crash leaves either the old file or the new one, never half of one;
//! hashing them for run manifests and evaluation history; and the provenance record of an output
//! (`provenance`); the lock that keeps one process at a time in an output directory (`lock`); and the
//! byte-order marks Windows tools put before a file's text (`bom`).

pub mod bom;
pub mod lock;
pub mod provenance;

use std::io::{BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Writes through `fill` into a temporary file beside `path`, syncs it, and renames it over `path`.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    // The permissions a plain `File::create` gives: an existing file's kept, a new one 0666 less the
    // umask (tempfile's own 0600 would leave models and tables unreadable to the rest of a research
    // group sharing a server, or to a service running as another user).
    let tmp = tempfile::Builder::new()
        .permissions(default_permissions())
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    if let Ok(existing) = std::fs::metadata(path) {
        tmp.as_file()
            .set_permissions(existing.permissions())
            .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    }
    {
        let mut w = BufWriter::new(tmp.as_file());
        fill(&mut w).with_context(|| format!("cannot write {}", path.display()))?;
        w.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot move the new {} into place", path.display()))?;
    // The rename is durable only once the directory entry is.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Gives `path`, just written by a library whose temporary files are 0600 (safetensors'
/// `serialize_to_file`), the permissions [`write_atomic`] would: `previous` (those of the file it
/// replaced, read before writing), else what a new file gets in its directory (0666 less the umask,
/// read off a probe file, since a chmod is not masked).
pub fn give_created_permissions(path: &Path, previous: Option<std::fs::Permissions>) -> Result<()> {
    let permissions = match previous {
        Some(p) => p,
        None => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            tempfile::Builder::new()
                .permissions(default_permissions())
                .tempfile_in(dir)
                .and_then(|probe| probe.as_file().metadata())
                .with_context(|| format!("cannot create a file in {}", dir.display()))?
                .permissions()
        }
    };
    std::fs::set_permissions(path, permissions)
        .with_context(|| format!("cannot set the permissions of {}", path.display()))
}

/// 0666 at creation: the umask then applies, as it does to `File::create` (a later chmod would not
/// apply it).
fn default_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

/// `value` as pretty JSON with a final newline, written atomically (manifests, settings, reports).
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .with_context(|| format!("cannot serialise {}", path.display()))?
        + "\n";
    write_atomic(path, |w| w.write_all(text.as_bytes()))
}

/// `items` as JSON Lines (one compact value per line), written atomically (rejects reports, QA records).
pub fn write_json_lines<T: serde::Serialize>(
    path: &Path,
    items: impl IntoIterator<Item = T>,
) -> Result<()> {
    let mut text = String::new();
    for item in items {
        text += &serde_json::to_string(&item)
            .with_context(|| format!("cannot serialise a line of {}", path.display()))?;
        text.push('\n');
    }
    write_atomic(path, |w| w.write_all(text.as_bytes()))
}

/// Checks, before any long work, that `path` can be written later: its directory exists or can be
/// created, a file can be made in it, and `path` itself is not a directory. Creates the directory.
pub fn check_output_file(path: &Path) -> Result<()> {
    if path.is_dir() {
        anyhow::bail!("output {} is a directory, not a file", path.display());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    check_output_dir(dir).with_context(|| format!("cannot write output {}", path.display()))
}

/// Checks, before any long work, that files can be written in `dir` (created if missing).
pub fn check_output_dir(dir: &Path) -> Result<()> {
    if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
        anyhow::bail!(
            "output directory {}: {} is a file",
            dir.display(),
            file.display()
        );
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("directory {} is not writable", dir.display()))?;
    Ok(())
}

/// medqa's download cache: `$MEDQA_CACHE`, else `$XDG_CACHE_HOME/medqa`, else `~/.cache/medqa`.
pub fn cache_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("MEDQA_CACHE") {
        return dir.into();
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("medqa")
}

/// SHA-256 of a file's bytes as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    hash_file_into(&mut h, path)?;
    Ok(format!("{:x}", h.finalize()))
}

/// SHA-256 of files' bytes one after the other, as `cat FILES | sha256sum` prints it (a sharded
/// checkpoint's weights, in shard order); of one file, its [`sha256_file`].
pub fn sha256_concatenated(files: &[std::path::PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    for file in files {
        hash_file_into(&mut h, file)?;
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Feeds a file's bytes into `hasher` in 1 MiB pieces; returns how many there were.
pub fn hash_file_into(hasher: &mut Sha256, path: &Path) -> Result<u64> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(bytes);
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_hold_one_compact_value_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/rows.jsonl");
        let rows = [
            serde_json::json!({"a": 1, "b": "x\ny"}),
            serde_json::json!([2]),
        ];
        write_json_lines(&path, &rows).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1,\"b\":\"x\\ny\"}\n[2]\n"
        );
        write_json_lines(&path, Vec::<u8>::new()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn written_files_get_file_creates_permissions_and_keep_an_existing_files() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // What `File::create` gives here (0666 less this process's umask), not tempfile's 0600.
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let path = dir.path().join("new.json");
        write_atomic(&path, |w| w.write_all(b"{}")).unwrap();
        assert_eq!(mode(&path), mode(&plain));
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .map(|u| u32::from_str_radix(u.trim(), 8).unwrap())
            });
        if let Some(umask) = umask {
            assert_eq!(mode(&path), 0o666 & !umask);
        }
        // A file its owner restricted (or opened up) keeps that when rewritten.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, |w| w.write_all(b"[]")).unwrap();
        assert_eq!(mode(&path), 0o640);
        assert_eq!(std::fs::read(&path).unwrap(), b"[]");
        // A file another library wrote 0600: given the same, new or replacing.
        let other = dir.path().join("other.bin");
        std::fs::write(&other, b"x").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        give_created_permissions(&other, None).unwrap();
        assert_eq!(mode(&other), mode(&plain));
        give_created_permissions(&other, Some(std::fs::Permissions::from_mode(0o604))).unwrap();
        assert_eq!(mode(&other), 0o604);
    }

    #[test]
    fn sha256_of_a_file_matches_the_standard_vector_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.txt");
        write_atomic(&path, |w| w.write_all(b"abc")).unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = sha256_file(&dir.path().join("absent")).unwrap_err();
        assert!(format!("{err:#}").contains("absent"), "{err:#}");
    }

    #[test]
    fn output_checks_create_directories_and_refuse_files_and_directories_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        check_output_file(&dir.path().join("a/b/out.json")).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        let err = check_output_file(&dir.path().join("a")).unwrap_err();
        assert!(format!("{err:#}").contains("is a directory"), "{err:#}");
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let err = check_output_file(&dir.path().join("f/out.json")).unwrap_err();
        assert!(format!("{err:#}").contains("is a file"), "{err:#}");
        let err = check_output_dir(&dir.path().join("f")).unwrap_err();
        assert!(format!("{err:#}").contains("is a file"), "{err:#}");
        let err = check_output_dir(&dir.path().join("f/g/h")).unwrap_err();
        assert!(format!("{err:#}").contains("f is a file"), "{err:#}");
    }
}
