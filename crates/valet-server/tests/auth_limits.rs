//! Rejections: tokens, origins, bodies. Each is a JSON error with a stable code.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use valet_server::auth::{mint, Claims};
use valet_server::config::dev;

async fn code_of(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    assert_eq!(res.headers()["content-type"], "application/json", "error bodies are JSON");
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "a human message: {body}");
    (status, body["code"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_token_rejection_has_its_status_and_code() {
    let s = Server::start().await;
    let now = chrono::Utc::now().timestamp();
    let good = claims("user-1", now + 900);
    let with = |f: &dyn Fn(&mut Claims)| {
        let mut c = good.clone();
        f(&mut c);
        mint(dev::SECRET, &c)
    };
    let cases: Vec<(Option<String>, StatusCode, &str)> = vec![
        (None, StatusCode::UNAUTHORIZED, "missing_token"),
        (Some("not-a-jwt".into()), StatusCode::UNAUTHORIZED, "invalid_token"),
        (Some(mint("some-other-secret", &good)), StatusCode::UNAUTHORIZED, "bad_signature"),
        (Some(with(&|c| c.exp = now - 60)), StatusCode::UNAUTHORIZED, "token_expired"),
        (Some(with(&|c| c.aud = "someone-else".into())), StatusCode::UNAUTHORIZED, "wrong_audience"),
        (Some(with(&|c| c.iss = "no-such-company".into())), StatusCode::UNAUTHORIZED, "unknown_company"),
        (Some(with(&|c| c.company_api_key = "other".into())), StatusCode::UNAUTHORIZED, "invalid_token"),
        (Some(with(&|c| c.agent_uuid = "00000000-0000-4000-8000-000000000bad".into())), StatusCode::FORBIDDEN, "unknown_agent"),
        (Some(with(&|c| c.source_key = "jane.doe@example.com".into())), StatusCode::FORBIDDEN, "invalid_source_key"),
        (Some(with(&|c| c.source_key = String::new())), StatusCode::FORBIDDEN, "invalid_source_key"),
    ];
    for (token, status, code) in cases {
        for path in ["/api/v2/sessions", "/api/v2/agent_convos"] {
            let mut req = if path.ends_with("sessions") { s.http.post(s.url(path)) } else { s.http.get(s.url(path)) };
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let got = code_of(req.send().await.unwrap()).await;
            assert_eq!(got, (status, code.to_owned()), "{path} with {code}");
        }
    }
    // A token never appears in a response.
    let res = s.http.get(s.url("/api/v2/agent_convos")).bearer_auth("a.b.c").send().await.unwrap();
    assert!(!res.text().await.unwrap().contains("a.b.c"));
}

#[tokio::test]
async fn a_non_bearer_authorization_header_is_missing_token() {
    let s = Server::start().await;
    let res = s.http.get(s.url("/api/v2/agent_convos")).header("authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
    assert_eq!(code_of(res).await, (StatusCode::UNAUTHORIZED, "missing_token".into()));
}

#[tokio::test]
async fn bodies_malformed_oversized_or_not_utf8_are_rejected_cleanly() {
    let s = Server::with(|c| c.max_body_bytes = 1024).await;
    let t = token("body-user");
    let convo = s.session(&t).await;
    let path = s.url(&format!("/api/v2/agent_convos/{convo}/stream_message"));
    let post = |body: Vec<u8>| {
        s.http.post(&path).bearer_auth(&t).header("content-type", "application/json").body(body).send()
    };
    assert_eq!(code_of(post(b"{not json".to_vec()).await.unwrap()).await, (StatusCode::BAD_REQUEST, "invalid_json".into()));
    assert_eq!(
        code_of(post(b"{\"text\":\"caf\xe9\"}".to_vec()).await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "invalid_json".into())
    );
    assert_eq!(code_of(post(b"{\"txt\":\"x\"}".to_vec()).await.unwrap()).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let big = serde_json::to_vec(&json!({ "text": "a".repeat(2000) })).unwrap();
    assert_eq!(code_of(post(big).await.unwrap()).await, (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into()));
    assert_eq!(
        code_of(post(b"{\"text\":\"   \"}".to_vec()).await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "empty_message".into())
    );
    let res = s.http.post(&path).bearer_auth(&t).body("{\"text\":\"x\"}").send().await.unwrap();
    assert_eq!(code_of(res).await, (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into()));
    // None of these stored anything, and the convo still works.
    assert_eq!(s.history(&t, &convo).await.len(), 0);
    assert_eq!(s.send(&t, &convo, "still fine").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn text_longer_than_the_limit_is_rejected() {
    let s = Server::with(|c| c.max_text_chars = 10).await;
    let t = token("long-user");
    let convo = s.session(&t).await;
    assert_eq!(code_of(s.send(&t, &convo, "ééééééééééé").await).await, (StatusCode::PAYLOAD_TOO_LARGE, "text_too_long".into()));
    assert_eq!(s.send(&t, &convo, "éééééééééé").await.status(), StatusCode::OK, "the limit counts characters");
}

#[tokio::test]
async fn cors_grants_listed_origins_only() {
    let s = Server::start().await;
    let preflight = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, s.url("/api/v2/sessions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,idempotency-key")
            .send()
    };
    for origin in ["http://127.0.0.1:5173", "http://localhost:3000"] {
        let res = preflight(origin).await.unwrap();
        assert_eq!(res.headers()["access-control-allow-origin"], origin);
        let allowed = res.headers()["access-control-allow-headers"].to_str().unwrap().to_owned();
        assert!(allowed.contains("authorization") && allowed.contains("idempotency-key"), "{allowed}");
    }
    for origin in ["http://evil.example", "http://127.0.0.1.evil.example:80", "https://localhost:3000"] {
        let res = preflight(origin).await.unwrap();
        assert!(res.headers().get("access-control-allow-origin").is_none(), "{origin} must get no grant");
    }
    // Simple request: the grant and the exposed Retry-After.
    let t = token("cors-user");
    let res = s.http.post(s.url("/api/v2/sessions")).bearer_auth(&t).header("origin", "http://127.0.0.1:9").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], "http://127.0.0.1:9");
    assert!(res.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase().contains("retry-after"));
    // A valid token from a foreign origin does nothing.
    let convos_before = s.stats().await["convos"].clone();
    let res = s.http.post(s.url("/api/v2/sessions")).bearer_auth(&t).header("origin", "http://evil.example").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_eq!(code_of(res).await, (StatusCode::FORBIDDEN, "origin_not_allowed".into()));
    assert_eq!(s.stats().await["convos"], convos_before);
}

#[tokio::test]
async fn company_origins_are_per_company() {
    let s = Server::with(|c| {
        let mut other = c.companies[0].clone();
        other.name = "Acme".into();
        other.api_key = "acme-key".into();
        other.secret = "acme-secret".into();
        other.agents = vec!["acme-agent".into()];
        other.origins = vec!["https://chat.acme.example".into()];
        c.companies.push(other);
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let mut c = claims("acme-user", now + 900);
    c.iss = "acme-key".into();
    c.company_api_key = "acme-key".into();
    c.agent_uuid = "acme-agent".into();
    let acme = mint("acme-secret", &c);
    let ok = s.http.post(s.url("/api/v2/sessions")).bearer_auth(&acme).header("origin", "https://chat.acme.example").send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let res = s.http.post(s.url("/api/v2/sessions")).bearer_auth(&acme).header("origin", "http://127.0.0.1:5000").send().await.unwrap();
    assert_eq!(code_of(res).await, (StatusCode::FORBIDDEN, "origin_not_allowed".into()), "the dev company's origins are not Acme's");
    // The dev company's agent is not Acme's.
    c.agent_uuid = dev::AGENT_ID.into();
    let res = s.http.post(s.url("/api/v2/sessions")).bearer_auth(mint("acme-secret", &c)).send().await.unwrap();
    assert_eq!(code_of(res).await, (StatusCode::FORBIDDEN, "unknown_agent".into()));
}

#[tokio::test]
async fn dev_jwt_mints_working_tokens_and_admin_needs_its_secret() {
    let s = Server::start().await;
    let res = s.http.post(s.url("/dev/jwt")).json(&json!({"source_key": "demo-user", "ttl_seconds": 60})).send().await.unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["agent_id"], dev::AGENT_ID);
    let claims = valet_core::token::read_claims(v["token"].as_str().unwrap()).unwrap();
    let exp = claims.exp.unwrap();
    assert!((exp - chrono::Utc::now().timestamp() - 60).abs() <= 2);
    s.session(v["token"].as_str().unwrap()).await;

    let res = s.http.post(s.url("/dev/admin/faults")).json(&json!({"route": "events", "status": 500})).send().await.unwrap();
    assert_eq!(code_of(res).await, (StatusCode::UNAUTHORIZED, "admin_unauthorized".into()));
    let res = s
        .http
        .post(s.url("/dev/admin/faults"))
        .bearer_auth(dev::ADMIN_SECRET)
        .json(&json!({"route": "nope", "status": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(res).await, (StatusCode::BAD_REQUEST, "invalid_fault".into()));
}

/// `GET /dev/jwt` plays a backend with a session cookie: a new browser
/// gets a user and keeps it; another cookie is another user.
#[tokio::test]
async fn dev_jwt_get_knows_the_user_by_a_cookie() {
    let s = Server::start().await;
    let user_of = |v: &Value| valet_core::token::read_claims(v["token"].as_str().unwrap()).unwrap().source_key.unwrap();
    let res = s.http.get(s.url("/dev/jwt")).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("Path=/"), "{cookie}");
    let first: Value = res.json().await.unwrap();
    let user = user_of(&first);
    assert!(user.starts_with("dev-") && cookie.starts_with(&format!("valet_dev_user={user};")), "{user} {cookie}");
    s.session(first["token"].as_str().unwrap()).await;
    let again = s.http.get(s.url("/dev/jwt")).header("cookie", format!("a=b; valet_dev_user={user}")).send().await.unwrap();
    assert!(again.headers().get("set-cookie").is_none(), "a known user keeps its cookie");
    assert_eq!(user_of(&again.json().await.unwrap()), user);
    let named: Value = s.http.get(s.url("/dev/jwt?source_key=u-7")).send().await.unwrap().json().await.unwrap();
    assert_eq!(user_of(&named), "u-7");
    // A cookie that could not be a user is a new user, not an error.
    let junk = s.http.get(s.url("/dev/jwt")).header("cookie", "valet_dev_user=<x>").send().await.unwrap();
    assert!(junk.headers().get("set-cookie").is_some());
    assert_ne!(user_of(&junk.json().await.unwrap()), "<x>");
}

#[tokio::test]
async fn without_dev_mode_there_are_no_dev_endpoints() {
    let s = Server::with(|c| c.dev = false).await;
    for path in ["/dev/jwt", "/dev/admin/faults"] {
        let res = s.http.post(s.url(path)).json(&json!({"source_key": "x"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(s.http.get(s.url("/dev/stats")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}
