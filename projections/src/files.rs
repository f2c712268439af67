//! Writing files under the media folder: whole, atomically, and only inside it.

use std::io::Write;
use std::path::{Path, PathBuf};

use sqlx::{PgConnection, PgPool};

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
    !name.is_empty() && name != "." && name != ".." && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
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
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").permissions(readable()).tempfile_in(dir).map_err(io)?;
    tmp.write_all(contents).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(&target).map_err(|e| io(e.error))?;
    Ok(())
}

/// Serialises whole numbers as integers (`255`, not `255.0`), as the original system's
/// files have them.
pub fn plain_number<S: serde::Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT { s.serialize_i64(*value as i64) } else { s.serialize_f64(*value) }
}

/// Media files are for other programs to read (a web server, the merchant's tools):
/// `rw-r--r--`, not the private mode of a temporary file.
/// (Framecart runs on Unix-like systems.)
pub fn readable() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o644)
}

/// [`write_atomically`] on a blocking thread.
pub async fn write_file(dir: PathBuf, name: String, contents: Vec<u8>) -> Result<(), MediaFileError> {
    tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &contents))
        .await
        .unwrap_or_else(|e| Err(MediaFileError::Io { path: PathBuf::new(), source: std::io::Error::other(e) }))
}

/// Writes many files at once, each with [`write_atomically`], at most `writers` at a time
/// on blocking threads (the disk takes concurrent flushes together). Returns the names
/// written; the first error after every write was tried.
pub async fn write_files(
    dir: PathBuf,
    files: Vec<(String, Vec<u8>)>,
    writers: usize,
) -> (Vec<String>, Option<MediaFileError>) {
    use futures::StreamExt;
    let mut written = Vec::with_capacity(files.len());
    let mut failed = None;
    let mut results = futures::stream::iter(files)
        .map(|(name, contents)| {
            let dir = dir.clone();
            async move { (name.clone(), write_file(dir, name, contents).await) }
        })
        .buffer_unordered(writers.max(1));
    while let Some((name, result)) = results.next().await {
        match result {
            Ok(()) => written.push(name),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    (written, failed)
}

/// Rewrites a file at most once per interval: a file that changes with every batch (one
/// viewer clicking a lot) is rewritten a few times a second, not a hundred. A skipped
/// rewrite stays marked dirty and is done on a later call (the runner calls again on its
/// next batch or tick).
#[derive(Debug)]
pub struct Throttle {
    every: std::time::Duration,
    last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl Throttle {
    pub fn new(every: std::time::Duration) -> Self {
        Self { every, last: Default::default() }
    }

    /// True when `name` was not written within the interval.
    pub fn ready(&self, name: &str) -> bool {
        let Ok(last) = self.last.lock() else { return true };
        last.get(name).is_none_or(|at| at.elapsed() >= self.every)
    }

    pub fn wrote(&self, name: &str) {
        if let Ok(mut last) = self.last.lock() {
            let every = self.every;
            last.retain(|_, at| at.elapsed() < every);
            last.insert(name.to_owned(), std::time::Instant::now());
        }
    }
}

/// A projection's record of the files whose rows changed but which are not rewritten
/// yet. Marked in the view's transaction, cleared after the file is written, so a crash
/// in between leaves the mark and the file is rewritten on the next start.
#[derive(Debug, Clone, Copy)]
pub struct DirtyFiles {
    /// A table `(file_name text PRIMARY KEY, version bigint)` owned by the projection.
    pub table: &'static str,
}

impl DirtyFiles {
    pub async fn mark(&self, tx: &mut PgConnection, file_name: &str) -> Result<(), sqlx::Error> {
        let table = self.table;
        sqlx::query(&format!(
            "INSERT INTO {table} (file_name) VALUES ($1)
             ON CONFLICT (file_name) DO UPDATE SET version = {table}.version + 1"
        ))
        .bind(file_name)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// [`Self::mark`] for many files at once.
    pub async fn mark_all(&self, tx: &mut PgConnection, file_names: &[String]) -> Result<(), sqlx::Error> {
        if file_names.is_empty() {
            return Ok(());
        }
        let table = self.table;
        sqlx::query(&format!(
            "INSERT INTO {table} (file_name) SELECT DISTINCT unnest($1::text[])
             ON CONFLICT (file_name) DO UPDATE SET version = {table}.version + 1"
        ))
        .bind(file_names)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// The files to rewrite, with the version of their mark.
    pub async fn pending(&self, pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT file_name, version FROM {}", self.table)).fetch_all(pool).await
    }

    /// At most `limit` of the files to rewrite, with the version of their mark.
    pub async fn some_pending(&self, pool: &PgPool, limit: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT file_name, version FROM {} LIMIT $1", self.table))
            .bind(limit)
            .fetch_all(pool)
            .await
    }

    /// [`Self::written`] for many files in one statement.
    pub async fn written_all(&self, pool: &PgPool, written: &[(String, i64)]) -> Result<(), sqlx::Error> {
        if written.is_empty() {
            return Ok(());
        }
        let (names, versions): (Vec<&str>, Vec<i64>) = written.iter().map(|(n, v)| (n.as_str(), *v)).unzip();
        let table = self.table;
        sqlx::query(&format!(
            "DELETE FROM {table} d USING unnest($1::text[], $2::bigint[]) AS w (file_name, version)
             WHERE d.file_name = w.file_name AND d.version = w.version"
        ))
        .bind(&names)
        .bind(&versions)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Forgets the mark, unless the rows changed again since `version` was read.
    pub async fn written(&self, pool: &PgPool, file_name: &str, version: i64) -> Result<(), sqlx::Error> {
        sqlx::query(&format!("DELETE FROM {} WHERE file_name = $1 AND version = $2", self.table))
            .bind(file_name)
            .bind(version)
            .execute(pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a\\b"] {
            assert!(matches!(write_atomically(dir.path(), bad, b"x"), Err(MediaFileError::UnsafeName(_))));
        }
        assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_files_are_written_together_and_a_bad_one_spoils_none_of_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files: Vec<(String, Vec<u8>)> =
            (0..50).map(|i| (format!("f{i}.json"), format!("[{i}]").into_bytes())).collect();
        files.push(("../escape.json".into(), b"[]".to_vec()));
        let (mut written, failed) = write_files(dir.path().to_path_buf(), files, 8).await;
        assert!(matches!(failed, Some(MediaFileError::UnsafeName(_))), "{failed:?}");
        written.sort();
        assert_eq!(written.len(), 50);
        for i in 0..50 {
            let text = std::fs::read_to_string(dir.path().join(format!("f{i}.json"))).expect("written");
            assert_eq!(text, format!("[{i}]"));
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 50, "nothing else, no temporary");
    }

    #[test]
    fn a_rewrite_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomically(dir.path(), "a.json", b"[1,2,3]").expect("write");
        write_atomically(dir.path(), "a.json", b"[]").expect("rewrite");
        assert_eq!(std::fs::read(dir.path().join("a.json")).expect("read"), b"[]");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["a.json"]);
    }
}
