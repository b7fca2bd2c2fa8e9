//! `dashboards`: campaigns (`campaigns`), each campaign's metrics per day (`campaign_daily`:
//! the latest reading, a restatement replaces the day), and the anonymous platform-wide
//! aggregate (`platform_daily`: per platform, day and currency; restatements applied as
//! differences) that no erasure removes (P1, P10, P26); and each artist's sums per platform,
//! day and currency (`artist_daily`, moved by differences too), which the dashboard reads.
//!
//! A batch is folded in memory first and then written with one statement per table (two for
//! `campaigns` on SQLite), whatever its size: the rows leave exactly as applying the events one
//! at a time would leave them.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use domain::campaign::{Budget, Campaign, CampaignEvent};
use domain::spend::{Metrics, SpendEvent, SpendLedger};
use domain::Aggregate;
use eventlog::{Dialect, StoredEvent};
use serde::Serialize;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

/// The projection that fills the dashboard tables.
pub struct Dashboards;

fn text<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    Ok(match v {
        serde_json::Value::String(s) => s,
        other => other["status"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| other.to_string()),
    })
}

fn budget(budget: &Budget) -> (&'static str, i64) {
    match *budget {
        Budget::Daily { amount_micros } => ("daily", amount_micros),
        Budget::Lifetime { amount_micros } => ("lifetime", amount_micros),
    }
}

/// What a campaign event other than its draft does to the campaign's row.
enum Change {
    Budget(&'static str, i64),
    Schedule(String, Option<String>),
    Stage(String),
    PlatformStatus(String),
    Link(String, String, String),
}

/// A `campaigns` row as a draft inserts it, with the batch's later changes applied.
#[derive(Serialize)]
struct CampaignRow {
    artist_id: String,
    platform: String,
    objective: String,
    stage: String,
    currency: String,
    start_date: String,
    end_date: Option<String>,
    budget_kind: &'static str,
    budget_micros: i64,
    platform_status: Option<String>,
    connection_id: Option<String>,
    platform_account_id: Option<String>,
    platform_campaign_id: Option<String>,
}

impl CampaignRow {
    fn apply(&mut self, change: &Change) {
        match change {
            Change::Budget(kind, micros) => (self.budget_kind, self.budget_micros) = (*kind, *micros),
            Change::Schedule(start, end) => (self.start_date, self.end_date) = (start.clone(), end.clone()),
            Change::Stage(stage) => self.stage = stage.clone(),
            Change::PlatformStatus(status) => self.platform_status = Some(status.clone()),
            Change::Link(connection, account, platform_campaign) => {
                self.connection_id = Some(connection.clone());
                self.platform_account_id = Some(account.clone());
                self.platform_campaign_id = Some(platform_campaign.clone());
            }
        }
    }
}

/// The last value of each group of columns the batch changes; `None` leaves a column as it is.
/// Every value a change sets is non-null except `end_date`, which changes with `start_date`.
#[derive(Default, Serialize)]
struct CampaignChanges {
    budget_kind: Option<&'static str>,
    budget_micros: Option<i64>,
    start_date: Option<String>,
    end_date: Option<String>,
    stage: Option<String>,
    platform_status: Option<String>,
    connection_id: Option<String>,
    platform_account_id: Option<String>,
    platform_campaign_id: Option<String>,
}

impl CampaignChanges {
    fn apply(&mut self, change: &Change) {
        match change {
            Change::Budget(kind, micros) => (self.budget_kind, self.budget_micros) = (Some(*kind), Some(*micros)),
            Change::Schedule(start, end) => (self.start_date, self.end_date) = (Some(start.clone()), end.clone()),
            Change::Stage(stage) => self.stage = Some(stage.clone()),
            Change::PlatformStatus(status) => self.platform_status = Some(status.clone()),
            Change::Link(connection, account, platform_campaign) => {
                self.connection_id = Some(connection.clone());
                self.platform_account_id = Some(account.clone());
                self.platform_campaign_id = Some(platform_campaign.clone());
            }
        }
    }
}

/// One campaign's events in a batch. Applied one by one, a draft inserts only when the campaign
/// has no row (so only the batch's first draft can) and a change updates only an existing row:
/// a row there before the batch takes every change; a row the batch inserts is its first draft
/// with the changes after it.
#[derive(Default, Serialize)]
struct CampaignFold {
    #[serde(skip_serializing_if = "Option::is_none")]
    insert: Option<CampaignRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update: Option<CampaignChanges>,
}

/// One `(campaign, day)` of `campaign_daily` in a batch.
struct DayFold<'e> {
    /// The platform of the day's first reading in the batch (the row's, if the batch inserts it).
    platform: &'e str,
    /// The artist of the campaign as drafted in the batch before the day's first reading there;
    /// used when the campaign had no row before the batch.
    drafted_artist: Option<String>,
    latest: Metrics,
    restatements: i64,
}

/// The five sums of `platform_daily`: spend, impressions, clicks, views, conversions.
type PlatformSums = [i64; 5];

fn figures(m: &Metrics) -> [i64; 11] {
    [
        m.spend_micros,
        m.impressions,
        m.reach,
        m.clicks,
        m.views,
        m.saves,
        m.reactions,
        m.comments,
        m.shares,
        m.follows,
        m.conversions,
    ]
}

/// The sums `artist_daily` keeps, in the order of [`rollup`] (as the dashboard shows them).
const ROLLUP_SUMS: [&str; 9] = [
    "spend_micros",
    "impressions",
    "reach",
    "clicks",
    "views",
    "saves",
    "follows",
    "conversions",
    "engagement",
];

/// `artist_daily`'s sum columns in the order of [`ROLLUP_SUMS`], each as its two halves.
fn rollup_columns() -> String {
    ROLLUP_SUMS.map(|c| format!("{c}_m, {c}_r")).join(", ")
}

