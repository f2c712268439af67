//! Receiving a video upload: streamed to a temporary file beside its destination (never
//! held in memory), hashed on the way, measured with ffprobe, then put in place under a
//! per-video lock. Anything refused leaves nothing behind: the temporary file deletes
//! itself unless it is put in place.

use std::path::{Path, PathBuf};

use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;

/// Where uploaded videos live under the media folder.
pub use framecart_commands::media::SOURCE_FOLDER as FOLDER;

/// Extensions kept from the uploaded file's name; anything else is named after the
/// container ffprobe found.
const KNOWN_EXTENSIONS: &[&str] =
    &["mp4", "m4v", "mov", "webm", "mkv", "avi", "mpg", "mpeg", "ogv", "ts", "3gp", "flv"];

/// A received file, not yet in place.
pub struct Received {
    pub temp: TempPath,
    pub size_bytes: u64,
    pub sha256: String,
    pub original_name: Option<String>,
}

/// Streams one multipart field into a temporary file in `dir`, refusing more than `limit`
/// bytes.
pub async fn receive(mut field: Field<'_>, dir: &Path, limit: u64) -> Result<Received, ApiError> {
    let original_name = field.file_name().map(|n| n.chars().take(255).collect::<String>());
    tokio::fs::create_dir_all(dir).await.map_err(ApiError::internal)?;
    let named = tempfile::Builder::new()
        .prefix(".upload-")
        .permissions(framecart_projections::files::readable())
        .tempfile_in(dir)
        .map_err(ApiError::internal)?;
    let (file, temp) = named.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    Ok(Received { temp, size_bytes: size, sha256: hex::encode(hasher.finalize()), original_name })
}

pub fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::bad_request("malformed_multipart", e.body_text())
    }
}

/// The extension the stored file gets: the uploaded name's when it is a known video
/// extension, else one that fits the container.
pub fn extension(original_name: Option<&str>, container: &str, codec: &str) -> &'static str {
    let from_name =
        original_name.and_then(|n| Path::new(n).extension()).and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if let Some(known) = from_name.and_then(|e| KNOWN_EXTENSIONS.iter().find(|k| **k == e)) {
        return known;
    }
    let container = container.to_ascii_lowercase();
    if container.contains("mp4") || container.contains("mov") {
        "mp4"
    } else if container.contains("webm") || container.contains("matroska") {
        if matches!(codec, "vp8" | "vp9" | "av1") { "webm" } else { "mkv" }
    } else if container.contains("avi") {
        "avi"
    } else if container.contains("mpegts") {
        "ts"
    } else {
        "video"
    }
}

/// Moves the received file to `dir/{video_id}.{ext}` (replacing an earlier version) and
/// removes earlier versions stored under another extension.
pub fn put_in_place(temp: TempPath, dir: &Path, video_id: &str, ext: &str) -> std::io::Result<PathBuf> {
    let target = dir.join(format!("{video_id}.{ext}"));
    temp.persist(&target).map_err(|e| e.error)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        let stale =
            path != target && path.file_stem().and_then(|s| s.to_str()) == Some(video_id) && path.extension().is_some();
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::extension;

    #[test]
    fn the_extension_comes_from_a_known_name_or_the_container() {
        assert_eq!(extension(Some("clip.MP4"), "mov,mp4,m4a,3gp,3g2,mj2", "h264"), "mp4");
        assert_eq!(extension(Some("clip.webm"), "matroska,webm", "vp9"), "webm");
        assert_eq!(extension(Some("../../evil.sh"), "mov,mp4,m4a,3gp,3g2,mj2", "h264"), "mp4");
        assert_eq!(extension(None, "matroska,webm", "h264"), "mkv");
        assert_eq!(extension(Some("noext"), "avi", "mpeg4"), "avi");
        assert_eq!(extension(None, "flv", "flv1"), "video");
    }
}
