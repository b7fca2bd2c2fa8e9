//! Dashboards (P10, P26): an artist's spend and results per day, week or month, per platform
//! or campaign, with KPIs computed in integer micros; and the anonymous platform-wide
//! aggregate for staff.

use crate::artists::authorize;
use crate::{App, AppError, Call, Role};
use chrono::{Datelike, NaiveDate};
use domain::artist::Permission;
use projections::read_models::dashboards::{self, DayFilter, PlatformDay};
use serde::Serialize;
use std::collections::BTreeMap;

/// How a dashboard's days are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Day,
    /// Weeks start on Monday; a week is named by its Monday.
    Week,
    /// Calendar months, named `YYYY-MM`.
    Month,
}

impl std::str::FromStr for Granularity {
    type Err = AppError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Granularity::Day),
            "week" => Ok(Granularity::Week),
            "month" => Ok(Granularity::Month),
            _ => Err(AppError::InvalidInput("granularity must be day, week or month".into())),
        }
    }
}

/// What a dashboard asks for.
#[derive(Clone, Debug)]
pub struct DashboardQuery {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub granularity: Granularity,
    pub platform: Option<String>,
    pub campaign: Option<String>,
    pub min_position: Option<String>,
}

/// Sums of one period and currency.
#[derive(Default, Clone)]
struct Sums {
    spend: i64,
    impressions: i64,
    reach: i64,
    clicks: i64,
    views: i64,
    saves: i64,
    follows: i64,
    conversions: i64,
    engagement: i64,
}

/// `numerator × scale ÷ denominator` in integers, rounded half up; `None` when nothing to divide by.
fn ratio(numerator: i64, scale: i64, denominator: i64) -> Option<i64> {
    if denominator <= 0 {
        return None;
    }
    let n = i128::from(numerator) * i128::from(scale);
    let d = i128::from(denominator);
    i64::try_from((n + d / 2) / d).ok()
}

/// The key performance indicators of one period (money in micros).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Kpis {
    pub cpm_micros: Option<i64>,
    pub cpc_micros: Option<i64>,
    pub ctr_basis_points: Option<i64>,
    pub cost_per_view_micros: Option<i64>,
    pub cost_per_save_micros: Option<i64>,
    pub cost_per_follow_micros: Option<i64>,
    pub cost_per_result_micros: Option<i64>,
}

/// One period (or the total) of one currency.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PeriodSums {
    pub period: String,
    pub currency: String,
    pub spend_micros: i64,
    pub impressions: i64,
    pub reach: i64,
    pub clicks: i64,
    pub views: i64,
    pub saves: i64,
    pub follows: i64,
    pub conversions: i64,
    pub engagement: i64,
    pub kpis: Kpis,
}

impl Sums {
    fn view(&self, period: &str, currency: &str) -> PeriodSums {
        PeriodSums {
            period: period.to_string(),
            currency: currency.to_string(),
            spend_micros: self.spend,
            impressions: self.impressions,
            reach: self.reach,
            clicks: self.clicks,
            views: self.views,
            saves: self.saves,
            follows: self.follows,
            conversions: self.conversions,
            engagement: self.engagement,
            kpis: Kpis {
                cpm_micros: ratio(self.spend, 1000, self.impressions),
                cpc_micros: ratio(self.spend, 1, self.clicks),
                ctr_basis_points: ratio(self.clicks, 10_000, self.impressions),
                cost_per_view_micros: ratio(self.spend, 1, self.views),
                cost_per_save_micros: ratio(self.spend, 1, self.saves),
                cost_per_follow_micros: ratio(self.spend, 1, self.follows),
                cost_per_result_micros: ratio(self.spend, 1, self.conversions),
            },
        }
    }
}

fn period_of(day: NaiveDate, granularity: Granularity) -> String {
    match granularity {
        Granularity::Week => {
            let monday = day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()));
            monday.to_string()
        }
        Granularity::Month => format!("{:04}-{:02}", day.year(), day.month()),
        Granularity::Day => day.to_string(),
    }
}