/// A reading's figures in the order of [`ROLLUP_SUMS`] (engagement: reactions, comments, shares).
fn rollup(m: &Metrics) -> [i64; 9] {
    [
        m.spend_micros,
        m.impressions,
        m.reach,
        m.clicks,
        m.views,
        m.saves,
        m.follows,
        m.conversions,
        m.reactions + m.comments + m.shares,
    ]
}

/// A batch folded: what each table receives.
#[derive(Default)]
struct Fold<'e> {
    campaigns: BTreeMap<&'e str, CampaignFold>,
    days: BTreeMap<(&'e str, &'e str), DayFold<'e>>,
    platform: BTreeMap<(&'e str, &'e str, String), PlatformSums>,
}

impl<'e> Fold<'e> {
    fn campaign_event(&mut self, event: &'e StoredEvent) -> Result<(), ProjectionError> {
        let change = match event
            .decode::<CampaignEvent>()
            .map_err(|e| ProjectionError::undecodable(event, e))?
        {
            CampaignEvent::CampaignDrafted(d) => {
                let fold = self.campaigns.entry(&event.aggregate_id).or_default();
                if fold.insert.is_none() {
                    let (budget_kind, budget_micros) = budget(&d.budget);
                    fold.insert = Some(CampaignRow {
                        artist_id: d.artist_id,
                        platform: text(&d.platform)?,
                        objective: text(&d.objective)?,
                        stage: "draft".into(),
                        currency: d.currency,
                        start_date: d.schedule.start.to_string(),
                        end_date: d.schedule.end.map(|e| e.to_string()),
                        budget_kind,
                        budget_micros,
                        platform_status: None,
                        connection_id: None,
                        platform_account_id: None,
                        platform_campaign_id: None,
                    });
                }
                return Ok(());
            }
            CampaignEvent::BudgetChanged(b) => {
                let (kind, micros) = budget(&b);
                Change::Budget(kind, micros)
            }
            CampaignEvent::ScheduleChanged(s) => Change::Schedule(s.start.to_string(), s.end.map(|e| e.to_string())),
            CampaignEvent::CampaignLaunched | CampaignEvent::CampaignResumed => Change::Stage("live".into()),
            CampaignEvent::CampaignPaused => Change::Stage("paused".into()),
            CampaignEvent::CampaignEnded => Change::Stage("ended".into()),
            CampaignEvent::CampaignArchived => Change::Stage("archived".into()),
            CampaignEvent::CampaignSubscriptionPaused { .. } => Change::Stage("subscription_paused".into()),
            CampaignEvent::CampaignSubscriptionResumed { stage } => Change::Stage(text(&stage)?),
            CampaignEvent::PlatformStatusReported(status) => Change::PlatformStatus(text(&status)?),
            CampaignEvent::AiCreativeAdded { .. } => return Ok(()),
            CampaignEvent::PlatformCampaignLinked(link) => {
                Change::Link(link.connection_id, link.account_id, link.platform_campaign_id)
            }
        };
        let fold = self.campaigns.entry(&event.aggregate_id).or_default();
        fold.update.get_or_insert_with(Default::default).apply(&change);
        if let Some(row) = &mut fold.insert {
            row.apply(&change);
        }
        Ok(())
    }

    fn spend_event(&mut self, event: &'e StoredEvent) -> Result<(), ProjectionError> {
        // Ledger ids are `<campaign>.<platform>.<YYYY-MM-DD>`; campaign ids hold no dots.
        let mut parts = event.aggregate_id.rsplitn(3, '.');
        let (Some(day), Some(platform), Some(campaign)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ProjectionError::Event {
                position: event.position,
                event_type: event.event_type.clone(),
                reason: "the ledger id is not <campaign>.<platform>.<day>".into(),
            });
        };
        let (old, new) = match event
            .decode::<SpendEvent>()
            .map_err(|e| ProjectionError::undecodable(event, e))?
        {
            SpendEvent::SpendRecorded(r) => (None, r.metrics),
            SpendEvent::SpendRestated { old, new } => (Some(old), new.metrics),
            // A later view with the same figures: nothing shown changes.
            SpendEvent::SpendConfirmed { .. } => return Ok(()),
        };
        // The anonymous aggregate moves by the difference, under the new reading's currency.
        let sums = self.platform.entry((platform, day, new.currency.clone())).or_default();
        let o = old.as_ref();
        let delta = [
            new.spend_micros - o.map_or(0, |o| o.spend_micros),
            new.impressions - o.map_or(0, |o| o.impressions),
            new.clicks - o.map_or(0, |o| o.clicks),
            new.views - o.map_or(0, |o| o.views),
            new.conversions - o.map_or(0, |o| o.conversions),
        ];
        for (sum, d) in sums.iter_mut().zip(delta) {
            *sum += d;
        }
        // The day takes the latest reading; the row's artist and platform are set when it is inserted.
        let restated = i64::from(old.is_some());
        match self.days.entry((campaign, day)) {
            Entry::Occupied(mut entry) => {
                let entry = entry.get_mut();
                entry.latest = new;
                entry.restatements += restated;
            }
            Entry::Vacant(entry) => {
                let drafted_artist = self
                    .campaigns
                    .get(campaign)
                    .and_then(|c| c.insert.as_ref())
                    .map(|row| row.artist_id.clone());
                entry.insert(DayFold {
                    platform,
                    drafted_artist,
                    latest: new,
                    restatements: restated,
                });
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Projection for Dashboards {
    fn name(&self) -> &'static str {
        "dashboards"
    }

    fn version(&self) -> i32 {
        // 3: `artist_daily` added.
        3
    }

    fn tables(&self) -> &'static [&'static str] {
        &["campaigns", "campaign_daily", "platform_daily", "artist_daily"]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Campaign::TYPE, SpendLedger::TYPE])
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/dashboards.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/dashboards.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let mut fold = Fold::default();
        for event in events.iter().filter(|e| self.reads(e)) {
            if event.aggregate_type == Campaign::TYPE {
                fold.campaign_event(event)?;
            } else if event.aggregate_type == SpendLedger::TYPE {
                fold.spend_event(event)?;
            }
        }
        let campaigns = target.table("campaigns");
        // Before `campaigns`: a day's artist is looked up as the campaigns were before the batch.
        let daily = target.table("campaign_daily");
        // Kept by differences only while served (it is read only through the views); a
        // generation rebuilt beside the served one gets it summed once, on taking over.
        if target.served {
            // Before `campaign_daily`: what each day held before the batch leaves its artist's row.
            write_rollup(tx, &target.table("artist_daily"), &daily, &campaigns, &fold.days).await?;
        }
        write_days(tx, &daily, &campaigns, &fold.days).await?;
        write_platform(tx, &target.table("platform_daily"), &fold.platform).await?;
        write_campaigns(tx, &campaigns, &fold.campaigns).await?;
        Ok(())
    }

    /// `artist_daily` summed from `campaign_daily` in one statement (its rows as the batches
    /// left them; a row whose days all left, which the batches keep at zero, is not made).
    async fn on_take_over(&self, tx: &mut ReadTx<'_>, target: &Target) -> Result<(), sqlx::Error> {
        let table = target.table("artist_daily");
        let sums: Vec<String> = daily_expressions().iter().map(|c| split_sum(c)).collect();
        let delete = format!("DELETE FROM {table}");
        let insert = format!(
            "INSERT INTO {table} (artist_id, platform, day, currency, days, {}) \
             SELECT artist_id, platform, day, currency, COUNT(*), {} FROM {} \
             GROUP BY artist_id, platform, day, currency",
            rollup_columns(),
            sums.join(", "),
            target.table("campaign_daily")
        );
        eventlog::dispatch!(tx, ReadTx, |conn| {
            sqlx::query(&delete).execute(&mut **conn).await?;
            sqlx::query(&insert).execute(&mut **conn).await?;
        });
        Ok(())
    }
}

