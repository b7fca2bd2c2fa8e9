//! A seeded simulation of dynamoi under disorder, through the real service on both backends at
//! a controlled clock: random sequences of campaign drafts (under Idempotency-Keys, retried as a
//! client that lost the answer would), bulk ingests (new days, restatements, repeats, stale
//! readings, two ingests at once), concurrent budget changes, billing closes, erasures,
//! projection rebuilds, process restarts and clock jumps. After every step it checks the
//! invariants against its own model of what was acknowledged, for every artist the step touched
//! (every artist after a rebuild or a restart, and every 25 steps, so that an effect on an
//! artist the step did not touch is caught too):
//! - every acknowledged campaign is listed exactly once (a retried key never drafts twice);
//! - the dashboard and the billing usage equal the latest reading of every day (the reading
//!   with the latest `fetched_at`), per month; an ingest answers each reading as the model
//!   expects (`recorded`, `restated`, `unchanged`, `stale`);
//! - rebuilt read models answer what the incrementally built ones answered (the same checks
//!   right after a rebuild);
//! - every erased person stays erased (their fields no longer open), across restarts;
//! - at the end: every closed period's statement plus later adjustments equals its usage, and
//!   every hash chain verifies.
//!
//! The seed is printed and named in every failure: `DYNAMOI_SIM_SEED=N` replays it,
//! `DYNAMOI_SIM_STEPS=N` sets the length (CI: [`CI_STEPS`] per backend). A longer run:
//! `DYNAMOI_SIM_STEPS=20000 DYNAMOI_SIM_SEED=random cargo nextest run -p tests --test simulation --no-capture`.

use api::auth::Role;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use tests::{both_backends, TestApp, TestDb};

/// Steps per backend in CI.
const CI_STEPS: usize = 2000;
/// The seed CI runs (a fixed one, so a red CI run replays exactly).
const CI_SEED: u64 = 20_261_202;
/// Artists (each with its owner, a live Meta connection and a billing account).
const ARTISTS: usize = 3;
/// The first day readings are sent for.
const FIRST_DAY: &str = "2026-09-01";

/// One artist of the simulation.
struct Artist {
    id: String,
    owner: String,
    account: String,
    campaigns: Vec<String>,
}

/// The latest view of one campaign-day, as the ledger must keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Figures {
    spend_micros: i64,
    impressions: i64,
}

#[derive(Clone, Copy, Debug)]
struct Day {
    /// The latest `fetched_at` any accepted reading of the day carried.
    fetched_at: DateTime<Utc>,
    figures: Figures,
}

/// A draft sent under an Idempotency-Key: what a client that lost the answer sends again.
struct KeyedDraft {
    key: String,
    artist: usize,
    body: Value,
    campaign: String,
    sent_at: DateTime<Utc>,
}

struct Sim {
    app: Option<TestApp>,
    rng: StdRng,
    seed: u64,
    step: usize,
    artists: Vec<Artist>,
    days: BTreeMap<(String, NaiveDate), Day>,
    campaign_artist: BTreeMap<String, usize>,
    drafts: Vec<KeyedDraft>,
    /// People who signed up only to be erased, and whether they were.
    fans: Vec<(String, bool)>,
    /// Closed (artist, period) pairs.
    closed: BTreeSet<(usize, String)>,
    /// The newest position acknowledged so far, as (commit, global).
    position: Option<(u64, u64)>,
    /// What was sent for each campaign-day and how it was answered (printed on a mismatch).
    history: BTreeMap<(String, NaiveDate), Vec<String>>,
    /// The artists the current step touched (readings sent, budgets changed, periods closed).
    touched: BTreeSet<usize>,
}

fn parse_position(text: &str) -> Option<(u64, u64)> {
    let (commit, global) = text.split_once('.')?;
    Some((commit.parse().ok()?, global.parse().ok()?))
}

fn period_of(day: NaiveDate) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}

impl Sim {
    fn app(&self) -> &TestApp {
        self.app.as_ref().expect("the service is running")
    }

