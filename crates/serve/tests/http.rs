//! The `serve` binary over real HTTP on the loopback, with the tiny fixture QA model: the JSON API,
//! the Label Studio protocol, every limit and malformed input answered with a 4xx JSON error,
//! concurrent requests (batched together) answered as one at a time, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use test_support::root;

const BIN: &str = env!("CARGO_BIN_EXE_serve");

/// The fixture checkpoint with a (random) QA head, the fixture tokenizer and window settings.
fn qa_model(dir: &Path) -> PathBuf {
    let settings = json!({"max_seq_length": 48, "doc_stride": 16, "max_query_length": 12,
        "postprocess": {"n_best_size": 10, "max_answer_length": 8, "version_2_with_negative": false,
                        "null_score_diff_threshold": 0.0}});
    test_support::fixture_qa_model(dir, "tiny-h40-l3", &settings.to_string())
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_with(&qa_model(dir), extra)
    }

    fn start_with(model: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(model, extra, &[])
    }

    fn start_with_env(model: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .env_remove("LABEL_STUDIO_URL")
            .env_remove("LABEL_STUDIO_HOST")
            .env_remove("LABEL_STUDIO_API_KEY")
            .env_remove("LABEL_STUDIO_ACCESS_TOKEN")
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE")
            .env_remove("SSL_CERT_FILE")
            .envs(env.iter().copied())
            .arg("--model")
            .arg(model)
            .args([
                "--concepts",
                root()
                    .join("configs/concepts-stroke.toml")
                    .to_str()
                    .unwrap(),
            ])
            .args(["--listen", "127.0.0.1:0", "--device", "cpu"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("serving on ")
            .unwrap_or_else(|| panic!("no address: {line:?}"))
            .to_owned();
        Self { child, base: addr }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut r = Self::agent()
            .get(&format!("{}{path}", self.base))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap(),
        )
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let mut r = Self::agent()
            .post(&format!("{}{path}", self.base))
            .content_type("application/json")
            .send(body)
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap(),
        )
    }

    fn stop(mut self) -> std::process::ExitStatus {
        // SIGTERM: the graceful path.
        Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A test that fails leaves no server behind (it would hold the test's output open).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const NOTE: &str =
    "Pacientul, 72 de ani, NIHSS 12. Tratament la externare: apixaban 5 mg de două ori pe zi.";

fn chars(text: &str, start: u64, end: u64) -> String {
    text.chars()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect()
}

#[test]
fn the_json_api_answers_with_offsets_into_the_text_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &[]);
    let (status, health) = server.get("/health");
    assert_eq!((status, health["status"].as_str()), (200, Some("UP")));
    let (_, info) = server.get("/model");
    assert_eq!(info["model"]["hidden_size"], 40);
    assert_eq!(info["model"]["settings_from"], "medqa_json");
    assert_eq!(info["model"]["doc_stride"], 16);
    assert_eq!(info["catalogue"]["concepts"].as_array().unwrap().len(), 34);
    // Which weights answer, as hashlib hashes them, and where the service came from.
    let weights = tmp.path().join("qa-model/model.safetensors");
    assert_eq!(
        info["model"]["weights_sha256"],
        test_support::python_sha256(&[weights])[0].as_str()
    );
    let provenance = &info["model"]["provenance"];
    assert_eq!(provenance["tool"], "medqa-serve");
    assert_eq!(
        provenance["inputs"].as_array().unwrap().len(),
        4,
        "config, weights, tokenizer, medqa.json: {provenance}"
    );
    let (_, spec) = server.get("/openapi.json");
    assert_eq!(spec["openapi"], "3.0.3");
    for path in [
        "/qa", "/extract", "/setup", "/predict", "/webhook", "/train",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} not in openapi.json"
        );
    }

    let (status, qa) = server.post(
        "/qa",
        &json!({"context": NOTE, "questions": ["Ce anticoagulant?", "Câți ani?"], "lang": "ro"})
            .to_string(),
    );
    assert_eq!(status, 200, "{qa}");
    let answers = qa["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2);
    for a in answers {
        if let (Some(s), Some(e)) = (a["start"].as_u64(), a["end"].as_u64()) {
            assert_eq!(chars(NOTE, s, e), a["text"].as_str().unwrap(), "{a}");
        }
    }

    let (status, ex) = server.post("/extract", &json!({"text": NOTE, "id": "n1"}).to_string());
    assert_eq!(status, 200, "{ex}");
    assert_eq!(
        (ex["id"].as_str(), ex["lang"].as_str()),
        (Some("n1"), Some("ro"))
    );
    assert_eq!(ex["lang_source"], "detected");
    let rows = ex["extractions"].as_array().unwrap();
    assert_eq!(rows.len(), 34);
    for r in rows {
        if let (Some(s), Some(e)) = (r["start"].as_u64(), r["end"].as_u64()) {
            assert_eq!(chars(NOTE, s, e), r["candidate"].as_str().unwrap());
        }
        assert!(r["links"].is_null(), "no index loaded");
    }
    assert!(server.stop().success());
}

