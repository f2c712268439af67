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

/// Replaces `dir/name` with `contents`: written to a temporary file, flushed to disk, then
/// renamed over the old file (and the rename flushed), so a reader sees the old file or
/// the new one, never half of one, and a crash leaves one of them too.
pub fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<(), MediaFileError> {
    if !is_safe_file_name(name) {
        return Err(MediaFileError::UnsafeName(name.to_owned()));
    }
    prepare(dir)?;
    replace(dir, name, contents)?;
    sync_folder(dir)
}

/// Where the temporary files for `dir` are made: a folder beside it (`media/.tmp` for
/// `media/client_files`), on the same file system, so the rename is still atomic, and the
/// folder of many thousands of files sees one change per write (the rename over the old
/// file) instead of three (the temporary made, renamed away, the old file replaced):
/// measured, making the temporary was most of a client file's cost.
fn temp_folder(dir: &Path) -> PathBuf {
    dir.parent().map_or_else(|| dir.join(".tmp"), |parent| parent.join(".tmp"))
}

/// Makes the folder and its temporary folder.
fn prepare(dir: &Path) -> Result<(), MediaFileError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MediaFileError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let temp = temp_folder(dir);
    std::fs::create_dir_all(&temp).map_err(io(&temp))?;
    spares::sweep_once(&temp);
    Ok(())
}

/// Flushes the renames into `dir` to disk.
fn sync_folder(dir: &Path) -> Result<(), MediaFileError> {
    let io = |source| MediaFileError::Io { path: dir.to_path_buf(), source };
    std::fs::File::open(dir).and_then(|folder| folder.sync_all()).map_err(io)
}

/// Writes `dir/name` through a flushed temporary file and a rename; [`prepare`] first,
/// [`sync_folder`] after.
fn replace(dir: &Path, name: &str, contents: &[u8]) -> Result<(), MediaFileError> {
    if !is_safe_file_name(name) {
        return Err(MediaFileError::UnsafeName(name.to_owned()));
    }
    let target = dir.join(name);
    let io = |source| MediaFileError::Io { path: target.clone(), source };
    let there = there(&target, contents);
    if there == There::Same {
        // Already these bytes: only made sure they are on disk.
        return std::fs::File::open(&target).and_then(|file| file.sync_data()).map_err(io);
    }
    match put_in_place(temporary(&temp_folder(dir), contents, true).map_err(io)?, &target, there) {
        Ok(()) => Ok(()),
        // The folder is a file system of its own (a mount): the temporary goes inside it,
        // and is renamed, never exchanged, so no spare is ever kept there.
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            temporary(dir, contents, true).map_err(io)?.persist(&target).map_err(|e| io(e.error))
        }
        Err(e) => Err(io(e)),
    }
}

/// What is at a file's path, against the bytes it should hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum There {
    /// A file with exactly these bytes.
    Same,
    /// A file with other bytes.
    OtherBytes,
    /// No file: nothing, a link or a folder.
    NoFile,
}

/// What is at `path` against `contents`. A rebuild rewrites every file from its view, and
/// most of them come out as they were: comparing costs a `stat` (a file that grew differs
/// in size) and, for one of the same size, a read, where a rewrite costs a temporary, a
/// rename and their flushes.
fn there(path: &Path, contents: &[u8]) -> There {
    // Not through a link: a link in the folder is replaced, never followed.
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => {
            let same = meta.len() == contents.len() as u64 && std::fs::read(path).is_ok_and(|bytes| bytes == contents);
            if same { There::Same } else { There::OtherBytes }
        }
        _ => There::NoFile,
    }
}

/// A temporary file in `folder` holding `contents`, readable by others, flushed to disk
/// when `flush`: a spare ([`spares`]) rewritten when there is one, else a new file.
fn temporary(folder: &Path, contents: &[u8], flush: bool) -> std::io::Result<tempfile::TempPath> {
    let (mut file, path, spare) = match spares::take(folder) {
        Some((file, path)) => (file, path, true),
        None => {
            let new = tempfile::Builder::new().prefix(spares::PREFIX).permissions(readable()).tempfile_in(folder)?;
            let (file, path) = new.into_parts();
            (file, path, false)
        }
    };
    file.write_all(contents)?;
    if spare {
        // A spare is written over from its start, then cut to the new length: truncated
        // to empty first, ext4 would write it out on close (its `auto_da_alloc` for files
        // rewritten that way), a disk write per file on the writer's thread.
        file.set_len(contents.len() as u64)?;
    }
    if flush {
        file.sync_data()?;
    }
    Ok(path)
}

