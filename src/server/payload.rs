//! `GET`/`HEAD /payloads/NAME`: payload files with `Range`, `ETag` and
//! `Content-Length`, streamed from disk in 1 MiB reads, with the download
//! faults (drop, throttle, corrupt, truncate, ignore Range) applied on the way.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::faults::{FaultKind, Target};
use super::range::{self, RangeAnswer};
use super::{common_fault_answer, AppState};

/// Read size for streaming payloads: large reads keep syscalls and
/// blocking-pool hops per byte low.
pub const READ_CHUNK_BYTES: usize = 1024 * 1024;

/// How long `drop-at` waits between the last byte and closing the connection.
const DROP_FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// Whether `name` can only be a plain file name (no separators, no `..`).
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && !name.contains("..") && !name.contains(['/', '\\', '\0'])
}

/// Body transformations requested by download faults.
#[derive(Debug, Clone, Copy, Default)]
struct BodyFaults {
    drop_at: Option<u64>,
    throttle: Option<u64>,
    corrupt: Option<u64>,
}

pub(super) async fn handle(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // Only files listed in the releases file are served, by exact name, so a
    // path can never leave the payload set; refuse traversal attempts loudly.
    if !plain_name(&name) {
        return (
            StatusCode::BAD_REQUEST,
            "invalid payload name: use a plain file name\n",
        )
            .into_response();
    }
    let Some(file) = state.releases.payload(&name).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            format!("no payload called {name:?}\n"),
        )
            .into_response();
    };
    let faults = if method == Method::GET {
        state.faults.fire(Target::Download)
    } else {
        Vec::new()
    };
    let mut len = file.size;
    let mut honour_range = true;
    let mut body_faults = BodyFaults::default();
    if let Some(answer) = common_fault_answer(&state, &faults, &uri).await {
        return answer;
    }
    for fault in &faults {
        match *fault {
            FaultKind::Truncate(n) => len = len.min(n),
            FaultKind::NoRange => honour_range = false,
            FaultKind::DropAt(n) => body_faults.drop_at = Some(n),
            FaultKind::Throttle(n) => body_faults.throttle = Some(n),
            FaultKind::CorruptByte(n) => body_faults.corrupt = Some(n),
            _ => {}
        }
    }
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let answer = if honour_range {
        range::answer(range_header, len)
    } else {
        RangeAnswer::Full
    };
    let etag = format!("\"{}\"", file.sha256_hex());
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ETAG, etag)
        .header(
            header::ACCEPT_RANGES,
            if honour_range { "bytes" } else { "none" },
        );
    let (status, start, count) = match answer {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Partial { start, end } => {
            response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    };
    response = response
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(count));
    let body = if method == Method::HEAD || count == 0 {
        Body::empty()
    } else {
        let f = match std::fs::File::open(&file.path) {
            Ok(f) => f,
            Err(err) => {
                tracing::error!(path = %file.path.display(), error = %err, "cannot open payload");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "payload file unavailable\n",
                )
                    .into_response();
            }
        };
        let capacity = match body_faults.throttle {
            // Small reads when throttled so bytes trickle out smoothly (~10 per second).
            Some(rate) => (rate / 10).clamp(1, READ_CHUNK_BYTES as u64) as usize,
            None => READ_CHUNK_BYTES,
        };
        Body::from_stream(faulty_stream(
            file_chunks(f, start, count, capacity),
            start,
            body_faults,
            state.cancel.clone(),
        ))
    };
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `count` bytes of `file` from `start`, in reads of `capacity` bytes on the
/// blocking pool. Each read goes straight into the buffer handed to hyper
/// (one copy; an async file would add a second through its own buffer).
/// A file that got shorter ends the stream with an error, which aborts the
/// response instead of sending fewer bytes than `Content-Length` promised.
fn file_chunks(
    file: std::fs::File,
    start: u64,
    count: u64,
    capacity: usize,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + Unpin {
    let file = Arc::new(file);
    Box::pin(futures_util::stream::try_unfold(
        (file, start, count),
        move |(file, at, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let want = left.min(capacity as u64) as usize;
            let reader = Arc::clone(&file);
            let chunk = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; want];
                reader.read_exact_at(&mut buf, at).map(|()| buf)
            })
            .await
            .map_err(io::Error::other)??;
            Ok(Some((
                Bytes::from(chunk),
                (file, at + want as u64, left - want as u64),
            )))
        },
    ))
}

struct StreamState<S> {
    inner: S,
    offset: u64,
    sent: u64,
    faults: BodyFaults,
    started: Instant,
    cancel: CancellationToken,
    done: bool,
}