/// An artist's dashboard.
#[derive(Clone, Debug, Serialize)]
pub struct Dashboard {
    pub artist_id: String,
    pub granularity: Granularity,
    pub series: Vec<PeriodSums>,
    pub totals: Vec<PeriodSums>,
}

/// The dashboard of `artist`, for a member who may view it.
pub async fn dashboard(app: &App, call: &Call, artist: &str, query: &DashboardQuery) -> Result<Dashboard, AppError> {
    call.caller.require(&[Role::Person])?;
    app.wait_for("artist_access", query.min_position.as_deref()).await?;
    app.wait_for("dashboards", query.min_position.as_deref()).await?;
    let filter = DayFilter {
        from: query.from,
        to: query.to,
        platform: query.platform.as_deref(),
        campaign: query.campaign.as_deref(),
    };
    // The access check and the read in one statement; when it finds no role, the full check
    // (which waits for the artist's latest event, and tells not-found from forbidden) decides.
    let days = match dashboards::member_artist_days(&app.log, artist, &call.caller.subject, &filter).await? {
        Some(days) => days,
        None => {
            authorize(app, &call.caller, artist, Permission::View, None).await?;
            dashboards::artist_days(&app.log, artist, &filter).await?
        }
    };
    let mut series: BTreeMap<(String, String), Sums> = BTreeMap::new();
    let mut totals: BTreeMap<String, Sums> = BTreeMap::new();
    for day in days {
        for target in [
            series
                .entry((period_of(day.day, query.granularity), day.currency.clone()))
                .or_default(),
            totals.entry(day.currency.clone()).or_default(),
        ] {
            target.spend = target.spend.saturating_add(day.spend_micros);
            target.impressions = target.impressions.saturating_add(day.impressions);
            target.reach = target.reach.saturating_add(day.reach);
            target.clicks = target.clicks.saturating_add(day.clicks);
            target.views = target.views.saturating_add(day.views);
            target.saves = target.saves.saturating_add(day.saves);
            target.follows = target.follows.saturating_add(day.follows);
            target.conversions = target.conversions.saturating_add(day.conversions);
            target.engagement = target.engagement.saturating_add(day.engagement);
        }
    }
    Ok(Dashboard {
        artist_id: artist.to_string(),
        granularity: query.granularity,
        series: series
            .iter()
            .map(|((period, currency), s)| s.view(period, currency))
            .collect(),
        totals: totals.iter().map(|(currency, s)| s.view("total", currency)).collect(),
    })
}

/// Spend and results by platform and day, anonymous (P26), for staff and services: a cell
/// (platform, day, currency) is served only when at least `stats_min_artists` distinct artists
/// contributed to it, so no cell is one artist's (or a handful's) spend.
pub async fn platform_stats(
    app: &App,
    call: &Call,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    min_position: Option<&str>,
) -> Result<Vec<PlatformDay>, AppError> {
    call.caller.require(&[Role::Support, Role::Auditor, Role::Service])?;
    app.wait_for("dashboards", min_position).await?;
    Ok(dashboards::platform_days(app.log.db(), from, to, app.config.stats_min_artists).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_round_half_up_and_never_divide_by_zero() {
        assert_eq!(ratio(10_000_000, 1000, 4000), Some(2_500_000));
        assert_eq!(ratio(10, 1, 3), Some(3));
        assert_eq!(ratio(11, 1, 2), Some(6));
        assert_eq!(ratio(5, 1, 0), None);
    }

    #[test]
    fn weeks_start_on_monday_and_months_are_calendar_months() {
        let d: NaiveDate = "2026-03-05".parse().unwrap();
        assert_eq!(period_of(d, Granularity::Week), "2026-03-02");
        assert_eq!(period_of(d, Granularity::Month), "2026-03");
        assert_eq!(period_of(d, Granularity::Day), "2026-03-05");
    }
}
