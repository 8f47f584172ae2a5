//! Run configurations: a TOML file, overridden key by key from the command line (`--set a.b=value`).
//! The resolved configuration is what a run records in its manifest.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;

/// Reads `file` (if any), applies `overrides` (`dotted.key=TOML value`; a bare word is a string),
/// and deserializes; returns the typed config and the resolved tree as JSON.
pub fn load<T: DeserializeOwned>(
    file: Option<&Path>,
    overrides: &[String],
) -> Result<(T, serde_json::Value)> {
    load_with_defaults(file, &[], overrides)
}

/// [`load`], with `defaults` (`dotted.key`, TOML value) set where neither the file nor an override
/// sets the key: a binary's own defaults for settings its configuration type shares with others
/// (QA picks its best checkpoint by F1, MLM by loss). They are in the resolved tree.
pub fn load_with_defaults<T: DeserializeOwned>(
    file: Option<&Path>,
    defaults: &[(&str, &str)],
    overrides: &[String],
) -> Result<(T, serde_json::Value)> {
    let mut root = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read config {}", f.display()))?;
            text.parse::<toml::Table>()
                .with_context(|| format!("{} is not valid TOML", f.display()))?
        }
        None => toml::Table::new(),
    };
    for o in overrides {
        let Some((key, raw)) = o.split_once('=') else {
            bail!("override '{o}' is not KEY=VALUE");
        };
        let value = parse_value(raw.trim());
        set(&mut root, key.trim(), value)
            .with_context(|| format!("cannot apply override '{o}'"))?;
    }
    for (key, raw) in defaults {
        if !has(&root, key) {
            set(&mut root, key, parse_value(raw))
                .with_context(|| format!("cannot apply the default {key} = {raw}"))?;
        }
    }
    let what = file
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "the command line".to_owned());
    let typed: T = toml::Value::Table(root.clone())
        .try_into()
        .with_context(|| format!("invalid configuration in {what} (after overrides)"))?;
    let json = serde_json::to_value(&root)?;
    Ok((typed, json))
}

fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// Whether the dotted `key` is set in `root`.
fn has(root: &toml::Table, key: &str) -> bool {
    let mut parts = key.split('.').peekable();
    let mut table = root;
    while let Some(p) = parts.next() {
        match (table.get(p), parts.peek()) {
            (Some(_), None) => return true,
            (Some(toml::Value::Table(t)), Some(_)) => table = t,
            _ => return false,
        }
    }
    false
}

fn set(root: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().filter(|k| !k.is_empty()).context("empty key")?;
    let mut table = root;
    for p in parts {
        let entry = table
            .entry(p.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .with_context(|| format!("'{p}' is not a table"))?;
    }
    table.insert(last.to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        name: String,
        train: Train,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Train {
        lr: f64,
        steps: u64,
    }

    #[test]
    fn overrides_replace_and_add_keys() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "name = \"a\"\n[train]\nlr = 0.1\nsteps = 3\n").unwrap();
        let sets = ["train.lr=2e-5".to_owned(), "name=demo".to_owned()];
        let (c, json): (Cfg, _) = load(Some(&f), &sets).unwrap();
        assert_eq!(
            (c.name.as_str(), c.train.lr, c.train.steps),
            ("demo", 2e-5, 3)
        );
        assert_eq!(json["train"]["lr"], serde_json::json!(2e-5));
        let err = load::<Cfg>(Some(&f), &["train.typo=1".to_owned()]).unwrap_err();
        assert!(format!("{err:#}").contains("typo"), "{err:#}");
    }

    #[test]
    fn defaults_fill_only_keys_that_neither_the_file_nor_an_override_sets() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[train]
lr = 0.1
",
        )
        .unwrap();
        let defaults = [
            ("name", "\"default\""),
            ("train.lr", "9.0"),
            ("train.steps", "7"),
        ];
        let (c, json): (Cfg, _) = load_with_defaults(Some(&f), &defaults, &[]).unwrap();
        assert_eq!(
            (c.name.as_str(), c.train.lr, c.train.steps),
            ("default", 0.1, 7)
        );
        assert_eq!(json["train"]["steps"], serde_json::json!(7));
        let sets = ["train.steps=2".to_owned(), "name=set".to_owned()];
        let (c, _): (Cfg, _) = load_with_defaults(Some(&f), &defaults, &sets).unwrap();
        assert_eq!((c.name.as_str(), c.train.steps), ("set", 2));
    }
}
