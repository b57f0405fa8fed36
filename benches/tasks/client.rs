//! A minimal HTTP/1.1 client on the control socket, and the latency runs (one client, then
//! many concurrent ones) with their p50/p99.

use super::*;

pub(crate) fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A keep-alive HTTP/1.1 connection to the daemon's socket, opened again when the daemon
/// closed it (it closes connections idle for longer than its header timeout).
pub(crate) struct Conn {
    socket: PathBuf,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub(crate) async fn open(socket: &Path) -> Conn {
        let mut c = Conn {
            socket: socket.to_owned(),
            sender: None,
        };
        c.connect().await;
        c
    }

    pub(crate) async fn connect(&mut self) {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket.display()));
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        tokio::spawn(conn);
        self.sender = Some(sender);
    }

    pub(crate) async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Bytes) {
        let ready = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            self.connect().await;
        }
        let sender = self.sender.as_mut().expect("connected");
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    }

    pub(crate) async fn json(&mut self, method: &str, path: &str, body: Option<&str>) -> Json {
        let (status, bytes) = self.call(method, path, body).await;
        assert_eq!(
            status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).expect("JSON")
    }
}

/// The read requests of the load runs.
pub(crate) fn read_requests() -> Vec<(&'static str, String)> {
    vec![
        ("GET /v1/status", "/v1/status".into()),
        ("GET /v1/tasks?q=libssl3", "/v1/tasks?q=libssl3".into()),
        (
            "GET /v1/tasks?q=(no match)",
            "/v1/tasks?q=no-such-text-anywhere&status=all".into(),
        ),
        (
            "GET /v1/tasks?assignee=..&status=all",
            "/v1/tasks?assignee=owner-03@example.com&status=all".into(),
        ),
        ("GET /v1/tasks?node=..", "/v1/tasks?node=node-04242".into()),
        (
            "GET /v1/tasks?kind=policy&offset=500",
            "/v1/tasks?kind=policy&offset=500".into(),
        ),
        (
            "GET /v1/tasks/{id}",
            "/v1/tasks/{id}?events_limit=20".into(),
        ),
    ]
}

/// `clients` connections, each sending `requests` requests round-robin over the read
/// requests; per request kind: count, p50, p99, max; and the overall rate.
pub(crate) async fn load(socket: &Path, clients: usize, requests: usize, label: &str) {
    let kinds = Arc::new(read_requests());
    let seed = Arc::new(AtomicU64::new(1));
    let start = Instant::now();
    let mut handles = Vec::new();
    for c in 0..clients {
        let (socket, kinds, seed) = (socket.to_owned(), kinds.clone(), seed.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::open(&socket).await;
            let mut out = Vec::with_capacity(requests);
            for r in 0..requests {
                let k = (c + r) % kinds.len();
                let id = seed.fetch_add(7919, Ordering::Relaxed) % TASKS + 1;
                let path = kinds[k].1.replace("{id}", &id.to_string());
                let t0 = Instant::now();
                let (status, body) = conn.call("GET", &path, None).await;
                assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
                out.push((k, t0.elapsed()));
            }
            out
        }));
    }
    let mut per_kind: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for h in handles {
        for (k, d) in h.await.expect("client") {
            per_kind[k].push(d);
        }
    }
    let wall = start.elapsed();
    let total: usize = per_kind.iter().map(Vec::len).sum();
    println!(
        "{label}: {clients} concurrent clients (keep-alive), {total} requests in {:.2} s = {:.0} req/s",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64()
    );
    let mut all = Vec::new();
    for (k, mut v) in per_kind.into_iter().enumerate() {
        v.sort();
        println!(
            "  {:<40} n={:<5} p50 {:>10}  p99 {:>10}  max {:>10}",
            kinds[k].0,
            v.len(),
            ms(percentile(&v, 50)),
            ms(percentile(&v, 99)),
            ms(*v.last().unwrap_or(&Duration::ZERO))
        );
        all.extend(v);
    }
    all.sort();
    println!(
        "  {:<40} n={:<5} p50 {:>10}  p99 {:>10}",
        "all",
        all.len(),
        ms(percentile(&all, 50)),
        ms(percentile(&all, 99))
    );
}

/// One client, one request at a time: the latency of each read request alone.
pub(crate) async fn sequential(conn: &mut Conn, runs: usize) {
    println!("single client, {runs} runs each:");
    for (name, path) in read_requests() {
        let mut v = Vec::with_capacity(runs);
        let mut total = 0;
        for r in 0..runs {
            let path = path.replace("{id}", &((r as u64 * 7919) % TASKS + 1).to_string());
            let t0 = Instant::now();
            let (status, body) = conn.call("GET", &path, None).await;
            v.push(t0.elapsed());
            assert_eq!(status, 200, "{path}");
            if r == 0 {
                let j: Json = serde_json::from_slice(&body).expect("JSON");
                total = j["total"].as_u64().unwrap_or(0);
            }
        }
        v.sort();
        println!(
            "  {:<40} p50 {:>10}  p99 {:>10}  (matches: {total})",
            name,
            ms(percentile(&v, 50)),
            ms(percentile(&v, 99))
        );
    }
}
