//! Notes behind links: a project whose `<Text valueType="url">` has each task hold where its note is,
//! which Label Studio's editor fetches and shows (offsets count the fetched text). `serve` fetches them
//! the same way to pre-annotate them, and `data-prep labelstudio --fetch-notes` to train on them.
//!
//! The links are those Label Studio makes, resolved as its SDK's `get_local_path` resolves them for ML
//! backends: uploads (`/data/upload/P/F`, through the storage proxy first), local-files and other paths
//! on Label Studio's host, cloud storage (`s3://`, `gs://`, `azure-blob://`, through the task's presign
//! endpoint) and plain http(s) links. Label Studio's address and access token come from
//! `LABEL_STUDIO_URL` and `LABEL_STUDIO_API_KEY` (the names the SDK reads; serve also takes what Label
//! Studio sent to `/setup`); the token goes to Label Studio's host only.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;

/// Where Label Studio is and how to sign in to it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelStudioAccess {
    /// Its address, `http(s)://host[:port]`.
    pub hostname: Option<String>,
    pub access_token: Option<String>,
}

impl LabelStudioAccess {
    /// `LABEL_STUDIO_URL` (or `LABEL_STUDIO_HOST`) and `LABEL_STUDIO_API_KEY` (or
    /// `LABEL_STUDIO_ACCESS_TOKEN`), as the Label Studio SDK reads them; empty ones are unset.
    pub fn from_env() -> Self {
        let var = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| std::env::var(n).ok())
                .find(|v| !v.trim().is_empty())
        };
        Self {
            hostname: var(&["LABEL_STUDIO_URL", "LABEL_STUDIO_HOST"]),
            access_token: var(&["LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN"]),
        }
    }

    /// What `/setup` sent (`hostname`, `access_token`); empty strings are unset.
    pub fn from_setup(request: &serde_json::Value) -> Self {
        let field = |k: &str| {
            request
                .get(k)
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.trim().is_empty())
                .map(str::to_owned)
        };
        Self {
            hostname: field("hostname"),
            access_token: field("access_token"),
        }
    }

    /// Each setting from `self` where it has one, else from `fallback`: the operator's environment over
    /// what a request said.
    pub fn or(&self, fallback: Option<&Self>) -> Self {
        Self {
            hostname: self
                .hostname
                .clone()
                .or_else(|| fallback.and_then(|f| f.hostname.clone())),
            access_token: self
                .access_token
                .clone()
                .or_else(|| fallback.and_then(|f| f.access_token.clone())),
        }
    }

    fn host(&self) -> Result<url::Url> {
        let Some(hostname) = &self.hostname else {
            bail!(
                "it is a link into Label Studio, whose address is not known: set LABEL_STUDIO_URL (and \
                 LABEL_STUDIO_API_KEY, a Label Studio access token)"
            );
        };
        let url = url::Url::parse(hostname)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                anyhow!("Label Studio's address {hostname:?} is not an http(s):// URL (LABEL_STUDIO_URL)")
            })?;
        if self.access_token.is_none() {
            bail!(
                "it is a link into Label Studio, which wants an access token: set LABEL_STUDIO_API_KEY"
            );
        }
        Ok(url)
    }

    /// The `Authorization` header for a URL: the token, for Label Studio's own host only. A JWT (a
    /// personal access token) is a bearer token, a legacy token a `Token`.
    fn authorization(&self, target: &url::Url) -> Option<String> {
        let token = self.access_token.as_ref()?;
        let host = url::Url::parse(self.hostname.as_ref()?).ok()?;
        let same = host.host_str() == target.host_str()
            && host.port_or_known_default() == target.port_or_known_default();
        same.then(|| {
            if is_jwt(token) {
                format!("Bearer {token}")
            } else {
                format!("Token {token}")
            }
        })
    }
}

/// Whether a token is a JWT: three dot-separated base64url parts, the first a JSON object.
fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0].trim_end_matches('='))
            .ok()
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
            .is_some_and(|h| h.is_object())
}

