//! Platform connections end to end, on both backends: connect with tokens that are sealed at
//! once, list without tokens, disconnect with the key destroyed, reconnect under a new key;
//! no token plaintext reaches the database.

use api::auth::Role;
use eventlog::{dispatch, Db};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use tests::{cells_holding, Backend, TestApp};

const REFRESH: &str = "1//0gPlaintextRefreshTokenForYoutube-abc";
const META_TOKEN: &str = "EAAGPlaintextMetaPageAccessToken123";

async fn story(backend: Backend) {
    let Some(app) = TestApp::spawn(backend, &[]).await else {
        return;
    };
    app.sign_up("artist-9").await;
    let me = app.token("artist-9", Role::Person);
    let post = |body: Value| {
        app.client
            .post(format!("{}/v1/connections", app.base_url))
            .bearer_auth(&me)
            .json(&body)
            .send()
    };
    let youtube = json!({"platform": "youtube", "channel_id": "UCabc123", "channel_name": "Artist Nine", "refresh_token": REFRESH});
    let response = post(youtube.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["connection_id"], "artist-9.youtube");
    let again = post(youtube.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let missing = post(json!({"platform": "meta", "page_id": "123"})).await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let meta =
        post(json!({"platform": "meta", "page_id": "1045", "instagram_actor_id": "1789", "access_token": META_TOKEN}))
            .await
            .unwrap();
    assert_eq!(meta.status(), StatusCode::CREATED);
    let position = meta.json::<Value>().await.unwrap()["position"]
        .as_str()
        .unwrap()
        .to_string();

    let listed = app
        .client
        .get(format!("{}/v1/connections?min_position={position}", app.base_url))
        .bearer_auth(&me)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains("UCabc123") && listed.contains("1045"), "{listed}");
    assert!(
        !listed.contains(REFRESH) && !listed.contains("refresh_token"),
        "{listed}"
    );

    // The token is in the log only sealed; it opens with the connection's key.
    let vault = vault::Vault::new(app.db.db.clone(), Arc::new(app.settings.master_keyring().unwrap()));
    let events = app.db.log().load("connection", "artist-9.youtube").await.unwrap();
    let sealed: vault::SealedValue =
        serde_json::from_value(events[0].payload["Connected"]["details"]["refresh_token"].clone()).unwrap();
    assert_eq!(sealed.algorithm, vault::Algorithm::Aes256Gcm);
    let key = vault::KeyRef::connection("artist-9.youtube");
    assert_eq!(
        vault
            .open_string(&key, "refresh_token", &sealed)
            .await
            .unwrap()
            .plain()
            .unwrap()
            .as_str(),
        REFRESH
    );

    // Disconnect: the key is destroyed at once; the list shows it gone.
    let response = app
        .client
        .delete(format!("{}/v1/connections/youtube", app.base_url))
        .bearer_auth(&me)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let gone: Value = response.json().await.unwrap();
    assert_eq!(gone["keys_destroyed"], 1);
    let fresh = vault::Vault::new(app.db.db.clone(), Arc::new(app.settings.master_keyring().unwrap()));
    assert!(fresh.open(&key, "refresh_token", &sealed).await.unwrap().is_erased());
    let listed = app
        .client
        .get(format!(
            "{}/v1/connections?min_position={}",
            app.base_url,
            gone["position"].as_str().unwrap()
        ))
        .bearer_auth(&me)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listed.contains("UCabc123"), "{listed}");
    let twice = app
        .client
        .delete(format!("{}/v1/connections/youtube", app.base_url))
        .bearer_auth(&me)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::CONFLICT);

    // Reconnect under a new key generation.
    let response = post(youtube).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let generations: Vec<String> = dispatch!(&app.db.db, Db, |pool| {
        sqlx::query_scalar("SELECT key_id FROM vault_keys WHERE key_ref = 'connection:artist-9.youtube'")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    assert_eq!(generations.len(), 1);
    assert!(generations[0].contains("#2."), "{generations:?}");

    // No token plaintext anywhere in the database.
    for token in [REFRESH, META_TOKEN] {
        assert_eq!(
            cells_holding(&app.db.db, token).await,
            Vec::<String>::new(),
            "a token reached the database"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_list_disconnect_and_reconnect_on_sqlite() {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_list_disconnect_and_reconnect_on_postgres() {
    story(Backend::Postgres).await
}
