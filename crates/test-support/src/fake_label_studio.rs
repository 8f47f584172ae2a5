//! A stand-in for Label Studio's file endpoints (serve's and data-prep's tests of notes behind links).

/// A stand-in for Label Studio's file endpoints, as its SDK reaches them: an upload served at
/// `/data/upload` (the storage proxy answering 404, as where uploads stay on the disk), and a cloud
/// storage object behind the task's presign endpoint, which redirects to the bucket. Label Studio's
/// endpoints want the token; the bucket, like S3 with a presigned URL, refuses a request that brings one.
/// Every request's path and `Authorization` header are kept.
pub struct FakeLabelStudio {
    /// Its address, `http://127.0.0.1:PORT`.
    pub base: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

/// A request's path and query, and its `Authorization` header.
pub type Seen = (String, Option<String>);

impl FakeLabelStudio {
    /// Serves `upload` as `/data/upload/1/note.txt` and `bucket_object` as `s3://notes/other.txt` of
    /// task 2, to the token `secret`.
    pub fn start(upload: &str, bucket_object: &str) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, upload, object) = (
            seen.clone(),
            // A byte order mark, which the editor's fetch().text() drops.
            [b"\xEF\xBB\xBF".as_slice(), upload.as_bytes()].concat(),
            bucket_object.as_bytes().to_vec(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
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
                let (status, extra, body): (&str, String, Vec<u8>) = match path.as_str() {
                    "/data/upload/1/note.txt" if signed_in => {
                        ("200 OK", String::new(), upload.clone())
                    }
                    "/tasks/2/presign/?fileuri=s3%3A%2F%2Fnotes%2Fother.txt" if signed_in => (
                        "303 See Other",
                        "Location: /bucket/other.txt\r\n".into(),
                        Vec::new(),
                    ),
                    "/bucket/other.txt" if auth.is_none() => {
                        ("200 OK", String::new(), object.clone())
                    }
                    "/bucket/other.txt" => ("400 Bad Request", String::new(), Vec::new()),
                    "/data/upload/1/note.txt"
                    | "/tasks/2/presign/?fileuri=s3%3A%2F%2Fnotes%2Fother.txt" => {
                        ("401 Unauthorized", String::new(), Vec::new())
                    }
                    _ => ("404 Not Found", String::new(), Vec::new()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Self { base, seen }
    }

    /// The requests since the last call.
    pub fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.seen.lock().unwrap())
    }
}