/// The URLs to try, in order, for a task's link: uploads through the storage proxy, then the older
/// `/data/upload` path (Label Studio serves one or the other, as its upload storage is set up).
pub fn locate(
    link: &str,
    task_id: Option<&str>,
    access: &LabelStudioAccess,
) -> Result<Vec<url::Url>> {
    let link = link.trim();
    let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let on_host = |path_and_query: &str| -> Result<url::Url> {
        let host = access.host()?;
        let base = host.as_str().trim_end_matches('/');
        url::Url::parse(&format!(
            "{base}/{}",
            path_and_query.trim_start_matches('/')
        ))
        .map_err(|e| anyhow!("{path_and_query:?} on {base} is not a URL: {e}"))
    };
    if let Some(rest) = link
        .strip_prefix("upload/")
        .or_else(|| link.strip_prefix("/upload/"))
        .or_else(|| link.strip_prefix("/data/upload/"))
    {
        let file = format!("upload/{rest}");
        return Ok(vec![
            on_host(&format!(
                "/storage-data/uploaded/?filepath={}",
                encode(&file)
            ))?,
            on_host(&format!("/data/{file}"))?,
        ]);
    }
    if ["s3:", "gs:", "azure-blob:"]
        .iter()
        .any(|s| link.starts_with(s))
    {
        let Some(id) = task_id else {
            bail!("a cloud storage link needs the task's id (Label Studio's presign endpoint is per task)");
        };
        return Ok(vec![on_host(&format!(
            "/tasks/{id}/presign/?fileuri={}",
            encode(link)
        ))?]);
    }
    if link.starts_with('/') {
        return Ok(vec![on_host(link)?]);
    }
    match url::Url::parse(link) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(vec![u]),
        _ => bail!(
            "not a link Label Studio makes (an http(s) URL, an upload, a local-files or cloud storage \
             link); is the note itself in the task, for a <Text> without valueType=\"url\"?"
        ),
    }
}

