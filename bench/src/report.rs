//! Results: one [`Row`] per measured figure, holding every pair's baseline and ours; the
//! median, min–max and per-pair ratio; the target of `PERFORMANCE.md` and whether it is met;
//! the Markdown table and the JSON file.
//!
//! A pair is one baseline run and one run of ours, back to back. The order alternates
//! (A B, B A, A B, …) so that a drift of the machine during the scenario favours neither.
//! The ratio is computed per pair (ours ÷ baseline) and its median reported: both halves of a
//! pair saw the same machine, which is the point of interleaving.

use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// A median, minimum and maximum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of latencies, nearest rank, in microseconds.
pub fn quantile_us(latencies: &mut [Duration], q: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    latencies.sort_unstable();
    let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
    latencies[rank - 1].as_secs_f64() * 1e6
}

/// What a row's figure must satisfy.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// The median per-pair ratio (ours ÷ baseline) at most this.
    RatioAtMost { ratio: f64 },
    /// The median per-pair ratio at least this.
    RatioAtLeast { ratio: f64 },
    /// The largest value of ours at most this (no baseline: memory).
    PeakAtMost { value: f64 },
    /// Ours at most `factor` × baseline + `offset`, medians (the lag target).
    AtMostAffine { factor: f64, offset: f64 },
    /// An exact count (the counters).
    Equals { value: f64 },
    /// A count at most this.
    CountAtMost { value: f64 },
    /// Reported for orientation; no target of its own.
    Info,
}

/// One figure: its pairs, and how it compares.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub unit: String,
    /// What the baseline is (`raw single-row INSERT`, …); empty when there is none.
    pub baseline_name: String,
    pub ours_name: String,
    pub baseline: Vec<f64>,
    pub ours: Vec<f64>,
    pub target: Target,
    /// Extra conditions that must hold for the target to be met (e.g. "writes nothing").
    pub conditions: Vec<(String, bool)>,
    /// Anything else worth keeping (percentiles, counts), per pair.
    pub details: Vec<serde_json::Value>,
}

/// A row with its figures computed, as written to JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Computed {
    #[serde(flatten)]
    pub row: Row,
    pub baseline_spread: Option<Spread>,
    pub ours_spread: Option<Spread>,
    pub ratio_spread: Option<Spread>,
    pub target_text: String,
    /// `None` for rows without a target.
    pub met: Option<bool>,
}

impl Row {
    /// A row of pairs.
    pub fn new(scenario: &str, metric: &str, unit: &str, baseline_name: &str, ours_name: &str, target: Target) -> Row {
        Row {
            scenario: scenario.into(),
            metric: metric.into(),
            unit: unit.into(),
            baseline_name: baseline_name.into(),
            ours_name: ours_name.into(),
            baseline: Vec::new(),
            ours: Vec::new(),
            target,
            conditions: Vec::new(),
            details: Vec::new(),
        }
    }

    /// Adds one pair.
    pub fn pair(&mut self, baseline: f64, ours: f64) {
        self.baseline.push(baseline);
        self.ours.push(ours);
    }

    /// The per-pair ratios, ours ÷ baseline.
    pub fn ratios(&self) -> Vec<f64> {
        self.baseline
            .iter()
            .zip(&self.ours)
            .filter(|(b, _)| **b != 0.0)
            .map(|(b, o)| o / b)
            .collect()
    }