/// The text columns of the batch's days, as PostgreSQL arrays (`$1` … `$5`): campaign, day, the
/// artist drafted in the batch, platform, currency.
struct DayKeys<'a> {
    ids: Vec<&'a str>,
    dates: Vec<&'a str>,
    artists: Vec<Option<&'a str>>,
    platforms: Vec<&'a str>,
    currencies: Vec<&'a str>,
}

impl<'a> DayKeys<'a> {
    fn of(days: &'a BTreeMap<(&str, &str), DayFold<'_>>) -> DayKeys<'a> {
        let mut keys = DayKeys {
            ids: Vec::new(),
            dates: Vec::new(),
            artists: Vec::new(),
            platforms: Vec::new(),
            currencies: Vec::new(),
        };
        for ((campaign, day), d) in days {
            keys.ids.push(campaign);
            keys.dates.push(day);
            keys.artists.push(d.drafted_artist.as_deref());
            keys.platforms.push(d.platform);
            keys.currencies.push(d.latest.currency.as_str());
        }
        keys
    }

    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.ids)
            .bind(&self.dates)
            .bind(&self.artists)
            .bind(&self.platforms)
            .bind(&self.currencies)
    }
}

/// The same text columns of one day, as the first five values of a SQLite JSON row.
fn day_keys_json(campaign: &str, day: &str, d: &DayFold<'_>) -> Vec<serde_json::Value> {
    vec![
        serde_json::json!(campaign),
        serde_json::json!(day),
        serde_json::json!(d.drafted_artist),
        serde_json::json!(d.platform),
        serde_json::json!(d.latest.currency),
    ]
}

const DAILY_COLUMNS: &str = "campaign_id, day, artist_id, platform, currency, spend_micros, impressions, reach, \
                             clicks, views, saves, reactions, comments, shares, follows, conversions, restatements";

/// Upserts the batch's days of `campaign_daily` in one statement. A new row's artist is the
/// campaign's (its row before the batch, else its draft earlier in the batch, else none).
async fn write_days(
    tx: &mut ReadTx<'_>,
    daily: &str,
    campaigns: &str,
    days: &BTreeMap<(&str, &str), DayFold<'_>>,
) -> Result<(), ProjectionError> {
    if days.is_empty() {
        return Ok(());
    }
    let upsert = format!(
        "ON CONFLICT (campaign_id, day) DO UPDATE SET currency = excluded.currency, \
         spend_micros = excluded.spend_micros, impressions = excluded.impressions, reach = excluded.reach, \
         clicks = excluded.clicks, views = excluded.views, saves = excluded.saves, \
         reactions = excluded.reactions, comments = excluded.comments, shares = excluded.shares, \
         follows = excluded.follows, conversions = excluded.conversions, \
         restatements = {daily}.restatements + excluded.restatements"
    );
    match tx {
        ReadTx::Postgres(conn) => {
            let mut restatements = Vec::new();
            let mut columns: [Vec<i64>; 11] = Default::default();
            for d in days.values() {
                for (column, value) in columns.iter_mut().zip(figures(&d.latest)) {
                    column.push(value);
                }
                restatements.push(d.restatements);
            }
            let sql = format!(
                "INSERT INTO {daily} ({DAILY_COLUMNS}) \
                 SELECT s.campaign_id, s.day, \
                 COALESCE((SELECT c.artist_id FROM {campaigns} c WHERE c.campaign_id = s.campaign_id), s.artist_id, ''), \
                 s.platform, s.currency, s.spend_micros, s.impressions, s.reach, s.clicks, s.views, s.saves, \
                 s.reactions, s.comments, s.shares, s.follows, s.conversions, s.restatements \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], \
                 $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], \
                 $15::bigint[], $16::bigint[], $17::bigint[]) AS s({DAILY_COLUMNS}) {upsert}"
            );
            let keys = DayKeys::of(days);
            let mut query = keys.bind(sqlx::query(&sql));
            for column in &columns {
                query = query.bind(column);
            }
            query.bind(&restatements).execute(&mut **conn).await?;
        }
        ReadTx::Sqlite(conn) => {
            let rows: Vec<_> = days
                .iter()
                .map(|((campaign, day), d)| {
                    let mut row = day_keys_json(campaign, day, d);
                    row.extend(figures(&d.latest).map(serde_json::Value::from));
                    row.push(d.restatements.into());
                    serde_json::Value::Array(row)
                })
                .collect();
            let values: Vec<String> = (0..17)
                .map(|i| match i {
                    2 => format!(
                        "COALESCE((SELECT c.artist_id FROM {campaigns} c WHERE c.campaign_id = value ->> 0), \
                         value ->> 2, '')"
                    ),
                    _ => format!("value ->> {i}"),
                })
                .collect();
            // `WHERE true` resolves SQLite's parsing ambiguity between a join and the upsert.
            sqlx::query(&format!(
                "INSERT INTO {daily} ({DAILY_COLUMNS}) SELECT {} FROM json_each($1) WHERE true {upsert}",
                values.join(", ")
            ))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut **conn)
            .await?;
        }
    }
    Ok(())
}

