//! Crash-safe checkpoints of a trainer: network weights and Adam moments as safetensors, the
//! rest of the trainer's state (settings, counters, RNG streams, buffers) as JSON.
//!
//! The tensor files carry the step in their names, so writing a new checkpoint never touches
//! the files the current `trainer_state.json` points to; renaming that JSON into place is the
//! single commit point (a kill at any moment leaves one complete checkpoint). Files of other
//! steps are removed after the commit.

use crate::error::{Error, Result};
use crate::nn::Adam;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use tch::nn::VarStore;

/// Name of the state file, the commit point of a checkpoint directory.
pub const STATE: &str = "trainer_state.json";

/// Weights file of step `step`.
pub fn weights_file(step: usize) -> String {
    format!("weights-{step:08}.safetensors")
}

/// Adam-moments file of step `step`.
pub fn optimizer_file(step: usize) -> String {
    format!("optimizer-{step:08}.safetensors")
}

/// Averaged-weights (EMA) file of step `step`.
pub fn average_file(step: usize) -> String {
    format!("ema-{step:08}.safetensors")
}

/// Whether `dir` holds a committed checkpoint.
pub fn exists(dir: &Path) -> bool {
    dir.join(STATE).exists()
}

/// Writes the checkpoint of step `step` into `dir` (created if needed): `vs`, `optimizer`
/// and `state`, then commits it atomically and removes the tensor files of other steps.
pub fn save<S: Serialize>(
    dir: &Path,
    step: usize,
    vs: &VarStore,
    optimizer: &Adam,
    state: &S,
) -> Result<()> {
    save_with_average(dir, step, vs, optimizer, None, state)
}

/// [`save`], plus the averaged weights `average` (an EMA of `vs`) when given.
pub fn save_with_average<S: Serialize>(
    dir: &Path,
    step: usize,
    vs: &VarStore,
    optimizer: &Adam,
    average: Option<&VarStore>,
    state: &S,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if let Some(avg) = average {
        save_store(&dir.join(average_file(step)), avg)?;
    }
    save_store(&dir.join(weights_file(step)), vs)?;
    optimizer.save(&dir.join(optimizer_file(step)))?;
    let path = dir.join(STATE);
    let json = serde_json::to_vec(state).map_err(|e| Error::Format {
        path: path.clone(),
        why: e.to_string(),
    })?;
    let tmp = dir.join(format!("{STATE}.tmp"));
    std::fs::write(&tmp, json).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    let keep = [weights_file(step), optimizer_file(step), average_file(step)];
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = ["weights-", "optimizer-", "ema-"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            && name.ends_with(".safetensors")
            && !keep.contains(&name);
        if stale {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// Reads the committed state of the checkpoint in `dir`.
pub fn read_state<S: DeserializeOwned>(dir: &Path) -> Result<S> {
    let path = dir.join(STATE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Format {
        path,
        why: e.to_string(),
    })
}

/// Loads the tensors of step `step` of the checkpoint in `dir` into `vs` and `optimizer`.
pub fn load_tensors(
    dir: &Path,
    step: usize,
    vs: &mut VarStore,
    optimizer: &mut Adam,
) -> Result<()> {
    load_weights(dir, step, vs)?;
    optimizer.load(&dir.join(optimizer_file(step)))
}

/// Loads the averaged weights of step `step` of the checkpoint in `dir` into `vs`.
pub fn load_average(dir: &Path, step: usize, vs: &mut VarStore) -> Result<()> {
    load_store(&dir.join(average_file(step)), vs)
}

/// Loads only the weights of step `step` of the checkpoint in `dir` into `vs`.
pub fn load_weights(dir: &Path, step: usize, vs: &mut VarStore) -> Result<()> {
    load_store(&dir.join(weights_file(step)), vs)
}

/// Writes the variables of `vs` to the safetensors file `path`.
fn save_store(path: &Path, vs: &VarStore) -> Result<()> {
    vs.save(path).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// Reads the safetensors file `path` into the variables of `vs`.
fn load_store(path: &Path, vs: &mut VarStore) -> Result<()> {
    vs.load(path).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}