/// Wrap the file stream with the body faults. An `Err` item makes hyper
/// abort the connection mid-body, which is what `drop-at` and shutdown need.
fn faulty_stream<S>(
    inner: S,
    start: u64,
    faults: BodyFaults,
    cancel: CancellationToken,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send
where
    S: futures_util::Stream<Item = io::Result<Bytes>> + Send + Unpin,
{
    let st = StreamState {
        inner,
        offset: start,
        sent: 0,
        faults,
        started: Instant::now(),
        cancel,
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        if st.faults.drop_at.is_some_and(|limit| st.sent >= limit) {
            st.done = true;
            // hyper drops its unflushed write buffer when the body fails; pausing
            // first lets the headers and the bytes before the cut reach the client.
            tokio::time::sleep(DROP_FLUSH_PAUSE).await;
            let err = io::Error::new(io::ErrorKind::ConnectionAborted, "injected fault: drop-at");
            return Some((Err(err), st));
        }
        let next = tokio::select! {
            next = st.inner.next() => next,
            _ = st.cancel.cancelled() => {
                st.done = true;
                return Some((Err(io::Error::other("server shutting down")), st));
            }
        };
        let mut chunk = match next? {
            Ok(c) => c,
            Err(e) => {
                st.done = true;
                return Some((Err(e), st));
            }
        };
        if let Some(limit) = st.faults.drop_at {
            let room = (limit - st.sent) as usize;
            if chunk.len() > room {
                chunk.truncate(room);
            }
        }
        if let Some(at) = st.faults.corrupt {
            if at >= st.offset && at < st.offset + chunk.len() as u64 {
                let mut owned = chunk.to_vec();
                owned[(at - st.offset) as usize] ^= 0xff;
                chunk = Bytes::from(owned);
            }
        }
        st.offset += chunk.len() as u64;
        st.sent += chunk.len() as u64;
        if let Some(rate) = st.faults.throttle {
            let due = st.started + Duration::from_secs_f64(st.sent as f64 / rate as f64);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = st.cancel.cancelled() => {
                    st.done = true;
                    return Some((Err(io::Error::other("server shutting down")), st));
                }
            }
        }
        Some((Ok(chunk), st))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for ok in ["v2.payload", "a", "x-y_z.1"] {
            assert!(plain_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "..x", "a\0b"] {
            assert!(!plain_name(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn file_chunks_reads_the_range_in_capacity_sized_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let chunks: Vec<Bytes> = file_chunks(std::fs::File::open(&path).unwrap(), 10, 900, 256)
            .map(|c| c.unwrap())
            .collect()
            .await;
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [256, 256, 256, 132]);
        assert_eq!(chunks.concat(), &data[10..910]);
    }

    #[tokio::test]
    async fn a_file_that_got_shorter_ends_the_stream_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, [1u8; 500]).unwrap();
        // Content-Length was promised for 1000 bytes: the stream must fail,
        // not end early and quietly.
        let items: Vec<io::Result<Bytes>> =
            file_chunks(std::fs::File::open(&path).unwrap(), 0, 1000, 256)
                .collect()
                .await;
        assert_eq!(items.len(), 2, "one good chunk, then the error");
        assert_eq!(items[0].as_ref().unwrap().len(), 256);
        let err = items[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }

    async fn collect(faults: BodyFaults, start: u64) -> (Vec<u8>, bool) {
        let chunks: Vec<io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"abcd")),
            Ok(Bytes::from_static(b"efgh")),
        ];
        let s = faulty_stream(
            futures_util::stream::iter(chunks),
            start,
            faults,
            CancellationToken::new(),
        );
        let items: Vec<_> = s.collect().await;
        let failed = items.iter().any(|i| i.is_err());
        let bytes = items
            .into_iter()
            .filter_map(Result::ok)
            .flat_map(|b| b.to_vec())
            .collect();
        (bytes, failed)
    }

    #[tokio::test]
    async fn body_faults_transform_the_stream() {
        assert_eq!(
            collect(BodyFaults::default(), 0).await,
            (b"abcdefgh".to_vec(), false)
        );
        let drop = BodyFaults {
            drop_at: Some(6),
            ..BodyFaults::default()
        };
        assert_eq!(collect(drop, 0).await, (b"abcdef".to_vec(), true));
        let drop0 = BodyFaults {
            drop_at: Some(0),
            ..BodyFaults::default()
        };
        assert_eq!(collect(drop0, 0).await, (Vec::new(), true));
        let corrupt = BodyFaults {
            corrupt: Some(105),
            ..BodyFaults::default()
        };
        let (bytes, failed) = collect(corrupt, 100).await;
        assert!(!failed);
        assert_eq!(bytes[5], b'f' ^ 0xff);
        assert_eq!(&bytes[..5], b"abcde");
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_paces_chunks() {
        let t0 = Instant::now();
        let slow = BodyFaults {
            throttle: Some(4),
            ..BodyFaults::default()
        };
        assert_eq!(collect(slow, 0).await, (b"abcdefgh".to_vec(), false));
        // 8 bytes at 4 bytes/s: paused time advances exactly 2 s.
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn cancellation_ends_the_stream_with_an_error() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let pending = futures_util::stream::pending::<io::Result<Bytes>>();
        let items: Vec<_> = faulty_stream(pending, 0, BodyFaults::default(), cancel)
            .collect()
            .await;
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }
}
