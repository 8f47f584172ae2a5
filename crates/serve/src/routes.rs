//! The HTTP API: medqa's own JSON endpoints and the Label Studio ML backend's, every error a JSON body
//! `{"error": …}` with a 4xx status for bad input (malformed JSON, missing fields, a document over the
//! length limit, a body over the size limit) and 503 when the queue is full.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use extract::concepts::Catalogue;
use extract::documents::Document;
use model::qa::squad::QaExample;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::engine::{Engine, EngineError, ModelInfo};
use crate::labelstudio::LabelConfig;
use crate::task_links::TaskLinks;

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Characters of one document or context.
    pub max_text_chars: usize,
    /// Questions in one `/qa` request; tasks in one Label Studio `/predict`.
    pub max_items: usize,
}

pub struct AppState {
    pub engine: Engine,
    pub info: ModelInfo,
    pub catalogue: Option<Catalogue>,
    pub linker: Option<link::Index>,
    pub link_options: link::LinkOptions,
    pub limits: Limits,
    /// The Label Studio task data key holding a note's language (`--lang-key`).
    pub lang_key: String,
    /// How notes behind links (`<Text valueType="url">`) are fetched from Label Studio.
    pub task_links: TaskLinks,
}

pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .route("/", get(health))
        .route("/health", get(health))
        .route("/model", get(model_info))
        .route("/openapi.json", get(openapi))
        .route("/qa", post(qa))
        .route("/extract", post(extract_one))
        .route("/setup", post(setup))
        .route("/predict", post(predict))
        .route("/inception/predict", post(inception_predict))
        .route("/webhook", post(training_requested))
        .route("/train", post(training_requested))
        .route("/inception/train", post(training_requested))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such endpoint (see /openapi.json)".into(),
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// An error answer: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError(r.status(), r.body_text())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Busy => ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request queue is full; retry shortly".into(),
            ),
            EngineError::Stopped => ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is shutting down".into(),
            ),
            EngineError::Failed(m) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn check_text(state: &AppState, what: &str, text: &str) -> Result<(), ApiError> {
    let n = text.chars().count();
    if n > state.limits.max_text_chars {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{what} has {n} characters; this service takes at most {}",
                state.limits.max_text_chars
            ),
        ));
    }
    Ok(())
}

async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    // Label Studio reads `status`; `model_dir` as its SDK reports it.
    Json(json!({ "status": "UP", "model_dir": s.info.path, "v2": true }))
}

async fn model_info(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "model": s.info,
        "catalogue": s.catalogue.as_ref().map(|c| json!({
            "name": c.name, "concepts": c.concepts.iter().map(|c| &c.id).collect::<Vec<_>>(),
        })),
        "link_index": s.linker.as_ref().map(|l| l.summary(0)),
        "limits": { "max_body_bytes": s.limits.max_body_bytes,
                    "max_text_chars": s.limits.max_text_chars, "max_items": s.limits.max_items },
    }))
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QaRequest {
    context: String,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    questions: Vec<String>,
    #[serde(default)]
    lang: Option<String>,
}

#[derive(Serialize)]
struct QaAnswer {
    question: String,
    #[serde(flatten)]
    answer: crate::engine::Answer,
}

async fn qa(
    State(s): State<Arc<AppState>>,
    body: Result<Json<QaRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    let mut questions = req.questions;
    questions.extend(req.question);
    if questions.is_empty() {
        return Err(bad("give \"question\" or \"questions\""));
    }
    if questions.len() > s.limits.max_items {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} questions; at most {} a request",
                questions.len(),
                s.limits.max_items
            ),
        ));
    }
    check_text(&s, "the context", &req.context)?;
    let examples: Vec<QaExample> = questions
        .iter()
        .enumerate()
        .map(|(i, q)| QaExample {
            id: i.to_string(),
            question: q.clone(),
            context: req.context.clone(),
            answers: Vec::new(),
            unlocated: Vec::new(),
            lang: req.lang.clone(),
        })
        .collect();
    let answers = s.engine.qa(examples).await?;
    let out: Vec<QaAnswer> = questions
        .into_iter()
        .zip(answers)
        .map(|(question, answer)| QaAnswer { question, answer })
        .collect();
    Ok(Json(json!({ "answers": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtractRequest {
    text: String,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// A document from a request: its language as given, else detected; none is a 400.
fn document(id: String, text: String, lang: Option<&str>) -> Result<Document, ApiError> {
    if text.trim().is_empty() {
        return Err(bad("the document is empty"));
    }
    Document::new(id, text, lang).ok_or_else(|| {
        bad("the document's language is not given and not recognisable; send \"lang\"")
    })
}

async fn extract_one(
    State(s): State<Arc<AppState>>,
    body: Result<Json<ExtractRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    require_catalogue(&s)?;
    check_text(&s, "the document", &req.text)?;
    let doc = document(
        req.id.unwrap_or_else(|| "document".into()),
        req.text,
        req.lang.as_deref(),
    )?;
    let (id, lang, lang_source) = (doc.id.clone(), doc.lang.clone(), doc.lang_source);
    let rows = s.engine.extract(vec![doc]).await?;
    let links = s
        .linker
        .as_ref()
        .map(|index| extract::link_answers(index, &rows, &s.link_options));
    let extractions: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "concept": r.concept, "answer": r.answer, "candidate": r.candidate,
                "start": r.start, "end": r.end,
                "score": r.score.is_finite().then_some(r.score), "probability": r.probability,
                "question_lang": r.question_lang,
                "links": links.as_ref().map(|l| &l[i]),
            })
        })
        .collect();
    Ok(Json(
        json!({ "id": id, "lang": lang, "lang_source": lang_source, "extractions": extractions }),
    ))
}

fn require_catalogue(s: &AppState) -> Result<&Catalogue, ApiError> {
    s.catalogue.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_IMPLEMENTED,
            "this service has no concept catalogue (start it with --concepts)".into(),
        )
    })
}