#[test]
fn bad_input_gets_a_json_4xx_and_limits_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        &[
            "--max-body-bytes",
            "2000",
            "--max-text-chars",
            "300",
            "--max-items",
            "3",
            "--lang-key",
            "language",
        ],
    );
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/qa", "{not json".into(), 400, "JSON"),
        ("/qa", json!({"context": 5, "question": "x"}).to_string(), 422, "invalid type"),
        ("/qa", json!({"context": "abc"}).to_string(), 400, "question"),
        ("/qa", json!({"context": "abc", "question": "x", "colour": 1}).to_string(), 422, "colour"),
        ("/qa", json!({"context": "abc", "questions": ["a", "b", "c", "d"]}).to_string(), 413, "at most 3"),
        ("/qa", json!({"context": "x".repeat(301), "question": "q"}).to_string(), 413, "at most 300"),
        ("/qa", json!({"context": "x".repeat(2500), "question": "q"}).to_string(), 413, ""),
        ("/extract", json!({"text": "   "}).to_string(), 400, "empty"),
        ("/extract", json!({"text": "12 34 56", }).to_string(), 400, "language"),
        ("/predict", json!({"tasks": []}).to_string(), 400, "label_config"),
        ("/predict", json!({"tasks": [{"data": {}}], "label_config": "<View><Labels name=\"l\" toName=\"t\"><Label value=\"glucose\"/></Labels><Text name=\"t\" value=\"$text\"/></View>"}).to_string(), 400, "data.text"),
        ("/setup", json!({"schema": "<View>"}).to_string(), 400, "Labels"),
        ("/inception/predict", json!({"metadata": {"layer": "a.B", "feature": "value"}, "document": {}}).to_string(), 400, "document.xmi"),
        ("/predict", json!({"metadata": {"layer": "a.B", "feature": "value"}, "document": {"xmi": "<x"}}).to_string(), 400, "not XML"),
        ("/webhook", json!({"action": "START_TRAINING", "project": {"id": 1}}).to_string(), 501, "data-prep labelstudio"),
        ("/train", json!({"annotations": [], "project": "1"}).to_string(), 501, "qa-finetune"),
        ("/inception/train", json!({"metadata": {}, "documents": []}).to_string(), 501, "does not train"),
    ];
    for (path, body, want, needle) in cases {
        let (status, err) = server.post(path, &body);
        let message = err["error"].as_str().unwrap_or_default();
        assert_eq!(status, want, "{path} {body:.80}: {err}");
        assert!(message.contains(needle), "{path}: {message}");
    }
    let mut r = Server::agent()
        .post(&format!("{}/qa", server.base))
        .content_type("text/plain")
        .send("{}")
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert!(
        serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap()).unwrap()["error"]
            .is_string()
    );
    // The language of a note that cannot be told is read from the key --lang-key names.
    let config = r#"<View><Labels name="l" toName="t"><Label value="age"/></Labels><Text name="t" value="$text"/></View>"#;
    let (status, answered) = server.post(
        "/predict",
        &json!({"tasks": [{"data": {"text": "12 34 56", "language": "ro"}}], "label_config": config})
            .to_string(),
    );
    assert_eq!(status, 200, "{answered}");
    assert_eq!(server.get("/nope").0, 404);
    // The server is still there after all of that.
    assert_eq!(server.get("/health").0, 200);
    assert!(server.stop().success());
}