/// Fetches a task's note as Label Studio's editor does (`fetch(url).text()`: UTF-8 with a leading byte
/// order mark dropped and malformed bytes replaced), at most `max_bytes` of it.
/// `urls` are [`locate`]'s, tried in order.
pub fn fetch(
    agent: &ureq::Agent,
    urls: &[url::Url],
    access: &LabelStudioAccess,
    max_bytes: u64,
) -> Result<String> {
    let mut failures = Vec::new();
    for url in urls {
        let mut request = agent.get(url.as_str());
        if let Some(auth) = access.authorization(url) {
            request = request.header("Authorization", auth);
        }
        let mut response = match request.call() {
            Ok(r) => r,
            Err(e) => {
                // An authority no public root trusts, as hospitals' own: say how to trust it.
                let hint = if matches!(e, ureq::Error::Tls(_) | ureq::Error::Rustls(_))
                    || e.to_string().contains("certificate")
                {
                    format!(
                        " (a certificate signed by your own authority: set {} to a PEM file that \
                         holds it)",
                        CA_BUNDLE_VARS[0]
                    )
                } else {
                    String::new()
                };
                failures.push(format!("{}: {e}{hint}", shown(url)));
                continue;
            }
        };
        let status = response.status();
        if !status.is_success() {
            let hint = if matches!(status.as_u16(), 401 | 403) {
                " (is LABEL_STUDIO_API_KEY a valid access token?)"
            } else {
                ""
            };
            failures.push(format!("{} answered {status}{hint}", shown(url)));
            continue;
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(max_bytes)
            .read_to_vec()
            .map_err(|e| anyhow!("reading {}: {e} (at most {max_bytes} bytes)", shown(url)))?;
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        return Ok(String::from_utf8_lossy(bytes).into_owned());
    }
    bail!("cannot fetch it: {}", failures.join("; "))
}

/// Whether a task's text is a link Label Studio makes rather than a note: one word that starts as an
/// upload, a path on Label Studio's host, a cloud storage object or an http(s) URL does.
pub fn looks_like_link(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && !t.contains(char::is_whitespace)
        && [
            "/data/",
            "/storage-data/",
            "/tasks/",
            "upload/",
            "/upload/",
            "s3://",
            "gs://",
            "azure-blob://",
            "http://",
            "https://",
        ]
        .iter()
        .any(|p| t.starts_with(p))
}

/// A URL as messages show it: without user and password.
fn shown(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// The variables that name the certificates to trust instead of Mozilla's roots, first set first:
/// Python's requests (and so the Label Studio SDK and ML backends) reads `REQUESTS_CA_BUNDLE` and
/// `CURL_CA_BUNDLE`, OpenSSL (curl, wget) `SSL_CERT_FILE`.
pub const CA_BUNDLE_VARS: [&str; 3] = ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"];

/// The client that fetches notes, trusting the certificates [`CA_BUNDLE_VARS`] name (a Label Studio
/// behind a hospital's own authority), else Mozilla's roots.
pub fn agent() -> Result<ureq::Agent> {
    match ca_bundle_from_env() {
        None => Ok(agent_trusting(None)),
        Some((var, path)) => {
            let certificates = read_ca_bundle(&path)
                .with_context(|| format!("{var}={}: cannot trust it", path.display()))?;
            Ok(agent_trusting(Some(certificates)))
        }
    }
}

/// The first of [`CA_BUNDLE_VARS`] set, and the file or directory it names.
pub fn ca_bundle_from_env() -> Option<(&'static str, std::path::PathBuf)> {
    CA_BUNDLE_VARS.iter().find_map(|var| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(|v| (*var, std::path::PathBuf::from(v)))
    })
}

/// The client, trusting `roots` alone where given (as requests trusts `REQUESTS_CA_BUNDLE` alone),
/// else Mozilla's roots. Label Studio's own time limit for a prediction is 100 s, and the token is not
/// sent on when a presign endpoint redirects to the bucket.
pub fn agent_trusting(roots: Option<Vec<ureq::tls::Certificate<'static>>>) -> ureq::Agent {
    let roots = match roots {
        Some(certificates) => ureq::tls::RootCerts::new_with_certs(&certificates),
        None => ureq::tls::RootCerts::WebPki,
    };
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .user_agent(concat!("medqa/", env!("CARGO_PKG_VERSION")))
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
        .build()
        .into()
}

/// The certificates of a PEM file, or of every file of a directory that holds some (as OpenSSL reads
/// a certificate directory, such as `/etc/ssl/certs`).
pub fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let read_file = |file: &std::path::Path| -> Result<Vec<ureq::tls::Certificate<'static>>> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        ureq::tls::parse_pem(&bytes)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(anyhow!("{} is not valid PEM: {e}", file.display()))),
            })
            .collect()
    };
    let certificates = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read the directory {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        // A directory's other files (a README, keys, revocation lists) are not certificates; OpenSSL
        // passes over them too.
        files
            .iter()
            .filter_map(|f| read_file(f).ok())
            .flatten()
            .collect()
    } else {
        read_file(path)?
    };
    if certificates.is_empty() {
        bail!(
            "no certificate (-----BEGIN CERTIFICATE-----) in {}",
            path.display()
        );
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(host: &str) -> LabelStudioAccess {
        LabelStudioAccess {
            hostname: Some(host.into()),
            access_token: Some("abc".into()),
        }
    }

    fn urls(link: &str, task: Option<&str>, a: &LabelStudioAccess) -> Vec<String> {
        locate(link, task, a)
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect()
    }

    #[test]
    fn links_resolve_as_the_label_studio_sdk_resolves_them() {
        let ls = access("https://ls.example.org:8443/");
        assert_eq!(
            urls("/data/upload/3/5f1c-note é.txt", None, &ls),
            [
                "https://ls.example.org:8443/storage-data/uploaded/?filepath=upload%2F3%2F5f1c-note+%C3%A9.txt",
                "https://ls.example.org:8443/data/upload/3/5f1c-note%20%C3%A9.txt"
            ]
        );
        assert_eq!(
            urls("upload/3/a.txt", None, &ls)[1],
            "https://ls.example.org:8443/data/upload/3/a.txt"
        );
        assert_eq!(
            urls("/data/local-files/?d=notes/a.txt", None, &ls),
            ["https://ls.example.org:8443/data/local-files/?d=notes/a.txt"]
        );
        assert_eq!(
            urls("s3://bucket/notes/a.txt", Some("17"), &ls),
            ["https://ls.example.org:8443/tasks/17/presign/?fileuri=s3%3A%2F%2Fbucket%2Fnotes%2Fa.txt"]
        );
        assert_eq!(
            urls(
                "https://files.example.org/a.txt",
                None,
                &LabelStudioAccess::default()
            ),
            ["https://files.example.org/a.txt"]
        );
        let why = |link: &str, task: Option<&str>, a: &LabelStudioAccess| {
            format!("{:#}", locate(link, task, a).unwrap_err())
        };
        assert!(why("gs://b/a.txt", None, &ls).contains("task's id"));
        assert!(
            why("/data/upload/1/a.txt", None, &LabelStudioAccess::default())
                .contains("LABEL_STUDIO_URL")
        );
        let no_token = LabelStudioAccess {
            hostname: Some("http://ls:8080".into()),
            access_token: None,
        };
        assert!(why("/data/upload/1/a.txt", None, &no_token).contains("LABEL_STUDIO_API_KEY"));
        assert!(why("/data/upload/1/a.txt", None, &access("ls:8080")).contains("http(s)://"));
        assert!(why("Patient, 72 years old.", None, &ls).contains("valueType"));
        assert!(why("ftp://files/a.txt", None, &ls).contains("not a link"));
        assert!(looks_like_link(" /data/upload/1/a.txt\n") && looks_like_link("s3://b/k"));
        assert!(!looks_like_link("https://x.org is where the note was") && !looks_like_link(""));
        assert!(!looks_like_link("Pacientul, 72 de ani."));
    }

    #[test]
    fn the_token_goes_to_label_studio_only_as_its_kind_wants() {
        let ls = access("http://ls:8080");
        let auth = |u: &str, a: &LabelStudioAccess| a.authorization(&url::Url::parse(u).unwrap());
        assert_eq!(
            auth("http://ls:8080/data/upload/1/a.txt", &ls).as_deref(),
            Some("Token abc")
        );
        assert_eq!(auth("http://ls:8081/a.txt", &ls), None);
        assert_eq!(auth("https://bucket.s3.amazonaws.com/a.txt", &ls), None);
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
        let jwt = LabelStudioAccess {
            access_token: Some(format!("{header}.e30.sig")),
            ..ls.clone()
        };
        assert!(auth("http://ls:8080/x", &jwt)
            .unwrap()
            .starts_with("Bearer "));
        assert!(!is_jwt("a.b.c") && !is_jwt("4f6e2d"));
    }

    #[test]
    fn the_environment_wins_over_what_setup_sent_setting_by_setting() {
        let setup = LabelStudioAccess::from_setup(
            &serde_json::json!({"hostname": "http://ls:8080", "access_token": "t", "schema": ""}),
        );
        assert_eq!(
            setup,
            LabelStudioAccess {
                hostname: Some("http://ls:8080".into()),
                access_token: Some("t".into()),
            }
        );
        let env = LabelStudioAccess {
            hostname: Some("https://labels.hospital.org".into()),
            access_token: None,
        };
        let used = env.or(Some(&setup));
        assert_eq!(
            used.hostname.as_deref(),
            Some("https://labels.hospital.org")
        );
        assert_eq!(used.access_token.as_deref(), Some("t"));
        assert_eq!(
            LabelStudioAccess::from_setup(&serde_json::json!({"hostname": ""})),
            LabelStudioAccess::default()
        );
    }

    #[test]
    fn a_label_studio_behind_its_own_authority_is_reached_with_its_certificate_trusted() {
        let ls = test_support::FakeLabelStudio::start_tls("Glicemia 7,1 mmol/l.", "");
        let a = LabelStudioAccess {
            hostname: Some(ls.base.clone()),
            access_token: Some("secret".into()),
        };
        let urls = locate("/data/upload/1/note.txt", None, &a).unwrap();
        // Mozilla's roots do not hold the authority: the message says how to trust it.
        let refused = fetch(&agent_trusting(None), &urls, &a, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("certificate") && refused.contains("REQUESTS_CA_BUNDLE"),
            "{refused}"
        );
        assert!(
            ls.seen().is_empty(),
            "no request crosses an untrusted connection"
        );
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("hospital-ca.pem");
        std::fs::write(&bundle, ls.ca_pem.as_ref().unwrap()).unwrap();
        let trusted = agent_trusting(Some(read_ca_bundle(&bundle).unwrap()));
        assert_eq!(
            fetch(&trusted, &urls, &a, 1 << 20).unwrap(),
            "Glicemia 7,1 mmol/l."
        );
        assert_eq!(
            ls.seen().last().unwrap(),
            &(
                "/data/upload/1/note.txt".to_owned(),
                Some("Token secret".to_owned())
            )
        );
        // A directory of certificates, with other files in it, as /etc/ssl/certs.
        std::fs::write(dir.path().join("README"), "certificates of the hospital").unwrap();
        assert_eq!(read_ca_bundle(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_certificate_file_without_certificates_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = read_ca_bundle(&empty).unwrap_err().to_string();
        assert!(
            e.contains("no certificate") && e.contains("empty.pem"),
            "{e}"
        );
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        let e = format!("{:#}", read_ca_bundle(&broken).unwrap_err());
        assert!(e.contains("broken.pem"), "{e}");
        let e = format!(
            "{:#}",
            read_ca_bundle(&dir.path().join("absent.pem")).unwrap_err()
        );
        assert!(e.contains("cannot read") && e.contains("absent.pem"), "{e}");
    }
}
