//! The local history of `persist: "local"`, driven natively: what a page
//! writes of what it delivered, what the next page delivers from it before
//! the network answers (only for the same user), and that the history that
//! follows delivers exactly what the cache lacked, with or without `seq`.

use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;
use valet_core::convo::{Action, ConvoConfig, ConvoMachine, Input, TokenFor};
use valet_core::events::EventName;
use valet_core::token::{claims_of, identity_scope};

fn jwt(sub: &str) -> String {
    let claims = format!(r#"{{"iss":"k","agent_uuid":"agent","source_key":"{sub}","sub":"{sub}","exp":4102444800}}"#);
    format!("e30.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims))
}

fn scope(sub: &str) -> String {
    identity_scope(&claims_of(&jwt(sub)).unwrap().identity)
}

fn message(n: u64, seq: bool) -> String {
    let seq = if seq { format!(r#","seq":{n}"#) } else { String::new() };
    format!(r#"{{"id":"m{n}","content":"text {n}","from":"ai_agent","turn_number":{n},"created_at":"2027-01-15T08:00:00.000Z","files":[]{seq}}}"#)
}

fn history(range: std::ops::RangeInclusive<u64>, seq: bool) -> String {
    let ms: Vec<String> = range.map(|n| message(n, seq)).collect();
    format!(r#"{{"messages":[{}]}}"#, ms.join(","))
}

/// IndexedDB as the glue keeps it: rows by (scope, row).
#[derive(Default)]
struct Db {
    rows: BTreeMap<(String, usize), String>,
}

impl Db {
    fn frames(&self, scope: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(f) = self.rows.get(&(scope.to_owned(), out.len())) {
            out.push(f.clone());
        }
        out
    }
}

/// One page, its machine and what it delivered.
struct Page {
    m: ConvoMachine,
    now: u64,
    out: Vec<Action>,
    /// `message` payloads, in order.
    delivered: Vec<Value>,
    /// `onEvent` kinds.
    observed: Vec<String>,
}

impl Page {
    fn open() -> Page {
        let mut cfg = ConvoConfig::new("agent", "convo");
        cfg.claims_of = Some(claims_of);
        cfg.local_history = true;
        cfg.observe = true;
        Page { m: ConvoMachine::new(cfg, 7), now: 1_800_000_000_000, out: Vec::new(), delivered: Vec::new(), observed: Vec::new() }
    }

    /// Feeds an input; records what it delivered and observed, and writes
    /// what it asks to write into `db`.
    fn feed(&mut self, db: &mut Db, input: Input) {
        self.now += 10;
        self.out = self.m.handle(self.now, input);
        for a in &self.out {
            match a {
                Action::Emit { event: EventName::Message, payload } => self.delivered.push(serde_json::from_str(payload).unwrap()),
                Action::EmitMany { event: EventName::Message, json_array, .. } => {
                    let list: Vec<Value> = serde_json::from_str(json_array).unwrap();
                    self.delivered.extend(list);
                }
                Action::Observe { kind, .. } => self.observed.push(kind.to_string()),
                Action::CacheAppend { scope, at, frames, .. } => {
                    for (i, f) in frames.iter().enumerate() {
                        db.rows.insert((scope.clone(), at + i), f.clone());
                    }
                }
                Action::DropCache { scope } => db.rows.retain(|(s, _), _| s != scope),
                _ => {}
            }
        }
    }

    fn asks_load(&self) -> Option<String> {
        self.out.iter().find_map(|a| match a {
            Action::LoadCache { scope } => Some(scope.clone()),
            _ => None,
        })
    }

    /// Starts, and gives the early history's token (the first token).
    fn start(&mut self, db: &mut Db, sub: &str) {
        self.feed(db, Input::Start);
        self.feed(db, Input::Token { purpose: TokenFor::Reconcile(1), token: jwt(sub) });
    }

    /// A page of `sub` that found no cache and delivered the history of
    /// messages 1 to `n` (with `seq`), writing it into `db`.
    fn delivered_fresh(db: &mut Db, sub: &str, n: u64) -> Page {
        let mut page = Page::open();
        page.start(db, sub);
        page.feed(db, Input::CacheLoaded { frames: Ok(Vec::new()) });
        page.feed(db, Input::ReconcileDone { req: 1, status: 200, body: history(1..=n, true) });
        page
    }

    fn ids(&self) -> Vec<String> {
        self.delivered.iter().map(|v| v["message"]["id"].as_str().unwrap().to_owned()).collect()
    }

    fn cached_flags(&self) -> Vec<bool> {
        self.delivered.iter().map(|v| v["from_cache"] == true).collect()
    }
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|n| format!("m{n}")).collect()
}

#[test]
fn a_reload_shows_the_cache_first_then_only_what_is_new() {
    for seq in [true, false] {
        let mut db = Db::default();
        let mut first = Page::open();
        first.start(&mut db, "ann");
        assert_eq!(first.asks_load(), Some(scope("ann")));
        first.feed(&mut db, Input::CacheLoaded { frames: Ok(Vec::new()) });
        first.feed(&mut db, Input::ReconcileDone { req: 1, status: 200, body: history(1..=3, seq) });
        assert_eq!(first.ids(), ids(1..=3));
        assert_eq!(db.frames(&scope("ann")).len(), 3, "the page wrote what it delivered");

        // The next page: the cache before any network answer.
        let mut next = Page::open();
        next.start(&mut db, "ann");
        let frames = db.frames(&next.asks_load().unwrap());
        next.feed(&mut db, Input::CacheLoaded { frames: Ok(frames) });
        assert_eq!(next.ids(), ids(1..=3));
        assert!(next.delivered.iter().all(|v| v["from_reconcile"] == true && v["from_cache"] == true));
        assert_eq!(next.delivered[0]["message"]["content"], "text 1", "the message as the server sent it");
        // The full history comes (the early request left before the cache was read).
        next.feed(&mut db, Input::ReconcileDone { req: 1, status: 200, body: history(1..=5, seq) });
        assert_eq!(next.ids(), ids(1..=5), "seq on the wire: {seq}");
        assert_eq!(next.cached_flags(), [true, true, true, false, false]);
        assert_eq!(db.frames(&scope("ann")).len(), 5, "written from the cache's end on");
        assert!(next.observed.iter().all(|k| k != "storage_error"));
    }
}

#[test]
fn a_history_that_answers_first_makes_the_cache_useless() {
    let mut db = Db::default();
    Page::delivered_fresh(&mut db, "ann", 2);
    let mut next = Page::open();
    next.start(&mut db, "ann");
    let frames = db.frames(&scope("ann"));
    next.feed(&mut db, Input::ReconcileDone { req: 1, status: 200, body: history(1..=3, true) });
    next.feed(&mut db, Input::CacheLoaded { frames: Ok(frames) });
    assert_eq!(next.ids(), ids(1..=3));
    assert_eq!(next.cached_flags(), [false, false, false]);
    assert_eq!(db.frames(&scope("ann")).len(), 3);
}

#[test]
fn another_user_reads_only_their_own_rows() {
    let mut db = Db::default();
    Page::delivered_fresh(&mut db, "ann", 2);
    let mut bob = Page::open();
    bob.start(&mut db, "bob");
    let asked = bob.asks_load().unwrap();
    assert_eq!(asked, scope("bob"));
    assert_ne!(asked, scope("ann"));
    let frames = db.frames(&asked);
    assert!(frames.is_empty());
    bob.feed(&mut db, Input::CacheLoaded { frames: Ok(frames) });
    assert!(bob.delivered.is_empty(), "nothing of ann's is shown to bob");
}

#[test]
fn a_live_message_during_the_cache_waits_for_the_history_without_seq() {
    let mut db = Db::default();
    for n in 1..=2 {
        db.rows.insert((scope("ann"), n as usize - 1), format!(r#"{{"type":"message","action":"create","agent_id":"agent","convo_id":"convo","message":{}}}"#, message(n, false)));
    }
    let mut page = Page::open();
    page.start(&mut db, "ann");
    // The stream opens (its sync begins) before the cache is read...
    page.feed(&mut db, Input::Token { purpose: TokenFor::Stream(1), token: jwt("ann") });
    page.feed(&mut db, Input::StreamOpened { attempt: 1 });
    page.feed(&mut db, Input::StreamText { attempt: 1, text: "event: ready\ndata: {\"type\":\"ready\",\"convo_id\":\"convo\"}\n\n".into() });
    let frames = db.frames(&scope("ann"));
    page.feed(&mut db, Input::CacheLoaded { frames: Ok(frames) });
    assert_eq!(page.ids(), ids(1..=2));
    // ... and brings m5 (m3, m4 were stored while away).
    let live = format!(
        "event: message\ndata: {{\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"message\":{}}}\n\n",
        message(5, false)
    );
    page.feed(&mut db, Input::StreamText { attempt: 1, text: live });
    assert_eq!(page.ids(), ids(1..=2), "m5 waits: the cache is not a sync");
    page.feed(&mut db, Input::ReconcileDone { req: 1, status: 200, body: history(1..=5, false) });
    assert_eq!(page.ids(), ids(1..=5));
}

#[test]
fn unreadable_rows_are_reported_once_dropped_and_cost_nothing() {
    let mut db = Db::default();
    db.rows.insert((scope("ann"), 0), "{not a frame".into());
    let mut page = Page::open();
    page.start(&mut db, "ann");
    let frames = db.frames(&scope("ann"));
    page.feed(&mut db, Input::CacheLoaded { frames: Ok(frames) });
    assert!(db.frames(&scope("ann")).is_empty(), "dropped");
    page.feed(&mut db, Input::ReconcileDone { req: 1, status: 200, body: history(1..=3, true) });
    assert_eq!(page.ids(), ids(1..=3));
    assert_eq!(page.observed.iter().filter(|k| *k == "storage_error").count(), 1);
    assert_eq!(db.frames(&scope("ann")).len(), 3, "written again");

    // No storage at all: reported once, delivered as without a cache.
    let mut db = Db::default();
    let mut page = Page::open();
    page.start(&mut db, "ann");
    page.feed(&mut db, Input::CacheLoaded { frames: Err("no IndexedDB".into()) });
    page.feed(&mut db, Input::ReconcileDone { req: 1, status: 200, body: history(1..=3, true) });
    assert_eq!(page.ids(), ids(1..=3));
    assert_eq!(page.observed.iter().filter(|k| *k == "storage_error").count(), 1);
    assert!(db.rows.is_empty(), "nothing written after the failure");
}

#[test]
fn a_failed_write_stops_the_writes() {
    let mut db = Db::default();
    let mut page = Page::open();
    page.start(&mut db, "ann");
    page.feed(&mut db, Input::CacheLoaded { frames: Ok(Vec::new()) });
    page.feed(&mut db, Input::CacheNotSaved);
    db.rows.clear();
    page.feed(&mut db, Input::ReconcileDone { req: 1, status: 200, body: history(1..=3, true) });
    assert_eq!(page.ids(), ids(1..=3));
    assert!(db.rows.is_empty());
    assert_eq!(page.observed.iter().filter(|k| *k == "storage_error").count(), 1);
}

#[test]
fn a_cache_resolves_the_opening_and_a_refusal_after_it_is_an_error_event() {
    let mut db = Db::default();
    db.rows.insert(
        (scope("ann"), 0),
        format!(r#"{{"type":"message","action":"create","agent_id":"agent","convo_id":"convo","message":{}}}"#, message(1, true)),
    );
    let mut page = Page::open();
    page.start(&mut db, "ann");
    assert!(!page.out.iter().any(|a| matches!(a, Action::Opened(_))), "not before the cache is read");
    let frames = db.frames(&scope("ann"));
    page.feed(&mut db, Input::CacheLoaded { frames: Ok(frames) });
    assert!(page.out.iter().any(|a| matches!(a, Action::Opened(Ok(())))), "openConvo resolves with the cache");
    assert_eq!(page.ids(), ids(1..=1));
    // The user was locked out meanwhile: an error event, status stopped.
    page.feed(&mut db, Input::Token { purpose: TokenFor::Stream(1), token: jwt("ann") });
    page.feed(&mut db, Input::StreamRefused { attempt: 1, status: 403, retry_after: None, body: "{}".into() });
    let error = page.out.iter().find_map(|a| match a {
        Action::Emit { event: EventName::Error, payload } => Some(serde_json::from_str::<Value>(payload).unwrap()),
        _ => None,
    });
    assert_eq!(error.expect("an error event")["error"]["code"], "auth");
    assert!(page.out.iter().any(|a| matches!(a, Action::Emit { event: EventName::Status, payload } if payload.contains("stopped"))));
    assert!(!page.out.iter().any(|a| matches!(a, Action::Opened(_))), "opened once");
}
