//! The [`Vault`]: seal and open fields under per-subject data keys, destroy keys
//! (crypto-shredding) with the erasure ledger, re-apply the ledger at start-up, and rotate the
//! master key while the service runs.

use crate::cache::{KeyCache, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL};
use crate::key_ref::{new_key_id, parse_key_id, validate_field, validate_reason, Algorithm, KeyRef};
use crate::master::{MasterKeyring, KEY_BYTES};
use crate::sealed::{self, DataKey, Opened, SealedValue, SEALED_FORMAT_VERSION};
use crate::store::{self, KeyRow, Rewrap, Scope};
use crate::VaultError;
use eventlog::Db;
use rand::RngCore;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// Attempts at getting or creating a subject's key before giving up with `Contention`.
const MAX_ATTEMPTS: usize = 5;
/// Keys re-wrapped per transaction by [`Vault::rotate`].
pub const ROTATION_BATCH: usize = 256;

/// The key that seals a subject's values now. Carries no key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealingKey {
    /// `<subject>#<generation>.<16 hex>`.
    pub key_id: String,
    /// 1 for a subject's first key, then one more after each destroy.
    pub generation: i64,
    /// The AEAD it seals with.
    pub algorithm: Algorithm,
}

/// dynamoi's keys and sealing: cheap to clone (every clone shares the keyring and the cache).
#[derive(Clone)]
pub struct Vault {
    db: Db,
    ring: Arc<MasterKeyring>,
    cache: Arc<KeyCache>,
    clock: clock::SharedClock,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("dialect", &self.db.dialect())
            .field("ring", &self.ring)
            .field("cached_keys", &self.cache.len())
            .finish()
    }
}

impl Vault {
    /// A vault over `db` (migrated) with `ring`. Call [`Vault::start`] instead at start-up.
    pub fn new(db: Db, ring: Arc<MasterKeyring>) -> Vault {
        Vault {
            db,
            ring,
            cache: Arc::new(KeyCache::new(DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL)),
            clock: clock::system(),
        }
    }

    /// Stamps the keys it creates and destroys with `clock` (the service's one clock).
    pub fn with_clock(mut self, clock: clock::SharedClock) -> Vault {
        self.clock = clock;
        self
    }

    /// Sets the key cache: at most `capacity` unwrapped keys, each used for at most `ttl`
    /// before the database is asked again (so a destroy by another process is honoured here
    /// within `ttl`). A zero capacity or ttl turns the cache off.
    pub fn with_cache(mut self, capacity: usize, ttl: Duration) -> Vault {
        self.cache = Arc::new(KeyCache::new(capacity, ttl));
        self
    }