    /// Medians, spreads, and whether the target is met.
    pub fn compute(&self) -> Computed {
        let baseline_spread = Spread::of(&self.baseline);
        let ours_spread = Spread::of(&self.ours);
        let ratio_spread = Spread::of(&self.ratios());
        let conditions_hold = self.conditions.iter().all(|(_, ok)| *ok);
        let (target_text, met) = match &self.target {
            Target::RatioAtMost { ratio } => (
                format!("≤ {ratio}×"),
                ratio_spread.map(|r| r.median <= *ratio && conditions_hold),
            ),
            Target::RatioAtLeast { ratio } => (
                format!("≥ {ratio}×"),
                ratio_spread.map(|r| r.median >= *ratio && conditions_hold),
            ),
            Target::PeakAtMost { value } => (
                format!("peak ≤ {} {}", number(*value), self.unit),
                ours_spread.map(|o| o.max <= *value && conditions_hold),
            ),
            Target::AtMostAffine { factor, offset } => (
                format!("≤ {factor}× baseline + {} {}", number(*offset), self.unit),
                match (baseline_spread, ours_spread) {
                    (Some(b), Some(o)) => Some(o.median <= factor * b.median + offset && conditions_hold),
                    _ => None,
                },
            ),
            Target::Equals { value } => (
                format!("= {}", number(*value)),
                ours_spread.map(|o| o.min == *value && o.max == *value && conditions_hold),
            ),
            Target::CountAtMost { value } => (
                format!("≤ {}", number(*value)),
                ours_spread.map(|o| o.max <= *value && conditions_hold),
            ),
            Target::Info => ("—".into(), None),
        };
        let mut target_text = target_text;
        for (condition, _) in &self.conditions {
            target_text.push_str(&format!("; {condition}"));
        }
        Computed {
            row: self.clone(),
            baseline_spread,
            ours_spread,
            ratio_spread,
            target_text,
            met,
        }
    }
}

/// A number with about three significant digits.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return "—".into();
    }
    let abs = value.abs();
    if abs >= 100.0 || abs == value.trunc().abs() && abs >= 1.0 {
        group(format!("{value:.0}"))
    } else if abs >= 10.0 {
        format!("{value:.1}")
    } else if abs >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Thousands separated by commas.
fn group(digits: String) -> String {
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(d) => ("-", d.to_string()),
        None => ("", digits),
    };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn spread_text(spread: Option<Spread>, unit: &str) -> String {
    match spread {
        None => "—".into(),
        Some(s) if s.min == s.max => format!("{} {unit}", number(s.median)),
        Some(s) => format!("{} {unit} ({}–{})", number(s.median), number(s.min), number(s.max)),
    }
}

/// The table, in Markdown.
pub fn table(rows: &[Computed]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | figure | baseline: median (min–max) | ours: median (min–max) | ratio: median (min–max) | target | met |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for c in rows {
        let r = &c.row;
        let baseline = if r.baseline.is_empty() {
            "—".to_string()
        } else {
            format!("{}: {}", r.baseline_name, spread_text(c.baseline_spread, &r.unit))
        };
        let ours = format!("{}: {}", r.ours_name, spread_text(c.ours_spread, &r.unit));
        let ratio = match c.ratio_spread {
            None => "—".into(),
            Some(s) => format!("{:.2}× ({:.2}–{:.2})", s.median, s.min, s.max),
        };
        let met = match c.met {
            None => "—",
            Some(true) => "yes",
            Some(false) => "**no**",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {baseline} | {ours} | {ratio} | {} | {met} |",
            r.scenario, r.metric, c.target_text
        );
    }
    out
}

/// Evaluates a baseline and ours for pair `i`, baseline first in even pairs and ours first in
/// odd ones; yields `(baseline, ours)`. Both expressions may `.await` and use `?`.
#[macro_export]
macro_rules! alternate {
    ($i:expr, $baseline:expr, $ours:expr) => {
        if $i % 2 == 0 {
            let b = $baseline;
            let o = $ours;
            (b, o)
        } else {
            let o = $ours;
            let b = $baseline;
            (b, o)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_spreads_and_ratios() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        let mut row = Row::new("s", "m", "ops/s", "raw", "ours", Target::RatioAtLeast { ratio: 0.8 });
        row.pair(100.0, 90.0);
        row.pair(200.0, 150.0);
        row.pair(100.0, 70.0);
        let c = row.compute();
        assert_eq!(c.ratio_spread.unwrap().median, 0.75);
        assert_eq!(c.met, Some(false));
        assert!(table(&[c]).contains("| s | m | raw: 100 ops/s (100–200) |"));
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let mut l: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(quantile_us(&mut l, 0.5), 50.0);
        assert_eq!(quantile_us(&mut l, 0.99), 99.0);
        assert_eq!(quantile_us(&mut l, 1.0), 100.0);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1.2345), "1.23");
        assert_eq!(number(0.12345), "0.123");
        assert_eq!(number(2.0), "2");
    }
}
