//! How serve reaches Label Studio for notes behind links (`<Text valueType="url">`): the settings of
//! the environment where it runs (`LABEL_STUDIO_URL`, `LABEL_STUDIO_API_KEY`), else those each project's
//! `/setup` sent, and one HTTP client. Resolving and fetching are `text::label_studio_links`'.

use std::collections::HashMap;
use std::sync::Mutex;

use text::label_studio_links::{agent, LabelStudioAccess};

/// How the service reaches Label Studio: the environment's settings, each project's `/setup`'s, and
/// the HTTP client.
pub struct TaskLinks {
    env: LabelStudioAccess,
    by_project: Mutex<HashMap<String, LabelStudioAccess>>,
    agent: ureq::Agent,
}

impl TaskLinks {
    /// The environment's settings, and a client that trusts the certificates it names
    /// (`REQUESTS_CA_BUNDLE`, …): a bad one stops serve at its start, not at the first note.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            env: LabelStudioAccess::from_env(),
            by_project: Mutex::default(),
            agent: agent()?,
        })
    }

    /// Keeps what a `/setup` request sent for its project (Label Studio's `project` field).
    pub fn remember_setup(&self, request: &serde_json::Value) {
        let sent = LabelStudioAccess::from_setup(request);
        if sent != LabelStudioAccess::default() {
            self.by_project
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(project_key(request), sent);
        }
    }

    /// The settings for a `/predict` request's project.
    pub fn access_for(&self, request: &serde_json::Value) -> LabelStudioAccess {
        let known = self.by_project.lock().unwrap_or_else(|p| p.into_inner());
        self.env.or(known.get(&project_key(request)))
    }

    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }
}

/// A request's `project` (`"ID.CREATED"` from Label Studio, a number from scripts) as a key.
fn project_key(request: &serde_json::Value) -> String {
    match request.get("project") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_project_has_what_its_setup_sent_under_the_environment() {
        let links = TaskLinks {
            env: LabelStudioAccess {
                hostname: Some("https://labels.hospital.org".into()),
                access_token: None,
            },
            by_project: Mutex::default(),
            agent: text::label_studio_links::agent_trusting(None),
        };
        links.remember_setup(
            &json!({"project": "4.1700", "hostname": "http://ls:8080", "access_token": "t"}),
        );
        links.remember_setup(&json!({"project": 5, "schema": "<View/>"}));
        let used = links.access_for(&json!({"project": "4.1700"}));
        assert_eq!(
            used.hostname.as_deref(),
            Some("https://labels.hospital.org")
        );
        assert_eq!(used.access_token.as_deref(), Some("t"));
        assert_eq!(links.access_for(&json!({"project": 5})).access_token, None);
        assert_eq!(links.access_for(&json!({})).access_token, None);
    }
}