/// `medqa-VERSION:DIR@SHA`: the directory's name says little (fine-tuned models are all `final`), the
/// first 12 digits of the weights' SHA-256 tell one model from another, as `sha256sum` prints them.
fn model_version(s: &AppState) -> String {
    format!(
        "medqa-{}:{}@{}",
        env!("CARGO_PKG_VERSION"),
        std::path::Path::new(&s.info.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        &s.info.weights_sha256[..12.min(s.info.weights_sha256.len())]
    )
}

async fn setup(
    State(s): State<Arc<AppState>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    if let Some(schema) = req.get("schema").and_then(Value::as_str) {
        LabelConfig::parse(schema).map_err(|e| bad(format!("{e:#}")))?;
    }
    s.task_links.remember_setup(&req);
    Ok(Json(json!({ "model_version": model_version(&s) })))
}

/// What Label Studio (`/webhook`: "Start Training", or training on each submitted annotation; older
/// versions `/train`) and INCEpTION (`/train`) send to have a backend learn from annotations. Training
/// while serving would change the answers of a model whose hash the predictions carry, on a machine
/// sized for inference: medqa trains apart, reproducibly, and the refusal says how.
async fn training_requested() -> ApiError {
    ApiError(
        StatusCode::NOT_IMPLEMENTED,
        "medqa serve does not train while it serves: export the annotations (Label Studio: Export → JSON), \
         make a training set with `data-prep labelstudio --export FILE --concepts CATALOGUE --out SET.json`, \
         fine-tune with `qa-finetune` (init_from = this model), and restart serve on the new model"
            .into(),
    )
}

/// `/predict` is both Label Studio's and INCEpTION's: an INCEpTION request carries `metadata` and
/// `document` (a CAS), a Label Studio one `tasks`.
async fn predict(
    State(s): State<Arc<AppState>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    if req.get("metadata").is_some() && req.get("document").is_some() {
        return inception(&s, &req).await;
    }
    label_studio(&s, &req).await
}

async fn inception_predict(
    State(s): State<Arc<AppState>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    inception(&s, &req).await
}

/// INCEpTION's external recommender: the CAS's text through extraction, each accepted answer an
/// annotation of the requested layer with its concept in the requested feature.
async fn inception(s: &AppState, req: &Value) -> Result<Json<Value>, ApiError> {
    require_catalogue(s)?;
    let req = crate::inception::Request::from_json(req).map_err(|e| bad(format!("{e:#}")))?;
    let text = crate::inception::text(&req.xmi).map_err(|e| bad(format!("{e:#}")))?;
    check_text(s, "the document", &text)?;
    let spans = if text.trim().is_empty() {
        Vec::new()
    } else {
        let doc = document("inception".into(), text, None)?;
        let rows = s.engine.extract(vec![doc]).await?;
        rows.iter()
            .filter_map(|r| {
                Some(crate::inception::Span {
                    start: r.start? as usize,
                    end: r.end? as usize,
                    label: r.answer.as_ref().map(|_| r.concept.clone())?,
                    score: r.probability,
                })
            })
            .collect()
    };
    let xmi = crate::inception::add_predictions(&req, &spans)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    Ok(Json(json!({ "document": xmi })))
}

/// Label Studio's `/predict`: every task's text through extraction, each accepted answer a span labelled
/// with its concept (when the configuration has that label), scored by its probability.
async fn label_studio(s: &AppState, req: &Value) -> Result<Json<Value>, ApiError> {
    require_catalogue(s)?;
    let config_text = req
        .get("label_config")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad("\"label_config\" (the project's labelling configuration) is missing")
        })?;
    let config = LabelConfig::parse(config_text).map_err(|e| bad(format!("{e:#}")))?;
    let tasks = req
        .get("tasks")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("\"tasks\" must be a list"))?;
    if tasks.len() > s.limits.max_items {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} tasks; at most {} a request",
                tasks.len(),
                s.limits.max_items
            ),
        ));
    }
    let mut values = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        let value = task
            .get("data")
            .and_then(|d| d.get(&config.data_key))
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("task {i} has no text at data.{}", config.data_key)))?;
        values.push(value.to_owned());
    }
    if config.behind_link {
        values = fetch_notes(s, req, tasks, values).await?;
    }
    let mut docs = Vec::with_capacity(tasks.len());
    for (i, (task, value)) in tasks.iter().zip(&values).enumerate() {
        let text = config
            .text_of(value)
            .map_err(|e| bad(format!("task {i}: {e:#}")))?;
        check_text(s, &format!("task {i}"), &text)?;
        let lang = task
            .get("data")
            .and_then(|d| d.get(&s.lang_key))
            .and_then(Value::as_str);
        if text.trim().is_empty() {
            return Err(bad(format!("task {i}: the note is empty")));
        }
        let doc = Document::new(i.to_string(), text, lang).ok_or_else(|| {
            bad(format!(
                "task {i}: the note's language is neither in data.{} (serve --lang-key names the \
                 key) nor recognisable",
                s.lang_key
            ))
        })?;
        docs.push(doc);
    }
    let per_doc = s.catalogue.as_ref().map_or(0, |c| c.concepts.len());
    let rows = if docs.is_empty() {
        Vec::new()
    } else {
        s.engine.extract(docs).await?
    };
    let version = model_version(s);
    let results: Vec<Value> = rows
        .chunks(per_doc.max(1))
        .map(|doc_rows| {
            let spans: Vec<Value> = doc_rows
                .iter()
                .filter(|r| r.answer.is_some() && config.labels.contains(&r.concept))
                .filter_map(|r| {
                    Some(json!({
                        "from_name": config.from_name, "to_name": config.to_name, "type": "labels",
                        "value": if config.save_text {
                            json!({ "start": r.start?, "end": r.end?, "text": r.answer,
                                    "labels": [r.concept] })
                        } else {
                            json!({ "start": r.start?, "end": r.end?, "labels": [r.concept] })
                        },
                        "score": r.probability,
                    }))
                })
                .collect();
            let score = if spans.is_empty() {
                0.0
            } else {
                spans
                    .iter()
                    .filter_map(|v| v["score"].as_f64())
                    .sum::<f64>()
                    / spans.len() as f64
            };
            json!({ "result": spans, "score": score, "model_version": version })
        })
        .collect();
    Ok(Json(
        json!({ "results": results, "model_version": version }),
    ))
}

