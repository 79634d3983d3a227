//! Native throughput of the convo machine: 50 000 `message` frames fed as
//! 64 KiB chunks (what a browser hands the SDK), history answered, every
//! payload emitted. Prints messages/s. Run by `make bench`.

use std::time::Instant;

use valet_core::convo::{Action, ConvoConfig, ConvoMachine, Input, TokenFor};

fn main() {
    let n: usize = std::env::var("BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let mut body = String::from("event: ready\ndata: {\"type\":\"ready\",\"conn_id\":\"bench\"}\n\n");
    for i in 1..=n {
        body.push_str(&format!(
            "event: message\ndata: {{\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"a\",\"convo_id\":\"c\",\"message\":{{\"id\":\"m{i}\",\"content\":\"message number {i} of the benchmark\",\"from\":\"appuser\",\"turn_number\":{i},\"created_at\":\"2026-11-21T12:00:00.000Z\",\"participant\":null,\"files\":[],\"seq\":{i}}}}}\n\n"
        ));
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut m = ConvoMachine::new(ConvoConfig::new("a", "c"), 1);
        let started = Instant::now();
        let mut emitted = 0usize;
        let mut count = |out: &[Action]| {
            for a in out {
                match a {
                    Action::Emit { event, .. } if event.as_str() == "message" => emitted += 1,
                    Action::EmitMany { count, .. } => emitted += count,
                    _ => {}
                }
            }
        };
        m.handle(0, Input::Start);
        m.handle(0, Input::Token { purpose: TokenFor::Stream(1), token: "t".into() });
        m.handle(0, Input::StreamOpened { attempt: 1 });
        let mut reconcile = None;
        let mut rest = body.as_str();
        while !rest.is_empty() {
            // 64 KiB chunks, cut at char boundaries (as a TextDecoder hands them over).
            let mut n = rest.len().min(64 * 1024);
            while !rest.is_char_boundary(n) {
                n -= 1;
            }
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let out = m.handle(0, Input::StreamText { attempt: 1, text: chunk.to_owned() });
            for a in &out {
                if let Action::GetToken { purpose: TokenFor::Reconcile(r), .. } = a {
                    reconcile = Some(*r);
                }
            }
            count(&out);
        }
        let r = reconcile.expect("a reconcile was asked for");
        m.handle(0, Input::Token { purpose: TokenFor::Reconcile(r), token: "t".into() });
        let out = m.handle(0, Input::ReconcileDone { req: r, status: 200, body: "{\"messages\":[]}".into() });
        count(&out);
        assert_eq!(emitted, n);
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!("valet-core convo machine, native: {n} messages in {:.1} ms = {:.0} msg/s (best of 5)", best * 1000.0, n as f64 / best);
}