    /// Where a failure happened and how to replay it.
    fn at(&self) -> String {
        format!(
            "[seed {} step {}: replay with DYNAMOI_SIM_SEED={} DYNAMOI_SIM_STEPS={}]",
            self.seed,
            self.step,
            self.seed,
            self.step + 1
        )
    }

    fn saw(&mut self, answer: &Value) {
        if let Some(p) = answer["position"].as_str().and_then(parse_position) {
            self.position = self.position.max(Some(p));
        }
    }

    fn min_position(&self) -> String {
        self.position
            .map(|(c, g)| format!("min_position={c}.{g}"))
            .unwrap_or_default()
    }

    async fn send(&self, token: &str, method: Method, route: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.app().send(token, method, route, body).await
    }

    /// A read that must answer 200: its JSON.
    async fn get_ok(&self, token: &str, route: &str) -> Value {
        let (status, answer) = self.send(token, Method::GET, route, None).await;
        assert_eq!(status, StatusCode::OK, "{} GET {route}: {answer}", self.at());
        answer
    }

    async fn set_up(&mut self) {
        for n in 0..ARTISTS {
            let owner = format!("sim-owner-{n}");
            self.app().sign_up(&owner).await;
            let token = self.app().token(&owner, Role::Person);
            let (status, body) = self
                .send(
                    &token,
                    Method::POST,
                    "/v1/connections",
                    Some(
                        json!({"platform": "meta", "page_id": format!("9{n}"), "access_token": format!("EAA-sim-{n}")}),
                    ),
                )
                .await;
            assert!(status.is_success(), "{} {body}", self.at());
            let (status, artist) = self
                .send(
                    &token,
                    Method::POST,
                    "/v1/artists",
                    Some(json!({"name": format!("Sim {n}")})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{} {artist}", self.at());
            self.saw(&artist);
            let id = artist["artist_id"].as_str().expect("artist_id").to_string();
            let account = format!("cus_SIM{n}");
            let plan = json!({"monthly_fee_micros": 29_000_000, "included_spend_micros": 100_000_000,
                              "fee_basis_points": 250, "currency": "USD", "time_zone": "Etc/UTC"});
            let (status, body) = self
                .send(
                    &token,
                    Method::POST,
                    "/v1/billing/accounts",
                    Some(json!({"stripe_customer_id": account, "plan": plan})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{} {body}", self.at());
            self.saw(&body);
            let (status, body) = self
                .send(
                    &token,
                    Method::POST,
                    &format!("/v1/billing/accounts/{account}/artists"),
                    Some(json!({"artist_id": id})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{} {body}", self.at());
            self.saw(&body);
            self.artists.push(Artist {
                id,
                owner,
                account,
                campaigns: Vec::new(),
            });
            self.draft(n, None).await;
        }
    }

    /// Drafts and launches a campaign for artist `n` under a new Idempotency-Key (or retries
    /// `retry`, a key sent before, as a client that lost the answer).
    async fn draft(&mut self, n: usize, retry: Option<usize>) {
        let now = self.app().now();
        let (key, body) = match retry {
            Some(i) => (self.drafts[i].key.clone(), self.drafts[i].body.clone()),
            None => (
                format!("sim-{}-{}", self.seed, self.drafts.len()),
                json!({
                    "platform": "meta", "objective": "streams",
                    "budget": {"kind": "daily", "amount_micros": self.rng.random_range(1..100) * 1_000_000},
                    "currency": "USD", "schedule": {"start": "2026-08-01"}, "countries": ["PK"],
                    "creatives": [{"kind": "facebook_post", "post_id": format!("9{n}_1")}]
                }),
            ),
        };
        let artist = &self.artists[n];
        let token = self.app().token(&artist.owner, Role::Person);
        let response = self
            .app()
            .client
            .post(format!("{}/v1/artists/{}/campaigns", self.app().base_url, artist.id))
            .bearer_auth(&token)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await
            .expect("the draft is sent");
        let status = response.status();
        let replayed = response.headers().get("idempotent-replayed").is_some();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let campaign = answer["campaign_id"].as_str().unwrap_or_default().to_string();
        match retry {
            Some(i) => {
                assert!(
                    status.is_success() && replayed,
                    "{} a retried key: {status} {answer}",
                    self.at()
                );
                assert_eq!(
                    campaign,
                    self.drafts[i].campaign,
                    "{} a retried key answered another campaign",
                    self.at()
                );
            }
            None => {
                assert_eq!(status, StatusCode::CREATED, "{} {answer}", self.at());
                self.saw(&answer);
                let (status, launched) = self
                    .send(
                        &token,
                        Method::POST,
                        &format!("/v1/campaigns/{campaign}/launch"),
                        Some(json!({})),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{} {launched}", self.at());
                self.saw(&launched);
                self.artists[n].campaigns.push(campaign.clone());
                self.campaign_artist.insert(campaign.clone(), n);
                self.drafts.push(KeyedDraft {
                    key,
                    artist: n,
                    body,
                    campaign,
                    sent_at: now,
                });
            }
        }
    }

    /// A reading of a random campaign-day: new, newer (a restatement or a repeat), or older
    /// than the one the day holds (stale). With its expected outcome.
    fn reading(&mut self, taken: &BTreeSet<(String, NaiveDate)>) -> Option<(Value, (String, NaiveDate), &'static str)> {
        let now = self.app().now();
        let campaigns: Vec<String> = self.campaign_artist.keys().cloned().collect();
        let campaign = campaigns[self.rng.random_range(0..campaigns.len())].clone();
        let first: NaiveDate = FIRST_DAY.parse().expect("a day");
        let span = (now.date_naive() - first).num_days();
        if span < 2 {
            return None;
        }
        let day = first + Duration::days(self.rng.random_range(0..span - 1));
        let key = (campaign.clone(), day);
        if taken.contains(&key) {
            return None;
        }
        let earliest = day.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc();
        let held = self.days.get(&key).copied();
        let fresh = Figures {
            spend_micros: self.rng.random_range(0..60_000_000),
            impressions: self.rng.random_range(0..20_000),
        };
        let (fetched_at, figures, outcome) = match held {
            None => (between(&mut self.rng, earliest, now), fresh, "recorded"),
            Some(held) => {
                let older = held.fetched_at - Duration::seconds(1) > earliest && self.rng.random_bool(0.3);
                if older {
                    (
                        between(&mut self.rng, earliest, held.fetched_at - Duration::seconds(1)),
                        fresh,
                        "stale",
                    )
                } else if held.fetched_at + Duration::seconds(1) < now {
                    let at = between(&mut self.rng, held.fetched_at + Duration::seconds(1), now);
                    if self.rng.random_bool(0.3) {
                        (at, held.figures, "unchanged")
                    } else if fresh == held.figures {
                        (at, fresh, "unchanged")
                    } else {
                        (at, fresh, "restated")
                    }
                } else {
                    return None;
                }
            }
        };
        let body = json!({
            "campaign_id": campaign, "platform": "meta", "date": day.to_string(),
            "spend_micros": figures.spend_micros, "currency": "USD", "impressions": figures.impressions,
            "clicks": 3, "fetched_at": fetched_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "source": "meta_insights"
        });
        Some((body, key, outcome))
    }

    fn note(&mut self, key: &(String, NaiveDate), reading: &Value, how: &str) {
        let line = format!(
            "step {}: fetched {} spend {} impressions {} {how}",
            self.step, reading["fetched_at"], reading["spend_micros"], reading["impressions"]
        );
        self.history.entry(key.clone()).or_default().push(line);
        if let Some(&n) = self.campaign_artist.get(&key.0) {
            self.touched.insert(n);
        }
    }

    /// Applies an accepted reading to the model.
    fn accept(&mut self, key: (String, NaiveDate), reading: &Value) {
        let fetched_at: DateTime<Utc> = reading["fetched_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("fetched_at");
        let figures = Figures {
            spend_micros: reading["spend_micros"].as_i64().expect("spend"),
            impressions: reading["impressions"].as_i64().expect("impressions"),
        };
        match self.days.get_mut(&key) {
            Some(day) if fetched_at < day.fetched_at => {}
            Some(day) => {
                day.fetched_at = fetched_at;
                day.figures = figures;
            }
            None => {
                self.days.insert(key, Day { fetched_at, figures });
            }
        }
    }

    fn batch(&mut self, taken: &mut BTreeSet<(String, NaiveDate)>) -> Vec<(Value, (String, NaiveDate), &'static str)> {
        let size = self.rng.random_range(1..=6);
        let mut batch = Vec::new();
        for _ in 0..size * 3 {
            if batch.len() == size {
                break;
            }
            if let Some(reading) = self.reading(taken) {
                taken.insert(reading.1.clone());
                batch.push(reading);
            }
        }
        batch
    }

    async fn ingest(&self, batch: &[(Value, (String, NaiveDate), &'static str)]) -> Value {
        let token = self.app().token("sim-sync", Role::Service);
        let readings: Vec<Value> = batch.iter().map(|(r, _, _)| r.clone()).collect();
        let (status, answer) = self
            .send(&token, Method::POST, "/v1/ingest/spend", Some(Value::Array(readings)))
            .await;
        assert_eq!(status, StatusCode::OK, "{} {answer}", self.at());
        answer
    }

    /// One ingest; each reading answered as the model expects.
    async fn ingest_one(&mut self) {
        let mut taken = BTreeSet::new();
        let batch = self.batch(&mut taken);
        if batch.is_empty() {
            return;
        }
        let answer = self.ingest(&batch).await;
        self.saw(&answer);
        for (n, (reading, key, expected)) in batch.iter().enumerate() {
            let outcome = answer["results"][n]["outcome"].as_str().unwrap_or_default();
            self.note(key, reading, &format!("alone, answered {outcome}"));
            assert_eq!(
                outcome,
                *expected,
                "{} reading {reading} was answered {} (the day held {:?})",
                self.at(),
                answer["results"][n],
                self.days.get(key)
            );
            if *expected != "stale" {
                self.accept(key.clone(), reading);
            }
        }
    }

    /// Two ingests at once over the same campaign-days, in an order the model does not know:
    /// the day must end holding the reading with the latest `fetched_at` either way.
    async fn ingest_two_at_once(&mut self) {
        let mut taken = BTreeSet::new();
        let first = self.batch(&mut taken);
        if first.is_empty() {
            return;
        }
        // The second sends the same days, fetched at other instants, with other figures.
        let now = self.app().now();
        let second: Vec<_> = first
            .iter()
            .map(|(reading, key, _)| {
                let mut other = reading.clone();
                let earliest = key
                    .1
                    .succ_opt()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .expect("a day")
                    .and_utc();
                let at = between(&mut self.rng, earliest, now);
                other["fetched_at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                other["spend_micros"] = json!(self.rng.random_range(0..60_000_000i64));
                (other, key.clone(), "either")
            })
            .collect();
        let (a, b) = tokio::join!(self.ingest(&first), self.ingest(&second));
        self.saw(&a);
        self.saw(&b);
        for (n, (reading, key, _)) in first.iter().enumerate() {
            self.note(
                key,
                reading,
                &format!("at once (a), answered {}", a["results"][n]["outcome"]),
            );
        }
        for (n, (reading, key, _)) in second.iter().enumerate() {
            self.note(
                key,
                reading,
                &format!("at once (b), answered {}", b["results"][n]["outcome"]),
            );
        }
        // Whatever the order, the model keeps the latest fetched_at of all accepted readings.
        for (reading, key, _) in first.iter().chain(second.iter()) {
            let held = self.days.get(key).copied();
            let fetched: DateTime<Utc> = reading["fetched_at"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("fetched_at");
            if held.is_none_or(|h| fetched >= h.fetched_at) {
                self.accept(key.clone(), reading);
            }
        }
    }

    async fn budget_changes_at_once(&mut self) {
        let campaigns: Vec<(String, usize)> = self.campaign_artist.iter().map(|(c, n)| (c.clone(), *n)).collect();
        let (campaign, n) = campaigns[self.rng.random_range(0..campaigns.len())].clone();
        self.touched.insert(n);
        let token = self.app().token(&self.artists[n].owner, Role::Person);
        let amounts: Vec<i64> = (0..3).map(|_| self.rng.random_range(1..500) * 1_000_000).collect();
        let route = format!("/v1/campaigns/{campaign}/budget");
        let sends = amounts.iter().map(|amount| {
            self.send(
                &token,
                Method::POST,
                &route,
                Some(json!({"kind": "daily", "amount_micros": amount})),
            )
        });
        for (status, answer) in futures::future::join_all(sends).await {
            assert_eq!(
                status,
                StatusCode::OK,
                "{} concurrent budget change: {answer}",
                self.at()
            );
            self.saw(&answer);
        }
    }

    async fn close_a_period(&mut self) {
        let n = self.rng.random_range(0..ARTISTS);
        self.touched.insert(n);
        let now = self.app().now().date_naive();
        let first: NaiveDate = FIRST_DAY.parse().expect("a day");
        // A month that has ended (or, sometimes, the current one, which must be refused).
        let months = (now.year() - first.year()) * 12 + now.month() as i32 - first.month() as i32;
        let back = self.rng.random_range(0..=months);
        let month = first + chrono::Months::new((months - back) as u32);
        let period = period_of(month);
        let support = self.app().token("sim-support", Role::Support);
        let (status, answer) = self
            .send(
                &support,
                Method::POST,
                &format!(
                    "/v1/billing/accounts/{}/periods/{period}/close",
                    self.artists[n].account
                ),
                Some(json!({})),
            )
            .await;
        let ended = period < period_of(now);
        let already = self.closed.contains(&(n, period.clone()));
        match (ended, already) {
            (true, false) => {
                assert_eq!(status, StatusCode::OK, "{} closing {period}: {answer}", self.at());
                self.saw(&answer);
                self.closed.insert((n, period));
            }
            _ => assert_eq!(
                status,
                StatusCode::CONFLICT,
                "{} closing {period} (ended {ended}, closed before {already}): {answer}",
                self.at()
            ),
        }
    }

    async fn erase_a_fan(&mut self) {
        let fan = format!("sim-fan-{}", self.step);
        let (status, signed_up) = self
            .send(
                &self.app().token("sim-auth-hook", Role::Service),
                Method::POST,
                "/v1/accounts",
                Some(json!({
                    "person_id": fan, "provider": "google", "provider_subject": format!("google|{fan}"),
                    "name": format!("Fan {}", self.step), "email": format!("{fan}@example.test"), "country": "PK",
                    "birth_date": "1995-05-05"
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{} sign-up: {signed_up}", self.at());
        self.saw(&signed_up);
        let token = self.app().token(&fan, Role::Person);
        let (status, answer) = self
            .send(
                &token,
                Method::POST,
                "/v1/me/privacy-requests",
                Some(json!({"kind": "erase"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{} erasure: {answer}", self.at());
        assert_eq!(answer["state"], "completed", "{} erasure: {answer}", self.at());
        self.saw(&answer);
        self.fans.push((fan, true));
    }

    async fn rebuild(&mut self) {
        let name = if self.rng.random_bool(0.5) {
            "dashboards"
        } else {
            "billing"
        };
        self.app()
            .app
            .engine
            .rebuild(name, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{} rebuild {name}: {e:?}", self.at()));
    }

    async fn restart(&mut self) {
        let at = self.app().now();
        let db: TestDb = self.app.take().expect("running").stop().await;
        self.app = Some(TestApp::spawn_on_at(db, &[], at).await);
    }

    /// The checks made after every step (for the artists in `only`, or all).
    async fn check(&self, only: Option<&BTreeSet<usize>>) {
        let min = self.min_position();
        for (n, artist) in self.artists.iter().enumerate() {
            if only.is_some_and(|o| !o.contains(&n)) {
                continue;
            }
            let token = self.app().token(&artist.owner, Role::Person);
            // Every acknowledged campaign, exactly once.
            let listed = self
                .get_ok(&token, &format!("/v1/artists/{}/campaigns?{min}", artist.id))
                .await;
            let mut ids: Vec<String> = listed["campaigns"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|c| c["campaign_id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            ids.sort();
            let mut expected = artist.campaigns.clone();
            expected.sort();
            assert_eq!(ids, expected, "{} the campaigns of artist {n}", self.at());
            // The dashboard and the usage: the latest reading of every day, per month.
            let mut months: BTreeMap<String, i64> = BTreeMap::new();
            for ((campaign, day), held) in &self.days {
                if artist.campaigns.contains(campaign) {
                    *months.entry(period_of(*day)).or_default() += held.figures.spend_micros;
                }
            }
            months.retain(|_, spend| *spend != 0);
            let dashboard = self
                .get_ok(
                    &token,
                    &format!(
                        "/v1/artists/{}/dashboard?from={FIRST_DAY}&to=2027-12-31&granularity=month&{min}",
                        artist.id
                    ),
                )
                .await;
            let mut shown: BTreeMap<String, i64> = BTreeMap::new();
            for point in dashboard["series"].as_array().into_iter().flatten() {
                let period = point["period"].as_str().unwrap_or_default();
                *shown.entry(period.chars().take(7).collect()).or_default() +=
                    point["spend_micros"].as_i64().unwrap_or(0);
            }
            shown.retain(|_, spend| *spend != 0);
            if shown != months {
                let days = self.differing_days(n, &min).await;
                panic!(
                    "{} the dashboard of artist {n}: {shown:?}, expected {months:?}; days that differ: {days:#?}",
                    self.at()
                );
            }
            let usage = self
                .get_ok(&token, &format!("/v1/billing/accounts/{}/usage?{min}", artist.account))
                .await;
            let mut billed: BTreeMap<String, i64> = BTreeMap::new();
            for period in usage["usage"].as_array().into_iter().flatten() {
                let name = period["period"].as_str().unwrap_or_default().to_string();
                *billed.entry(name).or_default() += period["spend_micros"].as_i64().unwrap_or(0);
            }
            billed.retain(|_, spend| *spend != 0);
            assert_eq!(billed, months, "{} the billing usage of artist {n}", self.at());
        }
    }

    /// On a mismatch: each campaign-day of artist `n` whose dashboard spend is not the model's,
    /// with what the model holds.
    async fn differing_days(&self, n: usize, min: &str) -> Vec<String> {
        let artist = &self.artists[n];
        let token = self.app().token(&artist.owner, Role::Person);
        let mut found = Vec::new();
        for campaign in &artist.campaigns {
            let (_, daily) = self
                .send(
                    &token,
                    Method::GET,
                    &format!(
                        "/v1/artists/{}/dashboard?from={FIRST_DAY}&to=2027-12-31&granularity=day&campaign={campaign}&{min}",
                        artist.id
                    ),
                    None,
                )
                .await;
            let mut shown: BTreeMap<String, i64> = BTreeMap::new();
            for point in daily["series"].as_array().into_iter().flatten() {
                let day = point["period"].as_str().unwrap_or_default().to_string();
                *shown.entry(day).or_default() += point["spend_micros"].as_i64().unwrap_or(0);
            }
            for ((c, day), held) in &self.days {
                if c == campaign {
                    let got = shown.remove(&day.to_string()).unwrap_or(0);
                    if got != held.figures.spend_micros {
                        found.push(format!(
                            "{campaign} {day}: shown {got}, model {held:?}, sent: {:#?}",
                            self.history.get(&(c.clone(), *day))
                        ));
                    }
                }
            }
            found.extend(
                shown
                    .into_iter()
                    .filter(|(_, s)| *s != 0)
                    .map(|(d, s)| format!("{campaign} {d}: shown {s}, model none")),
            );
        }
        found
    }

    /// The checks made every few steps and at the end: erased people stay erased, every chain
    /// verifies.
    async fn check_deeply(&self) {
        for (fan, _) in self.fans.iter().filter(|(_, erased)| *erased) {
            let (status, me) = self
                .send(
                    &self.app().token(fan, Role::Person),
                    Method::GET,
                    &format!("/v1/me?{}", self.min_position()),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{} {me}", self.at());
            assert_eq!(me["erased"], true, "{} {fan}: {me}", self.at());
            assert_eq!(me["name"], Value::Null, "{} {fan}'s name still opens: {me}", self.at());
            assert_eq!(
                me["email"],
                Value::Null,
                "{} {fan}'s email still opens: {me}",
                self.at()
            );
        }
        let (status, verified) = self
            .send(
                &self.app().token("sim-auditor", Role::Auditor),
                Method::GET,
                "/v1/audit/verify",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{} {verified}", self.at());
        assert_eq!(verified["all_verified"], true, "{} {verified}", self.at());
    }

    /// At the end: the month that just ended is closed for every account, so every restatement
    /// of a closed period has been carried as an adjustment; then statements plus adjustments
    /// equal the usage of every closed period.
    async fn check_statements(&mut self) {
        let now = self.app().now();
        let next_month = (now.date_naive() + chrono::Months::new(1)).with_day(2).expect("a day");
        self.app()
            .clock
            .set(next_month.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
        let ended = period_of(next_month - chrono::Months::new(1));
        let support = self.app().token("sim-support", Role::Support);
        for n in 0..ARTISTS {
            let (status, answer) = self
                .send(
                    &support,
                    Method::POST,
                    &format!("/v1/billing/accounts/{}/periods/{ended}/close", self.artists[n].account),
                    Some(json!({})),
                )
                .await;
            assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "{} closing {ended}: {answer}",
                self.at()
            );
            self.saw(&answer);
        }
        self.check(None).await;
        let periods: BTreeSet<String> = self.closed.iter().map(|(_, p)| p.clone()).collect();
        for period in periods {
            let differences = app::billing::reconcile(self.app().app.log.db(), &period)
                .await
                .unwrap_or_else(|e| panic!("{} reconcile {period}: {e}", self.at()));
            // The accounts that closed this period (others may still hold it open).
            let closed_by: Vec<&str> = (0..ARTISTS)
                .filter(|n| self.closed.contains(&(*n, period.clone())))
                .map(|n| self.artists[n].account.as_str())
                .collect();
            let wrong: Vec<_> = differences
                .iter()
                .filter(|d| closed_by.contains(&d.account_id.as_str()))
                .filter(|d| !d.what.contains("not reported to Stripe yet"))
                .map(|d| format!("{} {}: {}", d.account_id, d.period, d.what))
                .collect();
            assert!(wrong.is_empty(), "{} statements and usage differ: {wrong:?}", self.at());
        }
    }
}

/// A random instant in `[from, to]` (whole seconds).
fn between(rng: &mut StdRng, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
    let span = (to - from).num_seconds().max(0);
    from + Duration::seconds(rng.random_range(0..=span))
}

fn seed() -> u64 {
    match std::env::var("DYNAMOI_SIM_SEED").as_deref() {
        Ok("random") => rand::random(),
        Ok(text) => text.parse().expect("DYNAMOI_SIM_SEED is a number or `random`"),
        Err(_) => CI_SEED,
    }
}

fn steps() -> usize {
    std::env::var("DYNAMOI_SIM_STEPS")
        .ok()
        .map(|s| s.parse().expect("DYNAMOI_SIM_STEPS is a number"))
        .unwrap_or(CI_STEPS)
}

both_backends! {
    async fn a_seeded_simulation_keeps_every_invariant(db: TestDb) {
        let seed = seed();
        let steps = steps();
        eprintln!("simulation on {}: seed {seed}, {steps} steps (DYNAMOI_SIM_SEED={seed} replays it)", db.backend_name());
        let app = TestApp::spawn_on(db, &[]).await;
        let mut sim = Sim {
            app: Some(app),
            rng: StdRng::seed_from_u64(seed),
            seed,
            step: 0,
            artists: Vec::new(),
            days: BTreeMap::new(),
            campaign_artist: BTreeMap::new(),
            drafts: Vec::new(),
            fans: Vec::new(),
            closed: BTreeSet::new(),
            position: None,
            history: BTreeMap::new(),
            touched: BTreeSet::new(),
        };
        sim.set_up().await;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        // Where the time goes, per kind of step and for the checks (printed at the end).
        let mut spent: BTreeMap<&str, std::time::Duration> = BTreeMap::new();
        for step in 0..steps {
            sim.step = step;
            let started = std::time::Instant::now();
            // Time moves on: minutes mostly, now and then days (months end, keys expire).
            let minutes = if sim.rng.random_bool(0.03) {
                sim.rng.random_range(1..5) * 24 * 60
            } else {
                sim.rng.random_range(0..90)
            };
            sim.app().clock.advance(Duration::minutes(minutes));
            let roll = sim.rng.random_range(0..100);
            let (name, touched) = match roll {
                0..=39 => {
                    sim.ingest_one().await;
                    ("ingest", None)
                }
                40..=51 => {
                    sim.ingest_two_at_once().await;
                    ("two ingests at once", None)
                }
                52..=61 => {
                    let n = sim.rng.random_range(0..ARTISTS);
                    sim.draft(n, None).await;
                    ("draft", Some(n))
                }
                62..=69 => {
                    // A client retries a key it sent less than a day ago (keys live 24 hours).
                    let now = sim.app().now();
                    let recent: Vec<usize> = (0..sim.drafts.len())
                        .filter(|&i| now - sim.drafts[i].sent_at < Duration::hours(23))
                        .collect();
                    if recent.is_empty() {
                        ("retry (none recent)", None)
                    } else {
                        let i = recent[sim.rng.random_range(0..recent.len())];
                        let n = sim.drafts[i].artist;
                        sim.draft(n, Some(i)).await;
                        ("idempotent retry", Some(n))
                    }
                }
                70..=77 => {
                    sim.budget_changes_at_once().await;
                    ("budget changes at once", None)
                }
                78..=85 => {
                    sim.close_a_period().await;
                    ("billing close", None)
                }
                86..=89 => {
                    sim.erase_a_fan().await;
                    ("erasure", None)
                }
                90..=95 => {
                    sim.rebuild().await;
                    ("rebuild", None)
                }
                _ => {
                    sim.restart().await;
                    ("restart", None)
                }
            };
            *counts.entry(name).or_default() += 1;
            *spent.entry(name).or_default() += started.elapsed();
            let started = std::time::Instant::now();
            let mut touched_now = std::mem::take(&mut sim.touched);
            touched_now.extend(touched);
            let everything = matches!(name, "rebuild" | "restart") || step % 25 == 24;
            sim.check((!everything).then_some(&touched_now)).await;
            *spent.entry("(check)").or_default() += started.elapsed();
            if step % 25 == 24 {
                let started = std::time::Instant::now();
                sim.check_deeply().await;
                *spent.entry("(deep check)").or_default() += started.elapsed();
            }
        }
        sim.check_deeply().await;
        sim.check_statements().await;
        eprintln!(
            "simulation: {steps} steps {counts:?}; {} campaigns, {} campaign-days, {} closed periods, {} erased",
            sim.campaign_artist.len(),
            sim.days.len(),
            sim.closed.len(),
            sim.fans.len()
        );
        eprintln!("simulation: time per kind {spent:?}");
        sim.app.take().expect("running").stop().await;
    }
}
