//! `serve`: one QA model (and optionally a concept catalogue and a linking index) loaded once and
//! offered over HTTP — medqa's JSON API for questions and concept extraction, and the Label Studio ML
//! backend protocol so an annotation project gets pre-annotations without glue.
//!
//! - [`engine`]: the model on its own thread behind a bounded queue; waiting requests are batched;
//! - [`routes`]: the endpoints, limits and JSON errors (`openapi.json` documents them);
//! - [`labelstudio`]: what a Label Studio labelling configuration says (labels, text key);
//! - [`task_links`]: notes behind links (`<Text valueType="url">`) fetched from Label Studio;
//! - [`inception`]: INCEpTION's external recommender protocol (predictions written into the CAS XMI).

pub mod engine;
pub mod inception;
pub mod labelstudio;
pub mod routes;
pub mod task_links;