/// Moves the temporary file `temp` to `target`, atomically. Where `target` is a file
/// already, the two are exchanged (`renameat2` with `RENAME_EXCHANGE`): the new bytes take
/// its name, and the old file, now under the temporary's name, is kept as a spare for a
/// later temporary ([`spares`]). Otherwise, or where the file system cannot exchange, the
/// temporary is renamed over it (a link or anything else there is replaced, not followed).
fn put_in_place(temp: tempfile::TempPath, target: &Path, there: There) -> std::io::Result<()> {
    if there == There::OtherBytes {
        let exchanged = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &*temp,
            rustix::fs::CWD,
            target,
            rustix::fs::RenameFlags::EXCHANGE,
        );
        if exchanged.is_ok() {
            spares::keep(temp);
            return Ok(());
        }
        // Gone meanwhile, or no exchange on this file system: a plain rename.
    }
    temp.persist(target).map_err(|e| e.error)
}

/// Spare temporary files: the old files that exchanges took out of the folder, rewritten
/// as later temporaries instead of making new files.
///
/// Replacing a file by renaming a new one over it makes an inode and frees one per write.
/// On ext4 without a journal (these machines' disks), making an inode skips every inode
/// freed in the last minute or more (`recently_deleted`), one by one: at thousands of
/// client files a second, each new file cost 230–350 µs of kernel time in a folder of 60k
/// files, and more the longer the load lasts. Rewriting a spare costs no inode (110 µs,
/// and 1.5 µs for the file's own rewrite once every writer has a spare). Measured with
/// 8 threads writing 15,000 files.
///
/// Spares live in the temporary folder, beside the media folders, never in them. This
/// process keeps at most [`KEPT`] per temporary folder, and deletes the rest. Spares left
/// by a process that stopped are deleted by the next one, once they are an hour old: a
/// spare in use is rewritten each time it is used.
mod spares {
    use std::collections::{HashMap, HashSet};
    use std::path::{Path, PathBuf};
    use std::sync::{LazyLock, Mutex};
    use std::time::Duration;

    /// How temporary files' names begin.
    pub const PREFIX: &str = ".tmp-";
    /// Most spares kept per temporary folder: a large round's worth.
    const KEPT: usize = 4096;
    /// Temporaries older than this are a stopped process's, and deleted.
    const STALE: Duration = Duration::from_secs(3600);

    static SPARES: LazyLock<Mutex<HashMap<PathBuf, Vec<PathBuf>>>> = LazyLock::new(Default::default);
    static SWEPT: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

    /// A spare of `folder`, opened to be written over (never through a link).
    pub fn take(folder: &Path) -> Option<(std::fs::File, tempfile::TempPath)> {
        loop {
            let path = SPARES.lock().ok()?.get_mut(folder)?.pop()?;
            let flags = rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
            // One deleted meanwhile (a sweep) is forgotten, and the next one tried.
            let Ok(fd) = rustix::fs::open(&path, flags, rustix::fs::Mode::empty()) else { continue };
            let Ok(path) = tempfile::TempPath::try_from_path(path) else { continue };
            let file = std::fs::File::from(fd);
            if open_here_only(&file) {
                return Some((file, path));
            }
            // Still open elsewhere (below): deleted with `path`, never written over.
        }
    }

