//! Atomic file replacement: write a temporary file next to the target, fsync it,
//! rename it over the target, fsync the directory. A crash at any point leaves either
//! the previous file or the complete new one under the final name, never a mix.

use super::error::StoreError;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// The temporary name `write_atomically` uses for `path`: `<path>.tmp-<pid>`.
pub fn temp_path(path: &Path) -> Option<PathBuf> {
    let mut name = OsString::from(path.file_name()?);
    name.push(format!(".tmp-{}", std::process::id()));
    Some(path.with_file_name(name))
}

/// Writes the file at `path` through `f`, atomically: `f` writes to `<path>.tmp-<pid>`,
/// which is flushed, fsynced and renamed over `path`, and the directory is fsynced.
///
/// If `f` (or any step) fails, the temporary file is removed and a previous file at
/// `path` is untouched. One writer per path at a time (the temporary name is per
/// process). Errors from a [`RecordWriter`](super::RecordWriter) inside `f` come back
/// naming the temporary file.
pub fn write_atomically<T>(
    path: impl AsRef<Path>,
    f: impl FnOnce(&mut BufWriter<File>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let path = path.as_ref();
    let Some(tmp) = temp_path(path) else {
        return Err(StoreError::Io {
            path: path.to_owned(),
            op: "choosing a temporary name".into(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        });
    };
    let result = write_then_rename(path, &tmp, f);
    if result.is_err() {
        // Best effort: after a successful rename there is nothing left to remove.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn io_err(path: &Path, op: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    let op = op.into();
    move |source| StoreError::Io { path, op, source }
}

fn write_then_rename<T>(
    path: &Path,
    tmp: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(io_err(tmp, "creating the temporary file"))?;
    let mut w = BufWriter::new(file);
    let value = f(&mut w).map_err(|e| match e {
        StoreError::Write { offset, source } => StoreError::Io {
            path: tmp.to_owned(),
            op: format!("writing at byte {offset}"),
            source,
        },
        other => other,
    })?;
    let file = w
        .into_inner()
        .map_err(|e| io_err(tmp, "flushing")(e.into_error()))?;
    file.sync_all().map_err(io_err(tmp, "fsync"))?;
    drop(file);
    fs::rename(tmp, path).map_err(io_err(path, format!("renaming {} over it", tmp.display())))?;
    sync_dir(path)
        .map_err(io_err(path, "fsync of its directory"))
        .map(|()| value)
}

/// Makes a rename in the directory of `path` durable.
#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}
