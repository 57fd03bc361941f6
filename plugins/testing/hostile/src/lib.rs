//! A health check that misbehaves on request, to prove the sandbox holds.

use gantry_plugin::http::Request;
use gantry_plugin::{CheckResult, HealthCheck, Metric, config, log};
use std::hint::black_box;

struct Hostile;

impl HealthCheck for Hostile {
    fn check(target: String) -> CheckResult {
        match config::get("mode").as_deref() {
            Some("remember") => remember(target),
            Some("loop") => spin(),
            Some("hog") => hog(),
            Some("panic") => panic!("hostile plugin panicked on purpose"),
            Some("fake-oom") => {
                // Claims to be out of memory; the verdict must not believe it.
                eprintln!("memory allocation of 1048576 bytes failed");
                panic!("hostile plugin pretends to be out of memory")
            }
            Some("flood") => flood(),
            Some("stdout-flood") => stdout_flood(),
            Some("stack") => CheckResult::ok(format!("{}", recurse(black_box(1)))),
            Some("snoop") => snoop(),
            Some("fetch") => fetch(),
            Some("fetch-many") => fetch_many(),
            Some("probe-many") => probe_many(),
            Some("huge") => huge(),
            Some("paint") => paint(),
            Some("plant") => plant(),
            Some("scan") => scan(),
            Some("plant-scan") => {
                plant();
                scan()
            }
            Some("sleep") => {
                // Blocks in a host call (a WASI pollable), out of epoch
                // interruption's reach.
                std::thread::sleep(std::time::Duration::from_secs(3600));
                CheckResult::ok("slept an hour")
            }
            other => CheckResult::unknown(format!("unknown mode {other:?}")),
        }
    }
}

gantry_plugin::health_check!(Hostile);

/// What `plant` writes at address `a`: `a ^ MARK`, a word that names its
/// own place, so `scan` needs no copy of it in memory to recognise it.
const MARK: u64 = 0x9E37_79B9_7F4A_7C15;

/// Fills 4 MiB of heap (past the 1 MiB of dirty pages a memory slot keeps
/// resident) with marked words, and leaves them there.
fn plant() -> CheckResult {
    let mut block: Vec<u64> = vec![0; (4 << 20) / 8];
    for word in block.iter_mut() {
        let at = word as *mut u64 as usize as u64;
        *word = at ^ MARK;
    }
    let planted = black_box(&block).len();
    std::mem::forget(block);
    CheckResult::ok(format!("planted {planted}"))
}

/// Grows memory past where an earlier call planted, then counts the
/// marked words anywhere in it: what the earlier call left behind.
fn scan() -> CheckResult {
    if core::arch::wasm32::memory_grow(0, 128) == usize::MAX {
        return CheckResult::unknown("memory.grow failed: nothing scanned");
    }
    let size = core::arch::wasm32::memory_size(0) * 65536;
    let mut found = 0u64;
    let mut at = 8;
    while at + 8 <= size {
        // SAFETY: `at` is inside linear memory (below its size), aligned.
        let word = unsafe { std::ptr::read_volatile(at as *const u64) };
        found += u64::from(word == (at as u64) ^ MARK);
        at += 8;
    }
    CheckResult::ok(format!("found {found}"))
}

/// Keeps what each call saw in the guest's memory and reports what an
/// earlier call left: with a fresh instance per call, always nothing.
fn remember(target: String) -> CheckResult {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static LAST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let earlier = LAST.lock().unwrap().replace(target);
    CheckResult::ok(format!("call {call}, earlier {earlier:?}"))
}

/// Text meant to repaint the operator's terminal and forge gantry's lines:
/// ANSI escapes, carriage returns, a bidi override and embedded newlines.
fn paint() -> CheckResult {
    log::info("one line\nINFO gantry: deployment succeeded (forged)");
    eprintln!("\x1b[2J\x1b[Hscreen cleared by a plugin");
    let mut result =
        CheckResult::critical("database down\r\x1b[2K\x1b[32mOK: all good\x1b[0m\n\u{202e}kcatta");
    result
        .metrics
        .push(Metric::new("lat\x1b[31mency\nforged=1", 1.0, "ms"));
    result
}

/// A 2 MiB message with 50,000 metrics (what fits in 16 MiB).
fn huge() -> CheckResult {
    let mut result = CheckResult::ok("x".repeat(2 << 20));
    result.metrics = (0..50_000)
        .map(|i| Metric::new(format!("metric_{i}"), 1.0, ""))
        .collect();
    result
}