    /// True when no other descriptor, in any process, has `file` open. A spare is a
    /// replaced file: a reader that opened it before the exchange may still be reading
    /// it, and writing over it would show that reader half of one file and half of
    /// another. The kernel grants a write lease only on a file nobody else has open, and
    /// nobody can open a spare anew but through the temporary folder. Where leases are
    /// not to be had (another file system, another owner), the spare is not reused.
    #[allow(unsafe_code)]
    fn open_here_only(file: &std::fs::File) -> bool {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fcntl` with F_SETLEASE takes an open descriptor, which `file` owns for
        // the whole call, and an integer argument; it touches no memory of ours.
        let leased = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) } == 0;
        if leased {
            // SAFETY: as above; the lease is given back at once.
            unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        }
        leased
    }

    /// Keeps `temp` (the old file of an exchange) as a spare of its folder, if it is a
    /// plain file and there is room; otherwise it is deleted.
    pub fn keep(temp: tempfile::TempPath) {
        let Some(folder) = temp.parent().map(Path::to_path_buf) else { return };
        if !std::fs::symlink_metadata(&temp).is_ok_and(|meta| meta.is_file()) {
            // Something else than a file exchanged out of the media folder (replaced
            // meanwhile): removed with the temporary path, not kept.
            return;
        }
        let Ok(mut spares) = SPARES.lock() else { return };
        let kept = spares.entry(folder).or_default();
        if kept.len() < KEPT
            && let Ok(path) = temp.keep()
        {
            kept.push(path);
        }
    }

    /// Once per process and folder: deletes the temporaries older than [`STALE`].
    pub fn sweep_once(folder: &Path) {
        let first = SWEPT.lock().is_ok_and(|mut swept| swept.insert(folder.to_path_buf()));
        if !first {
            return;
        }
        let Ok(entries) = std::fs::read_dir(folder) else { return };
        for entry in entries.flatten() {
            let stale = entry.file_name().to_str().is_some_and(|name| name.starts_with(PREFIX))
                && entry
                    .metadata()
                    .ok()
                    .and_then(|meta| meta.modified().ok())
                    .and_then(|at| at.elapsed().ok())
                    .is_some_and(|age| age > STALE);
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// How many spares this process keeps for `folder`.
    #[cfg(test)]
    pub fn count(folder: &Path) -> usize {
        SPARES.lock().map(|s| s.get(folder).map_or(0, Vec::len)).unwrap_or(0)
    }
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
    blocking(move || write_atomically(&dir, &name, &contents)).await
}

/// Writes many files at once, each as [`write_atomically`] does, at most `writers` at a
/// time on blocking threads (a share each: the disk takes their flushes together), then
/// flushes the folder once for all their renames. A round of [`FLUSH_ONCE_FROM`] files or
/// more flushes them all with one `syncfs` instead ([`write_files_flushed_once`]): at 2,000
/// clicks/s on 5,000 viewers, the client files' p99 lag went from 1.5–4.6 s to 0.84–0.88 s
/// in 5 s runs, and is 1.6–4.3 s over the full bench's 10 s (a flush per file of a small
/// round is cheaper than flushing the database's writes too).
/// Returns the names written and on disk
/// (none when the last flush fails), and the first error after every write was tried.
pub async fn write_files(
    dir: PathBuf,
    files: Vec<(String, Vec<u8>)>,
    writers: usize,
) -> (Vec<String>, Option<MediaFileError>) {
    if files.is_empty() {
        return (Vec::new(), None);
    }
    if files.len() >= FLUSH_ONCE_FROM {
        return write_files_flushed_once(dir, files, writers).await;
    }
    let (written, failed) =
        in_shares(&dir, files, writers, |dir, name, contents| replace(dir, &name, &contents).map(|()| name)).await;
    if written.is_empty() {
        return (written, failed);
    }
    let flushed = blocking(move || sync_folder(&dir)).await;
    match flushed {
        Ok(()) => (written, failed),
        Err(e) => (Vec::new(), Some(failed.unwrap_or(e))),
    }
}

/// Makes `dir` and its temporary folder, then runs `work` on every file, at most `writers`
/// at a time: each writer takes a share of the files on one blocking thread (a thread hop
/// per file would cost as much as the write). Returns what succeeded and the first error.
async fn in_shares<T: Send + 'static>(
    dir: &Path,
    files: Vec<(String, Vec<u8>)>,
    writers: usize,
    work: fn(&Path, String, Vec<u8>) -> Result<T, MediaFileError>,
) -> (Vec<T>, Option<MediaFileError>) {
    let prepared = {
        let dir = dir.to_path_buf();
        blocking(move || prepare(&dir)).await
    };
    if let Err(e) = prepared {
        return (Vec::new(), Some(e));
    }
    let per_writer = files.len().div_ceil(writers.max(1)).max(1);
    let mut files = files.into_iter().peekable();
    let mut shares = Vec::new();
    while files.peek().is_some() {
        let share: Vec<(String, Vec<u8>)> = files.by_ref().take(per_writer).collect();
        let dir = dir.to_path_buf();
        shares.push(tokio::task::spawn_blocking(move || {
            share.into_iter().map(|(name, contents)| work(&dir, name, contents)).collect::<Vec<_>>()
        }));
    }
    let mut done = Vec::new();
    let mut failed = None;
    for share in futures::future::join_all(shares).await {
        let results = share.unwrap_or_else(|e| {
            vec![Err(MediaFileError::Io { path: dir.to_path_buf(), source: std::io::Error::other(e) })]
        });
        for result in results {
            match result {
                Ok(value) => done.push(value),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
    }
    (done, failed)
}

/// Rounds of at least this many files are written by [`write_files_flushed_once`].
const FLUSH_ONCE_FROM: usize = 256;

/// [`write_files`] for a large round (a backlog, a rebuild), with one flush of the file
/// system instead of one per file, and the same guarantee: every temporary file is
/// written, then all are flushed together (`syncfs`), and only then renamed over their
/// files (and the folder flushed). A reader, and a crash, still see each file old or new,
/// whole.
async fn write_files_flushed_once(
    dir: PathBuf,
    files: Vec<(String, Vec<u8>)>,
    writers: usize,
) -> (Vec<String>, Option<MediaFileError>) {
    // 1. The temporary files, written by a few threads, not flushed. (As many as for
    // flushed files: in a full bench run with a thread per core, the client files' p99 lag
    // at 2,000 clicks/s was 7 s, against 1.6–4.3 s with 32; making a file waits on the file
    // system's journal too.)
    let (written, failed) = in_shares(&dir, files, writers, unflushed_temporary).await;
    if written.is_empty() {
        return (Vec::new(), failed);
    }
    // 2. One flush of them all, 3. the renames, 4. the folder flushed.
    let renamed = blocking(move || {
        let temp = temp_folder(&dir);
        let flushed = std::fs::File::open(&temp)
            .and_then(|folder| rustix::fs::syncfs(&folder).map_err(std::io::Error::from))
            .map_err(|source| MediaFileError::Io { path: temp, source });
        if let Err(e) = flushed {
            return Ok((Vec::new(), Some(e)));
        }
        let mut names = Vec::with_capacity(written.len());
        let mut failed = None;
        for file in written {
            let Some(temporary) = file.temporary else {
                // The file held these bytes already; the flush above made sure of them.
                names.push(file.name);
                continue;
            };
            let target = dir.join(&file.name);
            let moved = match put_in_place(temporary, &target, file.there) {
                Ok(()) => Ok(()),
                // The folder is a file system of its own (a mount): written there instead.
                Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => replace(&dir, &file.name, &file.contents),
                Err(source) => Err(MediaFileError::Io { path: target, source }),
            };
            match moved {
                Ok(()) => names.push(file.name),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match sync_folder(&dir) {
            Ok(()) => Ok((names, failed)),
            Err(e) => Ok((Vec::new(), Some(failed.unwrap_or(e)))),
        }
    })
    .await;
    match renamed {
        Ok((names, later)) => (names, failed.or(later)),
        Err(e) => (Vec::new(), Some(failed.unwrap_or(e))),
    }
}

/// A temporary file written and closed but not flushed, for `name` (none when the file
/// holds `contents` already).
struct Unflushed {
    name: String,
    contents: Vec<u8>,
    temporary: Option<tempfile::TempPath>,
    /// What was at the file's path when the temporary was written.
    there: There,
}

fn unflushed_temporary(dir: &Path, name: String, contents: Vec<u8>) -> Result<Unflushed, MediaFileError> {
    if !is_safe_file_name(&name) {
        return Err(MediaFileError::UnsafeName(name));
    }
    let there = there(&dir.join(&name), &contents);
    if there == There::Same {
        return Ok(Unflushed { name, contents, temporary: None, there });
    }
    let temp = temp_folder(dir);
    let tmp =
        temporary(&temp, &contents, false).map_err(|source| MediaFileError::Io { path: temp.join(&name), source })?;
    Ok(Unflushed { name, contents, temporary: Some(tmp), there })
}

/// Deletes the files `names` in `dir` (one already gone counts as deleted), then flushes
/// the folder. Returns the names gone from disk and the first error.
pub async fn remove_files(dir: PathBuf, names: Vec<String>) -> (Vec<String>, Option<MediaFileError>) {
    if names.is_empty() {
        return (Vec::new(), None);
    }
    let removed = blocking(move || {
        let mut gone = Vec::with_capacity(names.len());
        let mut failed = None;
        for name in names {
            if !is_safe_file_name(&name) {
                failed.get_or_insert(MediaFileError::UnsafeName(name));
                continue;
            }
            let path = dir.join(&name);
            match std::fs::remove_file(&path) {
                Ok(()) => gone.push(name),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone.push(name),
                Err(source) => {
                    failed.get_or_insert(MediaFileError::Io { path, source });
                }
            }
        }
        if dir.exists()
            && let Err(e) = sync_folder(&dir)
        {
            return Ok((Vec::new(), Some(failed.unwrap_or(e))));
        }
        Ok((gone, failed))
    })
    .await;
    removed.unwrap_or_else(|e| (Vec::new(), Some(e)))
}

/// Runs file work on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MediaFileError> + Send + 'static,
) -> Result<T, MediaFileError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(MediaFileError::Io { path: PathBuf::new(), source: std::io::Error::other(e) }))
}

/// Rewrites a file at most once per interval: a file that changes with every batch (one
/// viewer clicking a lot) is rewritten a few times a second, not a hundred. A skipped
/// rewrite stays marked dirty and is done on a later call (the runner calls again on its
/// next batch or tick).
#[derive(Debug)]
pub struct Throttle {
    every: std::time::Duration,
    last: std::sync::Mutex<Written>,
}

/// When each file was last written, and when those older than the interval were last
/// forgotten.
#[derive(Debug)]
struct Written {
    at: std::collections::HashMap<String, std::time::Instant>,
    pruned: std::time::Instant,
}

impl Throttle {
    pub fn new(every: std::time::Duration) -> Self {
        let last = Written { at: Default::default(), pruned: std::time::Instant::now() };
        Self { every, last: std::sync::Mutex::new(last) }
    }

    /// True when `name` was not written within the interval.
    pub fn ready(&self, name: &str) -> bool {
        let Ok(last) = self.last.lock() else { return true };
        last.at.get(name).is_none_or(|at| at.elapsed() >= self.every)
    }

    /// Notes that `names` were written now. Entries older than the interval are forgotten
    /// at most once per interval, so a round of thousands of files costs a pass over the
    /// map, not one per file.
    pub fn wrote<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let Ok(mut last) = self.last.lock() else { return };
        let now = std::time::Instant::now();
        if now.duration_since(last.pruned) >= self.every {
            let every = self.every;
            last.at.retain(|_, at| now.duration_since(*at) < every);
            last.pruned = now;
        }
        for name in names {
            last.at.insert(name.to_owned(), now);
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

    /// [`Self::mark`] for many files at once, each with the log position of a click that
    /// is not in it yet: a file's mark keeps the oldest such position until it is
    /// written (the table needs a `first_position bigint` column). Marks are taken in
    /// file-name order, so batches marking the same files take them in one order.
    pub async fn mark_all(
        &self,
        tx: &mut PgConnection,
        file_names: &[String],
        log_positions: &[i64],
    ) -> Result<(), sqlx::Error> {
        if file_names.is_empty() {
            return Ok(());
        }
        let table = self.table;
        sqlx::query(&format!(
            "INSERT INTO {table} (file_name, first_position)
             SELECT file_name, min(log_position) FROM unnest($1::text[], $2::bigint[]) AS m (file_name, log_position)
             GROUP BY file_name ORDER BY file_name
             ON CONFLICT (file_name) DO UPDATE SET version = {table}.version + 1"
        ))
        .bind(file_names)
        .bind(log_positions)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// The log position up to which every marked click is in its file: the oldest
    /// position a mark waits for, less one; `None` when no file waits (then the files
    /// are as far as the projection's checkpoint).
    pub async fn waiting_since(&self, pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
        // A mark from before the column existed waits for an unknown position: the start.
        // The first mark in the order they waited is the oldest (an index scan, where
        // `min(coalesce(…))` read every mark).
        sqlx::query_scalar(&format!(
            "SELECT coalesce(first_position, 1) - 1 FROM {} ORDER BY first_position NULLS FIRST LIMIT 1",
            self.table
        ))
        .fetch_optional(pool)
        .await
    }

    /// The log position up to which every event the projection applied (up to
    /// `applied`) is in its file: [`Self::waiting_since`], or `applied` when no file waits.
    pub async fn written_up_to(&self, pool: &PgPool, applied: i64) -> Result<i64, sqlx::Error> {
        Ok(self.waiting_since(pool).await?.map_or(applied, |since| since.min(applied)))
    }

    /// The files to rewrite, with the version of their mark.
    pub async fn pending(&self, pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT file_name, version FROM {}", self.table)).fetch_all(pool).await
    }

    /// At most `limit` of the files to rewrite, with the version of their mark: those that
    /// have waited longest first (the table needs `first_position`). A file written a
    /// moment ago and marked again is behind every file that waited before it, so files
    /// the caller's throttle holds back never crowd out the others.
    pub async fn some_pending(&self, pool: &PgPool, limit: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT file_name, version FROM {} ORDER BY first_position NULLS FIRST LIMIT $1",
            self.table
        ))
        .bind(limit)
        .fetch_all(pool)
        .await
    }

    /// [`Self::written`] for many files in one statement. A mark that a batch holds is
    /// skipped, not waited for: that batch is marking the file again (its version will
    /// not match; should it roll back instead, the mark stays and the file is written once
    /// more), and a clearing that waited while holding other marks the batch wants next
    /// would deadlock with it.
    pub async fn written_all(&self, pool: &PgPool, written: &[(String, i64)]) -> Result<(), sqlx::Error> {
        if written.is_empty() {
            return Ok(());
        }
        let (names, versions): (Vec<&str>, Vec<i64>) = written.iter().map(|(n, v)| (n.as_str(), *v)).unzip();
        let table = self.table;
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE file_name IN (
                 SELECT d.file_name FROM {table} d
                 JOIN unnest($1::text[], $2::bigint[]) AS w (file_name, version)
                   ON d.file_name = w.file_name AND d.version = w.version
                 FOR UPDATE OF d SKIP LOCKED)"
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
    fn a_file_written_is_held_back_for_the_interval_and_then_let_through() {
        let throttle = Throttle::new(std::time::Duration::from_millis(50));
        let names: Vec<String> = (0..3000).map(|i| format!("f{i}")).collect();
        throttle.wrote(names.iter().map(String::as_str));
        assert!(names.iter().all(|name| !throttle.ready(name)));
        assert!(throttle.ready("never written"));
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(names.iter().all(|name| throttle.ready(name)));
        // The next write forgets those older than the interval.
        throttle.wrote(["f0"]);
        assert!(!throttle.ready("f0"));
        assert_eq!(throttle.last.lock().expect("lock").at.len(), 1);
    }

    /// Every entry under `root`, as paths relative to it.
    fn everything(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut folders = vec![root.to_path_buf()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("a folder") {
                let path = entry.expect("an entry").path();
                found.push(path.strip_prefix(root).expect("inside").to_string_lossy().into_owned());
                if path.is_dir() {
                    folders.push(path);
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        let media = tempfile::tempdir().expect("tempdir");
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a\\b"] {
            let written = write_atomically(&media.path().join("files"), bad, b"x");
            assert!(matches!(written, Err(MediaFileError::UnsafeName(_))));
        }
        assert!(everything(media.path()).is_empty(), "nothing written, no folder made");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_files_are_written_together_and_a_bad_one_spoils_none_of_the_others() {
        // A small round (a flush per file) and a large one (one flush for all), each
        // written, then rewritten whole.
        for count in [50, FLUSH_ONCE_FROM + 100] {
            let media = tempfile::tempdir().expect("tempdir");
            let dir = media.path().join("files");
            for round in 0..2 {
                let mut files: Vec<(String, Vec<u8>)> =
                    (0..count).map(|i| (format!("f{i}.json"), format!("[{i},{round}]").into_bytes())).collect();
                files.push(("../escape.json".into(), b"[]".to_vec()));
                let (mut written, failed) = write_files(dir.clone(), files, 8).await;
                assert!(matches!(failed, Some(MediaFileError::UnsafeName(_))), "{failed:?}");
                written.sort();
                assert_eq!(written.len(), count);
                for i in 0..count {
                    let text = std::fs::read_to_string(dir.join(format!("f{i}.json"))).expect("written");
                    assert_eq!(text, format!("[{i},{round}]"));
                }
            }
            let mut expected: Vec<String> = (0..count).map(|i| format!("files/f{i}.json")).collect();
            expected.extend([".tmp".to_owned(), "files".to_owned()]);
            expected.sort();
            let (spares, others) = spares_and_others(media.path());
            assert_eq!(others, expected, "{count} files: nothing else");
            // A writer's spare is its next temporary: a round of flushed files leaves about
            // one per writer, a round of files flushed together one per file.
            assert!((1..=count).contains(&spares.len()), "{count}: only spares are left: {spares:?}");
        }
    }

    /// The spares in the temporary folder under `media`, and every other entry.
    fn spares_and_others(media: &Path) -> (Vec<String>, Vec<String>) {
        everything(media).into_iter().partition(|path| path.starts_with(&format!(".tmp/{}", spares::PREFIX)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replaced_file_is_the_next_temporary_so_rewrites_make_no_new_files() {
        use std::collections::HashSet;
        use std::os::unix::fs::MetadataExt;
        let inode = |path: &Path| std::fs::symlink_metadata(path).expect("a file").ino();
        // One file: its second version is a new file; the third is the first one's inode.
        let media = tempfile::tempdir().expect("tempdir");
        let dir = media.path().join("files");
        write_atomically(&dir, "a.json", b"[1]").expect("write");
        let first = inode(&dir.join("a.json"));
        write_atomically(&dir, "a.json", b"[1,2]").expect("rewrite");
        assert_ne!(inode(&dir.join("a.json")), first);
        write_atomically(&dir, "a.json", b"[1,2,3]").expect("rewrite again");
        assert_eq!(std::fs::read(dir.join("a.json")).expect("read"), b"[1,2,3]");
        assert_eq!(inode(&dir.join("a.json")), first, "the first version's file holds the third");
        assert_eq!(spares::count(&temp_folder(&dir)), 1);
        // Rounds, small and large: from the third on, every file written is one made before.
        for count in [20, FLUSH_ONCE_FROM + 20] {
            let media = tempfile::tempdir().expect("tempdir");
            let dir = media.path().join("files");
            let mut made = HashSet::new();
            for round in 0..4 {
                let files: Vec<(String, Vec<u8>)> =
                    (0..count).map(|i| (format!("f{i}.json"), format!("[{i},{round}]").into_bytes())).collect();
                let (written, failed) = write_files(dir.clone(), files, 4).await;
                assert!(failed.is_none() && written.len() == count, "{failed:?}");
                for i in 0..count {
                    let path = dir.join(format!("f{i}.json"));
                    assert_eq!(std::fs::read_to_string(&path).expect("read"), format!("[{i},{round}]"));
                    let new = made.insert(inode(&path));
                    assert!(round < 2 || !new, "{count} files, round {round}: f{i}.json is a new file");
                }
            }
            let spares = spares_and_others(media.path()).0.len();
            assert!((1..=count).contains(&spares), "{count} files: {spares} spares");
        }
    }

    #[test]
    fn a_replaced_file_still_open_elsewhere_is_never_written_over() {
        use std::io::{Read, Seek};
        let media = tempfile::tempdir().expect("tempdir");
        let dir = media.path().join("files");
        write_atomically(&dir, "a.json", b"[1]").expect("write");
        // A reader opens the first version, and is still reading it after two rewrites.
        let mut reader = std::fs::File::open(dir.join("a.json")).expect("open");
        write_atomically(&dir, "a.json", b"[2,2]").expect("rewrite");
        write_atomically(&dir, "a.json", b"[3,3,3]").expect("rewrite again");
        let mut seen = String::new();
        reader.rewind().and_then(|_| reader.read_to_string(&mut seen)).expect("read");
        assert_eq!(seen, "[1]", "the reader's file is the first version, whole");
        assert_eq!(std::fs::read(dir.join("a.json")).expect("read"), b"[3,3,3]");
        // Once nobody holds a spare open, it is written over again.
        drop(reader);
        write_atomically(&dir, "a.json", b"[4]").expect("rewrite");
        assert_eq!(spares::count(&temp_folder(&dir)), 1);
    }

    #[test]
    fn temporaries_an_hour_old_are_deleted_once_the_folder_is_used() {
        let media = tempfile::tempdir().expect("tempdir");
        let temp = media.path().join(".tmp");
        std::fs::create_dir_all(&temp).expect("folder");
        let old = std::fs::File::create(temp.join(".tmp-old")).expect("old");
        old.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200)).expect("an old time");
        std::fs::write(temp.join(".tmp-new"), b"[]").expect("new");
        std::fs::write(temp.join("other"), b"[]").expect("other");
        write_atomically(&media.path().join("files"), "a.json", b"[1]").expect("write");
        let mut left = everything(&temp);
        left.sort();
        assert_eq!(left, [".tmp-new", "other"], "the old temporary is gone, the others are left");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_that_holds_its_bytes_already_is_left_in_place_and_a_changed_one_is_replaced() {
        use std::os::unix::fs::MetadataExt;
        let inode = |path: &Path| std::fs::symlink_metadata(path).expect("a file").ino();
        for count in [10, FLUSH_ONCE_FROM + 10] {
            let media = tempfile::tempdir().expect("tempdir");
            let dir = media.path().join("files");
            let round = |same: &str, changed: &str| -> Vec<(String, Vec<u8>)> {
                (0..count)
                    .map(|i| {
                        let text = if i % 2 == 0 { format!("[{i},{same}]") } else { format!("[{i},{changed}]") };
                        (format!("f{i}.json"), text.into_bytes())
                    })
                    .collect()
            };
            let (written, failed) = write_files(dir.clone(), round("a", "a"), 4).await;
            assert!(failed.is_none() && written.len() == count, "{failed:?}");
            // Even files come out the same, odd ones change (same size, then another size).
            for changed in ["b", "bc"] {
                let before: Vec<u64> = (0..count).map(|i| inode(&dir.join(format!("f{i}.json")))).collect();
                let (written, failed) = write_files(dir.clone(), round("a", changed), 4).await;
                assert!(failed.is_none() && written.len() == count, "{failed:?}");
                for (i, before) in before.iter().enumerate() {
                    let path = dir.join(format!("f{i}.json"));
                    let text = std::fs::read_to_string(&path).expect("read");
                    if i % 2 == 0 {
                        assert_eq!((text, inode(&path)), (format!("[{i},a]"), *before), "{count}: left in place");
                    } else {
                        assert_eq!(text, format!("[{i},{changed}]"));
                        assert_ne!(inode(&path), *before, "{count}: replaced whole");
                    }
                }
            }
        }
        // A link in the folder is replaced by a file, not followed.
        let media = tempfile::tempdir().expect("tempdir");
        let dir = media.path().join("files");
        std::fs::create_dir_all(&dir).expect("folder");
        std::fs::write(media.path().join("outside.json"), b"[1]").expect("outside");
        std::os::unix::fs::symlink(media.path().join("outside.json"), dir.join("a.json")).expect("link");
        write_atomically(&dir, "a.json", b"[1]").expect("write");
        assert!(std::fs::symlink_metadata(dir.join("a.json")).expect("a.json").is_file());
    }

    #[test]
    fn a_rewrite_replaces_the_whole_file_and_leaves_only_the_old_one_as_a_spare() {
        let media = tempfile::tempdir().expect("tempdir");
        let dir = media.path().join("files");
        write_atomically(&dir, "a.json", b"[1,2,3]").expect("write");
        write_atomically(&dir, "a.json", b"[]").expect("rewrite");
        assert_eq!(std::fs::read(dir.join("a.json")).expect("read"), b"[]");
        let (spares, others) = spares_and_others(media.path());
        assert_eq!(others, [".tmp", "files", "files/a.json"]);
        assert_eq!(spares.len(), 1, "the old file, kept as a spare: {spares:?}");
    }
}
