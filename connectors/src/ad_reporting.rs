//! What the ad-reporting connectors share: [`CampaignDay`], the one row type that
//! [`crate::meta::Meta::campaign_insights`] and [`crate::google_ads::GoogleAds::campaign_days`]
//! return, the reporting window they accept, and exact readers for the numbers platforms send
//! as text.
//!
//! **Money is never a float.** Meta writes amounts as decimal strings (`"1234567.89"` in the ad
//! account's currency), Google as micros (`"1234567890000"`, an int64 in a JSON string).
//! [`decimal_to_micros`] turns the first into the second with integer arithmetic only, so
//! `"0.1"` and `"0.2"` give exactly 100 000 and 200 000 micros, which add up to exactly
//! `"0.3"`'s 300 000. Counts are whole numbers written as strings or as JSON numbers; a count
//! with a non-zero fraction is refused, never truncated.
//!
//! **Window.** Both connectors take a day range with both ends included: `since <= until` and
//! at most [`MAX_WINDOW_DAYS`] days, checked before anything is sent.

use chrono::NaiveDate;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::ConnectorError;

/// Most days one reporting call covers, both ends included (a quarter; longer ranges are
/// requested in several calls).
pub const MAX_WINDOW_DAYS: i64 = 93;
/// Digits after the decimal point that a micros amount can hold.
const MICROS_DIGITS: usize = 6;

/// One campaign's metrics for one day as an ad platform reports them. Money in micros of `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignDay {
    pub platform_campaign_id: String,
    pub date: NaiveDate,
    /// ISO 4217 of the ad account (Meta `account_currency`, Google `customer.currency_code`).
    pub currency: String,
    pub spend_micros: i64,
    pub impressions: i64,
    pub reach: i64,
    pub clicks: i64,
    pub views: i64,
    pub saves: i64,
    pub reactions: i64,
    pub comments: i64,
    pub shares: i64,
    pub follows: i64,
    pub conversions: i64,
}

/// A non-negative decimal amount such as `"12.34"`, `"0.5"`, `"1234"` or `"0.000001"` as
/// micros (millionths), exactly.
///
/// Accepted: ASCII digits, optionally followed by `.` and at least one digit; at most six
/// fraction digits, or more if those beyond the sixth are all zero (`"1.2500000"`). Refused with
/// [`ConnectorError::Decode`]: a sign, an exponent, spaces, an empty part (`".5"`, `"5."`), a
/// seventh non-zero fraction digit (it cannot be held in micros), and an amount above
/// `i64::MAX` micros.
pub fn decimal_to_micros(amount: &str) -> Result<i64, ConnectorError> {
    micros("a decimal amount", amount)
}

/// [`decimal_to_micros`], with `what` naming the answer in the error.
pub(crate) fn micros(what: &'static str, amount: &str) -> Result<i64, ConnectorError> {
    let (whole, fraction) = split_decimal(amount).map_err(|detail| decode(what, detail))?;
    whole
        .checked_mul(1_000_000)
        .and_then(|micros| micros.checked_add(fraction))
        .ok_or_else(|| decode(what, "an amount is too large for i64 micros"))
}

/// A count written as a decimal (`"42"`, or `"42.0"`): its fraction must be zero.
pub(crate) fn count(what: &'static str, text: &str) -> Result<i64, ConnectorError> {
    match split_decimal(text).map_err(|detail| decode(what, detail))? {
        (whole, 0) => Ok(whole),
        _ => Err(decode(what, "a count has a fraction")),
    }
}

/// A JSON number's text (`"2.5"`, `"-0.5"`, `"1e-7"`, `"3"`) rounded to the nearest integer,
/// halves away from zero (`2.5` → 3, `-2.5` → -3), from its digits and without a float.
pub(crate) fn round_half_up(what: &'static str, text: &str) -> Result<i64, ConnectorError> {
    const NOT_A_NUMBER: &str = "a number is not a JSON number";
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(decode(what, NOT_A_NUMBER));
            }
            let value: i64 = digits.parse().map_err(|_| decode(what, NOT_A_NUMBER))?;
            (mantissa, if exponent.starts_with('-') { -value } else { value })
        }
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(fraction)
        || (mantissa.contains('.') && fraction.is_empty())
    {
        return Err(decode(what, NOT_A_NUMBER));
    }
    let digits: Vec<i64> = whole
        .bytes()
        .chain(fraction.bytes())
        .map(|b| i64::from(b - b'0'))
        .collect();
    // Digits before the decimal point once the exponent is applied.
    let point = i64::try_from(whole.len()).unwrap_or(i64::MAX).saturating_add(exponent);
    let digit_at = |index: i64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut value: i64 = 0;
    for index in 0..point.max(0) {
        value = value
            .checked_mul(10)
            .and_then(|value| value.checked_add(digit_at(index)))
            .ok_or_else(|| decode(what, "a number is too large for i64"))?;
    }
    if point >= 0 && digit_at(point) >= 5 {
        value = value
            .checked_add(1)
            .ok_or_else(|| decode(what, "a number is too large for i64"))?;
    }
    Ok(if negative { -value } else { value })
}

