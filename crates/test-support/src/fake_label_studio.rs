//! A stand-in for Label Studio's file endpoints (serve's and data-prep's tests of notes behind links),
//! over HTTP or over HTTPS with a certificate of its own authority, as a hospital's internal one.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

/// A stand-in for Label Studio's file endpoints, as its SDK reaches them: an upload served at
/// `/data/upload` (the storage proxy answering 404, as where uploads stay on the disk), and a cloud
/// storage object behind the task's presign endpoint, which redirects to the bucket. Label Studio's
/// endpoints want the token; the bucket, like S3 with a presigned URL, refuses a request that brings one.
/// Every request's path and `Authorization` header are kept.
pub struct FakeLabelStudio {
    /// Its address, `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub base: String,
    /// Over HTTPS, the certificate (PEM) of the authority that signed the server's: no public root
    /// trusts it.
    pub ca_pem: Option<String>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A request's path and query, and its `Authorization` header.
pub type Seen = (String, Option<String>);

/// What the stand-in serves.
#[derive(Clone)]
struct Files {
    upload: Vec<u8>,
    object: Vec<u8>,
}

impl FakeLabelStudio {
    /// Serves `upload` as `/data/upload/1/note.txt` and `bucket_object` as `s3://notes/other.txt` of
    /// task 2, to the token `secret`.
    pub fn start(upload: &str, bucket_object: &str) -> Self {
        Self::serve(upload, bucket_object, None)
    }

    /// As [`start`](Self::start), over HTTPS: the server's certificate (for 127.0.0.1) is signed by an
    /// authority made here, whose certificate is `ca_pem`.
    pub fn start_tls(upload: &str, bucket_object: &str) -> Self {
        Self::serve(upload, bucket_object, Some(tls_server_config()))
    }

    /// Over HTTP, or over HTTPS with `tls`'s authority (PEM) and server configuration.
    fn serve(
        upload: &str,
        bucket_object: &str,
        tls: Option<(String, Arc<rustls::ServerConfig>)>,
    ) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, files) = (seen.clone(), Files::new(upload, bucket_object));
        let (ca_pem, config) = tls.unzip();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                match &config {
                    None => answer(stream, &files, &log),
                    Some(config) => {
                        let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                            continue;
                        };
                        // A client that does not trust the certificate hangs up in the handshake:
                        // the request is never read, and the next connection is served.
                        answer(rustls::StreamOwned::new(connection, stream), &files, &log);
                    }
                }
            }
        });
        Self { base, ca_pem, seen }
    }

    /// The requests since the last call.
    pub fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.seen.lock().unwrap())
    }
}

impl Files {
    fn new(upload: &str, bucket_object: &str) -> Self {
        Self {
            // A byte order mark, which the editor's fetch().text() drops.
            upload: [b"\xEF\xBB\xBF".as_slice(), upload.as_bytes()].concat(),
            object: bucket_object.as_bytes().to_vec(),
        }
    }
}

/// Reads one request and answers it.
fn answer(mut stream: impl Read + Write, files: &Files, log: &Mutex<Vec<Seen>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    if !head.ends_with(b"\r\n\r\n") {
        return;
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let auth = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("authorization: ")
                .or(l.strip_prefix("Authorization: "))
        })
        .map(str::to_owned);
    log.lock().unwrap().push((path.clone(), auth.clone()));
    let signed_in = auth.as_deref() == Some("Token secret");
    let (status, extra, body): (&str, &str, &[u8]) = match path.as_str() {
        "/data/upload/1/note.txt" if signed_in => ("200 OK", "", &files.upload),
        "/tasks/2/presign/?fileuri=s3%3A%2F%2Fnotes%2Fother.txt" if signed_in => {
            ("303 See Other", "Location: /bucket/other.txt\r\n", b"")
        }
        "/bucket/other.txt" if auth.is_none() => ("200 OK", "", &files.object),
        "/bucket/other.txt" => ("400 Bad Request", "", b""),
        "/data/upload/1/note.txt" | "/tasks/2/presign/?fileuri=s3%3A%2F%2Fnotes%2Fother.txt" => {
            ("401 Unauthorized", "", b"")
        }
        _ => ("404 Not Found", "", b""),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// An authority's certificate (PEM), and a server configuration whose certificate for 127.0.0.1 it
/// signed.
fn tls_server_config() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "medqa tests' hospital authority");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![server.der().clone(), ca_cert.der().clone()], key)
    .unwrap();
    (ca_cert.pem(), Arc::new(config))
}
