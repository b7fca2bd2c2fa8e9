//! The real `dynamoi serve` at the most verbose log level, driven through sign-up, consents,
//! connections, invitations and card numbers sent to billing: nothing it writes to its log
//! holds a token, a secret, a card number or a person's data.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

const SECRETS: [&str; 8] = [
    "1//LogScanRefreshToken-zz9",
    "EAALogScanMetaAccessToken77",
    "Logscan Person Name",
    "logscan.person@example.test",
    "logscan.invitee@example.test",
    "log-scan-jwt-secret-0123456789-abcdefghij",
    // Full card numbers sent to billing endpoints (refused with 422).
    "4242 4242 4242 4242",
    "5555555555554444",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_or_personal_reaches_the_log() {
    let dir = std::env::temp_dir().join(format!("dynamoi-logs-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamoi"))
        .arg("serve")
        .current_dir(&dir)
        .env_clear()
        .env("DYNAMOI_LISTEN", "127.0.0.1:0")
        .env("DYNAMOI_JWT_SECRET", SECRETS[5])
        .env("DYNAMOI_LOG", "trace")
        .env("DYNAMOI_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dynamoi serve");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (address_tx, address_rx) = std::sync::mpsc::channel::<String>();
    let reader = {
        let lines = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("dynamoi is serving") {
                    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    if let Some(address) = parsed["fields"]["address"].as_str() {
                        let _ = address_tx.send(address.to_string());
                    }
                }
                lines.lock().unwrap().push(line);
            }
        })
    };
    let address = address_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the service says where it listens");
    let base = format!("http://{address}");
    let auth = api::auth::Authenticator::new(&secrecy::SecretString::from(SECRETS[5]), "authenticated");
    let service = auth.mint("hook", api::auth::Role::Service, 600).unwrap();
    let person = auth.mint("logscan-1", api::auth::Role::Person, 600).unwrap();
    let client = reqwest::Client::new();
    let send = |token: &str, path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let answers = [
        send(&service, "/v1/accounts", serde_json::json!({"person_id": "logscan-1", "provider": "email", "provider_subject": "logscan", "name": SECRETS[2], "email": SECRETS[3], "country": "PK", "birth_date": "1990-01-01"})).await.unwrap().status(),
        send(&person, "/v1/connections", serde_json::json!({"platform": "youtube", "channel_id": "UClog", "channel_name": "Log", "refresh_token": SECRETS[0]})).await.unwrap().status(),
        send(&person, "/v1/connections", serde_json::json!({"platform": "meta", "page_id": "77", "access_token": SECRETS[1]})).await.unwrap().status(),
        // Refused requests must not echo their bodies either.
        send(&person, "/v1/connections", serde_json::json!({"platform": "meta", "page_id": "77", "access_token": SECRETS[1]})).await.unwrap().status(),
        send(&person, "/v1/accounts", serde_json::json!({"email": SECRETS[3]})).await.unwrap().status(),
        send(&person, "/v1/artists", serde_json::json!({"name": "Log Band"})).await.unwrap().status(),
    ];
    assert_eq!(answers.map(|s| s.as_u16()), [201, 201, 201, 409, 403, 201]);
    let refused = [
        send(
            &person,
            "/v1/billing/accounts",
            serde_json::json!({"stripe_customer_id": "cus_LOG", "card": SECRETS[6]}),
        )
        .await
        .unwrap()
        .status(),
        send(
            &person,
            "/v1/billing/accounts/cus_LOG/payment-method",
            serde_json::json!({"number": SECRETS[7]}),
        )
        .await
        .unwrap()
        .status(),
    ];
    assert_eq!(refused.map(|s| s.as_u16()), [422, 422]);
    let created: serde_json::Value = send(&person, "/v1/artists", serde_json::json!({"name": "Log Band 2"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let artist = created["artist_id"].as_str().unwrap();
    let position = created["position"].as_str().unwrap();
    let invited = send(
        &person,
        &format!("/v1/artists/{artist}/invitations?min_position={position}"),
        serde_json::json!({"email": SECRETS[4], "role": "viewer"}),
    )
    .await
    .unwrap();
    assert_eq!(invited.status(), 201);
    let _ = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(&person)
        .send()
        .await
        .unwrap();
    let _ = client
        .delete(format!("{base}/v1/connections/youtube"))
        .bearer_auth(&person)
        .send()
        .await
        .unwrap();

    // Stop it the way an operator would, and read everything it wrote.
    #[cfg(unix)]
    {
        let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "graceful shutdown exits cleanly");
    let log = lines.lock().unwrap().join("\n");
    assert!(log.contains("request handled"), "the log was captured at trace level");
    for secret in SECRETS {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
