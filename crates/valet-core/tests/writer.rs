//! The JSON the SDK writes by hand (`json::Obj`, the `to_json` of its
//! payloads) is what serde_json makes of the same values: across modules,
//! so here rather than in `json.rs` (a module's tests import no module
//! above it).

use valet_core::convo::{ConvoMetrics, ResumePoint};
use valet_core::error::{ClientError, ErrorCode};
use valet_core::events::{ConvoErrorEvent, Stage};
use valet_core::json;
use valet_core::wire::SendRequest;

/// Every text the writer makes is what serde_json makes of the same value.
#[test]
fn the_writer_writes_what_serde_json_writes() {
    let all: String = (0u32..0x80).filter_map(char::from_u32).chain("é€😀\u{2028}".chars()).collect();
    for s in [all.as_str(), "", "plain", "a\"b\\c\u{7f}\u{1f}"] {
        assert_eq!(json::string(s), serde_json::to_string(s).unwrap());
    }
    for n in [0, 7, 10, 99, 1_000_000, u64::MAX] {
        let mut out = String::new();
        valet_core::text::push_u64(&mut out, n);
        assert_eq!(out, n.to_string());
        assert_eq!(json::parse_u64(&out), Some(n));
    }
    for not_digits in ["", "+5", "-1", " 5", "5 ", "1x", "1.0", "18446744073709551616", "٣"] {
        assert_eq!(json::parse_u64(not_digits), None, "{not_digits:?}");
    }
    let mut full = ClientError::from_http(429, Some(3), r#"{"status":"rate_limited","x":"\u0001"}"#, "send");
    full.maybe_stored = Some(true);
    let errors = [ClientError::new(ErrorCode::Timeout, "fetchJwt took \"long\"\n"), full];
    for e in &errors {
        assert_eq!(e.to_json(), serde_json::to_string(e).unwrap());
        for stage in [Stage::Auth, Stage::Connect, Stage::Stream, Stage::Reconcile, Stage::Send] {
            let ev = ConvoErrorEvent::new(e.clone(), stage);
            assert_eq!(ev.to_json(), serde_json::to_string(&ev).unwrap());
        }
    }
    for code in [
        ErrorCode::Auth,
        ErrorCode::Network,
        ErrorCode::Timeout,
        ErrorCode::RateLimited,
        ErrorCode::Http,
        ErrorCode::Protocol,
        ErrorCode::Server,
        ErrorCode::Closed,
        ErrorCode::Aborted,
        ErrorCode::InvalidArgument,
    ] {
        assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
    }
    for r in [
        SendRequest { text: "hi \"you\"".into(), message_id: None, idempotency_key: None },
        SendRequest { text: "x".into(), message_id: Some("m1".into()), idempotency_key: Some("k".into()) },
    ] {
        assert_eq!(r.to_json(), serde_json::to_string(&r).unwrap());
    }
    for p in [ResumePoint::default(), ResumePoint { id: Some("m".into()), seq: Some(9), event_id: Some("e\t".into()) }] {
        assert_eq!(p.to_json(), serde_json::to_string(&p).unwrap());
    }
    let mut m = ConvoMetrics {
        reconnects: 1,
        duplicates_dropped: 2,
        gaps_filled: 3,
        leader_changes: 4,
        token_refreshes: 5,
        queued_sends: 6,
        messages_delivered: 7,
        ..Default::default()
    };
    assert_eq!(m.to_json(), serde_json::to_string(&m).unwrap());
    m.last_event_at = Some(1_764_633_600_000);
    assert_eq!(m.to_json(), serde_json::to_string(&m).unwrap());
}
