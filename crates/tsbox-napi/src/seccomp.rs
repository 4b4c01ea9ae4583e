//! Seccomp profiles compiled to BPF here, in the parent, once per distinct
//! profile (DESIGN.md, Performance principles): the container process only
//! loads the program.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tsbox_core::seccomp::{self, Agent, Arch, Profile};

/// Programs already compiled, keyed by the profile text (`None`: the default).
/// The map hashes the text and compares it whole, so two profiles can never
/// share a program. Profiles are few; the bound only stops a caller that
/// generates them from growing this without end.
static CACHE: OnceLock<Mutex<Programs>> = OnceLock::new();
type Programs = HashMap<(Option<String>, bool), Arc<[u8]>>;
const CACHE_ENTRIES: usize = 64;

fn compile(profile_json: Option<&str>, agent: Agent) -> std::result::Result<Arc<[u8]>, String> {
    let arch = Arch::host().map_err(|e| e.to_string())?;
    let profile = match profile_json {
        None => seccomp::default_profile(),
        Some(text) => Profile::from_json_for(text, agent).map_err(|e| e.to_string())?,
    };
    let bpf = seccomp::compile(&profile, arch).map_err(|e| e.to_string())?;
    Ok(Arc::from(bpf.into_bytes()))
}

/// Compiles an OCI `linux.seccomp` profile (JSON text; null for tsbox's
/// default profile) for this machine's architecture, and returns the BPF
/// program as raw `struct sock_filter` bytes. `agent`: whether the container
/// hands a seccomp agent the listener of SCMP_ACT_NOTIFY rules (an OCI
/// bundle's; default true); without one each such rule is a problem. A bad
/// profile throws an error naming the JSON path of each problem (its message
/// is the problems themselves, for a caller with no other words for them).
#[napi]
pub fn compile_seccomp(profile_json: Option<String>, agent: Option<bool>) -> Result<Buffer> {
    let agent = agent.unwrap_or(true);
    let key = (profile_json, agent);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap().get(&key) {
        return Ok(Buffer::from(hit.to_vec()));
    }
    // Compiled outside the lock: a slow profile does not hold up the others.
    let bpf =
        compile(key.0.as_deref(), if agent { Agent::Given } else { Agent::None }).map_err(|msg| Error::new(Status::InvalidArg, msg))?;
    let mut map = cache.lock().unwrap();
    if map.len() >= CACHE_ENTRIES {
        map.clear();
    }
    map.insert(key, bpf.clone());
    Ok(Buffer::from(bpf.to_vec()))
}

/// An OCI bundle's profile taken as runc takes it (tsbox_core's
/// `seccomp::relax`): names of no system call left out, and one action per
/// call, the one the kernel ranks first. Returns the profile's JSON.
#[napi]
pub fn seccomp_relax(profile_json: String) -> Result<String> {
    seccomp::relax(&profile_json)
        .map(|(text, _notes)| text)
        .map_err(|msg| Error::new(Status::InvalidArg, format!("seccomp profile: not valid JSON: {msg}")))
}

/// tsbox's default profile as OCI JSON, for users to dump, edit and pass back
/// with `--security-opt seccomp=PATH`.
#[napi]
pub fn seccomp_default_profile() -> String {
    seccomp::default_profile_json()
}

/// One problem of a seccomp profile: the JSON path of the value at fault
/// (`syscalls[3].names[1]`, `(profile)` for the whole) and what is wrong.
#[napi(object)]
pub struct SeccompProblem {
    pub path: String,
    pub message: String,
}

/// Every problem of an OCI `linux.seccomp` profile (JSON text) for this
/// machine, from the one validator (tsbox_core::seccomp::problems); empty
/// when `compileSeccomp` would take it (with the same `agent`).
#[napi]
pub fn seccomp_problems(profile_json: String, agent: Option<bool>) -> Vec<SeccompProblem> {
    let agent = if agent.unwrap_or(true) { Agent::Given } else { Agent::None };
    let problems = match Arch::host() {
        Ok(arch) => seccomp::problems(&profile_json, arch, agent),
        Err(e) => vec![seccomp::Problem {
            path: "(profile)".into(),
            message: e.to_string(),
        }],
    };
    problems
        .into_iter()
        .map(|p| SeccompProblem {
            path: p.path,
            message: p.message,
        })
        .collect()
}
