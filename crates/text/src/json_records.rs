//! JSON files of records as `datasets`' "json" loader reads a file that is not JSON Lines: an array of
//! objects, or an object that holds that array (its `data` member, `datasets`' `field="data"`, or its
//! only array). extract's documents and data-prep's corpus sources read them alike.

use std::path::Path;

use anyhow::{bail, Result};

/// The records of a JSON file: the array itself, or an object's `data` array (SQuAD's and
/// many exports' layout, `datasets`' `field="data"`), or its only array member.
pub fn records<'v>(value: &'v serde_json::Value, path: &Path) -> Result<&'v [serde_json::Value]> {
    match value {
        serde_json::Value::Array(records) => Ok(records),
        serde_json::Value::Object(members) => {
            if let Some(serde_json::Value::Array(records)) = members.get("data") {
                return Ok(records);
            }
            let arrays: Vec<&String> = members
                .iter()
                .filter(|(_, v)| v.is_array())
                .map(|(k, _)| k)
                .collect();
            match arrays.as_slice() {
                [one] => Ok(members[one.as_str()].as_array().map_or(&[], Vec::as_slice)),
                [] => bail!(
                    "{}: a JSON object without an array of records (members: {})",
                    path.display(),
                    members.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                several => bail!(
                    "{}: which of the arrays {} holds the records? Give a JSON array, or name it \"data\"",
                    path.display(),
                    several.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        other => bail!(
            "{}: records as JSON are an array of objects, not {}",
            path.display(),
            crate::qa::data::kind_of(other)
        ),
    }
}
