//! Runtime benchmarks: prints the figures the foundation issue names.
//!
//!   cargo bench -p gantry --bench runtime            # all
//!   cargo bench -p gantry --bench runtime -- call    # names containing "call"
//!
//! Each figure is a median over many samples, each sample timed on its own.

mod common;

use common::{Figure, gantry_bin, timed};
use gantry::runtime::{PluginSource, Runtime, RuntimeSettings};
use gantry::testing::test_plugin;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn runtime(cache: Option<PathBuf>) -> Runtime {
    Runtime::new(RuntimeSettings {
        cache_dir: cache,
        ..RuntimeSettings::default()
    })
    .expect("runtime")
}

fn per_call_trivial() -> Figure {
    let rt = runtime(None);
    let plugin = rt
        .load(
            PluginSource::from_path(&test_plugin("trivial"), None).unwrap(),
            None,
        )
        .unwrap();
    let settings = plugin.settings(Vec::<(String, String)>::new()).unwrap();
    let call = || {
        rt.check(&plugin, &settings, "")
            .into_result()
            .expect("call");
    };
    timed(2_000, call); // warm up
    Figure {
        name: "call: trivial check, fresh store per call",
        samples: timed(20_000, call),
        goal: Some(Duration::from_micros(30)),
    }
}

fn per_call_http_check() -> Figure {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(reply).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let rt = runtime(None);
    let plugin = rt
        .load(PluginSource::builtin("http-check").unwrap().unwrap(), None)
        .unwrap();
    let settings = plugin
        .settings([("url", format!("http://{addr}/health"))])
        .unwrap();
    let call = || {
        rt.check(&plugin, &settings, "")
            .into_result()
            .expect("call");
    };
    timed(200, call);
    Figure {
        name: "call: http-check against a local server",
        samples: timed(2_000, call),
        goal: None,
    }
}

fn load_from_cache() -> Figure {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(Some(dir.path().to_path_buf()));
    let load = || {
        let source = PluginSource::builtin("http-check").unwrap().unwrap();
        rt.load(source, None).expect("load");
    };
    load(); // fills the cache
    Figure {
        name: "load: http-check from the compile cache",
        samples: timed(200, load),
        goal: Some(Duration::from_millis(5)),
    }
}

fn first_compile_only() -> Figure {
    let mut samples = Vec::new();
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(Some(dir.path().to_path_buf()));
        let source = PluginSource::builtin("http-check").unwrap().unwrap();
        let start = Instant::now();
        rt.load(source, None).expect("load");
        samples.push(start.elapsed());
    }
    Figure {
        name: "load: http-check, first compile",
        samples,
        goal: None,
    }
}

fn plugin_list_wall() -> Option<Figure> {
    let bin = gantry_bin();
    if !bin.is_file() {
        eprintln!("skipping `gantry plugin list`: {} not built", bin.display());
        return None;
    }
    let work = tempfile::tempdir().unwrap();
    let run = || {
        let status = Command::new(&bin)
            .args(["plugin", "list"])
            .current_dir(work.path())
            .env("GANTRY_CACHE_DIR", work.path().join("cache"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    run(); // warms the cache
    Some(Figure {
        name: "wall: `gantry plugin list`, warm cache",
        samples: timed(30, run),
        goal: Some(Duration::from_millis(50)),
    })
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    type Bench = (&'static str, fn() -> Option<Figure>);
    let benches: [Bench; 5] = [
        ("call trivial", || Some(per_call_trivial())),
        ("call http", || Some(per_call_http_check())),
        ("load cache", || Some(load_from_cache())),
        ("load compile", || Some(first_compile_only())),
        ("wall list", plugin_list_wall),
    ];
    println!(
        "gantry runtime benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (name, bench) in benches {
        if wanted(name)
            && let Some(figure) = bench()
        {
            figure.print();
        }
    }
}
