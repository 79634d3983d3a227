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
use valet_server::Running;

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

/// One measured run: `streams` convos, each with its stream open, and
/// `posts` messages posted into each by `concurrency` workers.
struct Run {
    stored: usize,
    posts: usize,
    post_secs: f64,
    all_secs: f64,
    frames: usize,
    expected_frames: usize,
    p50_ms: f64,
    p99_ms: f64,
}

async fn start(db: &str, posts: usize) -> Running {
    let mut config = Config::dev();
    config.public_url = String::new();
    config.agent_delay = Duration::ZERO;
    config.rate_limit_messages = posts + 10;
    config.rate_limit_user_messages = posts * 2 + 10;
    config.rate_limit_sessions = 10;
    config.db_path = db.to_owned();
    config.shutdown_grace = Duration::from_secs(1);
    valet_server::start(config, "127.0.0.1:0").await.expect("server")
}

async fn run(server: &Running, streams: usize, posts: usize, concurrency: usize) -> Run {
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency.max(64)).build().unwrap();
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
    let before = server.state.store.read(|db| db.count_messages()).await.unwrap() as usize;
    // Every convo posts; the dev agent answers each post: 2 stored messages,
    // 2 frames per post. `concurrency` posts are in flight at once.
    let expected = streams * posts * 2;
    let jobs: Vec<(String, String)> = (0..posts).flat_map(|_| users.iter().map(|(t, c, _)| (t.clone(), c.clone()))).collect();
    let queue = Arc::new(std::sync::Mutex::new(jobs.into_iter()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, base, queue) = (http.clone(), base.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let next = queue.lock().unwrap().next();
                let Some((t, convo)) = next else { break };
                let sent = Instant::now();
                let res = http
                    .post(format!("{base}/api/v2/agent_convos/{convo}/stream_message"))
                    .bearer_auth(&t)
                    .json(&serde_json::json!({ "text": "load message" }))
                    .send()
                    .await
                    .unwrap();
                assert!(res.status().is_success(), "{}", res.status());
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let post_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let all_secs = started.elapsed().as_secs_f64();
    let stored = server.state.store.read(|db| db.count_messages()).await.unwrap() as usize - before;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    for (_, _, r) in users {
        r.abort();
    }
    Run {
        stored,
        posts: streams * posts,
        post_secs,
        all_secs,
        frames: delivered.load(Ordering::Relaxed),
        expected_frames: expected,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

/// `load [streams] [posts per convo] [concurrency,...]`: first the streams a server
/// holds, then the durable write path (a SQLite file, `synchronous=FULL`)
/// beside `:memory:`, at each concurrency. The load generator runs in the
/// same process, on the same 2 cores.
#[tokio::main]
async fn main() {
    raise_fd_limit();
    let mut args = std::env::args().skip(1);
    let streams: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let posts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let concurrencies: Vec<usize> =
        args.next().map(|a| a.split(',').filter_map(|c| c.parse().ok()).collect()).unwrap_or_else(|| vec![1, 16, 64, 256]);

    let opened = Instant::now();
    let server = start(":memory:", 1).await;
    let held = run(&server, streams, 1, 256).await;
    println!(
        "valet-server load: {streams} streams held ({} opened in {:.1} s); 1 post each: {}/{} frames delivered",
        streams,
        opened.elapsed().as_secs_f64(),
        held.frames,
        held.expected_frames
    );
    server.shutdown().await.unwrap();

    let dir = std::env::temp_dir().join(format!("valet-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Durable writes: 200 convos (each with its stream), posts spread over them.
    let convos = 200;
    let per_convo = posts;
    println!("durable writes: {convos} convos with a live stream each, {per_convo} posts per convo, each answered by the dev agent (2 messages stored, 2 frames delivered per post)");
    println!("  {:<9} {:>11} {:>12} {:>10} {:>10} {:>9} {:>9}", "db", "concurrency", "stored msg/s", "posts/s", "frames/s", "p50 ms", "p99 ms");
    for &concurrency in &concurrencies {
        for db in ["file", ":memory:"] {
            let path = if db == "file" { dir.join(format!("load-{concurrency}.db")).to_string_lossy().into_owned() } else { db.to_owned() };
            let server = start(&path, per_convo).await;
            let r = run(&server, convos, per_convo, concurrency).await;
            println!(
                "  {:<9} {:>11} {:>12.0} {:>10.0} {:>10.0} {:>9.2} {:>9.2}{}",
                db,
                concurrency,
                r.stored as f64 / r.all_secs,
                r.posts as f64 / r.post_secs,
                r.frames as f64 / r.all_secs,
                r.p50_ms,
                r.p99_ms,
                if r.frames < r.expected_frames { format!("  ({} of {} frames!)", r.frames, r.expected_frames) } else { String::new() }
            );
            server.shutdown().await.unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
