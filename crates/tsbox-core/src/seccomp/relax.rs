//! The profiles an OCI runtime's callers write, taken as runc and crun take
//! them. tsbox's own profiles (`--security-opt seccomp=FILE`) are checked
//! strictly: a misspelt call or two actions for one call is an error. The
//! profiles podman and Docker generate are written for every architecture
//! and layer rules: they name calls of architectures tsbox has no table for,
//! and give some calls an unconditional rule twice, with different actions
//! (podman's default allows `setns` in its long list and denies it again
//! when CAP_SYS_ADMIN is not granted). libseccomp leaves out the names it
//! cannot resolve and keeps one action per call; so does [`relax`].

use serde_json::Value;

use super::{is_known_syscall, Action};

/// How strongly the kernel ranks an action when several filters answer one
/// call: the lowest wins (Documentation/userspace-api/seccomp_filter.rst).
fn precedence(a: Action) -> u8 {
    match a {
        Action::KillProcess => 0,
        Action::Kill | Action::KillThread => 1,
        Action::Trap => 2,
        Action::Errno => 3,
        Action::Notify => 4,
        Action::Trace => 5,
        Action::Log => 6,
        Action::Allow => 7,
    }
}

/// The profile in `text` (OCI `linux.seccomp` JSON) with the names that are
/// no system call on any architecture left out, and each call that has
/// unconditional rules with different actions left in only the rule whose
/// action the kernel would let win were each rule a filter of its own (of
/// two errnos, the first, as libseccomp keeps). Rules left without names go.
/// Returns the profile as JSON (`text` itself when nothing changed) and one note per change; anything it does not
/// understand is left for the validator to report.
pub fn relax(text: &str) -> Result<(String, Vec<String>), String> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let Some(rules) = value.get_mut("syscalls").and_then(Value::as_array_mut) else {
        return Ok((text.to_owned(), notes));
    };
    // name -> (index of the rule that keeps it, its action, its errno).
    let mut unconditional: std::collections::HashMap<String, (usize, Action, u64)> = Default::default();
    let mut drop: Vec<(usize, String)> = Vec::new();
    for (i, rule) in rules.iter_mut().enumerate() {
        let action = rule.get("action").and_then(Value::as_str).and_then(Action::parse);
        let errno = rule.get("errnoRet").and_then(Value::as_u64).unwrap_or(1);
        let plain = rule
            .get("args")
            .is_none_or(|a| a.is_null() || a.as_array().is_some_and(Vec::is_empty));
        let Some(names) = rule.get_mut("names").and_then(Value::as_array_mut) else {
            continue;
        };
        names.retain(|n| match n.as_str() {
            Some(name) if !is_known_syscall(name) => {
                notes.push(format!("syscalls[{i}]: {name:?} is no system call tsbox knows: left out"));
                false
            }
            _ => true,
        });
        let (Some(action), true) = (action, plain) else {
            continue;
        };
        for name in names.iter().filter_map(Value::as_str) {
            let errno = if action.takes_errno() { errno } else { 0 };
            match unconditional.get(name) {
                None => {
                    unconditional.insert(name.to_owned(), (i, action, errno));
                }
                Some(&(first, a, e)) if (a, e) != (action, errno) => {
                    if precedence(action) < precedence(a) {
                        notes.push(format!("syscalls[{first}]: {name:?} left to the stronger action of syscalls[{i}]"));
                        drop.push((first, name.to_owned()));
                        unconditional.insert(name.to_owned(), (i, action, errno));
                    } else {
                        notes.push(format!("syscalls[{i}]: {name:?} keeps the action of syscalls[{first}]"));
                        drop.push((i, name.to_owned()));
                    }
                }
                Some(_) => {}
            }
        }
    }
    for (i, name) in drop {
        if let Some(names) = rules[i].get_mut("names").and_then(Value::as_array_mut) {
            names.retain(|n| n.as_str() != Some(name.as_str()));
        }
    }
    if notes.is_empty() {
        return Ok((text.to_owned(), notes));
    }
    rules.retain(|r| r.get("names").and_then(Value::as_array).is_none_or(|n| !n.is_empty()));
    Ok((value.to_string(), notes))
}