/// Adds the batch's differences to `platform_daily` in one statement.
async fn write_platform(
    tx: &mut ReadTx<'_>,
    table: &str,
    sums: &BTreeMap<(&str, &str, String), PlatformSums>,
) -> Result<(), ProjectionError> {
    if sums.is_empty() {
        return Ok(());
    }
    let columns = "platform, day, currency, spend_micros, impressions, clicks, views, conversions";
    let upsert = format!(
        "ON CONFLICT (platform, day, currency) DO UPDATE SET \
         spend_micros = {table}.spend_micros + excluded.spend_micros, \
         impressions = {table}.impressions + excluded.impressions, \
         clicks = {table}.clicks + excluded.clicks, views = {table}.views + excluded.views, \
         conversions = {table}.conversions + excluded.conversions"
    );
    match tx {
        ReadTx::Postgres(conn) => {
            let (mut platforms, mut days, mut currencies) = (Vec::new(), Vec::new(), Vec::new());
            let mut figures: [Vec<i64>; 5] = Default::default();
            for ((platform, day, currency), s) in sums {
                platforms.push(*platform);
                days.push(*day);
                currencies.push(currency.as_str());
                for (column, value) in figures.iter_mut().zip(s) {
                    column.push(*value);
                }
            }
            let [spend, impressions, clicks, views, conversions] = &figures;
            sqlx::query(&format!(
                "INSERT INTO {table} ({columns}) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], \
                 $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[]) {upsert}"
            ))
            .bind(&platforms)
            .bind(&days)
            .bind(&currencies)
            .bind(spend)
            .bind(impressions)
            .bind(clicks)
            .bind(views)
            .bind(conversions)
            .execute(&mut **conn)
            .await?;
        }
        ReadTx::Sqlite(conn) => {
            let rows: Vec<_> = sums
                .iter()
                .map(|((platform, day, currency), s)| {
                    serde_json::json!([platform, day, currency, s[0], s[1], s[2], s[3], s[4]])
                })
                .collect();
            sqlx::query(&format!(
                "INSERT INTO {table} ({columns}) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, \
                 value ->> 4, value ->> 5, value ->> 6, value ->> 7 FROM json_each($1) WHERE true {upsert}"
            ))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut **conn)
            .await?;
        }
    }
    Ok(())
}

