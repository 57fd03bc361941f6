//! The `Reporter`: one per process, shared by every engine's sink.

use super::describe::{Describe, Progress};
use crate::escape;
use crate::events::Sink;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Progress bars and lines on a terminal.
    Terminal,
    /// Plain lines (stdout is a pipe or a file).
    Plain,
    /// One JSON object per line: each event, then the result.
    Json,
    /// Results only, no events.
    Quiet,
}

pub struct Reporter {
    mode: Mode,
    closed: AtomicBool,
    bars: Mutex<Bars>,
}

#[derive(Default)]
struct Bars {
    multi: Option<MultiProgress>,
    open: HashMap<String, ProgressBar>,
}

impl Reporter {
    /// `--json` wins; `-q` prints results only; otherwise bars when stdout
    /// is a terminal, plain lines when it is not.
    pub fn new(json: bool, quiet: bool) -> Arc<Reporter> {
        let mode = if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Plain
        };
        Arc::new(Reporter {
            mode,
            closed: AtomicBool::new(false),
            bars: Mutex::new(Bars::default()),
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn is_json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// A sink that renders `E` events as this reporter's mode says.
    pub fn sink<E: Describe + Serialize + 'static>(self: &Arc<Self>) -> Sink<E> {
        let me = Arc::clone(self);
        Arc::new(move |event: &E| me.event(event))
    }

    fn event<E: Describe + Serialize>(&self, event: &E) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => {
                let mut value = serde_json::to_value(event).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert("engine".into(), event.engine().into());
                }
                let _ = self.write_line(&value.to_string());
            }
            Mode::Plain => {
                if let Some(line) = event.line() {
                    let _ = self.write_line(&escape::controls(&line));
                }
            }
            Mode::Terminal => self.terminal(event),
        }
    }

    fn terminal<E: Describe>(&self, event: &E) {
        let mut bars = self.bars.lock().expect("reporter bars");
        let multi = bars
            .multi
            .get_or_insert_with(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()))
            .clone();
        match event.progress() {
            Progress::Begin { key, total, label } => {
                let bar = multi.add(ProgressBar::new(total));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg} [{bar:30}] {pos}/{len} {elapsed}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar.set_message(escape::controls(&label).into_owned());
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                bars.open.insert(key, bar);
            }
            Progress::Step { key, label } => {
                if let Some(bar) = bars.open.get(&key) {
                    bar.inc(1);
                    bar.set_message(escape::controls(&label).into_owned());
                }
            }
            Progress::End { key } => {
                if let Some(bar) = bars.open.remove(&key) {
                    bar.finish_and_clear();
                }
            }
            Progress::None => {}
        }
        if let Some(line) = event.line()
            && multi.println(escape::controls(&line)).is_err()
        {
            self.closed.store(true, Ordering::SeqCst);
        }
    }

    /// Clears any bar still drawn (call before printing the result).
    pub fn finish(&self) {
        let mut bars = self.bars.lock().expect("reporter bars");
        for (_, bar) in bars.open.drain() {
            bar.finish_and_clear();
        }
        if let Some(multi) = bars.multi.take() {
            let _ = multi.clear();
        }
    }

    fn write_line(&self, line: &str) -> std::io::Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let mut out = std::io::stdout().lock();
        let result = writeln!(out, "{line}").and_then(|()| out.flush());
        if let Err(e) = &result
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            self.closed.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Prints a result as one line of JSON.
    pub fn json<T: Serialize>(&self, value: &T) -> std::io::Result<()> {
        self.finish();
        let line = serde_json::to_string(value).map_err(std::io::Error::other)?;
        self.write_line(&line)
    }

    /// A note for a person on stderr (what went wrong before an error).
    pub fn note(&self, text: impl AsRef<str>) {
        self.finish();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", escape::controls(text.as_ref()));
    }

    /// Prints human text with a trailing newline; control characters from
    /// plugins or receivers inside it are shown escaped, never obeyed.
    pub fn text(&self, text: impl AsRef<str>) -> std::io::Result<()> {
        self.finish();
        self.write_line(&escape::controls(text.as_ref()))
    }
}
