//! A running `gantry monitor` and real receivers for its notices.

use crate::Sandbox;
use crate::http::TestServer;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// `gantry --json monitor` in a sandbox, its JSON events collected.
pub struct MonitorProcess {
    pub child: Child,
    events: Arc<(Mutex<Vec<Value>>, Condvar)>,
    pub api: String,
}

impl MonitorProcess {
    /// Starts a monitor on a free port with `env` set; waits for its API.
    pub fn start(sandbox: &Sandbox, env: &[(&str, &str)]) -> MonitorProcess {
        let mut cmd = sandbox.gantry();
        cmd.args(["--json", "monitor", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gantry monitor");
        let events: Arc<(Mutex<Vec<Value>>, Condvar)> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("monitor printed non-JSON {line:?}: {e}"));
                let (list, ready) = &*sink;
                list.lock().unwrap().push(value);
                ready.notify_all();
            }
        });
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("[monitor] {line}");
            }
        });
        let mut monitor = MonitorProcess {
            child,
            events,
            api: String::new(),
        };
        let started = monitor.wait_for("the monitor to start", Duration::from_secs(60), |e| {
            e["event"] == "started"
        });
        monitor.api = started["api"].as_str().expect("api address").to_string();
        monitor
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.0.lock().unwrap().clone()
    }

    /// Waits for an event matching `pred`; panics with the events seen.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let (list, ready) = &*self.events;
        let mut seen = list.lock().unwrap();
        loop {
            if let Some(e) = seen.iter().find(|e| pred(e)) {
                return e.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let events = seen.clone();
                drop(seen);
                let exited = self.child.try_wait().ok().flatten();
                panic!("timed out waiting for {what} (exited: {exited:?}); events: {events:#?}");
            }
            seen = ready.wait_timeout(seen, deadline - now).unwrap().0;
        }
    }

    /// POSTs events (a JSON array) to the API; returns status and body.
    pub fn post(&self, events: &Value, token: Option<&str>) -> (u16, Value) {
        post_events(&self.api, events, token)
    }

    /// SIGKILL: no flush, no lease release.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the monitor did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MonitorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs `events` to a monitor's API at `api`.
pub fn post_events(api: &str, events: &Value, token: Option<&str>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut request = reqwest::Client::new()
            .post(format!("{api}/v1/events"))
            .json(events);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /v1/events");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

/// GETs `url` and returns status and body text.
pub fn get(url: &str) -> (u16, String) {
    try_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// GETs `url`: status and body text, or why there is no answer (nothing
/// listens yet, say).
pub fn try_get(url: &str) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let response = reqwest::get(url).await.map_err(|e| e.to_string())?;
        Ok((
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ))
    })
}

/// Sends `method url` with `headers` and an optional body: status, the
/// response's headers and body text.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut request = reqwest::Client::new().request(method.parse().unwrap(), url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap_or_default())
    })
}

/// `n` auth attempts, `failed` of them failing.
pub fn attempts(n: usize, failed: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                serde_json::json!({
                    "kind": "auth_attempt",
                    "success": i >= failed,
                    "response_time_ms": 12.5,
                })
            })
            .collect(),
    )
}

/// One request a receiver took.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Value,
    /// The status the receiver answered.
    pub answered: u16,
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Answers to give, in order; then 200.
    script: Mutex<VecDeque<(u16, Option<String>)>>,
    /// Answered when the script is empty.
    otherwise: Mutex<u16>,
    /// How long each answer is held back (a slow receiver).
    hold: Mutex<Duration>,
    ready: Condvar,
}

/// A webhook receiver on 127.0.0.1 that records what it is sent and
/// answers as scripted.
pub struct Receiver {
    inbox: Arc<Inbox>,
    pub server: TestServer,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::start()
    }
}

impl Receiver {
    pub fn start() -> Receiver {
        let inbox = Arc::new(Inbox {
            otherwise: Mutex::new(200),
            ..Inbox::default()
        });
        let app = Router::new().fallback(take).with_state(Arc::clone(&inbox));
        Receiver {
            inbox,
            server: TestServer::start(app),
        }
    }

    pub fn url(&self) -> String {
        self.server.url("/hook")
    }

    /// The next answers, each a status and an optional Retry-After.
    pub fn script(&self, answers: &[(u16, Option<&str>)]) {
        self.inbox
            .script
            .lock()
            .unwrap()
            .extend(answers.iter().map(|(s, r)| (*s, r.map(String::from))));
    }

    /// Holds every answer back this long (the request is recorded when it
    /// arrives).
    pub fn hold(&self, delay: Duration) {
        *self.inbox.hold.lock().unwrap() = delay;
    }

    /// What to answer once the script has run out.
    pub fn answer(&self, status: u16) {
        *self.inbox.otherwise.lock().unwrap() = status;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    /// Waits until a request matching `pred` was answered 2xx; returns it.
    pub fn wait_delivered(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + timeout;
        let mut got = self.inbox.received.lock().unwrap();
        loop {
            if let Some(r) = got
                .iter()
                .find(|r| (200..300).contains(&r.answered) && pred(r))
            {
                return r.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}; received: {:#?}",
                got.iter()
                    .map(|r| (&r.body, r.answered))
                    .collect::<Vec<_>>()
            );
            got = self
                .inbox
                .ready
                .wait_timeout(got, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Requests answered 2xx whose body `status` is `status`.
    pub fn delivered(&self, status: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered) && body_status(&r.body) == status)
            .collect()
    }
}

/// `firing` or `resolved`: the webhook body's `status`, or Slack's text.
pub fn body_status(body: &Value) -> String {
    if let Some(s) = body["status"].as_str() {
        return s.to_string();
    }
    let text = body["text"].as_str().unwrap_or_default().to_lowercase();
    if text.contains("resolved") {
        "resolved".into()
    } else {
        "firing".into()
    }
}

async fn take(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> Response {
    let (status, retry_after) = inbox
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| (*inbox.otherwise.lock().unwrap(), None));
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    inbox.received.lock().unwrap().push(Received {
        at: Instant::now(),
        headers,
        body,
        answered: status,
    });
    inbox.ready.notify_all();
    let hold = *inbox.hold.lock().unwrap();
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let mut response = StatusCode::from_u16(status).unwrap().into_response();
    if let Some(after) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
    }
    response
}
