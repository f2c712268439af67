//! The data keys of personal data (`data_keys`): made on first use, wrapped by the master
//! key, destroyed by erasure (see `framecart_domain::personal` and `data_subject`).
//!
//! - A subject's key is made once: concurrent first uses agree on one row
//!   (`INSERT … ON CONFLICT DO NOTHING`, then read).
//! - A destroyed key stays destroyed (a trigger): sealing for an erased subject fails
//!   with [`KeyError::Erased`], it never makes a new key.
//! - Keys are cached in memory for [`CACHE_FOR`]; a click seals with its day's key
//!   without a round trip.
//! - [`Keyring::open`] refuses a master key that does not unwrap the stored keys, so a
//!   wrong `FRAMECART_MASTER_KEY` fails at start, not at the first read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use framecart_domain::personal::{DataKey, KEY_LEN, MasterKey, NONCE_LEN, Personal, Sealed, Subject};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgPool;

/// How long a key read from the table is used without reading it again.
pub const CACHE_FOR: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the personal data of {0} is erased")]
    Erased(Subject),
    #[error(
        "FRAMECART_MASTER_KEY does not open this installation's data keys (the key of {0} does not unwrap): \
         start with the master key the keys were made with"
    )]
    WrongMasterKey(Subject),
    #[error("the random source failed: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

pub struct Keyring {
    pool: PgPool,
    master: MasterKey,
    cache: Mutex<HashMap<Subject, (Instant, DataKey)>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

/// Random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(bytes)
}

impl Keyring {
    /// The keyring of the database behind `pool`, once `master` is shown to unwrap a
    /// stored key (any key does, while none is stored).
    pub async fn open(pool: PgPool, master: MasterKey) -> Result<Self, KeyError> {
        let stored: Option<(String, String)> = sqlx::query_as(
            "SELECT subject, wrapped FROM data_keys WHERE wrapped IS NOT NULL ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(&pool)
        .await?;
        if let Some((subject, wrapped)) = stored
            && let Ok(subject) = Subject::parse(&subject)
            && master.unwrap(&subject, &wrapped).is_err()
        {
            return Err(KeyError::WrongMasterKey(subject));
        }
        Ok(Self { pool, master, cache: Mutex::new(HashMap::new()) })
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// `value` sealed under `subject`'s key, made now if it has none.
    pub async fn seal<T: Serialize>(&self, subject: &Subject, value: &T) -> Result<Sealed<T>, KeyError> {
        let key = self.key_or_make(subject).await?;
        Ok(key.seal(subject, value, random::<NONCE_LEN>()?))
    }

    /// The value of `personal`; `None` when its subject is erased (or its key is
    /// unreadable).
    pub async fn reveal<T: DeserializeOwned + Clone>(&self, personal: &Personal<T>) -> Result<Option<T>, KeyError> {
        match personal {
            Personal::Clear(value) => Ok(Some(value.clone())),
            Personal::Sealed(sealed) => Ok(self.key(&sealed.subject).await?.and_then(|key| key.open(sealed).ok())),
        }
    }

    /// `subject`'s key, if it has one that is not destroyed.
    pub async fn key(&self, subject: &Subject) -> Result<Option<DataKey>, KeyError> {
        if let Some(key) = self.cached(subject) {
            return Ok(Some(key));
        }
        let wrapped: Option<Option<String>> = sqlx::query_scalar("SELECT wrapped FROM data_keys WHERE subject = $1")
            .bind(subject.as_str())
            .fetch_optional(&self.pool)
            .await?;
        match wrapped.flatten() {
            Some(wrapped) => Ok(Some(self.remember(subject, &wrapped)?)),
            None => Ok(None),
        }
    }

    async fn key_or_make(&self, subject: &Subject) -> Result<DataKey, KeyError> {
        if let Some(key) = self.cached(subject) {
            return Ok(key);
        }
        let made = DataKey::from_bytes(random::<KEY_LEN>()?);
        let wrapped = self.master.wrap(subject, &made, random::<NONCE_LEN>()?);
        sqlx::query("INSERT INTO data_keys (subject, wrapped) VALUES ($1, $2) ON CONFLICT (subject) DO NOTHING")
            .bind(subject.as_str())
            .bind(&wrapped)
            .execute(&self.pool)
            .await?;
        // Ours, another's made first, or destroyed.
        let stored: Option<String> = sqlx::query_scalar("SELECT wrapped FROM data_keys WHERE subject = $1")
            .bind(subject.as_str())
            .fetch_one(&self.pool)
            .await?;
        let stored = stored.ok_or_else(|| KeyError::Erased(subject.clone()))?;
        self.remember(subject, &stored)
    }

    fn cached(&self, subject: &Subject) -> Option<DataKey> {
        let cache = self.cache.lock().expect("the key cache is never poisoned");
        cache.get(subject).filter(|(at, _)| at.elapsed() < CACHE_FOR).map(|(_, key)| key.clone())
    }

    fn remember(&self, subject: &Subject, wrapped: &str) -> Result<DataKey, KeyError> {
        let key = self.master.unwrap(subject, wrapped).map_err(|_| KeyError::WrongMasterKey(subject.clone()))?;
        let mut cache = self.cache.lock().expect("the key cache is never poisoned");
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
        cache.insert(subject.clone(), (Instant::now(), key.clone()));
        Ok(key)
    }

    /// Of `subjects`, those whose keys are destroyed.
    pub async fn erased(&self, subjects: &[&Subject]) -> Result<std::collections::HashSet<Subject>, KeyError> {
        let asked: Vec<&str> = subjects.iter().map(|s| s.as_str()).collect();
        let gone: Vec<String> =
            sqlx::query_scalar("SELECT subject FROM data_keys WHERE subject = ANY($1) AND wrapped IS NULL")
                .bind(&asked)
                .fetch_all(&self.pool)
                .await?;
        Ok(gone.iter().filter_map(|s| Subject::parse(s).ok()).collect())
    }

    /// Forgets `subject`'s key here at once (it was just erased).
    pub fn forget(&self, subject: &Subject) {
        self.cache.lock().expect("the key cache is never poisoned").remove(subject);
    }

    /// Rewraps every live data key under `new`, in one transaction: after it, only `new`
    /// opens this installation's data. Returns how many keys were rewrapped.
    pub async fn rotate(&self, new: &MasterKey) -> Result<u64, KeyError> {
        let mut tx = self.pool.begin().await?;
        let keys: Vec<(String, String)> =
            sqlx::query_as("SELECT subject, wrapped FROM data_keys WHERE wrapped IS NOT NULL FOR UPDATE")
                .fetch_all(&mut *tx)
                .await?;
        let (mut subjects, mut rewrapped) = (Vec::with_capacity(keys.len()), Vec::with_capacity(keys.len()));
        for (subject, wrapped) in keys {
            let Ok(parsed) = Subject::parse(&subject) else { continue };
            let key = self.master.unwrap(&parsed, &wrapped).map_err(|_| KeyError::WrongMasterKey(parsed.clone()))?;
            rewrapped.push(new.wrap(&parsed, &key, random::<NONCE_LEN>()?));
            subjects.push(subject);
        }
        sqlx::query(
            "UPDATE data_keys SET wrapped = r.wrapped FROM UNNEST($1::text[], $2::text[]) AS r(subject, wrapped)
             WHERE data_keys.subject = r.subject",
        )
        .bind(&subjects)
        .bind(&rewrapped)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(subjects.len() as u64)
    }
}
