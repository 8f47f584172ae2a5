//! Label Studio's JSON export into a SQuAD set, closing the loop `serve` opens: notes pre-annotated
//! with medqa's answers are corrected by annotators, exported, and become training data.
//!
//! A task's text is the context; each of its spans labelled with a concept id of the catalogue is an
//! answer to that concept's question (in the note's language where the catalogue has one); a concept
//! with no span in an annotated note is a question without an answer (SQuAD v2.0), which is what teaches
//! extraction its no-answer decisions. A task's latest annotation neither cancelled nor skipped is used.
//! A JSON-MIN export (a record per annotation) is read as the JSON export it abridges.
//! Everything that cannot become a question is in the rejects with the task and the reason.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use text::concepts::{Catalogue, QuestionLanguage};
use text::label_studio::{looks_base64, TextEncoding};
use text::label_studio_links::looks_like_link;
use text::language::{detect, primary_language};

/// How tasks are read.
#[derive(Clone, Debug)]
pub struct Options {
    /// The task data key holding the text; `None`: `text`, else the only string in the data.
    pub text_key: Option<String>,
    /// The task data key holding the note's language (detected when absent).
    pub lang_key: String,
    /// How the tasks hold their notes: the project's `<Text encoding=…>`.
    pub text_encoding: TextEncoding,
    pub question_lang: QuestionLanguage,
    /// Leave out the concepts an annotator marked nowhere in a note (no v2.0 negatives).
    pub answered_only: bool,
    /// The tasks hold links to their notes (`<Text valueType="url">`), which are fetched.
    pub fetch_notes: bool,
}

/// Gets a note from its link and task id (`text::label_studio_links`, or a stand-in in tests).
pub type FetchNote<'a> = dyn FnMut(&str, &str) -> Result<String> + 'a;

/// Something of the export that is not in the set, with where and why.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Reject {
    pub file: String,
    /// The task's id (its position from 1 when it has none).
    pub task: String,
    pub reason: String,
}

/// The set, what was left out, and counts for the record.
#[derive(Debug)]
pub struct Converted {
    pub squad: Value,
    pub rejects: Vec<Reject>,
    pub tasks: usize,
    pub questions: usize,
    pub answered: usize,
    /// Results that are not spans (choices, relations, …), by type: not answers, so only counted.
    pub other_results: BTreeMap<String, usize>,
    /// Notes fetched from their links, and the SHA-256 of them all (each task's id and note), which
    /// the export's own hash does not cover.
    pub notes_fetched: usize,
    pub notes_sha256: Option<String>,
}

/// Converts `export` (read from `file`) with the concepts of `catalogue`; notes behind links are not
/// fetched (with `opts.fetch_notes`, [`convert_with`] takes the fetcher).
pub fn convert(
    export: &Value,
    file: &Path,
    catalogue: &Catalogue,
    opts: &Options,
) -> Result<Converted> {
    convert_with(export, file, catalogue, opts, &mut |_, _| {
        bail!("notes behind links are not fetched here")
    })
}

