//! The front door's proxy against real sockets in this process: a backend
//! that echoes what it received, the front door in front of it with a
//! fixed pool. HTTP/1.1 and h2c requests, forwarded headers, an upgrade
//! spliced both ways, raw TCP, an empty pool, and a drain that waits for
//! the request in flight.

use gantry::frontdoor::{FrontDoor, Loader, Member, Mode, Request};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A backend on a thread per connection: `GET /slow` answers after
/// 600 ms; an `Upgrade: echo` request gets 101 and then its bytes echoed;
/// anything else gets 200 with the request head as the body.
fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_backend(stream));
        }
    });
    address
}

fn serve_backend(mut stream: TcpStream) {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let mut text = String::from_utf8_lossy(&head).to_string();
        let length = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(str::to_string)
            })
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let body = if text
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            match read_chunked(&mut stream) {
                Some(body) => body,
                None => return,
            }
        } else {
            let mut body = vec![0u8; length];
            if stream.read_exact(&mut body).is_err() {
                return;
            }
            body
        };
        text.push_str(&String::from_utf8_lossy(&body));
        if text.to_ascii_lowercase().contains("upgrade: echo") {
            let _ = stream.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
            );
            let mut buf = [0u8; 1024];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            return;
        }
        if text.starts_with("GET /slow") {
            std::thread::sleep(Duration::from_millis(600));
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{text}",
            text.len()
        );
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A chunked body, as the proxy streams one it did not read first.
fn read_chunked(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            stream.read_exact(&mut byte).ok()?;
            line.push(byte[0]);
        }
        let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).ok()?;
        let mut chunk = vec![0u8; size + 2];
        stream.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// A front door in this process: (its public address, its control path).
fn front_door(
    mode: Mode,
    members: Vec<Member>,
) -> (SocketAddr, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control.sock");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let public = listener.local_addr().unwrap();
    let load: Loader = Arc::new(move || {
        let members = members.clone();
        Box::pin(async move { Ok((members, BTreeMap::new())) })
    });
    let door = FrontDoor {
        service: "test".into(),
        mode,
        listen: vec![public.to_string()],
        control: control.clone(),
        binary: "test".into(),
        load,
        publish: None,
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(door.run(vec![listener], std::future::pending()))
            .unwrap();
    });
    for _ in 0..200 {
        if control.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (public, control, dir)
}

fn member(name: &str, address: SocketAddr) -> Member {
    Member {
        name: name.into(),
        address,
        revision: "r1".into(),
    }
}

fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    http_raw(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: auth.example\r\nConnection: close\r\n\r\n"),
    )
}

/// An address nothing listens on (a port just given back): connections
/// to it are refused, as to an instance that went away.
fn refused_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Sends `request` as written on a new connection: (status, the answer).
fn http_raw(address: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn requests_reach_the_instance_with_the_clients_address() {
    let (public, _, _dir) = front_door(Mode::Http, vec![member("a", backend())]);
    let (status, answer) = http_get(public, "/healthz");
    assert_eq!(status, 200, "{answer}");
    // The body is the request as the instance received it.
    let seen = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_ascii_lowercase())
        .unwrap_or_default();
    assert!(seen.contains("x-forwarded-for: 127.0.0.1"), "{answer}");
    assert!(seen.contains("x-forwarded-proto: http"), "{answer}");
    assert!(
        seen.contains("forwarded: for=127.0.0.1;proto=http;host=\"auth.example\""),
        "{answer}"
    );
    assert!(seen.contains("host: auth.example"), "{answer}");
    assert!(
        !seen.contains("connection: close"),
        "hop-by-hop headers stay on their hop: {answer}"
    );
}

#[test]
fn http2_without_tls_is_served() {
    let (public, _, _dir) = front_door(Mode::Http, vec![member("a", backend())]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use http_body_util::{BodyExt, Empty};
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let stream = tokio::net::TcpStream::connect(public).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("an h2c handshake");
        tokio::spawn(connection);
        let request = hyper::Request::get(format!("http://{public}/h2"))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("GET /h2 HTTP/1.1"), "{text}");
    });
}

#[test]
fn an_upgrade_is_spliced_both_ways() {
    let (public, _, _dir) = front_door(Mode::Http, vec![member("a", backend())]);
    let mut stream = TcpStream::connect(public).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
        "{head:?}"
    );
    stream.write_all(b"ping across the front door").unwrap();
    let mut echoed = [0u8; 26];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping across the front door");
}

#[test]
fn raw_tcp_is_relayed_and_an_empty_pool_is_503() {
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_address = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let (public, _, _dir) = front_door(Mode::Tcp, vec![member("a", echo_address)]);
    let mut stream = TcpStream::connect(public).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"not http at all").unwrap();
    let mut back = [0u8; 15];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"not http at all");

    let (empty, _, _dir2) = front_door(Mode::Http, vec![]);
    let (status, answer) = http_get(empty, "/");
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
}

/// A refused connection (the instance just went away) sends a request
/// without a body to another instance.
#[test]
fn an_instance_that_refuses_is_passed_over() {
    let gone = refused_address();
    let (public, _, _dir) = front_door(
        Mode::Http,
        vec![member("gone", gone), member("a", backend())],
    );
    for _ in 0..20 {
        let (status, answer) = http_get(public, "/x");
        assert_eq!(status, 200, "{answer}");
    }
}

/// So is a small request with a body (a login): it is read before it is
/// sent, and sent whole to the instance that answers.
#[test]
fn a_login_to_an_instance_that_refuses_is_passed_over_with_its_body() {
    let gone = refused_address();
    let (public, _, _dir) = front_door(
        Mode::Http,
        vec![member("gone", gone), member("a", backend())],
    );
    for i in 0..20 {
        let body = format!("{{\"username\":\"canary\",\"n\":{i}}}");
        let (_, answer) = http_raw(
            public,
            &format!(
                "POST /login HTTP/1.1\r\nHost: auth.example\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains(&body),
            "the instance got the body: {answer}"
        );
    }
}

/// A streamed (chunked) body is passed on as it comes, whole: it is not
/// read first, and never dropped.
#[test]
fn a_chunked_body_reaches_the_instance() {
    let (public, _, _dir) = front_door(Mode::Http, vec![member("a", backend())]);
    let (_, answer) = http_raw(
        public,
        "POST /login HTTP/1.1\r\nHost: auth.example\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("hello world"),
        "the instance got the body: {answer}"
    );
}

/// Draining: the instance leaves the pool at once, and the answer comes
/// only once its last request ended.
#[test]
fn a_drain_waits_for_the_request_in_flight() {
    let (public, control, _dir) = front_door(Mode::Http, vec![member("a", backend())]);
    let slow = std::thread::spawn(move || http_get(public, "/slow"));
    std::thread::sleep(Duration::from_millis(150));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let answer = rt
        .block_on(gantry::frontdoor::control::call(
            &control,
            &Request::Drain {
                name: "a".into(),
                timeout_ms: 5_000,
            },
            Duration::from_secs(10),
        ))
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(answer.drained, Some(true));
    assert!(
        waited >= Duration::from_millis(300),
        "answered after {waited:?}"
    );
    assert_eq!(
        slow.join().unwrap().0,
        200,
        "the request in flight finished"
    );
}