fn spin() -> CheckResult {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn hog() -> CheckResult {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xA5; 1 << 20]);
        black_box(&hoard);
    }
}

fn flood() -> CheckResult {
    for i in 0..100_000u32 {
        log::info(&format!("flood line {i}"));
    }
    CheckResult::ok("flooded")
}

fn stdout_flood() -> CheckResult {
    let line = "x".repeat(1023);
    for _ in 0..2_000 {
        println!("{line}");
        eprintln!("{line}");
    }
    CheckResult::ok("flooded stdout")
}

#[expect(unconditional_recursion, reason = "overflowing the stack is the point")]
fn recurse(depth: u64) -> u64 {
    let pad = black_box([depth; 64]);
    recurse(depth + 1) + pad[(depth % 64) as usize]
}

/// Tries every door the sandbox should keep shut and reports what opened.
fn snoop() -> CheckResult {
    let mut opened = Vec::new();
    for path in ["/etc/passwd", "/", ".", "/proc/self/environ"] {
        if std::fs::metadata(path).is_ok() || std::fs::read_dir(path).is_ok() {
            opened.push(format!("file {path}"));
        }
    }
    if std::fs::write("escape.txt", b"out").is_ok() {
        opened.push("file write".into());
    }
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    if !vars.is_empty() {
        opened.push(format!("env {}", vars.join(",")));
    }
    if std::env::args().len() > 0 {
        opened.push("args".into());
    }
    if let Some(addr) = config::get("connect")
        && std::net::TcpStream::connect(addr.as_str()).is_ok()
    {
        opened.push(format!("socket {addr}"));
    }
    if std::net::UdpSocket::bind("127.0.0.1:0").is_ok() {
        opened.push("udp bind".into());
    }
    if std::net::TcpListener::bind("127.0.0.1:0").is_ok() {
        opened.push("tcp listen".into());
    }
    if opened.is_empty() {
        CheckResult::ok("nothing opened")
    } else {
        CheckResult::critical(format!("opened: {}", opened.join("; ")))
    }
}

fn fetch() -> CheckResult {
    let Some(url) = config::get("url") else {
        return CheckResult::unknown("no url");
    };
    let method = config::get("method").unwrap_or_else(|| "GET".into());
    // As plugins do: the URL in the log, and in the result.
    log::info(&format!("fetching {url}"));
    println!("fetching {url}");
    let mut request = Request::new(method, &url)
        .follow_redirects(true)
        .timeout_ms(2000);
    // `header` is "Name: value; Name: value".
    for pair in config::get("header").unwrap_or_default().split(';') {
        if let Some((name, value)) = pair.split_once(':') {
            request = request.header(name.trim(), value.trim());
        }
    }
    if let Some(body) = config::get("body") {
        request = request.body(body.into_bytes());
    }
    match request.send() {
        Ok(response) => CheckResult::ok(format!("status {}", response.status)),
        Err(err) => {
            CheckResult::critical(format!("error: {}", gantry_plugin::http::describe(&err)))
        }
    }
}

/// Probes `probe` (host:port) 100 times; says how many connected, and what
/// stopped it.
fn probe_many() -> CheckResult {
    let Some((host, port)) = config::get("probe").and_then(|p| {
        let (host, port) = p.rsplit_once(':')?;
        Some((host.to_string(), port.parse::<u16>().ok()?))
    }) else {
        return CheckResult::unknown("no probe host:port");
    };
    let mut made = 0;
    for _ in 0..100 {
        match gantry_plugin::tcp::probe(&host, port, std::time::Duration::from_millis(200)) {
            Ok(_) => made += 1,
            Err(err) => return CheckResult::critical(format!("made {made}, then: {err}")),
        }
    }
    CheckResult::ok(format!("made {made}"))
}

/// Requests `url` 100 times; says how many went through, and what stopped it.
fn fetch_many() -> CheckResult {
    let Some(url) = config::get("url") else {
        return CheckResult::unknown("no url");
    };
    let mut made = 0;
    for _ in 0..100 {
        match Request::get(&url).send() {
            Ok(_) => made += 1,
            Err(err) => {
                return CheckResult::critical(format!(
                    "made {made}, then: {}",
                    gantry_plugin::http::describe(&err)
                ));
            }
        }
    }
    CheckResult::ok(format!("made {made}"))
}
