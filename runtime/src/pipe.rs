//! A bounded stdout/stderr for plugins.
//!
//! Keeps the first `capacity` bytes and counts the rest; writing never
//! fails and never blocks, so printing too much cannot trap a plugin or
//! fill the host's memory.

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Clone)]
pub struct BoundedPipe {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
    capacity: usize,
}

impl BoundedPipe {
    pub fn new(capacity: usize) -> Self {
        BoundedPipe {
            inner: Arc::new(Mutex::new(Captured {
                capacity,
                ..Captured::default()
            })),
        }
    }

    /// What was kept, as text, and how many bytes were dropped.
    pub fn take(&self) -> (String, u64) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let kept = std::mem::take(&mut c.kept);
        (String::from_utf8_lossy(&kept).into_owned(), c.dropped)
    }

    fn push(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = c.capacity - c.kept.len();
        let keep = bytes.len().min(room);
        c.kept.extend_from_slice(&bytes[..keep]);
        c.dropped += (bytes.len() - keep) as u64;
    }
}

impl IsTerminal for BoundedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for BoundedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for BoundedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for BoundedPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let pipe = BoundedPipe::new(4);
        pipe.push(b"abc");
        pipe.push(b"defg");
        assert_eq!(pipe.take(), ("abcd".to_string(), 3));
    }
}