/// Moves `artist_daily` by the batch's days in one statement: each day's row in
/// `campaign_daily` as it was before the batch leaves its artist's row (the count `days` and
/// every sum), the day's latest reading enters it, under the artist and platform the day's row
/// has or is about to get (as [`write_days`] sets them). Every sum is kept as two columns, its
/// millions (`_m`) and the rest (`_r`), so that no number of campaigns can overflow a column
/// and what leaves takes away exactly what it once added (see [`split_sum`]).
async fn write_rollup(
    tx: &mut ReadTx<'_>,
    table: &str,
    daily: &str,
    campaigns: &str,
    days: &BTreeMap<(&str, &str), DayFold<'_>>,
) -> Result<(), ProjectionError> {
    if days.is_empty() {
        return Ok(());
    }
    let n = ROLLUP_SUMS.len();
    let figures: Vec<String> = (1..=n).map(|i| format!("d{i}")).collect();
    let split: Vec<String> = (1..=n)
        .map(|i| format!("SUM(d{i} / 1000000), SUM(d{i} % 1000000)"))
        .collect();
    // What the old row held, as it leaves (its figures in the order of ROLLUP_SUMS).
    let old: Vec<String> = ROLLUP_SUMS
        .iter()
        .map(|c| match *c {
            "engagement" => "-(o.reactions + o.comments + o.shares)".to_string(),
            c => format!("-o.{c}"),
        })
        .collect();
    let sets: Vec<String> = std::iter::once("days".to_string())
        .chain(ROLLUP_SUMS.iter().flat_map(|c| [format!("{c}_m"), format!("{c}_r")]))
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    let statement = |source: &str| {
        format!(
            "WITH s AS (SELECT * FROM {source}), moves AS (\
               SELECT COALESCE(o.artist_id, (SELECT c.artist_id FROM {campaigns} c WHERE c.campaign_id = s.campaign_id), \
                               s.artist_id, '') AS artist_id, \
                      COALESCE(o.platform, s.platform) AS platform, s.day AS day, s.currency AS currency, 1 AS n, {f} \
               FROM s LEFT JOIN {daily} o ON o.campaign_id = s.campaign_id AND o.day = s.day \
               UNION ALL \
               SELECT o.artist_id, o.platform, o.day, o.currency, -1, {old} \
               FROM s JOIN {daily} o ON o.campaign_id = s.campaign_id AND o.day = s.day) \
             INSERT INTO {table} (artist_id, platform, day, currency, days, {columns}) \
             SELECT artist_id, platform, day, currency, SUM(n), {split} FROM moves WHERE true \
             GROUP BY artist_id, platform, day, currency \
             ON CONFLICT (artist_id, platform, day, currency) DO UPDATE SET {sets}",
            f = figures.iter().map(|d| format!("s.{d}")).collect::<Vec<_>>().join(", "),
            old = old.join(", "),
            columns = rollup_columns(),
            split = split.join(", "),
            sets = sets.join(", "),
        )
    };
    match tx {
        ReadTx::Postgres(conn) => {
            let mut sums: [Vec<i64>; 9] = Default::default();
            for d in days.values() {
                for (column, value) in sums.iter_mut().zip(rollup(&d.latest)) {
                    column.push(value);
                }
            }
            let arrays: Vec<String> = (6..6 + n).map(|i| format!("${i}::bigint[]")).collect();
            let source = format!(
                "UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], {}) \
                 AS u(campaign_id, day, artist_id, platform, currency, {})",
                arrays.join(", "),
                figures.join(", ")
            );
            let sql = statement(&source);
            let keys = DayKeys::of(days);
            let mut query = keys.bind(sqlx::query(&sql));
            for column in &sums {
                query = query.bind(column);
            }
            query.execute(&mut **conn).await?;
        }
        ReadTx::Sqlite(conn) => {
            let rows: Vec<_> = days
                .iter()
                .map(|((campaign, day), d)| {
                    let mut row = day_keys_json(campaign, day, d);
                    row.extend(rollup(&d.latest).map(serde_json::Value::from));
                    serde_json::Value::Array(row)
                })
                .collect();
            let fields: Vec<String> = figures
                .iter()
                .enumerate()
                .map(|(i, name)| format!("CAST(value ->> {} AS INTEGER) AS {name}", i + 5))
                .collect();
            let source = format!(
                "(SELECT value ->> 0 AS campaign_id, value ->> 1 AS day, value ->> 2 AS artist_id, \
                 value ->> 3 AS platform, value ->> 4 AS currency, {} FROM json_each($1)) AS u",
                fields.join(", ")
            );
            sqlx::query(&statement(&source))
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&mut **conn)
                .await?;
        }
    }
    Ok(())
}

const CAMPAIGN_COLUMNS: [&str; 13] = [
    "artist_id",
    "platform",
    "objective",
    "stage",
    "currency",
    "start_date",
    "end_date",
    "budget_kind",
    "budget_micros",
    "platform_status",
    "connection_id",
    "platform_account_id",
    "platform_campaign_id",
];

/// Writes the batch's campaigns: changes to the rows there before the batch, and the rows of
/// the campaigns the batch drafts. One statement on PostgreSQL, whose statements see the table
/// as it was before them; on SQLite the changes first, then the drafts.
async fn write_campaigns(
    tx: &mut ReadTx<'_>,
    table: &str,
    campaigns: &BTreeMap<&str, CampaignFold>,
) -> Result<(), ProjectionError> {
    if campaigns.is_empty() {
        return Ok(());
    }
    #[derive(Serialize)]
    struct Entry<'a> {
        campaign_id: &'a str,
        #[serde(flatten)]
        fold: &'a CampaignFold,
    }
    let rows: Vec<Entry> = campaigns
        .iter()
        .map(|(campaign_id, fold)| Entry { campaign_id, fold })
        .collect();
    let value = |part: &str, column: &str| {
        let v = format!("r.v -> '{part}' ->> '{column}'");
        if column == "budget_micros" {
            format!("CAST({v} AS BIGINT)")
        } else {
            v
        }
    };
    let source = match tx.dialect() {
        Dialect::Postgres => "jsonb_array_elements($1) AS r(v)",
        Dialect::Sqlite => "(SELECT value AS v FROM json_each($1)) AS r",
    };
    let insert = format!(
        "INSERT INTO {table} (campaign_id, {}) SELECT r.v ->> 'campaign_id', {} FROM {source} \
         WHERE r.v -> 'insert' IS NOT NULL ON CONFLICT (campaign_id) DO NOTHING",
        CAMPAIGN_COLUMNS.join(", "),
        CAMPAIGN_COLUMNS.map(|c| value("insert", c)).join(", ")
    );
    let sets: Vec<String> = CAMPAIGN_COLUMNS
        .iter()
        .filter(|c| !matches!(**c, "artist_id" | "platform" | "objective" | "currency"))
        .map(|c| match *c {
            // A schedule change sets the end with the start, an open end included.
            "end_date" => format!(
                "end_date = CASE WHEN {} IS NULL THEN {table}.end_date ELSE {} END",
                value("update", "start_date"),
                value("update", "end_date")
            ),
            c => format!("{c} = COALESCE({}, {table}.{c})", value("update", c)),
        })
        .collect();
    let update = format!(
        "UPDATE {table} SET {} FROM {source} WHERE {table}.campaign_id = r.v ->> 'campaign_id' \
         AND r.v -> 'update' IS NOT NULL",
        sets.join(", ")
    );
    match tx {
        ReadTx::Postgres(conn) => {
            sqlx::query(&format!("WITH inserted AS ({insert}) {update}"))
                .bind(sqlx::types::Json(&rows))
                .execute(&mut **conn)
                .await?;
        }
        ReadTx::Sqlite(conn) => {
            let json = serde_json::to_string(&rows)?;
            if campaigns.values().any(|c| c.update.is_some()) {
                sqlx::query(&update).bind(&json).execute(&mut **conn).await?;
            }
            if campaigns.values().any(|c| c.insert.is_some()) {
                sqlx::query(&insert).bind(&json).execute(&mut **conn).await?;
            }
        }
    }
    Ok(())
}