/// [`convert`], with `fetch` getting the notes of tasks that hold links (`opts.fetch_notes`).
pub fn convert_with(
    export: &Value,
    file: &Path,
    catalogue: &Catalogue,
    opts: &Options,
    fetch: &mut FetchNote,
) -> Result<Converted> {
    let Some(tasks) = export.as_array() else {
        bail!(
            "{}: not a Label Studio JSON export (a list of tasks)",
            file.display()
        );
    };
    let from_min;
    let tasks = if is_json_min(tasks) {
        from_min = tasks_of_json_min(tasks);
        &from_min
    } else {
        tasks
    };
    let name = file.display().to_string();
    let mut out = Converted {
        squad: Value::Null,
        rejects: Vec::new(),
        tasks: 0,
        questions: 0,
        answered: 0,
        other_results: BTreeMap::new(),
        notes_fetched: 0,
        notes_sha256: None,
    };
    let mut notes_hash = Sha256::new();
    let mut articles = Vec::new();
    let mut any_unanswered = false;
    for (n, task) in tasks.iter().enumerate() {
        let id = match &task["id"] {
            Value::Number(x) => x.to_string(),
            Value::String(s) => s.clone(),
            _ => (n + 1).to_string(),
        };
        let mut reject = |reason: String| {
            out.rejects.push(Reject {
                file: name.clone(),
                task: id.clone(),
                reason,
            })
        };
        let text = match task_text(&task["data"], opts) {
            Ok(text) => text,
            Err(reason) => {
                reject(reason);
                continue;
            }
        };
        let fetched;
        let text = if opts.fetch_notes {
            match fetch(text, &id) {
                Ok(note) => {
                    for part in [id.as_bytes(), b"\0", note.as_bytes(), b"\0"] {
                        notes_hash.update(part);
                    }
                    out.notes_fetched += 1;
                    fetched = note;
                    fetched.as_str()
                }
                Err(e) => {
                    reject(format!("its note at {text:?}: {e:#}"));
                    continue;
                }
            }
        } else if looks_like_link(text) {
            reject(format!(
                "the task's text is a link ({:?}), as a project whose <Text> has valueType=\"url\" \
                 holds its notes: give --fetch-notes (with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set)",
                text.trim()
            ));
            continue;
        } else {
            text
        };
        let text = match opts.text_encoding.decode(text) {
            Ok(text) => text,
            Err(e) => {
                reject(format!("{e:#}"));
                continue;
            }
        };
        let text = text.as_str();
        let lang = match task["data"][&opts.lang_key].as_str() {
            Some(l) if !l.trim().is_empty() => primary_language(l.trim()),
            _ => match detect(text) {
                Some((l, _)) => l,
                None => {
                    reject("the note's language is not given and not recognisable".into());
                    continue;
                }
            },
        };
        let Some(annotation) = latest_annotation(task) else {
            reject("no annotation left (none, or all cancelled or skipped)".into());
            continue;
        };
        // Concept id → (start, text) of its spans, in character offsets.
        let mut spans: BTreeMap<&str, Vec<(usize, String)>> = BTreeMap::new();
        for result in annotation["result"].as_array().into_iter().flatten() {
            let kind = result["type"].as_str().unwrap_or("");
            if kind != "labels" {
                *out.other_results.entry(kind.to_owned()).or_default() += 1;
                continue;
            }
            let value = &result["value"];
            for label in value["labels"].as_array().into_iter().flatten() {
                let label = label.as_str().unwrap_or("");
                let Some(concept) = catalogue.concepts.iter().find(|c| c.id == label) else {
                    reject(format!("label '{label}' is not a concept of the catalogue"));
                    continue;
                };
                match span(text, value) {
                    Ok(found) => spans.entry(concept.id.as_str()).or_default().push(found),
                    Err(reason) if opts.text_encoding == TextEncoding::Plain && looks_base64(text) => {
                        reject(format!(
                            "'{label}': {reason}; the note looks base64-encoded, as a project whose \
                             <Text> has encoding=\"base64unicode\" holds it: give --text-encoding"
                        ))
                    }
                    Err(reason) => reject(format!("'{label}': {reason}")),
                }
            }
        }
        let mut qas = Vec::new();
        for concept in &catalogue.concepts {
            let mut answers = spans.remove(concept.id.as_str()).unwrap_or_default();
            answers.sort();
            answers.dedup();
            if answers.is_empty() && opts.answered_only {
                continue;
            }
            let (question_lang, question) = concept.question(&lang, &opts.question_lang);
            any_unanswered |= answers.is_empty();
            out.answered += usize::from(!answers.is_empty());
            qas.push(json!({
                "id": format!("{id}-{}", concept.id),
                "question": question,
                "question_lang": question_lang,
                "answers": answers
                    .iter()
                    .map(|(start, text)| json!({"text": text, "answer_start": start}))
                    .collect::<Vec<_>>(),
                "is_impossible": answers.is_empty(),
            }));
        }
        out.tasks += 1;
        out.questions += qas.len();
        articles.push(json!({
            "title": id,
            "lang": lang,
            "paragraphs": [{"context": text, "qas": qas}],
        }));
    }
    if out.notes_fetched > 0 {
        out.notes_sha256 = Some(format!("{:x}", notes_hash.finalize()));
    }
    out.squad = json!({
        "version": if any_unanswered { "v2.0" } else { "1.1" },
        "data": articles,
    });
    Ok(out)
}

/// The task's text: `data[text_key]`, or `data.text`, or the data's only string.
fn task_text<'a>(data: &'a Value, opts: &Options) -> Result<&'a str, String> {
    let strings: Vec<(&String, &str)> = data
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s)))
        .collect();
    let text = match &opts.text_key {
        Some(key) => data[key.as_str()].as_str(),
        None => data["text"].as_str().or(match strings.as_slice() {
            [(_, only)] => Some(*only),
            _ => None,
        }),
    };
    match text {
        Some(t) if !t.trim().is_empty() => Ok(t),
        Some(_) => Err("the note is empty".into()),
        None => {
            let keys: Vec<&str> = strings.iter().map(|(k, _)| k.as_str()).collect();
            Err(format!(
                "no text in the task's data (its text fields: {}); --text-key names it",
                keys.join(", ")
            ))
        }
    }
}