/// The notes behind the tasks' links, fetched as Label Studio's editor fetches them. A link that is not
/// one, or that needs Label Studio's address where none is set, is a 400; a fetch that fails a 502.
async fn fetch_notes(
    s: &AppState,
    req: &Value,
    tasks: &[Value],
    links: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    let access = s.task_links.access_for(req);
    let mut located = Vec::with_capacity(links.len());
    for (i, (task, link)) in tasks.iter().zip(&links).enumerate() {
        let id = match task.get("id") {
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Number(id)) => Some(id.to_string()),
            _ => None,
        };
        let urls = text::label_studio_links::locate(link, id.as_deref(), &access)
            .map_err(|e| bad(format!("task {i}: its note's link {link:?}: {e:#}")))?;
        located.push(urls);
    }
    // A character is at most 4 bytes of UTF-8, and a byte order mark 3 more.
    let max_bytes = s.limits.max_text_chars as u64 * 4 + 3;
    let agent = s.task_links.agent().clone();
    let fetched = tokio::task::spawn_blocking(move || {
        located
            .iter()
            .map(|urls| text::label_studio_links::fetch(&agent, urls, &access, max_bytes))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    fetched
        .into_iter()
        .zip(&links)
        .enumerate()
        .map(|(i, (note, link))| {
            note.map_err(|e| {
                ApiError(
                    StatusCode::BAD_GATEWAY,
                    format!("task {i}: its note at {link:?}: {e:#}"),
                )
            })
        })
        .collect()
}