// ----- Queries -----

/// The ids of linked campaigns that may still have spend to read (live, paused or ended).
pub async fn linked_campaign_ids(db: &eventlog::Db) -> Result<Vec<String>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT campaign_id FROM campaigns WHERE platform_campaign_id IS NOT NULL \
               AND stage IN ('live', 'paused', 'subscription_paused', 'ended') ORDER BY campaign_id";
    let ids: Vec<(String,)> = eventlog::dispatch!(db, Db, |pool| { sqlx::query_as(sql).fetch_all(pool).await? });
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// A campaign as the dashboards list it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CampaignListing {
    pub campaign_id: String,
    pub platform: String,
    pub objective: String,
    pub stage: String,
    pub currency: String,
    pub start: String,
    pub end: Option<String>,
    pub budget_kind: String,
    pub budget_micros: i64,
    pub platform_status: Option<String>,
    pub platform_account_id: Option<String>,
    pub platform_campaign_id: Option<String>,
}

/// The campaigns of `artist`, by id.
pub async fn campaigns_of(db: &eventlog::Db, artist: &str) -> Result<Vec<CampaignListing>, ProjectionError> {
    use eventlog::Db;
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        String,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let sql = "SELECT campaign_id, platform, objective, stage, currency, start_date, end_date, budget_kind, \
               budget_micros, platform_status, platform_account_id, platform_campaign_id FROM campaigns \
               WHERE artist_id = $1 ORDER BY campaign_id";
    let rows: Vec<Row> = eventlog::dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(artist).fetch_all(pool).await?
    });
    Ok(rows
        .into_iter()
        .map(|r| CampaignListing {
            campaign_id: r.0,
            platform: r.1,
            objective: r.2,
            stage: r.3,
            currency: r.4,
            start: r.5,
            end: r.6,
            budget_kind: r.7,
            budget_micros: r.8,
            platform_status: r.9,
            platform_account_id: r.10,
            platform_campaign_id: r.11,
        })
        .collect())
}

/// What a dashboard asks for: one artist's days, optionally bounded and filtered.
#[derive(Clone, Debug, Default)]
pub struct DayFilter<'a> {
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    pub platform: Option<&'a str>,
    pub campaign: Option<&'a str>,
}

/// The sums of one day and currency (money in micros).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaySums {
    pub day: chrono::NaiveDate,
    pub currency: String,
    pub spend_micros: i64,
    pub impressions: i64,
    pub reach: i64,
    pub clicks: i64,
    pub views: i64,
    pub saves: i64,
    pub follows: i64,
    pub conversions: i64,
    /// Reactions, comments and shares.
    pub engagement: i64,
}

impl DaySums {
    /// A day's sums from its `day` text, `currency` and the nine figures in the order of
    /// [`ROLLUP_SUMS`].
    fn new(day: &str, currency: String, sums: [i64; 9]) -> Result<DaySums, sqlx::Error> {
        let [spend_micros, impressions, reach, clicks, views, saves, follows, conversions, engagement] = sums;
        Ok(DaySums {
            day: day
                .parse()
                .map_err(|e: chrono::ParseError| sqlx::Error::Decode(Box::new(e)))?,
            currency,
            spend_micros,
            impressions,
            reach,
            clicks,
            views,
            saves,
            follows,
            conversions,
            engagement,
        })
    }
}

/// The `campaign_daily` expression of each of [`ROLLUP_SUMS`].
fn daily_expressions() -> [&'static str; 9] {
    ROLLUP_SUMS.map(|sum| match sum {
        "engagement" => "reactions + comments + shares",
        column => column,
    })
}

/// The SQL of a sum of `expr` that cannot overflow on either backend (SQLite's `SUM` raises
/// "integer overflow"; PostgreSQL's cast of its numeric sum to BIGINT fails): two sums, of the
/// value's millions and of its remainder, each far below `i64::MAX` for any number of bounded
/// rows; [`join_split_sum`] adds them in `i128` and saturates.
pub(crate) fn split_sum(expr: &str) -> String {
    format!("CAST(SUM(({expr}) / 1000000) AS BIGINT), CAST(SUM(({expr}) % 1000000) AS BIGINT)")
}

/// The value of a [`split_sum`]: millions × 10^6 + rest, saturated into `i64`.
pub(crate) fn join_split_sum(millions: i64, rest: i64) -> i64 {
    domain::money::clamp_i128(i128::from(millions) * 1_000_000 + i128::from(rest))
}

/// An artist's sums per day and currency over their campaigns, in day order.
///
/// Read from `artist_daily` (a handful of rows per day), or, for one campaign, from its
/// `campaign_daily` rows. While the active generation of `dashboards` is one from before
/// `artist_daily` existed (a new version is rebuilding beside it, and takes over once caught
/// up), the table is not there and the same answer is summed from `campaign_daily`.
pub async fn artist_days(
    log: &eventlog::EventLog,
    artist: &str,
    filter: &DayFilter<'_>,
) -> Result<Vec<DaySums>, ProjectionError> {
    let days = match filter.campaign {
        Some(campaign) => campaign_days(log, artist, campaign, None, filter).await,
        None => match read_rolled_up(log, artist, None, filter).await {
            Err(ProjectionError::Database(e)) if is_undefined_table(&e) => {
                return artist_days_summed(log.db(), artist, filter).await
            }
            answer => answer,
        },
    }?;
    Ok(days.unwrap_or_default())
}

