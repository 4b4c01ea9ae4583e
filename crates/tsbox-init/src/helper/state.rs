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

/// Milliseconds since the epoch, for `finishedAt`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
