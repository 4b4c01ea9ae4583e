//! The monitor's part of the container's `state.json` (ts/runtime/state.ts
//! owns the file and writes it first): the fields that change while the
//! container lives, its PID 1's pid, its status and how it ended. Every
//! write is whole (a temporary file renamed over it), so a reader never sees
//! half a state.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub struct StateFile(Option<PathBuf>);

impl StateFile {
    /// The state.json beside the control socket, when the container has one.
    pub fn beside(control: Option<&str>) -> StateFile {
        StateFile(control.and_then(|c| Path::new(c).parent()).map(|dir| dir.join("state.json")))
    }

    /// Applies `change` to the state, as it is on disk now. Best effort: the
    /// state is for readers (tsbox ps, state); the container does not depend on it.
    pub fn update(&self, change: impl FnOnce(&mut Map<String, Value>)) {
        let Some(path) = &self.0 else { return };
        let Ok(text) = std::fs::read(path) else { return };
        let Ok(Value::Object(mut state)) = serde_json::from_slice::<Value>(&text) else {
            return;
        };
        change(&mut state);
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        // The temporary file goes by the rename, or here when either step failed.
        let written = std::fs::write(&tmp, serde_json::to_vec_pretty(&Value::Object(state)).unwrap_or_default());
        if written.and_then(|()| std::fs::rename(&tmp, path)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// This process's start time (field 22 of /proc/self/stat, in clock ticks
/// since boot), as text: with `monitorPid` it names the monitor, so that a
/// reader does not take a later process that got the same pid for it
/// (ts/runtime/state.ts monitorAlive). Read once.
pub fn own_start() -> Option<&'static str> {
    static START: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    START
        .get_or_init(|| {
            let stat = std::fs::read("/proc/self/stat").ok()?;
            stat_fields(&stat)?.1.nth(19).map(str::to_string)
        })
        .as_deref()
}

/// `/proc/PID/stat` read apart: the command's name (which may hold spaces
/// and parentheses, so it ends at the last ')'), and the fields after it,
/// from the state (field 3) on.
pub fn stat_fields(stat: &[u8]) -> Option<(&[u8], std::str::SplitWhitespace<'_>)> {
    let open = stat.iter().position(|b| *b == b'(')?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    Some((stat.get(open + 1..close)?, rest.split_whitespace()))
}

/// Sets `monitorPid` (this process) and `monitorStart` in `state`.
pub fn name_monitor(state: &mut Map<String, Value>) {
    state.insert("monitorPid".into(), std::process::id().into());
    if let Some(start) = own_start() {
        state.insert("monitorStart".into(), start.into());
    }
}

/// Milliseconds since the epoch, for `finishedAt`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monitor_is_named_by_its_pid_and_its_start_time() {
        let mut state = Map::new();
        name_monitor(&mut state);
        assert_eq!(state["monitorPid"], Value::from(std::process::id()));
        // The start time as ps shows it (clock ticks since boot), a number that this process's own stat confirms.
        let start = state["monitorStart"].as_str().unwrap().to_string();
        assert!(!start.is_empty() && start.bytes().all(|b| b.is_ascii_digit()), "{start}");
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        assert_eq!(fields[19], start);
    }
}