/// The annotation to learn from: the latest (by `updated_at`, else the last listed) neither cancelled
/// nor skipped. Label Studio before 1.0 called annotations `completions`.
fn latest_annotation(task: &Value) -> Option<&Value> {
    task.get("annotations")
        .or_else(|| task.get("completions"))?
        .as_array()?
        .iter()
        .filter(|a| a["was_cancelled"] != Value::Bool(true) && a["skipped"] != Value::Bool(true))
        .enumerate()
        .max_by(|(i, a), (j, b)| {
            let (ta, tb) = (a["updated_at"].as_str(), b["updated_at"].as_str());
            ta.cmp(&tb).then(i.cmp(j))
        })
        .map(|(_, a)| a)
}

/// The fields JSON-MIN adds to a task's data: the task id and its annotation's metadata.
const JSON_MIN_FIELDS: [&str; 7] = [
    "id",
    "annotator",
    "annotation_id",
    "created_at",
    "updated_at",
    "lead_time",
    "agreement",
];

/// How many tasks an export holds (a JSON-MIN export's records grouped by task): the length of a
/// progress bar over them.
pub fn task_count(export: &Value) -> usize {
    match export.as_array() {
        Some(records) if is_json_min(records) => tasks_of_json_min(records).len(),
        Some(tasks) => tasks.len(),
        None => 0,
    }
}

/// Whether the export is JSON-MIN (Export → JSON-MIN): a record per annotation, the task's data at the
/// top level beside each control's results under its name, without `data` and `annotations`.
fn is_json_min(tasks: &[Value]) -> bool {
    tasks.first().and_then(Value::as_object).is_some_and(|t| {
        !["data", "annotations", "completions"]
            .iter()
            .any(|k| t.contains_key(*k))
    })
}

/// JSON-MIN records as the tasks of a JSON export: the records of one task (one per annotation) become
/// its annotations, each span list (objects with `labels`) their `labels` results, the rest its data.
fn tasks_of_json_min(records: &[Value]) -> Vec<Value> {
    // (id, data, annotations) in the order tasks first appear.
    let mut tasks: Vec<(Value, Value, Vec<Value>)> = Vec::new();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for (n, record) in records.iter().enumerate() {
        let id = match &record["id"] {
            Value::Null => json!(n + 1),
            id => id.clone(),
        };
        let Some(fields) = record.as_object() else {
            tasks.push((id, Value::Null, Vec::new()));
            continue;
        };
        let mut data = serde_json::Map::new();
        let mut result = Vec::new();
        for (key, value) in fields {
            let spans = value.as_array().filter(|items| {
                !items.is_empty() && items.iter().all(|v| v.get("labels").is_some())
            });
            match spans {
                Some(spans) => result.extend(
                    spans
                        .iter()
                        .map(|v| json!({"type": "labels", "from_name": key, "value": v})),
                ),
                None if JSON_MIN_FIELDS.contains(&key.as_str()) => {}
                None => {
                    data.insert(key.clone(), value.clone());
                }
            }
        }
        let annotation = json!({"updated_at": record["updated_at"], "result": result});
        match by_id.get(&id.to_string()) {
            Some(&at) => tasks[at].2.push(annotation),
            None => {
                by_id.insert(id.to_string(), tasks.len());
                tasks.push((id, Value::Object(data), vec![annotation]));
            }
        }
    }
    tasks
        .into_iter()
        .map(|(id, data, annotations)| json!({"id": id, "data": data, "annotations": annotations}))
        .collect()
}

