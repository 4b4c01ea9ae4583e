//! The default seccomp profile's program: its size and how long it takes to
//! compile, per architecture (the addon compiles it once per process, so the
//! CLI pays it on every run). A measurement, not a check:
//!
//! ```sh
//! cargo run --release -p tsbox-core --example seccomp-default [DIR]
//! ```
//!
//! With DIR, also writes each program to `DIR/default-ARCH.bpf` (the raw
//! `struct sock_filter` array), for timing its load outside the test suite.

use std::time::{Duration, Instant};

use tsbox_core::seccomp::{compile, default_profile, Arch};

/// Median of 201 runs.
fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..201)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let dir = std::env::args_os().nth(1);
    let profile = default_profile();
    let validate = median(|| std::hint::black_box(&profile).validate().expect("the default profile is valid"));
    for arch in Arch::ALL {
        let compiled = median(|| {
            std::hint::black_box(compile(std::hint::black_box(&profile), arch).expect("the default profile compiles"));
        });
        let bpf = compile(&profile, arch).expect("the default profile compiles");
        println!(
            "{}: {} instructions, compiled in {compiled:?} ({validate:?} of it validating the profile), median of 201",
            arch.name(),
            bpf.len(),
        );
        if let Some(dir) = &dir {
            let path = std::path::Path::new(dir).join(format!("default-{}.bpf", arch.name()));
            std::fs::write(&path, bpf.as_bytes()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }
}