/// [`artist_days`] as `person` may see them: `None` when `person` holds no role on `artist` in
/// `artist_access` (every role may view a dashboard). The access check and the read are one
/// statement (the days joined to the person's `artist_access` row), so a dashboard waits for
/// one round trip, not two.
pub async fn member_artist_days(
    log: &eventlog::EventLog,
    artist: &str,
    person: &str,
    filter: &DayFilter<'_>,
) -> Result<Option<Vec<DaySums>>, ProjectionError> {
    match filter.campaign {
        Some(campaign) => campaign_days(log, artist, campaign, Some(person), filter).await,
        None => match read_rolled_up(log, artist, Some(person), filter).await {
            Err(ProjectionError::Database(e)) if is_undefined_table(&e) => {
                match super::artist_access::role_of(log.db(), artist, person).await? {
                    Some(_) => Ok(Some(artist_days_summed(log.db(), artist, filter).await?)),
                    None => Ok(None),
                }
            }
            answer => answer,
        },
    }
}

/// The SELECT of a day reader: `columns` of `table` (aliased `d`) whose `artist_id` is `$1` and
/// where `conditions` hold, in `order`. For a member (`Some(placeholder)`: the parameter that
/// holds the person), the rows are joined to the person's `artist_access` row: no row at all
/// when the person holds no role on the artist, one row of NULLs when they do and no day
/// matches.
fn day_reader_sql(columns: &str, table: &str, conditions: &str, order: &str, member: Option<&str>) -> String {
    match member {
        None => format!("SELECT {columns} FROM {table} d WHERE d.artist_id = $1 AND {conditions} ORDER BY {order}"),
        Some(person) => format!(
            "SELECT {columns} FROM artist_access a LEFT JOIN {table} d \
             ON d.artist_id = a.artist_id AND {conditions} \
             WHERE a.artist_id = $1 AND a.person_id = {person} ORDER BY {order}"
        ),
    }
}

/// [`artist_days`] of one campaign of `artist`, for `person` when given (see
/// [`member_artist_days`]): its `campaign_daily` rows, one per day, as they are (nothing to sum:
/// the table's key is the campaign and the day).
async fn campaign_days(
    log: &eventlog::EventLog,
    artist: &str,
    campaign: &str,
    person: Option<&str>,
    filter: &DayFilter<'_>,
) -> Result<Option<Vec<DaySums>>, ProjectionError> {
    use eventlog::Reader;
    use sqlx::Row;
    // The sums' columns need no `d.`: `artist_access` has none of their names.
    let sql = day_reader_sql(
        &format!("d.day, d.currency, {}", daily_expressions().join(", ")),
        "campaign_daily",
        "d.campaign_id = $2 AND ($3 IS NULL OR d.day >= $3) AND ($4 IS NULL OR d.day <= $4) \
         AND ($5 IS NULL OR d.platform = $5)",
        "d.day",
        person.map(|_| "$6"),
    );
    let from = filter.from.map(|d| d.to_string());
    let to = filter.to.map(|d| d.to_string());
    eventlog::dispatch!(log.reader(), Reader, |reader| {
        let mut query = sqlx::query(&sql)
            .bind(artist)
            .bind(campaign)
            .bind(&from)
            .bind(&to)
            .bind(filter.platform);
        if let Some(person) = person {
            query = query.bind(person);
        }
        let rows = reader.fetch_all(query).await?;
        if person.is_some() && rows.is_empty() {
            return Ok(None);
        }
        let mut days = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(day) = r.try_get::<Option<&str>, _>(0)? else {
                continue; // the member's row of NULLs: no day matched
            };
            let mut sums = [0i64; 9];
            for (k, sum) in sums.iter_mut().enumerate() {
                *sum = r.try_get_unchecked(2 + k)?; // BIGINT NOT NULL, as in `read_rolled_up`
            }
            days.push(DaySums::new(day, r.try_get(1)?, sums)?);
        }
        Ok(Some(days))
    })
}

/// Whether `error` says a table or view does not exist (PostgreSQL 42P01, SQLite's message).
fn is_undefined_table(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().as_deref() == Some("42P01") || db.message().starts_with("no such table"),
        _ => false,
    }
}

/// [`artist_days`] from `artist_daily`: its rows of one day and currency (one per platform)
/// added up here; a row whose campaign-days all moved to another currency counts no day.
pub async fn artist_days_rolled_up(
    log: &eventlog::EventLog,
    artist: &str,
    filter: &DayFilter<'_>,
) -> Result<Vec<DaySums>, ProjectionError> {
    Ok(read_rolled_up(log, artist, None, filter).await?.unwrap_or_default())
}

