//! Decoding of answers captured from etcd 3.4's JSON gateway.

use super::*;

#[test]
fn a_range_answer_with_a_key() {
    let body = br#"{"header":{"cluster_id":"7801232528081817440","member_id":"13458989633860879742","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"djE="}],"count":"1"}"#;
    let resp: RangeResponse = serde_json::from_slice(body).unwrap();
    assert_eq!(resp.header.revision, 2);
    assert_eq!(resp.header.member_id, 13458989633860879742);
    assert_eq!(
        resp.kvs,
        vec![KeyValue {
            key: b"foo".to_vec(),
            value: b"v1".to_vec(),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
        }]
    );
}

#[test]
fn absent_fields_mean_zero_or_empty() {
    let resp: RangeResponse =
        serde_json::from_slice(br#"{"header":{"revision":"1","raft_term":"2"}}"#).unwrap();
    assert_eq!(resp.header.revision, 1);
    assert!(resp.kvs.is_empty());
    let resp: TxnResponse = serde_json::from_slice(b"{}").unwrap();
    assert!(!resp.succeeded && resp.responses.is_empty());
    // Numbers are accepted as well as strings.
    let kv: KeyValue = serde_json::from_slice(br#"{"key":"","mod_revision":7}"#).unwrap();
    assert_eq!(kv.mod_revision, 7);
    assert!(kv.value.is_empty());
}

#[test]
fn a_failed_txn_carries_the_range_it_read() {
    let body = br#"{"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"djE="}],"count":"1"}}]}"#;
    let resp: TxnResponse = serde_json::from_slice(body).unwrap();
    assert!(!resp.succeeded);
    let range = resp.responses[0].response_range.as_ref().unwrap();
    assert_eq!(range.kvs[0].value, b"v1");
    let ok: TxnResponse = serde_json::from_slice(
        br#"{"header":{"revision":"3"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}}]}"#,
    )
    .unwrap();
    assert!(ok.succeeded && ok.responses[0].response_range.is_none());
}

#[test]
fn watch_messages_put_delete_cancel_and_error() {
    let put: WatchMessage = serde_json::from_slice(br#"{"result":{"header":{"revision":"2"},"events":[{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"djE="}}]}}"#).unwrap();
    let event = &put.result.unwrap().events[0];
    assert_eq!(event.kind, EventType::Put);
    assert_eq!(event.kv.as_ref().unwrap().mod_revision, 2);
    let delete: WatchMessage = serde_json::from_slice(
        br#"{"result":{"events":[{"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"3"}}]}}"#,
    )
    .unwrap();
    assert_eq!(delete.result.unwrap().events[0].kind, EventType::Delete);
    let canceled: WatchMessage = serde_json::from_slice(br#"{"result":{"watch_id":"-1","created":true,"canceled":true,"cancel_reason":"rpc error: code = PermissionDenied desc = etcdserver: permission denied"}}"#).unwrap();
    let canceled = canceled.result.unwrap();
    assert!(canceled.created && canceled.canceled && canceled.compact_revision == 0);
    assert_eq!(
        parse_cancel_reason(&canceled.cancel_reason),
        (7, "etcdserver: permission denied")
    );
    let error: WatchMessage = serde_json::from_slice(
        br#"{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}}"#,
    )
    .unwrap();
    assert_eq!(error.error.unwrap().grpc_code, 14);
}

#[test]
fn cancel_reasons_of_other_forms_are_unknown() {
    assert_eq!(
        parse_cancel_reason("mvcc: compacted"),
        (2, "mvcc: compacted")
    );
    assert_eq!(
        parse_cancel_reason(
            "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
        ),
        (16, "etcdserver: invalid auth token")
    );
    assert_eq!(
        parse_cancel_reason("rpc error: code = Odd desc = x"),
        (2, "x")
    );
    assert_eq!(
        parse_cancel_reason("rpc error: code = Odd"),
        (2, "rpc error: code = Odd")
    );
}

#[test]
fn malformed_answers_are_errors_not_panics() {
    for body in [
        &br#"{"kvs":[{"value":"***"}]}"#[..],
        br#"{"header":{"revision":"two"}}"#,
        br#"{"header":{"member_id":"-1"}}"#,
        br#"{"kvs":"nope"}"#,
        b"not json",
    ] {
        assert!(serde_json::from_slice::<RangeResponse>(body).is_err());
    }
    let unknown_event: Result<Event, _> = serde_json::from_slice(br#"{"type":"MOVE"}"#);
    assert!(unknown_event.is_err());
}

#[test]
fn error_bodies() {
    let body = br#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#;
    let parsed = ErrorBody::parse(body).unwrap();
    assert_eq!(
        (parsed.code, parsed.text()),
        (16, "etcdserver: invalid auth token")
    );
    let old = ErrorBody::parse(br#"{"error":"etcdserver: user name is empty","code":3}"#).unwrap();
    assert_eq!(old.text(), "etcdserver: user name is empty");
    assert_eq!(ErrorBody::parse(b"404 page not found"), None);
    assert_eq!(ErrorBody::parse(b"{}"), None);
}

#[test]
fn streamed_lines_are_split_whatever_the_chunking() {
    let stream = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\"";
    for split in 0..stream.len() {
        let mut lines = LineBuffer::default();
        let mut got = Vec::new();
        for chunk in [&stream[..split], &stream[split..]] {
            lines.push(chunk);
            while let Some(line) = lines.next_line().unwrap() {
                got.push(line);
            }
        }
        assert_eq!(got, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
    }
}

#[test]
fn an_endless_line_is_refused() {
    let mut lines = LineBuffer::default();
    lines.push(&vec![b'x'; MAX_LINE_LEN]);
    assert_eq!(lines.next_line(), Ok(None));
    lines.push(b"yy");
    assert!(lines.next_line().unwrap_err().contains("longer than"));
}

#[test]
fn base64_of_a_key() {
    assert_eq!(b64(b"foo"), "Zm9v");
}