    /// What the service calls at start-up: a vault whose erasure ledger has been re-applied
    /// ([`Vault::reapply_erasures`]) and whose keyring holds every master key the stored data
    /// keys are wrapped by (else [`VaultError::MissingMasterKeys`], before any request fails).
    pub async fn start(db: Db, ring: Arc<MasterKeyring>) -> Result<Vault, VaultError> {
        let vault = Vault::new(db, ring);
        vault.reapply_erasures().await?;
        let usage = vault.master_key_usage().await?;
        let missing: Vec<String> = usage
            .iter()
            .filter(|(id, _)| !vault.ring.contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        if !missing.is_empty() {
            return Err(VaultError::MissingMasterKeys { ids: missing });
        }
        for (id, keys) in &usage {
            if id != vault.ring.current_id() {
                tracing::info!(master_key_id = %id, keys, "data keys are still wrapped by an older master key: run the rotation");
            }
        }
        Ok(vault)
    }

    /// The keyring (ids only are visible).
    pub fn keyring(&self) -> &MasterKeyring {
        &self.ring
    }

    /// How many unwrapped keys are cached.
    pub fn cached_keys(&self) -> usize {
        self.cache.len()
    }

    /// The key that seals `key_ref`'s values: its live key, created (wrapped by the current
    /// master key) when it has none. Concurrent callers, in this process or others, end with
    /// the same key: one insert wins (`ON CONFLICT DO NOTHING` on the one-key-per-subject
    /// index), the others read it.
    pub async fn key_for_sealing(&self, key_ref: &KeyRef) -> Result<SealingKey, VaultError> {
        key_ref.validate()?;
        let key = self.sealing_key(key_ref).await?;
        let generation = parse_key_id(&key.key_id).map_or(0, |(_, generation)| generation);
        Ok(SealingKey {
            key_id: key.key_id.clone(),
            generation,
            algorithm: key.algorithm,
        })
    }

    /// Seals `plaintext` as `field` of `key_ref`'s data, with the subject's live key.
    #[tracing::instrument(level = "debug", name = "vault.seal", skip_all, fields(subject = %key_ref, field = %field))]
    pub async fn seal(&self, key_ref: &KeyRef, field: &str, plaintext: &[u8]) -> Result<SealedValue, VaultError> {
        key_ref.validate()?;
        validate_field(field)?;
        let key = self.sealing_key(key_ref).await?;
        Ok(sealed::seal(&key, field, plaintext))
    }

    /// Opens `sealed`, found as `field` of `key_ref`'s data. [`Opened::Erased`] when its key
    /// was destroyed (or is unknown); [`VaultError::Integrity`] when the value was altered or
    /// was sealed for another subject or field.
    #[tracing::instrument(level = "debug", name = "vault.open", skip_all, fields(subject = %key_ref, field = %field, key_id = %sealed.key_id))]
    pub async fn open(&self, key_ref: &KeyRef, field: &str, sealed: &SealedValue) -> Result<Opened, VaultError> {
        if sealed.version != SEALED_FORMAT_VERSION {
            return Err(VaultError::UnsupportedVersion(sealed.version));
        }
        key_ref.validate()?;
        validate_field(field)?;
        let subject = key_ref.subject();
        let algorithm = key_ref.algorithm();
        let belongs = matches!(parse_key_id(&sealed.key_id), Some((s, _)) if s == subject);
        if !belongs || sealed.algorithm != algorithm {
            return Err(VaultError::Integrity {
                key_id: sealed.key_id.clone(),
            });
        }
        let (nonce, ciphertext) = sealed::decode(sealed)?;
        let Some(key) = self.key_by_id(&sealed.key_id, &subject, algorithm).await? else {
            return Ok(Opened::Erased);
        };
        Ok(Opened::Plain(sealed::open(&key, field, &nonce, ciphertext)?))
    }

    /// [`Vault::open`] for text; [`VaultError::NotText`] when the bytes are not UTF-8.
    pub async fn open_string(
        &self,
        key_ref: &KeyRef,
        field: &str,
        sealed: &SealedValue,
    ) -> Result<Opened<Zeroizing<String>>, VaultError> {
        match self.open(key_ref, field, sealed).await? {
            Opened::Erased => Ok(Opened::Erased),
            Opened::Plain(mut bytes) => match String::from_utf8(std::mem::take(&mut *bytes)) {
                Ok(text) => Ok(Opened::Plain(Zeroizing::new(text))),
                Err(error) => {
                    error.into_bytes().zeroize();
                    Err(VaultError::NotText)
                }
            },
        }
    }

    /// Destroys every key of `key_ref`, all generations (crypto-shredding): in one
    /// transaction their rows are deleted and their ids recorded in the erasure ledger with
    /// `reason` (a code such as `erasure_requested`, never free text); the cache forgets
    /// them. Idempotent. Returns every key id of `key_ref` in the ledger, by generation.
    #[tracing::instrument(level = "debug", name = "vault.destroy", skip_all, fields(subject = %key_ref, reason = %reason))]
    pub async fn destroy(&self, key_ref: &KeyRef, reason: &str) -> Result<Vec<String>, VaultError> {
        key_ref.validate()?;
        validate_reason(reason)?;
        let subject = key_ref.subject();
        let result = store::destroy(
            &self.db,
            Scope::Subject(&subject),
            reason,
            &store::stamp(self.clock.now()),
        )
        .await;
        self.cache.evict_subjects(|s| s == subject);
        let (erased, destroyed) = result?;
        tracing::info!(subject = %subject, destroyed, reason, "destroyed data keys (crypto-shredding)");
        Ok(erased)
    }

    /// Erases a person: destroys their person key and every purpose key of theirs, like
    /// [`Vault::destroy`], in one transaction. Their platform connections' keys are separate
    /// subjects: destroy those with [`Vault::destroy`].
    #[tracing::instrument(level = "debug", name = "vault.destroy_person", skip_all, fields(person_id = %person_id, reason = %reason))]
    pub async fn destroy_person(&self, person_id: &str, reason: &str) -> Result<Vec<String>, VaultError> {
        KeyRef::person(person_id).validate()?;
        validate_reason(reason)?;
        let result = store::destroy(
            &self.db,
            Scope::Person(person_id),
            reason,
            &store::stamp(self.clock.now()),
        )
        .await;
        let person_subject = format!("person:{person_id}");
        let purpose_prefix = format!("purpose:{person_id}:");
        self.cache
            .evict_subjects(|s| s == person_subject || s.starts_with(&purpose_prefix));
        let (erased, destroyed) = result?;
        tracing::info!(
            person_id,
            destroyed,
            reason,
            "destroyed a person's data keys (crypto-shredding)"
        );
        Ok(erased)
    }

    /// Deletes every `vault_keys` row whose key id is in the erasure ledger, so a restored
    /// old copy of the key table cannot bring erased data back. Run at start-up (by
    /// [`Vault::start`]) and whenever such a row is met. Returns how many rows it removed.
    pub async fn reapply_erasures(&self) -> Result<u64, VaultError> {
        let removed = store::reapply_erasures(&self.db).await?;
        if removed > 0 {
            self.cache.clear();
            tracing::warn!(
                removed,
                "removed data keys that the erasure ledger says were destroyed (was an old copy of vault_keys restored?)"
            );
        }
        Ok(removed)
    }

    /// Re-wraps every data key under `new_ring`'s current master key, [`ROTATION_BATCH`] keys
    /// per transaction. Returns how many keys were re-wrapped. See [`Vault::rotate_in_batches`].
    pub async fn rotate(&self, new_ring: &MasterKeyring) -> Result<u64, VaultError> {
        self.rotate_in_batches(new_ring, ROTATION_BATCH).await
    }

    /// Re-wraps every data key not yet wrapped by `new_ring`'s current master key,
    /// `batch_size` keys per transaction, unwrapping with `new_ring` or this vault's ring.
    ///
    /// Safe while the service runs: data keys do not change (values sealed before, and keys
    /// already unwrapped in any process, stay usable), and each row is rewritten only if it is
    /// still as it was read. Procedure:
    /// 1. restart every process with the ring `new` then `old` ([`MasterKeyring::followed_by`]):
    ///    new keys are wrapped by `new`, old rows still unwrap;
    /// 2. run `rotate` from a vault with that ring (its current key must be `new`, else
    ///    [`VaultError::RotationNotReady`]);
    /// 3. check [`Vault::master_key_usage`] lists only `new`, then drop `old` from the ring.
    #[tracing::instrument(level = "info", name = "vault.rotate", skip_all, fields(to = %new_ring.current_id()))]
    pub async fn rotate_in_batches(&self, new_ring: &MasterKeyring, batch_size: usize) -> Result<u64, VaultError> {
        let target = new_ring.current_id();
        if self.ring.current_id() != target {
            return Err(VaultError::RotationNotReady {
                current: self.ring.current_id().to_string(),
                new: target.to_string(),
            });
        }
        let batch_size = batch_size.max(1);
        let mut after = String::new();
        let mut rewrapped = 0;
        loop {
            let rows = store::keys_not_wrapped_by(&self.db, target, &after, batch_size as i64).await?;
            let Some(last) = rows.last() else { break };
            after = last.key_id.clone();
            let mut rewraps = Vec::with_capacity(rows.len());
            for row in &rows {
                let ring = if new_ring.contains(&row.master_key_id) {
                    new_ring
                } else {
                    &*self.ring
                };
                let key = ring.unwrap(&row.key_id, &row.master_key_id, &row.wrap_nonce, &row.wrapped_key)?;
                rewraps.push(Rewrap {
                    old: row,
                    new: new_ring.wrap(&row.key_id, &key),
                });
            }
            rewrapped += store::rewrap(&self.db, &rewraps).await?;
            tracing::info!(rewrapped, "re-wrapped a batch of data keys");
        }
        Ok(rewrapped)
    }

    /// How many data keys each master key wraps, by master key id.
    pub async fn master_key_usage(&self) -> Result<Vec<(String, u64)>, VaultError> {
        Ok(store::master_key_usage(&self.db)
            .await?
            .into_iter()
            .map(|(id, count)| (id, count.max(0) as u64))
            .collect())
    }

    /// The live key of `key_ref`, created when it has none.
    async fn sealing_key(&self, key_ref: &KeyRef) -> Result<Arc<DataKey>, VaultError> {
        let subject = key_ref.subject();
        let algorithm = key_ref.algorithm();
        for _ in 0..MAX_ATTEMPTS {
            let epoch = self.cache.epoch();
            if let Some(row) = store::key_by_subject(&self.db, &subject).await? {
                if row.erased {
                    // A restored row of a destroyed key: remove it, then create a new key.
                    self.reapply_erasures().await?;
                    continue;
                }
                if let Some(key) = self.cache.get(&row.key_id) {
                    return Ok(key);
                }
                return self.unwrap_row(&row, &subject, algorithm, epoch);
            }
            let generation = store::last_generation(&self.db, &subject).await? + 1;
            let key_id = new_key_id(&subject, generation);
            let mut material = Zeroizing::new([0u8; KEY_BYTES]);
            rand::rng().fill_bytes(&mut *material);
            let wrapped = self.ring.wrap(&key_id, &material);
            if store::insert_key(
                &self.db,
                &key_id,
                &subject,
                generation,
                algorithm.as_str(),
                &wrapped,
                &store::stamp(self.clock.now()),
            )
            .await?
            {
                tracing::info!(key_id = %key_id, master_key_id = %wrapped.master_key_id, "created a data key");
                let key = Arc::new(DataKey {
                    key_id,
                    subject,
                    algorithm,
                    key: material,
                });
                self.cache.insert(key.clone(), epoch);
                return Ok(key);
            }
            // Another creator won: read its key on the next turn.
        }
        Err(VaultError::Contention { subject })
    }

    /// The key `key_id` of `subject`; `None` when it was destroyed or is unknown.
    async fn key_by_id(
        &self,
        key_id: &str,
        subject: &str,
        algorithm: Algorithm,
    ) -> Result<Option<Arc<DataKey>>, VaultError> {
        if let Some(key) = self.cache.get(key_id) {
            return Ok(Some(key));
        }
        let epoch = self.cache.epoch();
        match store::key_by_id(&self.db, key_id).await? {
            Some(row) if row.erased => {
                self.reapply_erasures().await?;
                Ok(None)
            }
            Some(row) => Ok(Some(self.unwrap_row(&row, subject, algorithm, epoch)?)),
            None => {
                if !store::is_erased(&self.db, key_id).await? {
                    tracing::warn!(
                        key_id,
                        "a sealed value's key is neither stored nor in the erasure ledger; it reads as erased"
                    );
                }
                Ok(None)
            }
        }
    }

    /// Unwraps a stored row, checks it belongs to `subject` with `algorithm`, and caches it.
    fn unwrap_row(
        &self,
        row: &KeyRow,
        subject: &str,
        algorithm: Algorithm,
        epoch: u64,
    ) -> Result<Arc<DataKey>, VaultError> {
        let consistent = matches!(parse_key_id(&row.key_id), Some((s, _)) if s == subject)
            && row.key_ref == subject
            && Algorithm::parse(&row.algorithm) == Some(algorithm);
        if !consistent {
            return Err(VaultError::CorruptKeyRow {
                key_id: row.key_id.clone(),
            });
        }
        let material = self
            .ring
            .unwrap(&row.key_id, &row.master_key_id, &row.wrap_nonce, &row.wrapped_key)?;
        let key = Arc::new(DataKey {
            key_id: row.key_id.clone(),
            subject: subject.to_string(),
            algorithm,
            key: material,
        });
        self.cache.insert(key.clone(), epoch);
        Ok(key)
    }
}