/// A span's (character start, text). Offsets count characters; an export whose offsets count UTF-16
/// code units (as JavaScript strings do: they differ after an emoji or another character outside the
/// Basic Multilingual Plane) is recognised by the span's own `text`.
fn span(text: &str, value: &Value) -> Result<(usize, String), String> {
    let (Some(start), Some(end)) = (value["start"].as_u64(), value["end"].as_u64()) else {
        return Err("a span without integer start and end".into());
    };
    let (start, end) = (start as usize, end as usize);
    let chars: Vec<char> = text.chars().collect();
    let by_chars =
        (start < end && end <= chars.len()).then(|| chars[start..end].iter().collect::<String>());
    let Some(annotated) = value["text"].as_str() else {
        return by_chars
            .map(|t| (start, t))
            .ok_or_else(|| format!("span {start}..{end} is outside the note"));
    };
    if by_chars.as_deref() == Some(annotated) {
        return Ok((start, annotated.to_owned()));
    }
    // UTF-16 code units → characters.
    let mut unit = 0;
    let mut at = Vec::with_capacity(chars.len() + 1);
    for c in &chars {
        at.push(unit);
        unit += c.len_utf16();
    }
    at.push(unit);
    let (Ok(s), Ok(e)) = (at.binary_search(&start), at.binary_search(&end)) else {
        return Err(format!(
            "span {start}..{end} does not hold the annotated '{annotated}'"
        ));
    };
    let by_units: String = chars[s..e.max(s)].iter().collect();
    if by_units == annotated {
        Ok((s, by_units))
    } else {
        Err(format!(
            "span {start}..{end} holds '{}', not the annotated '{annotated}'",
            by_chars.unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        toml::from_str(
            r#"
name = "t"
[[concepts]]
id = "glucose"
description = "blood glucose"
answer_type = "measurement"
questions = { en = "What was the blood glucose?", ro = "Care a fost glicemia?" }
[[concepts]]
id = "smoking"
description = "smoking status"
answer_type = "finding"
questions = { en = "Does the patient smoke?" }
"#,
        )
        .unwrap()
    }

    fn opts() -> Options {
        Options {
            text_key: None,
            lang_key: "lang".into(),
            text_encoding: TextEncoding::Plain,
            question_lang: QuestionLanguage::Document,
            answered_only: false,
            fetch_notes: false,
        }
    }

    fn labels(start: usize, end: usize, text: &str, label: &str) -> Value {
        json!({"type": "labels", "from_name": "label", "to_name": "text",
               "value": {"start": start, "end": end, "text": text, "labels": [label]}})
    }

    #[test]
    fn spans_become_answers_and_unmarked_concepts_unanswerable() {
        // "🩸" is one character and two UTF-16 code units: the second task's offsets count units.
        let text = "Glicemia 7,1 mmol/l.";
        let emoji = "🩸 Glicemia 7,1 mmol/l.";
        let export = json!([
            {"id": 11, "data": {"text": text, "lang": "ro-RO"},
             "annotations": [
                {"was_cancelled": false, "updated_at": "2026-01-02T10:00:00Z",
                 "result": [labels(9, 19, "7,1 mmol/l", "glucose"),
                            {"type": "choices", "value": {"choices": ["ok"]}}]},
                {"was_cancelled": false, "updated_at": "2026-01-01T10:00:00Z",
                 "result": [labels(0, 8, "Glicemia", "glucose")]},
                {"was_cancelled": true, "updated_at": "2026-01-03T10:00:00Z", "result": []}]},
            {"id": 12, "data": {"text": emoji, "lang": "ro"},
             "annotations": [{"result": [labels(12, 22, "7,1 mmol/l", "glucose"),
                                         labels(0, 2, "??", "glucose"),
                                         labels(0, 2, "🩸", "allergy")]}]},
            {"id": 13, "data": {"text": text}, "annotations": [{"was_cancelled": true, "result": []}]},
            {"data": {"a": "x", "b": "y"}, "annotations": []},
        ]);
        let c = convert(&export, Path::new("export.json"), &catalogue(), &opts()).unwrap();
        assert_eq!((c.tasks, c.questions, c.answered), (2, 4, 2));
        assert_eq!(c.other_results["choices"], 1);
        let data = &c.squad["data"];
        assert_eq!(c.squad["version"], "v2.0");
        assert_eq!(data[0]["lang"], "ro");
        let qas = &data[0]["paragraphs"][0]["qas"];
        assert_eq!(qas[0]["id"], "11-glucose");
        assert_eq!(qas[0]["question"], "Care a fost glicemia?");
        assert_eq!(
            qas[0]["answers"],
            json!([{"text": "7,1 mmol/l", "answer_start": 9}])
        );
        // No Romanian question for smoking: English; unmarked, so no answer.
        assert_eq!(qas[1]["question"], "Does the patient smoke?");
        assert_eq!(qas[1]["is_impossible"], true);
        let qas = &data[1]["paragraphs"][0]["qas"];
        assert_eq!(
            qas[0]["answers"],
            json!([{"text": "7,1 mmol/l", "answer_start": 11}])
        );
        let reasons: Vec<(&str, &str)> = c
            .rejects
            .iter()
            .map(|r| (r.task.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "12",
                    "'glucose': span 0..2 holds '🩸 ', not the annotated '??'"
                ),
                ("12", "label 'allergy' is not a concept of the catalogue"),
                (
                    "13",
                    "no annotation left (none, or all cancelled or skipped)"
                ),
                (
                    "4",
                    "no text in the task's data (its text fields: a, b); --text-key names it"
                ),
            ]
        );
        // Every answer is where it says in its context.
        for article in data.as_array().unwrap() {
            let p = &article["paragraphs"][0];
            let context: Vec<char> = p["context"].as_str().unwrap().chars().collect();
            for qa in p["qas"].as_array().unwrap() {
                for a in qa["answers"].as_array().unwrap() {
                    let s = a["answer_start"].as_u64().unwrap() as usize;
                    let t = a["text"].as_str().unwrap();
                    let got: String = context[s..s + t.chars().count()].iter().collect();
                    assert_eq!(got, t);
                }
            }
        }
        let answered_only = Options {
            answered_only: true,
            ..opts()
        };
        let c = convert(
            &export,
            Path::new("export.json"),
            &catalogue(),
            &answered_only,
        )
        .unwrap();
        assert_eq!((c.questions, c.squad["version"].as_str()), (2, Some("1.1")));
        assert!(convert(
            &json!({"tasks": []}),
            Path::new("x.json"),
            &catalogue(),
            &opts()
        )
        .is_err());
    }

    #[test]
    fn a_json_min_export_gives_the_set_the_json_export_gives() {
        let text = "Glicemia 7,1 mmol/l. Nefumător.";
        let span = |start: usize, end: usize, t: &str| json!({"start": start, "end": end, "text": t, "labels": ["glucose"]});
        let full = json!([
            {"id": 5, "data": {"text": text, "lang": "ro"},
             "annotations": [
                {"id": 1, "updated_at": "2026-01-01T10:00:00Z",
                 "result": [labels(0, 8, "Glicemia", "glucose")]},
                {"id": 2, "updated_at": "2026-01-02T10:00:00Z",
                 "result": [labels(9, 19, "7,1 mmol/l", "glucose")]}]},
            {"id": 6, "data": {"text": "Fumează.", "lang": "ro"},
             "annotations": [{"id": 3, "updated_at": "2026-01-01T10:00:00Z", "result": []}]},
        ]);
        // As Export → JSON-MIN writes it: a record per annotation (newest first), the data at the top,
        // the spans under the control's name, the annotation's metadata beside them.
        let min = json!([
            {"text": text, "lang": "ro", "id": 5, "label": [span(9, 19, "7,1 mmol/l")],
             "annotator": "a@clinic.ro", "annotation_id": 2, "created_at": "2026-01-02T10:00:00Z",
             "updated_at": "2026-01-02T10:00:00Z", "lead_time": 12.5},
            {"text": text, "lang": "ro", "id": 5, "label": [span(0, 8, "Glicemia")],
             "annotator": "b@clinic.ro", "annotation_id": 1, "created_at": "2026-01-01T10:00:00Z",
             "updated_at": "2026-01-01T10:00:00Z", "lead_time": 3.0},
            {"text": "Fumează.", "lang": "ro", "id": 6, "annotator": 7, "annotation_id": 3,
             "created_at": "2026-01-01T10:00:00Z", "updated_at": "2026-01-01T10:00:00Z",
             "lead_time": 1.0},
        ]);
        let convert_ =
            |export: &Value| convert(export, Path::new("e.json"), &catalogue(), &opts()).unwrap();
        let (a, b) = (convert_(&full), convert_(&min));
        assert_eq!(a.squad, b.squad);
        assert_eq!((b.tasks, b.questions, b.answered), (2, 4, 1));
        // The progress bar counts tasks, not JSON-MIN's records.
        assert_eq!((task_count(&full), task_count(&min)), (2, 2));
        assert!(b.rejects.is_empty(), "{:?}", b.rejects);
        assert_eq!(
            b.squad["data"][0]["paragraphs"][0]["qas"][0]["answers"],
            json!([{"text": "7,1 mmol/l", "answer_start": 9}])
        );
        // Label Studio before 1.0 named annotations `completions`; a skipped one is not learnt from.
        let old = json!([
            {"id": 5, "data": {"text": text, "lang": "ro"},
             "completions": [
                {"updated_at": "2026-01-01T10:00:00Z", "result": [labels(9, 19, "7,1 mmol/l", "glucose")]},
                {"updated_at": "2026-01-03T10:00:00Z", "skipped": true, "result": []}]},
        ]);
        let c = convert_(&old);
        assert_eq!((c.tasks, c.answered), (1, 1));
    }

    #[test]
    fn notes_a_project_holds_in_base64_are_decoded_or_named() {
        // A project whose <Text> has encoding="base64unicode": the task holds the note encoded, the
        // offsets count the decoded note's characters.
        let export = json!([
            {"id": 1, "data": {"text": "R2xpY2VtaWEgNywxIG1tb2wvbC4=", "lang": "ro"},
             "annotations": [{"result": [labels(9, 19, "7,1 mmol/l", "glucose")]}]},
            {"id": 2, "data": {"text": "not base64!", "lang": "ro"},
             "annotations": [{"result": []}]},
        ]);
        let decoded = Options {
            text_encoding: TextEncoding::Base64Unicode,
            ..opts()
        };
        let c = convert(&export, Path::new("e.json"), &catalogue(), &decoded).unwrap();
        let p = &c.squad["data"][0]["paragraphs"][0];
        assert_eq!(p["context"], "Glicemia 7,1 mmol/l.");
        assert_eq!(
            p["qas"][0]["answers"],
            json!([{"text": "7,1 mmol/l", "answer_start": 9}])
        );
        assert_eq!(c.rejects.len(), 1);
        assert!(
            c.rejects[0].task == "2" && c.rejects[0].reason.contains("not base64"),
            "{:?}",
            c.rejects
        );
        // Read as plain text, the span does not fit, and the reject says why.
        let c = convert(&export, Path::new("e.json"), &catalogue(), &opts()).unwrap();
        assert!(
            c.rejects[0].reason.contains("looks base64-encoded")
                && c.rejects[0].reason.contains("--text-encoding"),
            "{:?}",
            c.rejects
        );
    }

    #[test]
    fn notes_behind_links_are_fetched_or_named() {
        // A project whose <Text> has valueType="url": the task holds the link, the spans (without their
        // text: saveTextResult's default there) count the fetched note's characters.
        let export = json!([
            {"id": 1, "data": {"text": "/data/upload/1/a.txt", "lang": "ro"},
             "annotations": [{"result": [{"type": "labels", "from_name": "label", "to_name": "text",
                 "value": {"start": 9, "end": 19, "labels": ["glucose"]}}]}]},
            {"id": 2, "data": {"text": "s3://notes/gone.txt", "lang": "ro"},
             "annotations": [{"result": []}]},
        ]);
        let fetching = Options {
            fetch_notes: true,
            ..opts()
        };
        let mut asked = Vec::new();
        let mut fetch = |link: &str, task: &str| {
            asked.push(format!("{task} {link}"));
            match link {
                "/data/upload/1/a.txt" => Ok("Glicemia 7,1 mmol/l.".to_owned()),
                _ => bail!("http://ls/tasks/2/presign/ answered 404 Not Found"),
            }
        };
        let c = convert_with(
            &export,
            Path::new("e.json"),
            &catalogue(),
            &fetching,
            &mut fetch,
        )
        .unwrap();
        assert_eq!(asked, ["1 /data/upload/1/a.txt", "2 s3://notes/gone.txt"]);
        let p = &c.squad["data"][0]["paragraphs"][0];
        assert_eq!(p["context"], "Glicemia 7,1 mmol/l.");
        assert_eq!(
            p["qas"][0]["answers"],
            json!([{"text": "7,1 mmol/l", "answer_start": 9}])
        );
        assert_eq!(c.notes_fetched, 1);
        let mut h = Sha256::new();
        h.update(b"1\0Glicemia 7,1 mmol/l.\0");
        assert_eq!(c.notes_sha256, Some(format!("{:x}", h.finalize())));
        assert_eq!(c.rejects.len(), 1);
        assert!(
            c.rejects[0].task == "2" && c.rejects[0].reason.contains("answered 404"),
            "{:?}",
            c.rejects
        );
        // Without --fetch-notes, a link is not taken for the note: before, its characters were the
        // context and the span 9..19 of "/data/upload/1/a.txt" an answer.
        let c = convert(&export, Path::new("e.json"), &catalogue(), &opts()).unwrap();
        assert_eq!((c.tasks, c.rejects.len(), c.notes_fetched), (0, 2, 0));
        assert!(
            c.rejects
                .iter()
                .all(|r| r.reason.contains("valueType=\"url\"")
                    && r.reason.contains("--fetch-notes")),
            "{:?}",
            c.rejects
        );
    }
}