#[test]
fn label_studio_gets_span_pre_annotations_and_links_come_with_extractions() {
    let tmp = tempfile::tempdir().unwrap();
    let terms: link::TermSource = format!(
        "{}:name=stroke-sample",
        root().join("data/sample/terms/stroke-values.csv").display()
    )
    .parse()
    .unwrap();
    let (concepts, _) = link::terms::read_all(std::slice::from_ref(&terms)).unwrap();
    let index = tmp.path().join("index");
    link::Index::build(concepts, Vec::new(), 3)
        .save(&index, &[])
        .unwrap();
    let server = Server::start(
        tmp.path(),
        &[
            "--link-index",
            index.to_str().unwrap(),
            "--link-min-score",
            "0.3",
            "--min-probability",
            "0",
        ],
    );
    let config = r#"<View><Labels name="concept" toName="note"><Label value="anticoagulant"/><Label value="age"/><Label value="nihss_admission"/></Labels><Text name="note" value="$report"/></View>"#;
    let (status, setup) = server.post(
        "/setup",
        &json!({"project": "1", "schema": config}).to_string(),
    );
    assert_eq!(status, 200);
    let version = setup["model_version"].as_str().unwrap().to_owned();
    let (_, info) = server.get("/model");
    let sha = info["model"]["weights_sha256"].as_str().unwrap();
    assert!(
        version.starts_with("medqa-") && version.ends_with(&format!(":qa-model@{}", &sha[..12])),
        "{version}"
    );
    let other = "NIHSS score on admission was 7. Discharged on dabigatran 150 mg twice daily.";
    let body = json!({"tasks": [{"id": 1, "data": {"report": NOTE, "lang": "ro"}},
                                {"id": 2, "data": {"report": other}}],
                      "label_config": config, "project": "1", "params": {}});
    let (status, pred) = server.post("/predict", &body.to_string());
    assert_eq!(status, 200, "{pred}");
    assert_eq!(pred["model_version"], version);
    let results = pred["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let spans: usize = results
        .iter()
        .map(|r| r["result"].as_array().unwrap().len())
        .sum();
    assert!(
        spans >= 2,
        "every answer is accepted at --min-probability 0: {pred}"
    );
    for (result, text) in results.iter().zip([NOTE, other]) {
        for span in result["result"].as_array().unwrap() {
            assert_eq!(
                (span["from_name"].as_str(), span["to_name"].as_str()),
                (Some("concept"), Some("note"))
            );
            assert_eq!(span["type"], "labels");
            let label = span["value"]["labels"][0].as_str().unwrap();
            assert!(
                ["anticoagulant", "age", "nihss_admission"].contains(&label),
                "{label}"
            );
            let v = &span["value"];
            assert_eq!(
                chars(
                    text,
                    v["start"].as_u64().unwrap(),
                    v["end"].as_u64().unwrap()
                ),
                v["text"].as_str().unwrap()
            );
        }
    }
    // The same note sent base64-encoded (`<Text encoding="base64unicode">`) gets the same spans, with
    // offsets into the decoded note, as Label Studio's editor counts them.
    let encoded_config = config.replace(
        r#"value="$report"/>"#,
        r#"value="$report" encoding="base64unicode"/>"#,
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(NOTE);
    let body = json!({"tasks": [{"id": 1, "data": {"report": encoded, "lang": "ro"}}],
                      "label_config": encoded_config, "project": "1", "params": {}});
    let (status, again) = server.post("/predict", &body.to_string());
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["results"][0], results[0]);
    // A note whose language cannot be told (numbers only) needs it under data.lang (by default: the
    // bad-input test names another key).
    let numbers = json!({"tasks": [{"data": {"report": "12 34 56", "language": "ro"}}],
                         "label_config": config});
    let (status, refused) = server.post("/predict", &numbers.to_string());
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("data.lang (serve --lang-key"),
        "{refused}"
    );
    // A configuration Label Studio would not take is refused at set-up.
    let (status, refused) = server.post(
        "/setup",
        &json!({"schema": config.replace(r#"value="$report"/>"#, r#"value="$report" valueType="html"/>"#)})
            .to_string(),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("valueType"),
        "{refused}"
    );
    let (_, ex) = server.post("/extract", &json!({"text": NOTE, "lang": "ro"}).to_string());
    let rows = ex["extractions"].as_array().unwrap();
    assert!(rows
        .iter()
        .all(|r| r["links"].is_array() || r["answer"].is_null()));
    assert!(server.stop().success());
}

#[test]
fn label_studio_notes_behind_links_are_fetched_as_the_editor_fetches_them() {
    let tmp = tempfile::tempdir().unwrap();
    let model = qa_model(tmp.path());
    let other = "NIHSS score on admission was 7. Discharged on dabigatran 150 mg twice daily.";
    let ls = test_support::FakeLabelStudio::start(NOTE, other);
    let inline = r#"<View><Labels name="concept" toName="note"><Label value="anticoagulant"/><Label value="age"/><Label value="nihss_admission"/></Labels><Text name="note" value="$report"/></View>"#;
    let linked = inline.replace(
        r#"value="$report"/>"#,
        r#"value="$report" valueType="url"/>"#,
    );
    let tasks = |first: &str, second: &str| {
        json!([{"id": 1, "data": {"report": first, "lang": "ro"}},
               {"id": 2, "data": {"report": second, "lang": "en"}}])
    };
    let predict = |server: &Server, config: &str, tasks: Value, project: &str| {
        server.post(
            "/predict",
            &json!({"tasks": tasks, "label_config": config, "project": project}).to_string(),
        )
    };
    // Label Studio's address and token where serve runs, as the SDK reads them.
    let server = Server::start_with_env(
        &model,
        &["--min-probability", "0"],
        &[
            ("LABEL_STUDIO_URL", &ls.base),
            ("LABEL_STUDIO_API_KEY", "secret"),
        ],
    );
    let (status, want) = predict(&server, inline, tasks(NOTE, other), "1.1");
    assert_eq!(status, 200, "{want}");
    let (status, got) = predict(
        &server,
        &linked,
        tasks("/data/upload/1/note.txt", "s3://notes/other.txt"),
        "1.1",
    );
    assert_eq!(status, 200, "{got}");
    // The same spans as for the notes sent inline, without their text (the editor's saveTextResult
    // default for linked texts keeps notes out of Label Studio's database).
    let mut spans = 0;
    for (want, got) in want["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(got["results"].as_array().unwrap())
    {
        let (want, got) = (
            want["result"].as_array().unwrap(),
            got["result"].as_array().unwrap(),
        );
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(got) {
            let mut w = w.clone();
            w["value"].as_object_mut().unwrap().remove("text");
            assert_eq!(&w, g);
            spans += 1;
        }
    }
    assert!(spans >= 2, "{got}");
    let token = Some("Token secret".to_owned());
    assert_eq!(
        ls.seen(),
        [
            (
                "/storage-data/uploaded/?filepath=upload%2F1%2Fnote.txt".to_owned(),
                token.clone()
            ),
            ("/data/upload/1/note.txt".to_owned(), token.clone()),
            (
                "/tasks/2/presign/?fileuri=s3%3A%2F%2Fnotes%2Fother.txt".to_owned(),
                token
            ),
            ("/bucket/other.txt".to_owned(), None),
        ]
    );
    // A value that is not a link is a 400 that names the likely cause.
    let (status, refused) = predict(&server, &linked, tasks(NOTE, other), "1.1");
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("task 0: its note's link"),
        "{refused}"
    );
    assert!(server.stop().success());

    // Without the environment: what Label Studio sent to /setup, per project.
    let server = Server::start_with(&model, &["--min-probability", "0"]);
    for (project, token) in [("1.1", "secret"), ("2.1", "expired")] {
        let (status, setup) = server.post(
            "/setup",
            &json!({"project": project, "schema": linked, "hostname": ls.base, "access_token": token})
                .to_string(),
        );
        assert_eq!(status, 200, "{setup}");
    }
    let links = || tasks("/data/upload/1/note.txt", "s3://notes/other.txt");
    let (status, again) = predict(&server, &linked, links(), "1.1");
    assert_eq!((status, &again["results"]), (200, &got["results"]));
    let (status, refused) = predict(&server, &linked, links(), "2.1");
    assert_eq!(status, 502, "{refused}");
    let why = refused["error"].as_str().unwrap();
    assert!(
        why.contains("answered 401") && why.contains("LABEL_STUDIO_API_KEY"),
        "{why}"
    );
    let (status, refused) = predict(&server, &linked, links(), "3.1");
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("LABEL_STUDIO_URL"),
        "{refused}"
    );
    assert!(server.stop().success());
}

#[test]
fn notes_behind_a_label_studio_with_its_own_authority_are_fetched_once_its_certificate_is_trusted()
{
    let tmp = tempfile::tempdir().unwrap();
    let model = qa_model(tmp.path());
    let other = "NIHSS score on admission was 7. Discharged on dabigatran 150 mg twice daily.";
    let ls = test_support::FakeLabelStudio::start_tls(NOTE, other);
    let ca = tmp.path().join("hospital-ca.pem");
    std::fs::write(&ca, ls.ca_pem.as_ref().unwrap()).unwrap();
    let config = r#"<View><Labels name="concept" toName="note"><Label value="anticoagulant"/><Label value="age"/></Labels><Text name="note" value="$report" valueType="url"/></View>"#;
    let request = json!({"label_config": config, "project": "1.1", "tasks": [
        {"id": 1, "data": {"report": "/data/upload/1/note.txt", "lang": "ro"}},
        {"id": 2, "data": {"report": "s3://notes/other.txt", "lang": "en"}}]})
    .to_string();
    let ls_env = [
        ("LABEL_STUDIO_URL", ls.base.as_str()),
        ("LABEL_STUDIO_API_KEY", "secret"),
    ];
    // Mozilla's roots alone: a 502 that says how to trust the hospital's authority.
    let server = Server::start_with_env(&model, &["--min-probability", "0"], &ls_env);
    let (status, refused) = server.post("/predict", &request);
    assert_eq!(status, 502, "{refused}");
    let why = refused["error"].as_str().unwrap();
    assert!(why.contains("REQUESTS_CA_BUNDLE"), "{why}");
    assert!(server.stop().success());
    // With its certificate trusted, as OpenSSL's variable names it: both notes, over HTTPS.
    let trusted = [
        ls_env.as_slice(),
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    ]
    .concat();
    let server = Server::start_with_env(&model, &["--min-probability", "0"], &trusted);
    let (status, got) = server.post("/predict", &request);
    assert_eq!(status, 200, "{got}");
    let results = got["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let spans: usize = results
        .iter()
        .map(|r| r["result"].as_array().unwrap().len())
        .sum();
    assert!(spans >= 2, "{got}");
    assert_eq!(
        ls.seen().last().unwrap(),
        &("/bucket/other.txt".to_owned(), None)
    );
    assert!(server.stop().success());
    // A certificate file that holds none stops serve at its start, naming the variable and the file.
    let empty = tmp.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let o = Command::new(BIN)
        .env("REQUESTS_CA_BUNDLE", &empty)
        .arg("--model")
        .arg(&model)
        .args(["--listen", "127.0.0.1:0", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("REQUESTS_CA_BUNDLE=") && stderr.contains("empty.pem"),
        "{stderr}"
    );
}

#[test]
fn concurrent_requests_are_answered_as_one_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &[]);
    let bodies: Vec<String> = (0..12)
        .map(|i| {
            json!({"context": format!("{NOTE} Glicemia {}.{} mmol/l.", 5 + i, i), "questions": ["Glicemia?", "Ce anticoagulant?"], "lang": "ro"})
                .to_string()
        })
        .collect();
    let alone: Vec<Value> = bodies.iter().map(|b| server.post("/qa", b).1).collect();
    let base = server.base.clone();
    let together: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|b| {
                let url = format!("{base}/qa");
                s.spawn(move || {
                    let mut r = Server::agent()
                        .post(&url)
                        .content_type("application/json")
                        .send(b.as_str())
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                    serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap()).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, t) in alone.iter().zip(&together) {
        for (x, y) in a["answers"]
            .as_array()
            .unwrap()
            .iter()
            .zip(t["answers"].as_array().unwrap())
        {
            assert_eq!(x["text"], y["text"]);
            assert_eq!(
                (x["start"].as_u64(), x["end"].as_u64()),
                (y["start"].as_u64(), y["end"].as_u64())
            );
            let (p, q) = (
                x["probability"].as_f64().unwrap_or(0.0),
                y["probability"].as_f64().unwrap_or(0.0),
            );
            assert!(
                (p - q).abs() < 1e-5,
                "batched with others, the same answer: {p} vs {q}"
            );
        }
    }
    assert!(server.stop().success());
}

/// INCEpTION's external recommender protocol, checked with the library INCEpTION's Python side uses
/// (dkpro-cassis): the CAS that comes back loads against the request's type system, and each predicted
/// annotation covers its answer, even after a character outside the BMP (UIMA counts UTF-16 units).
#[test]
fn inception_gets_predictions_in_its_cas() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &["--min-probability", "0"]);
    let text = format!("🙂 {NOTE}");
    let out = test_support::run_ok(
        Command::new(test_support::python())
            .arg(root().join("scripts/tools/inception_check.py"))
            .args([&server.base, &text]),
    );
    let annotations: Vec<Value> = serde_json::from_str(out.trim()).unwrap();
    assert!(
        !annotations.is_empty(),
        "every answer is accepted at --min-probability 0"
    );
    let concepts: Vec<String> =
        extract::concepts::Catalogue::load(&root().join("configs/concepts-stroke.toml"))
            .unwrap()
            .concepts
            .into_iter()
            .map(|c| c.id)
            .collect();
    for a in &annotations {
        let (b, e) = (a["begin"].as_u64().unwrap(), a["end"].as_u64().unwrap());
        assert_eq!(chars(&text, b, e), a["text"].as_str().unwrap(), "{a}");
        assert!(
            concepts.contains(&a["value"].as_str().unwrap().to_owned()),
            "{a}"
        );
        assert_eq!(a["predicted"], true);
        assert!(a["score"].as_f64().is_some());
    }
    assert!(server.stop().success());
}

#[test]
fn the_command_line_sets_prediction_settings_over_the_model_s_own() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        &["--doc-stride", "8", "--version-2-with-negative"],
    );
    let (_, info) = server.get("/model");
    let m = &info["model"];
    assert_eq!(
        (m["max_seq_length"].as_u64(), m["doc_stride"].as_u64()),
        (Some(48), Some(8))
    );
    assert_eq!(m["version_2_with_negative"], true);
    assert_eq!(m["settings_from"], "medqa_json");
    assert_eq!(
        m["settings_set_on_the_command_line"],
        json!(["doc_stride", "version_2_with_negative"])
    );
    assert!(server.stop().success());
}

/// A model saved in shards by transformers answers as its single file does, and `/model` names its
/// weights by one hash over the shards' bytes in order (`cat model-*.safetensors | sha256sum`).
#[test]
fn a_sharded_model_answers_as_its_single_file_and_is_named_by_its_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let model = qa_model(tmp.path());
    let shards = test_support::sharded_copy(&model, &tmp.path().join("sharded"), "20KB");
    let question =
        json!({"context": NOTE, "questions": ["Ce anticoagulant?", "Câți ani?"], "lang": "ro"})
            .to_string();
    let answers = |server: &Server| {
        let (status, qa) = server.post("/qa", &question);
        assert_eq!(status, 200, "{qa}");
        qa["answers"].clone()
    };
    let single = Server::start_with(&model, &[]);
    let expected = answers(&single);
    assert!(single.stop().success());
    let sharded = Server::start_with(&tmp.path().join("sharded"), &[]);
    assert_eq!(answers(&sharded), expected);
    let (_, info) = sharded.get("/model");
    let digest = test_support::python_sha256_concatenated(&shards);
    assert_eq!(
        info["model"]["weights_sha256"].as_str(),
        Some(digest.as_str())
    );
    assert!(sharded.stop().success());
}
