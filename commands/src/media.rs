//! Uploaded videos, reachable from every host: a JetStream object store.
//!
//! The process that takes an upload keeps a copy in its media folder
//! (`source_video_files/{video_id}.{ext}`) and puts the file in the bucket
//! `<NAMESPACE>_MEDIA` before the upload is recorded, under a name made of its SHA-256
//! (`sha256-<hex>`). The bucket is replicated like the event stream, so a detector worker
//! on another host, with an empty media folder and nothing shared, fetches the file it
//! needs into its own folder and checks its hash before decoding it.
//!
//! Objects are named by content, so a version once stored never changes: an upload of new
//! content is a new object, and a later version of a video never overwrites the file an
//! earlier detection request was made for.

use std::path::{Path, PathBuf};

use async_nats::jetstream::{self, object_store, stream::StorageType};
use framecart_domain::log::Namespace;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

/// Where uploaded videos live under a media folder.
pub const SOURCE_FOLDER: &str = "source_video_files";

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the media store {bucket} cannot be opened or created: {message}")]
    Open { bucket: String, message: String },
    #[error("the media store failed: {0}")]
    Store(String),
    #[error("reading or writing the local copy failed: {0}")]
    Local(#[from] std::io::Error),
    #[error("the stored file has SHA-256 {found}, not {expected}")]
    Corrupt { expected: String, found: String },
}

/// The installation's shared store of uploaded files.
#[derive(Clone)]
pub struct MediaStore {
    bucket: object_store::ObjectStore,
    name: String,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStore").field("bucket", &self.name).finish()
    }
}

/// The bucket's name for a namespace: `<NAMESPACE>_MEDIA` (its stream is `OBJ_<bucket>`).
pub fn bucket_name(ns: &Namespace) -> String {
    format!("{}_MEDIA", ns.as_str().to_ascii_uppercase())
}

/// The object a file with this SHA-256 (hex) is stored under.
pub fn object_name(sha256: &str) -> String {
    format!("sha256-{sha256}")
}

impl MediaStore {
    /// Opens the namespace's bucket, creating it with `replicas` copies when it is missing.
    pub async fn open(js: &jetstream::Context, ns: &Namespace, replicas: usize) -> Result<Self, MediaError> {
        let name = bucket_name(ns);
        let open_error = |e: &dyn std::fmt::Display| MediaError::Open { bucket: name.clone(), message: e.to_string() };
        let bucket = match js.get_object_store(&name).await {
            Ok(bucket) => bucket,
            Err(_) => {
                let config = object_store::Config {
                    bucket: name.clone(),
                    description: Some(format!("Framecart uploaded videos of namespace {ns}")),
                    storage: StorageType::File,
                    num_replicas: replicas.max(1),
                    ..Default::default()
                };
                match js.create_object_store(config).await {
                    Ok(bucket) => bucket,
                    // Another process created it in between.
                    Err(created) => js.get_object_store(&name).await.map_err(|_| open_error(&created))?,
                }
            }
        };
        Ok(Self { bucket, name })
    }

    /// Whether the file with this hash is stored.
    pub async fn contains(&self, sha256: &str) -> Result<bool, MediaError> {
        match self.bucket.info(object_name(sha256)).await {
            Ok(info) => Ok(!info.deleted),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(false),
            Err(e) => Err(MediaError::Store(e.to_string())),
        }
    }

    /// Stores the file at `path`, whose SHA-256 is `sha256`, unless it is stored already.
    pub async fn put(&self, sha256: &str, path: &Path) -> Result<(), MediaError> {
        if self.contains(sha256).await? {
            return Ok(());
        }
        let mut file = tokio::fs::File::open(path).await?;
        let meta = object_store::ObjectMetadata {
            name: object_name(sha256),
            description: Some("an uploaded video".into()),
            // 1 MiB chunks: a 2 GiB video is 2,048 messages rather than 16,384.
            chunk_size: Some(1024 * 1024),
            ..Default::default()
        };
        self.bucket.put(meta, &mut file).await.map_err(|e| MediaError::Store(e.to_string()))?;
        Ok(())
    }

    /// Copies the file with this hash to `target`, through a temporary file beside it that
    /// is checked against the hash first. `false` when the store has no such file.
    pub async fn fetch(&self, sha256: &str, target: &Path) -> Result<bool, MediaError> {
        let mut object = match self.bucket.get(object_name(sha256)).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(MediaError::Store(e.to_string())),
        };
        let dir = target.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        tokio::fs::create_dir_all(&dir).await?;
        let temp = tempfile::Builder::new().prefix(".fetch-").tempfile_in(&dir)?;
        let (file, temp) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut object, &mut buffer)
                .await
                .map_err(|e| MediaError::Store(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            file.write_all(&buffer[..n]).await?;
        }
        file.sync_all().await?;
        drop(file);
        let found = hex::encode(hasher.finalize());
        if found != sha256 {
            return Err(MediaError::Corrupt { expected: sha256.to_owned(), found });
        }
        let target = target.to_path_buf();
        tokio::task::spawn_blocking(move || temp.persist(&target).map_err(|e| e.error))
            .await
            .map_err(|e| MediaError::Local(std::io::Error::other(e)))??;
        Ok(true)
    }
}