/// A plain non-negative decimal as its whole part and its fraction in micros, or why it is not
/// one.
fn split_decimal(text: &str) -> Result<(i64, i64), &'static str> {
    const NOT_DECIMAL: &str = "a number is not a plain decimal (digits, optionally '.' and digits)";
    let (whole, fraction) = match text.split_once('.') {
        Some((_, "")) => return Err(NOT_DECIMAL),
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NOT_DECIMAL);
    }
    if fraction.bytes().skip(MICROS_DIGITS).any(|b| b != b'0') {
        return Err("an amount has more than 6 significant fraction digits");
    }
    let mut whole_value: i64 = 0;
    for digit in whole.bytes() {
        whole_value = whole_value
            .checked_mul(10)
            .and_then(|value| value.checked_add(i64::from(digit - b'0')))
            .ok_or("a number is too large for i64")?;
    }
    let fraction = fraction.as_bytes();
    let mut micros: i64 = 0;
    for index in 0..MICROS_DIGITS {
        micros = micros * 10 + fraction.get(index).map_or(0, |digit| i64::from(digit - b'0'));
    }
    Ok((whole_value, micros))
}

/// Checks a reporting window (module documentation).
pub(crate) fn check_window(since: NaiveDate, until: NaiveDate) -> Result<(), ConnectorError> {
    if since > until {
        return Err(ConnectorError::InvalidInput(
            "the window's first day is after its last day",
        ));
    }
    if (until - since).num_days() + 1 > MAX_WINDOW_DAYS {
        return Err(ConnectorError::InvalidInput("a reporting window is at most 93 days"));
    }
    Ok(())
}

/// A currency as an ISO 4217 code: three ASCII capital letters.
pub(crate) fn currency(what: &'static str, code: Option<String>) -> Result<String, ConnectorError> {
    match code {
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) => Ok(code),
        Some(_) => Err(decode(what, "a currency is not an ISO 4217 code")),
        None => Err(decode(what, "a row has no currency")),
    }
}

/// A day written `YYYY-MM-DD`.
pub(crate) fn day(what: &'static str, text: Option<&str>) -> Result<NaiveDate, ConnectorError> {
    let text = text.ok_or_else(|| decode(what, "a row has no date"))?;
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| decode(what, "a row's date is not YYYY-MM-DD"))
}

/// Deserializes a metric written as a JSON string or a JSON number into its exact text: the
/// string's content, or the number as written (never through a float). Missing or `null` is
/// `None`; any other JSON type fails the answer.
pub(crate) fn numeric_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(raw) = Option::<Box<RawValue>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str(text).map(Some).map_err(D::Error::custom)
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Ok(Some(text.to_owned()))
    } else {
        Err(D::Error::custom("expected a number or a numeric string"))
    }
}

