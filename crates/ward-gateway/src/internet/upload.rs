//! What a plain-HTTP request uploads: its size and SHA-256, computed as the
//! body streams through (never buffered whole), its Content-Type and, for
//! `multipart/form-data`, the file name of the first part (from the first
//! few KiB only).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use aws_lc_rs::digest;
use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, SizeHint};
use ward_api::Upload;

/// Bytes of a multipart body looked at for the first part's file name.
pub(crate) const SNIFF_BYTES: usize = 4096;
/// Longest file name recorded.
const MAX_FILE_NAME: usize = 255;

/// Where a streamed body leaves its [`Upload`] once it ends.
#[derive(Default)]
pub(crate) struct UploadSlot {
    done: Mutex<Option<Upload>>,
    /// Bytes so far (also when the body never ends).
    pub(crate) size: std::sync::atomic::AtomicU64,
}

impl UploadSlot {
    /// The upload, if the body was read to its end.
    pub(crate) fn take(&self) -> Option<Upload> {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A request body that hashes and counts what passes through it.
pub(crate) struct UploadBody<B> {
    inner: B,
    /// `None` for a body that is not recorded as an upload (only counted).
    hashing: Option<Hashing>,
    slot: Arc<UploadSlot>,
}

struct Hashing {
    digest: digest::Context,
    size: u64,
    content_type: Option<String>,
    /// The first bytes of a multipart body, and its boundary.
    multipart: Option<(String, Vec<u8>)>,
}

impl<B> UploadBody<B> {
    /// Wraps `inner`; `upload` with the request's Content-Type when the
    /// request carries a body worth recording.
    pub(crate) fn new(inner: B, upload: Option<Option<&str>>, slot: Arc<UploadSlot>) -> UploadBody<B> {
        let hashing = upload.map(|content_type| Hashing {
            digest: digest::Context::new(&digest::SHA256),
            size: 0,
            content_type: content_type.map(|c| c.chars().take(256).collect()),
            multipart: content_type.and_then(multipart_boundary).map(|b| (b, Vec::new())),
        });
        UploadBody { inner, hashing, slot }
    }
}

impl Hashing {
    fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
        self.size += data.len() as u64;
        if let Some((_, head)) = &mut self.multipart {
            let room = SNIFF_BYTES.saturating_sub(head.len());
            head.extend_from_slice(&data[..room.min(data.len())]);
        }
    }

    fn finish(self) -> Upload {
        let sha = hex::encode(self.digest.finish());
        Upload {
            size: self.size,
            file_name: self
                .multipart
                .and_then(|(boundary, head)| first_file_name(&boundary, &head)),
            content_type: self.content_type,
            sha256: sha,
        }
    }
}

impl<B> Body for UploadBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.slot
                        .size
                        .fetch_add(data.remaining() as u64, std::sync::atomic::Ordering::Relaxed);
                    if let Some(hashing) = &mut this.hashing {
                        hashing.update(data);
                    }
                }
            }
            Poll::Ready(None) => this.end(),
            _ => {}
        }
        if this.inner.is_end_stream() {
            this.end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> UploadBody<B> {
    fn end(&mut self) {
        if let Some(hashing) = self.hashing.take() {
            *self.slot.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(hashing.finish());
        }
    }
}

/// The boundary of a `multipart/form-data` Content-Type.
pub(crate) fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let mime = parts.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim().trim_matches('"');
            if !value.is_empty() && value.len() <= 200 {
                return Some(value.to_owned());
            }
        }
    }
    None
}

/// The `filename` of the first part of a multipart body that has one,
/// looking only at `head` (the first bytes). Never panics.
pub(crate) fn first_file_name(boundary: &str, head: &[u8]) -> Option<String> {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    let delimiter = format!("--{boundary}");
    let mut rest = head;
    // Each part: delimiter, CRLF, headers, CRLF CRLF, content.
    while let Some(at) = find(rest, delimiter.as_bytes()) {
        rest = &rest[at + delimiter.len()..];
        let end = find(rest, b"\r\n\r\n").unwrap_or(rest.len());
        let headers = &rest[..end];
        for line in headers.split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if !name.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            if let Some(name) = disposition_file_name(value) {
                return Some(name);
            }
        }
        rest = &rest[end..];
    }
    None
}

fn disposition_file_name(value: &str) -> Option<String> {
    for param in value.split(';').skip(1) {
        let Some((name, v)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("filename") {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .map(|s| s.split('"').next().unwrap_or(s))
            .unwrap_or(v);
        let clean: String = v.chars().filter(|c| !c.is_control()).take(MAX_FILE_NAME).collect();
        if !clean.is_empty() {
            return Some(clean);
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn boundary_and_file_name() {
        let ct = "multipart/form-data; boundary=------------------------abc123";
        let boundary = multipart_boundary(ct).unwrap();
        assert_eq!(boundary, "------------------------abc123");
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"report.pdf\"\r\n\
             Content-Type: application/pdf\r\n\r\n%PDF...\r\n--{boundary}--\r\n"
        );
        assert_eq!(
            first_file_name(&boundary, body.as_bytes()).as_deref(),
            Some("report.pdf")
        );
        assert_eq!(multipart_boundary("text/plain"), None);
        assert_eq!(multipart_boundary("multipart/form-data"), None);
        assert_eq!(first_file_name(&boundary, b"--nope"), None);
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(boundary in ".{0,80}", body in proptest::collection::vec(any::<u8>(), 0..6000)) {
            let _ = first_file_name(&boundary, &body);
        }

        #[test]
        fn random_multipart_like_bodies_never_panic(
            name in "[ -~]{0,300}",
            junk in "[ -~\r\n;=\"]{0,500}",
        ) {
            let body = format!("--b\r\nContent-Disposition: form-data; {junk}; filename=\"{name}\r\n\r\n");
            let got = first_file_name("b", body.as_bytes());
            if let Some(got) = got {
                prop_assert!(got.len() <= 4 * MAX_FILE_NAME);
            }
        }

        #[test]
        fn random_content_types_never_panic(ct in ".{0,400}") {
            let _ = multipart_boundary(&ct);
        }
    }
}
