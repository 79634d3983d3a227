//! The durable outbox, driven natively: what a page stores of its unsent
//! messages, what the next page of the tab restores (only for the same
//! user), in what order, with what keys, and what a storage that fails
//! costs.

use base64::Engine as _;
use serde_json::Value;
use valet_core::convo::{Action, ConvoConfig, ConvoMachine, Input, TokenFor};
use valet_core::events::EventName;
use valet_core::outbox::{Outgoing, RESTORED_IDS};
use valet_core::send::SendOutcome;
use valet_core::token::{claims_of, identity_scope};

fn jwt(sub: &str) -> String {
    let claims = format!(r#"{{"iss":"k","agent_uuid":"agent","source_key":"{sub}","sub":"{sub}","exp":4102444800}}"#);
    format!("e30.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims))
}

fn scope(sub: &str) -> String {
    identity_scope(&claims_of(&jwt(sub)).unwrap().identity)
}

/// One page of a tab: a machine with a durable outbox, and the tab's
/// `sessionStorage` as the glue keeps it (scope → JSON, and the last scope).
struct Page {
    m: ConvoMachine,
    now: u64,
    out: Vec<Action>,
}

#[derive(Default, Clone)]
struct Tab {
    stored: Vec<(String, String)>,
    last: Option<String>,
    /// The app asks for `persist: "local"` (files are kept).
    persist: bool,
    /// The writes of `sessionStorage` so far (each `SaveOutbox`).
    writes: usize,
}

impl Tab {
    fn open(&self) -> Page {
        let mut cfg = ConvoConfig::new("agent", "convo");
        cfg.claims_of = Some(claims_of);
        cfg.observe = true;
        cfg.local_history = self.persist;
        cfg.stored_outbox = self.last.clone().map(|s| {
            let json = self.stored.iter().find(|(k, _)| *k == s).map(|(_, j)| j.clone());
            (s, json)
        });
        // Each page its own seed, as in browsers (its keys are its own).
        static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let seed = SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Page { m: ConvoMachine::new(cfg, seed), now: 1_800_000_000_000, out: Vec::new() }
    }

    /// Carries out the storage actions of `page` (as the glue does).
    fn store(&mut self, page: &mut Page) {
        let mut loads = Vec::new();
        for a in &page.out {
            match a {
                Action::SaveOutbox { scope, json } => {
                    self.writes += 1;
                    self.stored.retain(|(k, _)| k != scope);
                    if let Some(json) = json {
                        self.stored.push((scope.clone(), json.clone()));
                    }
                    self.last = Some(scope.clone());
                }
                Action::LoadOutbox { scope } => loads.push(self.stored.iter().find(|(k, _)| k == scope).map(|(_, j)| j.clone())),
                _ => {}
            }
        }
        for json in loads {
            // The glue feeds it in a later task: its actions follow.
            let before = std::mem::take(&mut page.out);
            page.feed(Input::OutboxLoaded { json, orphans: Vec::new() });
            let after = std::mem::replace(&mut page.out, before);
            page.out.extend(after.iter().cloned());
            let mut loaded = Page { m: ConvoMachine::new(ConvoConfig::new("x", "y"), 0), now: 0, out: after };
            self.store(&mut loaded);
        }
    }

    fn texts(&self, scope: &str) -> Vec<String> {
        let Some((_, json)) = self.stored.iter().find(|(k, _)| k == scope) else { return Vec::new() };
        let v: Value = serde_json::from_str(json).unwrap();
        v["sends"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap().to_owned()).collect()
    }
}

impl Page {
    fn feed(&mut self, input: Input) -> &[Action] {
        self.now += 10;
        self.out = self.m.handle(self.now, input);
        &self.out
    }

    fn send(&mut self, tab: &mut Tab, id: u64, text: &str, key: Option<&str>) {
        let what = Outgoing::Message { text: text.into(), files: false, draft: None };
        self.feed(Input::Send { id, key: key.map(str::to_owned), what, detached: false });
        tab.store(self);
    }

    /// Answers the token asked for send `id` with `sub`'s token.
    fn token(&mut self, tab: &mut Tab, id: u64, sub: &str) {
        self.feed(Input::Token { purpose: TokenFor::Send(id), token: jwt(sub) });
        tab.store(self);
    }

    /// The post on the wire in the last actions: `(id, body)`.
    fn posted(&self) -> Option<(u64, Value)> {
        self.out.iter().rev().find_map(|a| match a {
            Action::Post { id, json, .. } => Some((*id, serde_json::from_str(json).unwrap())),
            _ => None,
        })
    }

    /// The send a token is asked for, in the last actions.
    fn asks_token_for(&self) -> Option<u64> {
        self.out.iter().rev().find_map(|a| match a {
            Action::GetToken { purpose: TokenFor::Send(id), .. } => Some(*id),
            _ => None,
        })
    }

    fn restored_events(&self) -> Vec<Value> {
        self.out
            .iter()
            .filter_map(|a| match a {
                Action::Emit { event: EventName::RestoredSend, payload } => Some(serde_json::from_str(payload).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn answer(&mut self, tab: &mut Tab, id: u64, outcome: SendOutcome) {
        self.feed(Input::Posted { id, outcome, body: String::new() });
        tab.store(self);
    }
}

fn offline() -> SendOutcome {
    SendOutcome::Network("offline".into())
}

/// A page with user `sub`'s token that queued `texts` while offline (the
/// first went on the wire once and got no answer).
fn page_left_offline(tab: &mut Tab, sub: &str, texts: &[&str]) {
    let mut p = tab.open();
    for (i, t) in texts.iter().enumerate() {
        p.send(tab, i as u64 + 1, t, None);
    }
    p.token(tab, 1, sub);
    assert_eq!(p.posted().map(|(id, _)| id), Some(1));
    p.answer(tab, 1, offline());
    // The page goes (a reload): no close, no settle.
}

#[test]
fn sends_left_by_a_reload_go_out_from_the_next_page_in_order_with_the_same_keys_first() {
    let mut tab = Tab::default();
    page_left_offline(&mut tab, "u", &["one", "two", "three"]);
    assert_eq!(tab.texts(&scope("u")), ["one", "two", "three"]);
    let stored: Value = serde_json::from_str(&tab.stored[0].1).unwrap();
    let keys: Vec<String> = stored["sends"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_owned()).collect();

    let mut p = tab.open();
    // A send of this page, before any token: it waits behind the restored.
    p.send(&mut tab, 1, "four", None);
    assert_eq!(tab.texts(&scope("u")), ["one", "two", "three", "four"], "stored beside the last page's, under its scope");
    p.token(&mut tab, 1, "u");
    let pending: Vec<Value> = p.restored_events();
    assert_eq!(pending.iter().map(|e| (e["text"].as_str().unwrap(), e["state"].as_str().unwrap())).collect::<Vec<_>>(), [
        ("one", "pending"),
        ("two", "pending"),
        ("three", "pending")
    ]);
    assert_eq!(pending.iter().map(|e| e["key"].as_str().unwrap()).collect::<Vec<_>>(), keys);
    assert!(pending.iter().all(|e| e["created_at"].as_str().unwrap().starts_with("2027-01-15T08:00:00")));

    // In order, each with its key, then this page's own.
    let mut sent = Vec::new();
    for _ in 0..4 {
        let id = p.asks_token_for().expect("a token asked for the next send");
        p.feed(Input::Token { purpose: TokenFor::Send(id), token: jwt("u") });
        tab.store(&mut p);
        let (posted, body) = p.posted().expect("posted");
        assert_eq!(posted, id);
        sent.push((body["text"].as_str().unwrap().to_owned(), body["idempotency_key"].as_str().unwrap().to_owned()));
        p.answer(&mut tab, id, SendOutcome::Ok);
        if id >= RESTORED_IDS {
            assert_eq!(p.restored_events().iter().map(|e| e["state"].as_str().unwrap()).collect::<Vec<_>>(), ["sent"]);
        }
    }
    assert_eq!(sent.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["one", "two", "three", "four"]);
    assert_eq!(sent[..3].iter().map(|(_, k)| k.clone()).collect::<Vec<_>>(), keys);
    assert!(tab.texts(&scope("u")).is_empty(), "nothing left to send: nothing stored");
}

#[test]
fn another_users_token_never_restores_them_and_puts_them_back_as_they_were() {
    let mut tab = Tab::default();
    page_left_offline(&mut tab, "u", &["mine"]);
    let before = tab.stored.clone();
    let mut p = tab.open();
    p.send(&mut tab, 1, "theirs", None);
    p.token(&mut tab, 1, "v");
    assert!(p.restored_events().is_empty(), "nothing of u's under v");
    let (_, body) = p.posted().expect("v's own send goes");
    assert_eq!(body["text"], "theirs");
    assert_eq!(tab.texts(&scope("u")), ["mine"], "u's outbox as it was");
    assert_eq!(before.iter().find(|(k, _)| *k == scope("u")), tab.stored.iter().find(|(k, _)| *k == scope("u")));
    assert_eq!(tab.texts(&scope("v")), ["theirs"]);

    // u comes back in a later page: u's send is restored, v's is not.
    let mut p = tab.open();
    p.feed(Input::Token { purpose: TokenFor::Open, token: jwt("u") });
    tab.store(&mut p);
    let texts: Vec<String> = p.restored_events().iter().map(|e| e["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts, ["mine"]);
    assert_eq!(tab.texts(&scope("v")), ["theirs"]);
}

/// Storage is written when what it holds changes: a tab's opening with
/// nothing to send writes once (the identity's scope, for the next page),
/// after the token, and a reload of that page writes nothing more; a
/// tab whose last page left something unreadable drops it at the opening.
#[test]
fn an_opening_with_nothing_to_send_writes_once() {
    let mut tab = Tab::default();
    for page in 0..3 {
        let mut p = tab.open();
        p.feed(Input::Start);
        tab.store(&mut p);
        assert_eq!(tab.writes, page.min(1), "nothing written before the token (page {page})");
        let stream = p.out.iter().find_map(|a| match a {
            Action::GetToken { purpose: TokenFor::Stream(n), .. } => Some(*n),
            _ => None,
        });
        p.feed(Input::Token { purpose: TokenFor::Stream(stream.expect("the stream's token asked for")), token: jwt("u") });
        tab.store(&mut p);
        assert_eq!(tab.writes, 1, "the scope, once (page {page})");
        assert_eq!(tab.last.as_deref(), Some(scope("u").as_str()));
        assert!(tab.stored.is_empty());
    }
    let mut tab = Tab { stored: vec![("x".into(), "not json".into())], last: Some("x".into()), ..Tab::default() };
    let mut p = tab.open();
    p.feed(Input::Start);
    tab.store(&mut p);
    assert!(tab.stored.is_empty(), "the unreadable outbox is dropped");
}

#[test]
fn sends_of_a_tab_that_never_had_a_token_are_taken_by_the_first_user() {
    let mut tab = Tab::default();
    let mut p = tab.open();
    p.send(&mut tab, 1, "typed before any token", None);
    assert_eq!(tab.texts(""), ["typed before any token"], "stored under the unknown scope");
    // Reload; the first token is u's: the send is u's, once.
    let mut p = tab.open();
    p.feed(Input::Token { purpose: TokenFor::Open, token: jwt("u") });
    tab.store(&mut p);
    assert_eq!(p.restored_events().len(), 1);
    assert!(tab.texts("").is_empty(), "the unknown scope is emptied");
    assert_eq!(tab.texts(&scope("u")), ["typed before any token"]);
    assert_eq!(tab.last.as_deref(), Some(scope("u").as_str()));
}

#[test]
fn a_restored_send_refused_may_have_been_stored_by_the_earlier_page() {
    let mut tab = Tab::default();
    page_left_offline(&mut tab, "u", &["tried", "never tried"]);
    let mut p = tab.open();
    p.feed(Input::Token { purpose: TokenFor::Open, token: jwt("u") });
    tab.store(&mut p);
    for expect in [true, false] {
        let id = p.asks_token_for().unwrap();
        p.token(&mut tab, id, "u");
        p.answer(&mut tab, id, SendOutcome::Http { status: 422, retry_after: None, body: "{}".into() });
        let failed = p.restored_events();
        assert_eq!(failed[0]["state"], "failed");
        assert_eq!(failed[0]["error"]["code"], "http");
        assert_eq!(failed[0]["error"]["maybe_stored"].as_bool(), expect.then_some(true));
        // Its promise is gone with the earlier page: an `error` event says it too.
        assert!(p.out.iter().any(|a| matches!(a, Action::Emit { event: EventName::Error, .. })));
    }
}

#[test]
fn files_are_not_kept_a_send_whose_files_were_not_uploaded_fails_with_closed() {
    let mut tab = Tab::default();
    let mut p = tab.open();
    p.feed(Input::Send { id: 1, key: None, what: Outgoing::Message { text: "see attached".into(), files: true, draft: None }, detached: false });
    tab.store(&mut p);
    p.feed(Input::Send { id: 2, key: None, what: Outgoing::Message { text: "with a draft".into(), files: false, draft: Some("d1".into()) }, detached: false });
    tab.store(&mut p);
    let mut p = tab.open();
    p.feed(Input::Token { purpose: TokenFor::Open, token: jwt("u") });
    tab.store(&mut p);
    let events = p.restored_events();
    let states: Vec<(&str, &str)> = events.iter().map(|e| (e["text"].as_str().unwrap(), e["state"].as_str().unwrap())).collect();
    assert_eq!(states, [("see attached", "pending"), ("see attached", "failed"), ("with a draft", "pending")]);
    assert_eq!(events[1]["error"]["code"], "closed");
    let id = p.asks_token_for().unwrap();
    p.token(&mut tab, id, "u");
    let (_, body) = p.posted().unwrap();
    assert_eq!((body["text"].as_str(), body["message_id"].as_str()), (Some("with a draft"), Some("d1")), "a draft's files are on the server");
}

#[test]
fn an_apps_idempotency_key_is_the_sends_key() {
    let mut tab = Tab::default();
    let mut p = tab.open();
    p.send(&mut tab, 1, "hi", Some("my-key-1"));
    p.token(&mut tab, 1, "u");
    assert_eq!(p.posted().unwrap().1["idempotency_key"], "my-key-1");
}

#[test]
fn unreadable_storage_loses_only_the_stored_outbox_and_is_reported_once() {
    let mut tab = Tab { stored: vec![(scope("u"), "{\"v\":1,\"sends\":".into())], last: Some(scope("u")), ..Tab::default() };
    let mut p = tab.open();
    p.send(&mut tab, 1, "still goes", None);
    let reports = |p: &Page| p.out.iter().filter(|a| matches!(a, Action::Observe { kind: "storage_error", .. })).count();
    assert_eq!(reports(&p), 1, "reported with the first input");
    p.token(&mut tab, 1, "u");
    assert_eq!(p.posted().unwrap().1["text"], "still goes");
    // A newer shape, and a store that fails: no second report.
    p.feed(Input::OutboxNotSaved);
    assert_eq!(reports(&p), 0);
    for json in ["{\"v\":2,\"sends\":[]}", "[]", "null", "{\"v\":1,\"sends\":[{\"key\":7}]}"] {
        let tab = Tab { stored: vec![(scope("u"), json.into())], last: Some(scope("u")), ..Tab::default() };
        let mut p = tab.open();
        p.feed(Input::Token { purpose: TokenFor::Open, token: jwt("u") });
        assert!(p.restored_events().is_empty(), "{json}");
    }
}

#[test]
fn an_app_close_settles_them_and_leaves_nothing_stored() {
    let mut tab = Tab::default();
    let mut p = tab.open();
    p.send(&mut tab, 1, "bye", None);
    p.token(&mut tab, 1, "u");
    p.answer(&mut tab, 1, offline());
    assert_eq!(tab.texts(&scope("u")), ["bye"]);
    p.feed(Input::Close);
    tab.store(&mut p);
    assert!(tab.texts(&scope("u")).is_empty());
}


#[test]
fn a_new_tab_restores_what_the_users_closed_tabs_left_each_key_once() {
    // Two tabs left sends, and were closed (`persist: "local"` kept their outboxes).
    let mut first = Tab::default();
    page_left_offline(&mut first, "u", &["first tab, one", "first tab, two"]);
    let mut second = Tab::default();
    page_left_offline(&mut second, "u", &["second tab"]);
    let (a, b) = (first.stored[0].1.clone(), second.stored[0].1.clone());

    let mut tab = Tab::default();
    let mut p = tab.open();
    p.feed(Input::Token { purpose: TokenFor::Open, token: jwt("u") });
    assert!(p.out.iter().any(|x| matches!(x, Action::LoadOutbox { .. })));
    // What the glue claimed: both, one of them twice (never sent twice), and one unreadable.
    p.feed(Input::OutboxLoaded { json: None, orphans: vec![a.clone(), b, a, "{\"v\":9}".into()] });
    let restored: Vec<String> = p.restored_events().iter().map(|e| e["text"].as_str().unwrap().to_owned()).collect();
    let mut sorted = restored.clone();
    sorted.sort();
    assert_eq!(sorted, ["first tab, one", "first tab, two", "second tab"]);
    assert!(restored.iter().position(|t| t == "first tab, one") < restored.iter().position(|t| t == "first tab, two"), "a tab's own order kept");
    let observed: Vec<&str> = p.out.iter().filter_map(|x| match x { Action::Observe { kind, .. } => Some(*kind), _ => None }).collect();
    assert_eq!(observed.iter().filter(|k| **k == "storage_error").count(), 1, "the unreadable one is reported");
    // This page now keeps them, under its own tab.
    tab.store(&mut p);
    let mut kept = tab.texts(&scope("u"));
    kept.sort();
    assert_eq!(kept, ["first tab, one", "first tab, two", "second tab"]);
}

#[test]
fn with_persist_local_a_sends_files_are_kept_and_the_next_page_uploads_them() {
    for found in [true, false] {
        let mut tab = Tab { persist: true, ..Tab::default() };
        let mut p = tab.open();
        p.feed(Input::Send { id: 1, key: None, what: Outgoing::Message { text: "the photo".into(), files: true, draft: None }, detached: false });
        tab.store(&mut p);
        let key = p.out.iter().find_map(|a| match a {
            Action::KeepFiles { id: 1, key } => Some(key.clone()),
            _ => None,
        });
        let key = key.expect("the glue is asked to keep the files");
        p.token(&mut tab, 1, "u");
        assert!(p.out.iter().any(|a| matches!(a, Action::Upload { id: 1, .. })));
        p.answer(&mut tab, 1, offline());
        // The page goes before the upload went through.

        let mut p = tab.open();
        p.feed(Input::Token { purpose: TokenFor::Open, token: jwt("u") });
        tab.store(&mut p);
        let id = p.out.iter().find_map(|a| match a {
            Action::LoadFiles { id, key: k } if *k == key => Some(*id),
            _ => None,
        });
        let id = id.expect("the restored send asks for its files");
        assert_eq!(p.asks_token_for(), None, "it waits for them");
        p.feed(Input::FilesLoaded { id, found });
        if !found {
            let failed = p.restored_events();
            assert_eq!(failed[0]["state"], "failed");
            assert_eq!(failed[0]["error"]["code"], "closed");
            assert!(p.out.iter().any(|a| matches!(a, Action::DropFiles { key: k } if *k == key)));
            continue;
        }
        assert_eq!(p.asks_token_for(), Some(id));
        p.feed(Input::Token { purpose: TokenFor::Send(id), token: jwt("u") });
        assert!(p.out.iter().any(|a| matches!(a, Action::Upload { id: i, .. } if *i == id)), "the kept files go up");
        p.feed(Input::Posted { id, outcome: SendOutcome::Ok, body: r#"{"message_id":"draft-1"}"#.into() });
        assert!(p.out.iter().any(|a| matches!(a, Action::DropFiles { key: k } if *k == key)), "uploaded: not kept any more");
        p.feed(Input::Token { purpose: TokenFor::Send(id), token: jwt("u") });
        let (posted, body) = p.posted().expect("then the message");
        assert_eq!((posted, body["message_id"].as_str(), body["idempotency_key"].as_str()), (id, Some("draft-1"), Some(key.as_str())));
    }
}

#[test]
fn without_persist_no_files_are_kept() {
    let tab = Tab::default();
    let mut p = tab.open();
    p.feed(Input::Send { id: 1, key: None, what: Outgoing::Message { text: "the photo".into(), files: true, draft: None }, detached: false });
    assert!(!p.out.iter().any(|a| matches!(a, Action::KeepFiles { .. })));
}
