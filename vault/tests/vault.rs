//! The vault on both backends: sealing and opening for each key kind, integrity of moved or
//! altered values, crypto-shredding of people, purposes and connections, the erasure ledger
//! against restored key rows, master key rotation, concurrency of key creation, and the
//! promise that neither the database nor the logs ever hold a plaintext value or a key.
//!
//! PostgreSQL tests need the server of `DYNAMOI_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), like the `tests` crate: they fail when it is
//! unreachable, unless `DYNAMOI_TEST_SKIP_POSTGRES=1` is set outside CI.

use eventlog::{dispatch, Db};
use sqlx::Row;
use std::sync::Arc;
use vault::{Algorithm, KeyRef, MasterKeyring, Opened, SealedValue, Vault, VaultError};

/// A fresh database per test (a SQLite file or a PostgreSQL database), migrated, dropped after.
/// A small copy of `tests::TestDb`: depending on the `tests` crate would build the whole
/// service (warp, reqwest) for these tests.
mod support {
    use eventlog::Db;

    pub struct TestDb {
        pub db: Db,
        admin_url: Option<String>,
        name: String,
        dir: Option<std::path::PathBuf>,
    }

    impl TestDb {
        pub async fn sqlite() -> TestDb {
            let dir = std::env::temp_dir().join(format!("dynamoi-vault-test-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&dir).expect("create a temporary folder");
            let db = Db::connect(&format!("sqlite:{}", dir.join("dynamoi.db").display()), 8)
                .await
                .expect("open SQLite");
            db.migrate().await.expect("migrate SQLite");
            TestDb {
                db,
                admin_url: None,
                name: String::new(),
                dir: Some(dir),
            }
        }

        pub async fn postgres() -> Option<TestDb> {
            let admin_url = std::env::var("DYNAMOI_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let admin = match Db::connect(&admin_url, 1).await {
                Ok(Db::Postgres(pool)) => pool,
                Ok(_) => panic!("DYNAMOI_TEST_POSTGRES_URL must be a postgres:// URL"),
                Err(error) => {
                    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                    let skip = std::env::var("DYNAMOI_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1");
                    if skip && !ci {
                        eprintln!("PostgreSQL is unreachable ({error}); skipped as DYNAMOI_TEST_SKIP_POSTGRES=1 asks");
                        return None;
                    }
                    panic!("PostgreSQL is unreachable: {error}. Start it (see README.md); set DYNAMOI_TEST_SKIP_POSTGRES=1 to skip outside CI");
                }
            };
            let name = format!("dynamoi_vault_test_{}", uuid::Uuid::now_v7().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .expect("create the test database");
            admin.close().await;
            let (base, _) = admin_url.rsplit_once('/').expect("a PostgreSQL URL has a path");
            let db = Db::connect(&format!("{base}/{name}"), 16)
                .await
                .expect("connect to the test database");
            db.migrate().await.expect("migrate PostgreSQL");
            Some(TestDb {
                db,
                admin_url: Some(admin_url),
                name,
                dir: None,
            })
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Some(dir) = self.dir.take() {
                let _ = std::fs::remove_dir_all(dir);
            }
            let Some(admin_url) = self.admin_url.take() else { return };
            let name = std::mem::take(&mut self.name);
            let db = self.db.clone();
            // Drop runs inside the test's runtime; a fresh thread with its own runtime may block.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async move {
                        db.close().await;
                        if let Ok(Db::Postgres(admin)) = Db::connect(&admin_url, 1).await {
                            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&admin)
                                .await;
                            admin.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

use support::TestDb;

/// Runs a test body against both backends, SQLite then PostgreSQL.
macro_rules! both_backends {
    (async fn $name:ident($db:ident: TestDb) $body:block) => {
        mod $name {
            use super::*;
            async fn run($db: TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                run(TestDb::sqlite().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                if let Some(db) = TestDb::postgres().await {
                    run(db).await
                }
            }
        }
    };
}

fn ring(id: &str) -> Arc<MasterKeyring> {
    Arc::new(MasterKeyring::generate(id).expect("a valid master key id"))
}

fn plain(opened: Opened) -> Vec<u8> {
    opened.plain().expect("the value opens").to_vec()
}

fn assert_integrity<T>(result: Result<T, VaultError>) {
    assert!(
        matches!(result, Err(VaultError::Integrity { .. })),
        "expected an integrity error"
    );
}

/// Every `vault_keys` row, all columns, for putting back later (a "backup").
type KeyRowCopy = (String, String, i64, String, String, Vec<u8>, Vec<u8>, String);

async fn copy_key_rows(db: &Db) -> Vec<KeyRowCopy> {
    dispatch!(db, Db, |pool| {
        sqlx::query_as::<_, KeyRowCopy>(
            "SELECT key_id, key_ref, generation, algorithm, master_key_id, wrap_nonce, wrapped_key, created_at \
             FROM vault_keys ORDER BY key_id",
        )
        .fetch_all(pool)
        .await
        .expect("read vault_keys")
    })
}

async fn restore_key_rows(db: &Db, rows: &[KeyRowCopy]) {
    for row in rows {
        dispatch!(db, Db, |pool| {
            sqlx::query(
                "INSERT INTO vault_keys (key_id, key_ref, generation, algorithm, master_key_id, wrap_nonce, wrapped_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&row.0)
            .bind(&row.1)
            .bind(row.2)
            .bind(&row.3)
            .bind(&row.4)
            .bind(&row.5)
            .bind(&row.6)
            .bind(&row.7)
            .execute(pool)
            .await
            .expect("restore a vault_keys row");
        });
    }
}

async fn count(db: &Db, sql: &str) -> i64 {
    dispatch!(db, Db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .expect("count"))
}

/// Every text and binary cell of the vault's tables, as bytes.
async fn vault_table_cells(db: &Db) -> Vec<Vec<u8>> {
    let mut cells = Vec::new();
    for table in ["vault_keys", "vault_erasures"] {
        dispatch!(db, Db, |pool| {
            let rows = sqlx::query(&format!("SELECT * FROM {table}"))
                .fetch_all(pool)
                .await
                .expect("read a vault table");
            for row in &rows {
                for i in 0..row.len() {
                    if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                        cells.push(text.into_bytes());
                    } else if let Ok(Some(bytes)) = row.try_get::<Option<Vec<u8>>, _>(i) {
                        cells.push(bytes);
                    }
                }
            }
        });
    }
    cells
}

both_backends! {
    async fn each_key_kind_seals_and_opens_with_its_own_algorithm(test: TestDb) {
        let vault = Vault::new(test.db.clone(), ring("k1"));
        let cases = [
            (KeyRef::person("p-1"), "email", Algorithm::XChaCha20Poly1305, "ada@example.test"),
            (KeyRef::purpose("p-1", "ad_attribution"), "fbc", Algorithm::XChaCha20Poly1305, "fb.1.1700000000.AbCd"),
            (KeyRef::connection("c-1"), "refresh_token", Algorithm::Aes256Gcm, "rt-secret-123"),
        ];
        for (key_ref, field, algorithm, value) in &cases {
            let sealed = vault.seal(key_ref, field, value.as_bytes()).await.unwrap();
            assert_eq!(sealed.version, 1);
            assert_eq!(sealed.algorithm, *algorithm);
            assert!(sealed.key_id.starts_with(&format!("{}#1.", key_ref.subject())), "{}", sealed.key_id);
            assert_eq!(plain(vault.open(key_ref, field, &sealed).await.unwrap()), value.as_bytes());
            // A vault with an empty cache (another process) opens it too.
            let other = Vault::new(test.db.clone(), Arc::new(vault.keyring().clone()));
            let text = other.open_string(key_ref, field, &sealed).await.unwrap();
            assert_eq!(text.as_plain().map(|t| t.as_str()), Some(*value));
        }
        // An empty value seals too, and each seal has its own nonce.
        let person = KeyRef::person("p-1");
        let a = vault.seal(&person, "name", b"").await.unwrap();
        let b = vault.seal(&person, "name", b"").await.unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert!(plain(vault.open(&person, "name", &a).await.unwrap()).is_empty());
        assert_eq!(count(&test.db, "SELECT COUNT(*) FROM vault_keys").await, 3);
    }
}

both_backends! {
    async fn a_sealed_value_travels_inside_event_json_and_opens_after_the_round_trip(test: TestDb) {
        let vault = Vault::new(test.db.clone(), ring("k1"));
        let person = KeyRef::person("p-1");
        let sealed = vault.seal(&person, "email", b"ada@example.test").await.unwrap();
        let event = serde_json::json!({ "type": "PersonRegistered", "person_id": "p-1", "email": sealed });
        let text = serde_json::to_string(&event).unwrap();
        assert!(!text.contains("ada@example.test"));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        let email: SealedValue = serde_json::from_value(back["email"].clone()).unwrap();
        assert_eq!(plain(vault.open(&person, "email", &email).await.unwrap()), b"ada@example.test");
    }
}

both_backends! {
    async fn a_value_moved_to_another_person_or_field_or_altered_fails_its_integrity_check(test: TestDb) {
        let vault = Vault::new(test.db.clone(), ring("k1"));
        let ada = KeyRef::person("ada");
        let bob = KeyRef::person("bob");
        vault.seal(&bob, "email", b"bob@example.test").await.unwrap();
        let sealed = vault.seal(&ada, "email", b"ada@example.test").await.unwrap();

        // Into Bob's event, into another field, into a purpose of Ada's.
        assert_integrity(vault.open(&bob, "email", &sealed).await);
        assert_integrity(vault.open(&ada, "name", &sealed).await);
        assert_integrity(vault.open(&KeyRef::purpose("ada", "ad_attribution"), "email", &sealed).await);

        // Rewriting the key id to Bob's live key does not help.
        let bob_key = vault.key_for_sealing(&bob).await.unwrap();
        let relabelled = SealedValue { key_id: bob_key.key_id, ..sealed.clone() };
        assert_integrity(vault.open(&bob, "email", &relabelled).await);

        // A flipped ciphertext bit, a truncated ciphertext, a bad nonce, another algorithm.
        let mut bytes = base64_decode(&sealed.ciphertext);
        bytes[0] ^= 1;
        let flipped = SealedValue { ciphertext: base64_encode(&bytes), ..sealed.clone() };
        assert_integrity(vault.open(&ada, "email", &flipped).await);
        let truncated = SealedValue { ciphertext: base64_encode(&bytes[..4]), ..sealed.clone() };
        assert_integrity(vault.open(&ada, "email", &truncated).await);
        let bad_nonce = SealedValue { nonce: "not base64!".into(), ..sealed.clone() };
        assert_integrity(vault.open(&ada, "email", &bad_nonce).await);
        let other_algorithm = SealedValue { algorithm: Algorithm::Aes256Gcm, ..sealed.clone() };
        assert_integrity(vault.open(&ada, "email", &other_algorithm).await);

        // An unknown format version is its own error; the original still opens.
        let future = SealedValue { version: 2, ..sealed.clone() };
        assert!(matches!(vault.open(&ada, "email", &future).await, Err(VaultError::UnsupportedVersion(2))));
        assert_eq!(plain(vault.open(&ada, "email", &sealed).await.unwrap()), b"ada@example.test");

        // Bytes that are not text are refused by open_string, and never echoed.
        let binary = vault.seal(&ada, "blob", &[0xff, 0xfe]).await.unwrap();
        let error = vault.open_string(&ada, "blob", &binary).await.unwrap_err();
        assert!(matches!(error, VaultError::NotText));
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

both_backends! {
    async fn after_destroy_person_every_value_of_theirs_reads_as_erased_and_others_still_open(test: TestDb) {
        let vault = Vault::new(test.db.clone(), ring("k1"));
        let ada = KeyRef::person("ada");
        let ada_ads = KeyRef::purpose("ada", "ad_attribution");
        let ada_mail = KeyRef::purpose("ada", "newsletter");
        let bob = KeyRef::person("bob");
        let bob_ads = KeyRef::purpose("bob", "ad_attribution");
        // A person whose id starts like Ada's is someone else.
        let ada2 = KeyRef::person("ada2");
        let ada2_ads = KeyRef::purpose("ada2", "ad_attribution");

        let mut adas = Vec::new();
        for (key_ref, field, value) in [(&ada, "email", "ada@example.test"), (&ada, "name", "Ada Lovelace"), (&ada_ads, "fbc", "fbc-ada"), (&ada_mail, "email", "ada@news.test")] {
            adas.push((key_ref, field, vault.seal(key_ref, field, value.as_bytes()).await.unwrap()));
        }
        let mut others = Vec::new();
        for (key_ref, field, value) in [(&bob, "email", "bob@example.test"), (&bob_ads, "fbc", "fbc-bob"), (&ada2, "email", "ada2@example.test"), (&ada2_ads, "fbc", "fbc-ada2")] {
            others.push((key_ref, field, value, vault.seal(key_ref, field, value.as_bytes()).await.unwrap()));
        }
        // Open everything once, so the cache holds Ada's keys.
        for (key_ref, field, sealed) in &adas {
            assert!(!vault.open(key_ref, field, sealed).await.unwrap().is_erased());
        }
        assert!(vault.cached_keys() >= 3);

        let erased = vault.destroy_person("ada", "erasure_requested").await.unwrap();
        assert_eq!(erased.len(), 3, "{erased:?}");
        for (key_ref, field, sealed) in &adas {
            assert!(erased.contains(&sealed.key_id));
            assert!(vault.open(key_ref, field, sealed).await.unwrap().is_erased(), "{} still opens", sealed.key_id);
            let fresh = Vault::new(test.db.clone(), Arc::new(vault.keyring().clone()));
            assert!(fresh.open_string(key_ref, field, sealed).await.unwrap().is_erased());
        }
        for (key_ref, field, value, sealed) in &others {
            assert_eq!(plain(vault.open(key_ref, field, sealed).await.unwrap()), value.as_bytes());
        }

        // Idempotent: the same answer again, nothing more destroyed.
        assert_eq!(vault.destroy_person("ada", "erasure_requested").await.unwrap(), erased);
        assert_eq!(count(&test.db, "SELECT COUNT(*) FROM vault_erasures").await, 3);
        assert_eq!(count(&test.db, "SELECT COUNT(*) FROM vault_keys WHERE key_ref LIKE '%ada:%' OR key_ref = 'person:ada'").await, 0);

        // A reason is a code, not free text.
        assert!(matches!(vault.destroy_person("bob", "asked by bob@example.test").await, Err(VaultError::InvalidReason)));
    }
}

both_backends! {
    async fn destroying_a_purpose_key_leaves_the_person_key_and_other_purposes_usable(test: TestDb) {
        let vault = Vault::new(test.db.clone(), ring("k1"));
        let person = KeyRef::person("p-1");
        let ads = KeyRef::purpose("p-1", "ad_attribution");
        let analytics = KeyRef::purpose("p-1", "analytics");
        let email = vault.seal(&person, "email", b"p1@example.test").await.unwrap();
        let fbc = vault.seal(&ads, "fbc", b"fbc-1").await.unwrap();
        let visits = vault.seal(&analytics, "visits", b"42").await.unwrap();
        assert!(!vault.open(&ads, "fbc", &fbc).await.unwrap().is_erased());

        let erased = vault.destroy(&ads, "consent_withdrawn").await.unwrap();
        assert_eq!(erased, vec![fbc.key_id.clone()]);
        assert!(vault.open(&ads, "fbc", &fbc).await.unwrap().is_erased());
        assert_eq!(plain(vault.open(&person, "email", &email).await.unwrap()), b"p1@example.test");
        assert_eq!(plain(vault.open(&analytics, "visits", &visits).await.unwrap()), b"42");
        // The person key still seals (it is the same key as before).
        let again = vault.seal(&person, "name", b"P One").await.unwrap();
        assert_eq!(again.key_id, email.key_id);
        // Consent given again: the purpose gets a key of the next generation.
        let renewed = vault.key_for_sealing(&ads).await.unwrap();
        assert_eq!(renewed.generation, 2);
        assert_ne!(renewed.key_id, fbc.key_id);
        assert!(vault.open(&ads, "fbc", &fbc).await.unwrap().is_erased());
    }
}

both_backends! {
    async fn a_reconnected_connection_gets_a_key_of_the_next_generation_and_its_old_tokens_stay_erased(test: TestDb) {
        let vault = Vault::new(test.db.clone(), ring("k1"));
        let connection = KeyRef::connection("c-1");
        let first = vault.seal(&connection, "access_token", b"token-1").await.unwrap();
        assert_eq!(first.algorithm, Algorithm::Aes256Gcm);
        let destroyed = vault.destroy(&connection, "disconnected").await.unwrap();
        assert_eq!(destroyed, vec![first.key_id.clone()]);

        let second = vault.seal(&connection, "access_token", b"token-2").await.unwrap();
        assert!(second.key_id.starts_with("connection:c-1#2."), "{}", second.key_id);
        assert!(vault.open(&connection, "access_token", &first).await.unwrap().is_erased());
        assert_eq!(plain(vault.open(&connection, "access_token", &second).await.unwrap()), b"token-2");

        let both = vault.destroy(&connection, "disconnected").await.unwrap();
        assert_eq!(both, vec![first.key_id.clone(), second.key_id.clone()]);
        assert!(vault.open(&connection, "access_token", &second).await.unwrap().is_erased());
    }
}

both_backends! {
    async fn a_restored_pre_erasure_copy_of_the_key_table_cannot_bring_an_erased_person_back(test: TestDb) {
        let vault = Vault::new(test.db.clone(), ring("k1"));
        let ada = KeyRef::person("ada");
        let ada_ads = KeyRef::purpose("ada", "ad_attribution");
        let bob = KeyRef::person("bob");
        let email = vault.seal(&ada, "email", b"ada@example.test").await.unwrap();
        let fbc = vault.seal(&ada_ads, "fbc", b"fbc-ada").await.unwrap();
        let bobs = vault.seal(&bob, "email", b"bob@example.test").await.unwrap();
        let backup = copy_key_rows(&test.db).await;
        assert_eq!(backup.len(), 3);

        vault.destroy_person("ada", "erasure_requested").await.unwrap();
        let ada_rows: Vec<KeyRowCopy> = backup.iter().filter(|r| r.1 != "person:bob").cloned().collect();
        restore_key_rows(&test.db, &ada_rows).await;
        assert_eq!(count(&test.db, "SELECT COUNT(*) FROM vault_keys").await, 3);

        // What start-up does: the ledger removes the restored rows.
        assert_eq!(vault.reapply_erasures().await.unwrap(), 2);
        assert_eq!(vault.reapply_erasures().await.unwrap(), 0);
        let restarted = Vault::start(test.db.clone(), Arc::new(vault.keyring().clone())).await.unwrap();
        assert!(restarted.open(&ada, "email", &email).await.unwrap().is_erased());
        assert!(restarted.open(&ada_ads, "fbc", &fbc).await.unwrap().is_erased());
        assert_eq!(plain(restarted.open(&bob, "email", &bobs).await.unwrap()), b"bob@example.test");

        // Even before re-applying, a restored row of a destroyed key never opens or seals.
        restore_key_rows(&test.db, &ada_rows).await;
        let unaware = Vault::new(test.db.clone(), Arc::new(vault.keyring().clone()));
        assert!(unaware.open(&ada, "email", &email).await.unwrap().is_erased());
        restore_key_rows(&test.db, &ada_rows).await;
        let new_key = unaware.key_for_sealing(&ada_ads).await.unwrap();
        assert_eq!(new_key.generation, 2);
        assert!(unaware.open(&ada_ads, "fbc", &fbc).await.unwrap().is_erased());
        assert_eq!(count(&test.db, "SELECT COUNT(*) FROM vault_keys WHERE key_id IN (SELECT key_id FROM vault_erasures)").await, 0);
    }
}

both_backends! {
    async fn rotation_rewraps_every_key_and_every_value_opens_with_only_the_new_master_key(test: TestDb) {
        let old = ring("old");
        let new = ring("new");
        let before = Vault::new(test.db.clone(), old.clone());
        let mut values = Vec::new();
        for i in 0..5 {
            for key_ref in [KeyRef::person(format!("p{i}")), KeyRef::purpose(format!("p{i}"), "ad_attribution"), KeyRef::connection(format!("c{i}"))] {
                let value = format!("value of {key_ref}");
                let sealed = before.seal(&key_ref, "field", value.as_bytes()).await.unwrap();
                values.push((key_ref, value, sealed));
            }
        }
        assert_eq!(before.master_key_usage().await.unwrap(), vec![("old".to_string(), 15)]);

        // A vault whose current key is still the old one refuses to rotate.
        assert!(matches!(before.rotate(&new).await, Err(VaultError::RotationNotReady { .. })));

        // The service restarted with new-then-old rotates, in batches of 4.
        let during = Vault::start(test.db.clone(), Arc::new(new.followed_by(&old).unwrap())).await.unwrap();
        let created_during = during.seal(&KeyRef::person("late"), "field", b"late value").await.unwrap();
        assert_eq!(during.rotate_in_batches(&new, 4).await.unwrap(), 15);
        assert_eq!(during.rotate(&new).await.unwrap(), 0);
        assert_eq!(during.master_key_usage().await.unwrap(), vec![("new".to_string(), 16)]);
        for (_, _, _, _, master_key_id, _, _, _) in copy_key_rows(&test.db).await {
            assert_eq!(master_key_id, "new");
        }

        // The old process, its keys already unwrapped, still opens; so does one with only the new key.
        let after = Vault::start(test.db.clone(), new.clone()).await.unwrap();
        for (key_ref, value, sealed) in &values {
            assert_eq!(plain(before.open(key_ref, "field", sealed).await.unwrap()), value.as_bytes());
            assert_eq!(plain(after.open(key_ref, "field", sealed).await.unwrap()), value.as_bytes());
        }
        assert_eq!(plain(after.open(&KeyRef::person("late"), "field", &created_during).await.unwrap()), b"late value");

        // A service started with only the old key is stopped at once, not at the first request.
        let error = Vault::start(test.db.clone(), old.clone()).await.unwrap_err();
        assert!(matches!(&error, VaultError::MissingMasterKeys { ids } if ids == &["new".to_string()]), "{error}");
    }
}

both_backends! {
    async fn no_column_of_the_vault_tables_holds_a_plaintext_value(test: TestDb) {
        let vault = Vault::new(test.db.clone(), ring("k1"));
        let secrets = ["ada.lovelace@example.test", "Ada Lovelace", "fbc-7f3e9a1c", "refresh-token-9b2d4e6f"];
        let ada = KeyRef::person("ada");
        vault.seal(&ada, "email", secrets[0].as_bytes()).await.unwrap();
        vault.seal(&ada, "name", secrets[1].as_bytes()).await.unwrap();
        vault.seal(&KeyRef::purpose("ada", "ad_attribution"), "fbc", secrets[2].as_bytes()).await.unwrap();
        vault.seal(&KeyRef::connection("c-1"), "refresh_token", secrets[3].as_bytes()).await.unwrap();
        vault.destroy(&KeyRef::connection("c-1"), "disconnected").await.unwrap();
        let cells = vault_table_cells(&test.db).await;
        // 2 live keys with 7 text or binary cells each, 1 erased key with 4 text cells.
        assert_eq!(cells.len(), 2 * 7 + 4, "the scan saw every row");
        for secret in secrets {
            for cell in &cells {
                assert!(
                    !cell.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "a vault column holds a plaintext value"
                );
            }
        }
    }
}

both_backends! {
    async fn eight_concurrent_creators_of_one_subjects_key_end_with_one_key(test: TestDb) {
        let ring = ring("k1");
        for key_ref in [KeyRef::person("p-1"), KeyRef::connection("c-1")] {
            let mut tasks = Vec::new();
            for _ in 0..8 {
                // Separate vaults, separate caches: like eight processes.
                let vault = Vault::new(test.db.clone(), ring.clone());
                let key_ref = key_ref.clone();
                tasks.push(tokio::spawn(async move { vault.key_for_sealing(&key_ref).await }));
            }
            let mut ids = std::collections::BTreeSet::new();
            for task in tasks {
                ids.insert(task.await.unwrap().unwrap().key_id);
            }
            assert_eq!(ids.len(), 1, "{ids:?}");
            let subject_rows = format!("SELECT COUNT(*) FROM vault_keys WHERE key_ref = '{}'", key_ref.subject());
            assert_eq!(count(&test.db, &subject_rows).await, 1);
        }
    }
}

both_backends! {
    async fn neither_logs_nor_errors_hold_plaintext_or_key_material(test: TestDb) {
        use tracing::instrument::WithSubscriber;
        let master_hex = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
        let secret = "ada.lovelace@example.test";
        let buffer = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let writer = {
            let buffer = buffer.clone();
            move || LogWriter(buffer.clone())
        };
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        let db = test.db.clone();
        let errors = async move {
            let ring = Arc::new(MasterKeyring::parse(&format!("k1 {master_hex}")).unwrap());
            let vault = Vault::start(db.clone(), ring).await.unwrap();
            let ada = KeyRef::person("ada");
            let sealed = vault.seal(&ada, "email", secret.as_bytes()).await.unwrap();
            let mut errors = vec![
                format!("{:?}", vault.open(&ada, "email", &sealed).await.unwrap()),
                format!("{:?}", vault.open(&KeyRef::person("bob"), "email", &sealed).await),
                format!("{:?}", vault.open(&ada, "name", &sealed).await),
                format!("{vault:?}"),
            ];
            vault.rotate(vault.keyring()).await.unwrap();
            vault.destroy_person("ada", "erasure_requested").await.unwrap();
            errors.push(format!("{:?}", vault.open(&ada, "email", &sealed).await.unwrap()));
            errors.push(MasterKeyring::parse(&format!("k1 {}", &master_hex[1..])).unwrap_err().to_string());
            errors
        }
        .with_subscriber(subscriber)
        .await;
        let logs = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("created a data key"), "the capture works: {logs}");
        for text in errors.iter().chain([&logs]) {
            assert!(!text.contains(secret), "plaintext leaked: {text}");
            assert!(!text.contains(&master_hex[1..17]), "master key material leaked: {text}");
        }
    }
}

/// A `tracing` writer into a shared buffer.
struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_keyring_file_with_a_malformed_line_is_refused_with_its_line_number_and_no_key_material() {
    let dir = std::env::temp_dir().join(format!("dynamoi-vault-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("master-keys");
    let good = "a".repeat(64);
    let bad = "b".repeat(62);
    std::fs::write(&path, format!("# keys\nk2 {good}\nk1 {bad}\n")).unwrap();
    let error = MasterKeyring::from_file(&path).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    let message = error.to_string();
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("64 lowercase hexadecimal digits"), "{message}");
    assert!(
        !message.contains("aaaaaaaa") && !message.contains("bbbbbbbb"),
        "{message}"
    );
}
