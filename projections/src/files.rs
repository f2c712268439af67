//! Writing files under the media folder: whole, atomically, and only inside it.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MediaFileError {
    #[error("refusing to write {0:?}: a media file name is a single plain path component")]
    UnsafeName(String),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// True when `name` is one ordinary file name that cannot leave its folder.
pub fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

/// Replaces `dir/name` with `contents`: written to a temporary file in the same folder,
/// flushed to disk, then renamed over the old file, so a reader sees the old file or the
/// new one, never half of one.
pub fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<(), MediaFileError> {
    if !is_safe_file_name(name) {
        return Err(MediaFileError::UnsafeName(name.to_owned()));
    }
    let target = dir.join(name);
    let io = |source| MediaFileError::Io { path: target.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(contents).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(&target).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a\\b"] {
            assert!(matches!(
                write_atomically(dir.path(), bad, b"x"),
                Err(MediaFileError::UnsafeName(_))
            ));
        }
        assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
    }

    #[test]
    fn a_rewrite_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomically(dir.path(), "a.json", b"[1,2,3]").expect("write");
        write_atomically(dir.path(), "a.json", b"[]").expect("rewrite");
        assert_eq!(std::fs::read(dir.path().join("a.json")).expect("read"), b"[]");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
    }
}
