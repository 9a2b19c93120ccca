//! Files of a run directory: JSON-lines logs that stay consistent with the checkpoint, atomic
//! writes.

use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Resumes the logs of a run directory at counter `key` = `upto`: truncates the training log
/// `train_log` and the evaluation log `metrics_log` (see [`truncate_log`]) and returns the
/// training wall time already spent (`wall_seconds` of the last kept training line, 0 if none).
pub fn resume_logs(train_log: &Path, metrics_log: &Path, key: &str, upto: usize) -> Result<f64> {
    let kept = truncate_log(train_log, key, upto)?;
    truncate_log(metrics_log, key, upto)?;
    Ok(kept
        .last()
        .and_then(|v| v.get("wall_seconds"))
        .and_then(|w| w.as_f64())
        .unwrap_or(0.0))
}

/// Appends `value` as one JSON line to `path` (created if needed).
pub fn json_line<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut line = serde_json::to_string(value).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Keeps the lines of a JSON-lines log whose counter `key` is ≤ `upto` and that are not marked
/// `"final"` (a torn last line is dropped too); returns the kept lines. Run directories call
/// it on resume so that their logs agree with the checkpoint.
pub fn truncate_log(path: &Path, key: &str, upto: usize) -> Result<Vec<serde_json::Value>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let kept: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v.get(key)
                .and_then(|e| e.as_u64())
                .is_some_and(|e| e as usize <= upto)
                && v.get("final").and_then(|f| f.as_bool()) != Some(true)
        })
        .collect();
    let mut out = String::new();
    for v in &kept {
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, out).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(kept)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
