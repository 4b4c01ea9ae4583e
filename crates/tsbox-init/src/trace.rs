//! `--trace`: every setup step on stderr with its time offset from the moment the
//! parent started the launch. One branch on a bool when off.

use std::io::Write;

#[derive(Clone, Copy)]
pub struct Trace {
    on: bool,
    t0_ns: u64,
}

impl Trace {
    pub fn new(on: bool, t0_ns: u64) -> Trace {
        Trace { on, t0_ns }
    }

    /// The same clock, switched on (a process that asked for a trace).
    pub fn on(self) -> Trace {
        Trace { on: true, ..self }
    }

    #[inline]
    pub fn step(&self, what: std::fmt::Arguments<'_>) {
        if self.on {
            self.emit(what);
        }
    }

    #[cold]
    fn emit(&self, what: std::fmt::Arguments<'_>) {
        let now = monotonic_ns();
        let off = now.saturating_sub(self.t0_ns) as f64 / 1e6;
        let line = format!("tsbox[{}] +{off:.3}ms {what}\n", std::process::id());
        // One write per line so lines of the helper and the child do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

macro_rules! trace {
    ($t:expr, $($arg:tt)*) => { $t.step(format_args!($($arg)*)) };
}
pub(crate) use trace;
