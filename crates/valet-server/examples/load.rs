//! Server load: hold N concurrent SSE streams (one appuser each) and fan out
//! messages while every convo posts. Prints streams held, posts/s and
//! message frames delivered/s. Run by `make bench`:
//! `cargo run --release -p valet-server --example load -- [streams] [posts per convo]`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use valet_core::sse::{SseItem, SseParser};
use valet_server::auth::{mint, Claims, AUDIENCE};
use valet_server::config::{dev, Config};

fn token(source_key: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: dev::API_KEY.into(),
        aud: AUDIENCE.into(),
        company_api_key: dev::API_KEY.into(),
        agent_uuid: dev::AGENT_ID.into(),
        source_key: source_key.into(),
        iat: now,
        exp: now + 900,
        jti: None,
        nbf: None,
    };
    mint(dev::SECRET, &claims)
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[tokio::main]
async fn main() {
    raise_fd_limit();
    let mut args = std::env::args().skip(1);
    let streams: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let posts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let mut config = Config::dev();
    config.public_url = String::new();
    config.agent_delay = Duration::ZERO;
    config.rate_limit_messages = posts + 10;
    let server = valet_server::start(config, "127.0.0.1:0").await.expect("server");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();

    // Open every stream.
    let opened = Instant::now();
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut users = Vec::new();
    for chunk in (0..streams).collect::<Vec<_>>().chunks(100) {
        let mut opening = Vec::new();
        for &i in chunk {
            let (http, base, delivered) = (http.clone(), base.clone(), delivered.clone());
            opening.push(tokio::spawn(async move {
                let t = token(&format!("load-{i}"));
                let res = http.post(format!("{base}/api/v2/sessions")).bearer_auth(&t).send().await.unwrap();
                let convo = res.json::<serde_json::Value>().await.unwrap()["convo_id"].as_str().unwrap().to_owned();
                let res = http.get(format!("{base}/api/v2/agent_convos/{convo}/events")).bearer_auth(&t).send().await.unwrap();
                assert_eq!(res.status(), 200);
                let reader = tokio::spawn(async move {
                    let mut body = res.bytes_stream();
                    let mut parser = SseParser::new();
                    while let Some(Ok(chunk)) = body.next().await {
                        for item in parser.feed(&chunk) {
                            if matches!(&item, SseItem::Event(e) if e.event == "message") {
                                delivered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
                (t, convo, reader)
            }));
        }
        for o in opening {
            users.push(o.await.unwrap());
        }
    }
    let open_secs = opened.elapsed().as_secs_f64();
    let held = server.state.hub.stats().live_streams;

    // Every convo posts; the dev agent answers each post: 2 frames per post per stream.
    let expected = streams * posts * 2;
    let started = Instant::now();
    let mut posting = Vec::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(256)); // client-side fds: both ends live in this process
    for (t, convo, _) in &users {
        let (http, base, t, convo) = (http.clone(), base.clone(), t.clone(), convo.clone());
        let permits = permits.clone();
        posting.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            for k in 0..posts {
                let res = http
                    .post(format!("{base}/api/v2/agent_convos/{convo}/stream_message"))
                    .bearer_auth(&t)
                    .json(&serde_json::json!({ "text": format!("load message {k}") }))
                    .send()
                    .await
                    .unwrap();
                assert!(res.status().is_success(), "{}", res.status());
            }
        }));
    }
    for p in posting {
        p.await.unwrap();
    }
    let posted_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let got = delivered.load(Ordering::Relaxed);
    println!("valet-server load: {held} streams held (opened in {open_secs:.1} s)");
    println!(
        "  {} posts stored in {posted_secs:.2} s = {:.0} posts/s; {got}/{expected} message frames delivered in {secs:.2} s = {:.0} frames/s",
        streams * posts,
        (streams * posts) as f64 / posted_secs,
        got as f64 / secs
    );
    for (_, _, r) in users {
        r.abort();
    }
}