/// [`artist_days_rolled_up`], for `person` when given (see [`member_artist_days`]).
async fn read_rolled_up(
    log: &eventlog::EventLog,
    artist: &str,
    person: Option<&str>,
    filter: &DayFilter<'_>,
) -> Result<Option<Vec<DaySums>>, ProjectionError> {
    use eventlog::Reader;
    use sqlx::Row;
    let sums: Vec<String> = ROLLUP_SUMS.iter().map(|c| format!("d.{c}_m, d.{c}_r")).collect();
    let sql = day_reader_sql(
        &format!("d.day, d.currency, {}", sums.join(", ")),
        "artist_daily",
        "($2 IS NULL OR d.day >= $2) AND ($3 IS NULL OR d.day <= $3) \
         AND ($4 IS NULL OR d.platform = $4) AND d.days > 0",
        "d.day, d.currency",
        person.map(|_| "$5"),
    );
    let from = filter.from.map(|d| d.to_string());
    let to = filter.to.map(|d| d.to_string());
    // (day, currency) → the sums, in i128 until the end (see `join_split_sum`).
    let mut days: Vec<(String, String, [i128; 9])> = Vec::new();
    let member = eventlog::dispatch!(log.reader(), Reader, |reader| {
        let mut query = sqlx::query(&sql)
            .bind(artist)
            .bind(&from)
            .bind(&to)
            .bind(filter.platform);
        if let Some(person) = person {
            query = query.bind(person);
        }
        let rows = reader.fetch_all(query).await.map_err(ProjectionError::Database)?;
        for r in &rows {
            let Some(day) = r.try_get::<Option<String>, _>(0)? else {
                continue; // the member's row of NULLs: no day matched
            };
            let currency: String = r.try_get(1)?;
            // The 18 sum columns are BIGINT NOT NULL by the table's definition: read without
            // `try_get`'s per-value type check, which was the largest share of the server's
            // time on a dashboard (perf, `bench http`). A wrong type still fails to decode.
            let mut row = [0i128; 9];
            for (k, sum) in row.iter_mut().enumerate() {
                let millions: i64 = r.try_get_unchecked(2 + 2 * k)?;
                let rest: i64 = r.try_get_unchecked(3 + 2 * k)?;
                *sum = i128::from(millions) * 1_000_000 + i128::from(rest);
            }
            match days.last_mut() {
                Some((d, c, total)) if *d == day && *c == currency => {
                    for (t, v) in total.iter_mut().zip(row) {
                        *t += v;
                    }
                }
                _ => days.push((day, currency, row)),
            }
        }
        Ok::<_, ProjectionError>(person.is_none() || !rows.is_empty())
    })?;
    if !member {
        return Ok(None);
    }
    days.into_iter()
        .map(|(day, currency, sums)| {
            DaySums::new(&day, currency, sums.map(domain::money::clamp_i128)).map_err(ProjectionError::from)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// [`artist_days`] summed from `campaign_daily` (while there is no `artist_daily` yet).
pub async fn artist_days_summed(
    db: &eventlog::Db,
    artist: &str,
    filter: &DayFilter<'_>,
) -> Result<Vec<DaySums>, ProjectionError> {
    use eventlog::Db;
    use sqlx::Row;
    let sums: Vec<String> = daily_expressions().iter().map(|c| split_sum(c)).collect();
    let sql = format!(
        "SELECT day, currency, {} FROM campaign_daily \
         WHERE artist_id = $1 AND ($2 IS NULL OR day >= $2) AND ($3 IS NULL OR day <= $3) \
         AND ($4 IS NULL OR platform = $4) AND ($5 IS NULL OR campaign_id = $5) \
         GROUP BY day, currency ORDER BY day",
        sums.join(", ")
    );
    let from = filter.from.map(|d| d.to_string());
    let to = filter.to.map(|d| d.to_string());
    let rows = eventlog::dispatch!(db, Db, |pool| {
        let rows = sqlx::query(&sql)
            .bind(artist)
            .bind(&from)
            .bind(&to)
            .bind(filter.platform)
            .bind(filter.campaign)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| {
                // Column k of the sums is at 2 + 2k (millions) and 3 + 2k (the rest).
                let n = |k: usize| -> Result<i64, sqlx::Error> {
                    let part = |i: usize| r.try_get::<Option<i64>, _>(i).map(|v| v.unwrap_or(0));
                    Ok(join_split_sum(part(2 + 2 * k)?, part(3 + 2 * k)?))
                };
                let mut sums = [0i64; 9];
                for (k, sum) in sums.iter_mut().enumerate() {
                    *sum = n(k)?;
                }
                DaySums::new(r.try_get::<&str, _>(0)?, r.try_get(1)?, sums)
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows)
}

/// One row of the anonymous platform-wide aggregate (P26).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlatformDay {
    pub platform: String,
    pub day: String,
    pub currency: String,
    pub spend_micros: i64,
    pub impressions: i64,
    pub clicks: i64,
    pub views: i64,
    pub conversions: i64,
}

/// The platform-wide aggregate between two days (inclusive, either optional), by day, platform,
/// currency: only the cells to which at least `min_artists` distinct artists contributed (the
/// others are suppressed, k-anonymity). The artists are counted in `campaign_daily`, whose rows
/// stay after erasure (they belong to the artist, not to a person) and whose artist a
/// restatement never changes, so a cell shown once stays shown and a suppressed one stays
/// suppressed until more artists contribute.
pub async fn platform_days(
    db: &eventlog::Db,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    min_artists: u32,
) -> Result<Vec<PlatformDay>, ProjectionError> {
    use eventlog::Db;
    type Row = (String, String, String, i64, i64, i64, i64, i64);
    let sql = "SELECT p.platform, p.day, p.currency, p.spend_micros, p.impressions, p.clicks, p.views, p.conversions \
               FROM platform_daily p \
               WHERE ($1 IS NULL OR p.day >= $1) AND ($2 IS NULL OR p.day <= $2) \
               AND (SELECT COUNT(DISTINCT c.artist_id) FROM campaign_daily c \
                    WHERE c.platform = p.platform AND c.day = p.day AND c.currency = p.currency) >= $3 \
               ORDER BY p.day, p.platform, p.currency";
    let (from, to) = (from.map(|d| d.to_string()), to.map(|d| d.to_string()));
    let min_artists = i64::from(min_artists.max(1));
    let rows: Vec<Row> = eventlog::dispatch!(db, Db, |pool| {
        sqlx::query_as(sql)
            .bind(&from)
            .bind(&to)
            .bind(min_artists)
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| PlatformDay {
            platform: r.0,
            day: r.1,
            currency: r.2,
            spend_micros: r.3,
            impressions: r.4,
            clicks: r.5,
            views: r.6,
            conversions: r.7,
        })
        .collect())
}