/// A decode error whose detail is one of this module's fixed sentences (never the value).
fn decode(what: &'static str, detail: &str) -> ConnectorError {
    ConnectorError::Decode {
        what,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn decimals_become_exact_micros() {
        for (amount, micros) in [
            ("12.34", 12_340_000),
            ("0.5", 500_000),
            ("1234", 1_234_000_000),
            ("0.000001", 1),
            ("0.01", 10_000),
            ("0", 0),
            ("0.0", 0),
            ("007.10", 7_100_000),
            ("1234567.89", 1_234_567_890_000),
            ("5339.5", 5_339_500_000),
            ("1.2500000000", 1_250_000),
            ("9223372036854.775807", i64::MAX),
        ] {
            assert_eq!(decimal_to_micros(amount).unwrap(), micros, "{amount}");
        }
    }

    #[test]
    fn decimal_sums_that_floats_get_wrong_are_exact() {
        // 0.1 + 0.2 != 0.3 in f64; in micros it is.
        assert_eq!(
            decimal_to_micros("0.1").unwrap() + decimal_to_micros("0.2").unwrap(),
            decimal_to_micros("0.3").unwrap()
        );
        assert_eq!(decimal_to_micros("1234567.89").unwrap(), 1_234_567_890_000);
        // In f64, 8.2 · 1e6 is 8199999.999999999 and 1.005 · 1e6 is 1004999.9999999999, which
        // truncate to one micro less.
        assert_eq!(decimal_to_micros("8.2").unwrap(), 8_200_000);
        assert_eq!(decimal_to_micros("4.1").unwrap(), 4_100_000);
        assert_eq!(decimal_to_micros("1.005").unwrap(), 1_005_000);
        let cents: i64 = (0..100).map(|_| decimal_to_micros("0.01").unwrap()).sum();
        assert_eq!(cents, decimal_to_micros("1").unwrap());
    }

    #[test]
    fn decimals_that_are_not_plain_or_do_not_fit_are_refused() {
        for amount in [
            "",
            ".",
            ".5",
            "5.",
            "-1",
            "+1",
            "1e3",
            "1E3",
            " 1",
            "1 ",
            "1,5",
            "1.2.3",
            "0x10",
            "NaN",
            "inf",
            "0.0000001",
            "1.00000010",
            "9223372036854.775808",
            "9223372036855",
            "99999999999999999999",
        ] {
            assert!(
                matches!(decimal_to_micros(amount), Err(ConnectorError::Decode { .. })),
                "{amount:?}"
            );
        }
    }

    #[test]
    fn a_decode_error_does_not_quote_the_amount() {
        let error = decimal_to_micros("98765.4321987").unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("98765"), "{shown}");
    }

    #[test]
    fn counts_are_whole_numbers() {
        assert_eq!(count("t", "42").unwrap(), 42);
        assert_eq!(count("t", "3.0").unwrap(), 3);
        assert_eq!(count("t", "0").unwrap(), 0);
        for text in ["3.5", "0.1", "-3", "3e2", "", "x"] {
            assert!(matches!(count("t", text), Err(ConnectorError::Decode { .. })), "{text}");
        }
    }

    #[test]
    fn numbers_round_half_away_from_zero_from_their_digits() {
        for (text, rounded) in [
            ("0", 0),
            ("1", 1),
            ("1.0", 1),
            ("2.5", 3),
            ("2.4999999999999999999", 2),
            ("0.5", 1),
            ("0.49", 0),
            ("3.5000001", 4),
            ("-2.5", -3),
            ("-2.4", -2),
            ("1e2", 100),
            ("1.5E1", 15),
            ("2.5e-1", 0),
            ("5e-1", 1),
            ("4.9e-1", 0),
            ("1e-7", 0),
            ("123456.5", 123_457),
            ("1e-9999", 0),
            ("0e9999", 0),
        ] {
            assert_eq!(round_half_up("t", text).unwrap(), rounded, "{text}");
        }
        for text in [
            "", "-", ".5", "5.", "1e", "1e+", "+1", "NaN", "Infinity", "1e99999", "1e30", "1.5.5",
        ] {
            assert!(
                matches!(round_half_up("t", text), Err(ConnectorError::Decode { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn a_window_is_ordered_and_at_most_93_days() {
        assert!(check_window(date("2026-01-01"), date("2026-01-01")).is_ok());
        assert!(check_window(date("2026-01-01"), date("2026-04-03")).is_ok());
        assert!(matches!(
            check_window(date("2026-01-01"), date("2026-04-04")),
            Err(ConnectorError::InvalidInput(_))
        ));
        assert!(matches!(
            check_window(date("2026-01-02"), date("2026-01-01")),
            Err(ConnectorError::InvalidInput(_))
        ));
    }

    #[test]
    fn metrics_are_read_as_their_exact_text() {
        #[derive(Deserialize)]
        struct Row {
            #[serde(default, deserialize_with = "numeric_text")]
            value: Option<String>,
        }
        let read = |json: &str| serde_json::from_str::<Row>(json).map(|row| row.value);
        assert_eq!(read(r#"{"value": "12.30"}"#).unwrap().as_deref(), Some("12.30"));
        assert_eq!(
            read(r#"{"value": 0.30000000000000001}"#).unwrap().as_deref(),
            Some("0.30000000000000001")
        );
        assert_eq!(read(r#"{"value": -1e3}"#).unwrap().as_deref(), Some("-1e3"));
        assert_eq!(read(r#"{"value": null}"#).unwrap(), None);
        assert_eq!(read("{}").unwrap(), None);
        assert!(read(r#"{"value": true}"#).is_err());
        assert!(read(r#"{"value": {"a": 1}}"#).is_err());
    }

    #[test]
    fn currencies_are_iso_codes() {
        assert_eq!(currency("t", Some("EUR".into())).unwrap(), "EUR");
        for bad in [
            Some("eur".to_owned()),
            Some("EURO".to_owned()),
            Some(String::new()),
            None,
        ] {
            assert!(matches!(currency("t", bad), Err(ConnectorError::Decode { .. })));
        }
    }
}
