//! Full payment card numbers (PANs) in what people send us, found so that they can be refused
//! before anything is written (P3: "no full card numbers"; brand, last four and expiry may be
//! kept, the PAN never).
//!
//! [`find_card_number`] walks a JSON document (every string, every number, every object key);
//! [`find_card_number_in_text`] reads a raw body (form-encoded, NDJSON, plain text). Both answer
//! a [`CardNumberHit`] naming *where* (a JSON pointer, or `body`) and the card *brand*, never the
//! digits, so the hit can go into an error answer or a log line as it is.
//!
//! **What counts as a card number.** A run of 13 to 19 digits, written together or in groups
//! separated by a single space or dash (`4242 4242 4242 4242`, `4242-4242-4242-4242`,
//! `3782 822463 10005`), that
//! 1. is not part of a longer number or word: the characters around it are not digits, ASCII
//!    letters or `_`, and not a decimal point with a digit beyond it (so `act_4242…`, `UC4242…x`,
//!    `cus_…`, the fraction of `0.4242…` and the middle of a longer digit run are not read);
//!    inside a grouped run, any consecutive groups may form the number, provided that every
//!    group but the last has 4 to 8 digits (`Order 1234 4242 4242 4242 4242` is caught; a
//!    phone number `555-123-4567` cannot lend its short groups to a neighbour);
//! 2. passes the Luhn check (ISO/IEC 7812-1 annex B); and
//! 3. has the issuer prefix and a length that a real card brand issues, from the table below.
//!
//! Rule 3 is what keeps the platforms' long numeric ids out: a random digit string passes Luhn
//! one time in ten, but Meta's campaign, ad set and ad ids (15–18 digits starting `238…` or
//! `120…`), page ids (`100…`), Instagram ids (`178…`, `179…`) start with prefixes no card uses at
//! those lengths, and Google Ads customer (10 digits) and campaign ids (11) are too short. The
//! tests check 100,000 generated ids of these shapes.
//!
//! **Issuer table** (prefix ranges inclusive; lengths in digits). Source: ISO/IEC 7812-1 and the
//! issuer table of Wikipedia's *Payment card number* article ("Issuer identification number
//! (IIN)"), the same ranges that Stripe's test card list exercises. Maestro also issues 12-digit
//! numbers; below 13 digits nothing is flagged.
//!
//! | brand | prefixes | lengths |
//! |---|---|---|
//! | Visa | 4 | 13, 16, 19 |
//! | Mastercard | 51–55, 2221–2720 | 16 |
//! | American Express | 34, 37 | 15 |
//! | Discover | 6011, 644–649, 65 | 16–19 |
//! | JCB | 3528–3589 | 16–19 |
//! | Diners Club | 36 | 14–19 |
//! | Diners Club | 300–305, 38–39 | 16–19 |
//! | UnionPay | 62 | 16–19 |
//! | Maestro | 5018, 5020, 5038, 5893, 6304, 6759, 6761–6763 | 13–19 |
//! | Mir | 2200–2204 | 16–19 |
//!
//! **Limits.** A bare 16-digit number that starts with 4 and passes Luhn *is* flagged even if it
//! is some platform's id: nothing in the digits tells them apart (Meta ad account ids come as
//! `act_<digits>`, which rule 1 leaves alone). Likewise a 13-digit amount starting with 4 or a
//! 15-digit one starting with 34/37 (micros of $4M, $340M) that happens to pass Luhn. A form
//! body is read both as sent and percent-decoded (`+` as a space), so `4242+4242+4242+4242`
//! is caught.

use std::fmt;

use serde_json::{Number, Value};

/// Where a card number was found and which brand it looks like. It never holds the digits:
/// `path` is made of the document's keys and array indices only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardNumberHit {
    /// A JSON pointer (RFC 6901) to the value holding the number, e.g. `/payment/card/0`; `""`
    /// for the top-level value. When the number is in an object *key*, the pointer of that
    /// object followed by ` (object key)` (the key itself is not repeated). `body` for
    /// [`find_card_number_in_text`].
    pub path: String,
    /// e.g. `Visa`, `Mastercard`, `American Express`.
    pub brand: &'static str,
}

impl fmt::Display for CardNumberHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = if self.path.is_empty() {
            "the top level"
        } else {
            &self.path
        };
        write!(f, "what looks like a full {} card number at {place}", self.brand)
    }
}

/// The first card number anywhere in `value`: in a string, a number or an object key, at any
/// depth. Keys are checked before the values under them, in document order.
pub fn find_card_number(value: &Value) -> Option<CardNumberHit> {
    let mut pointer = String::new();
    walk(value, &mut pointer)
}

/// The first card number in a raw body (form-encoded, NDJSON, text); the hit's path is `body`.
pub fn find_card_number_in_text(text: &str) -> Option<CardNumberHit> {
    scan_text(text).map(|brand| CardNumberHit {
        path: "body".to_owned(),
        brand,
    })
}

fn walk(value: &Value, pointer: &mut String) -> Option<CardNumberHit> {
    let found = |pointer: &str, brand| {
        Some(CardNumberHit {
            path: pointer.to_owned(),
            brand,
        })
    };
    match value {
        Value::String(text) => scan_text(text).and_then(|brand| found(pointer, brand)),
        Value::Number(number) => scan_number(number).and_then(|brand| found(pointer, brand)),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let length = pointer.len();
            pointer.push('/');
            pointer.push_str(&index.to_string());
            let hit = walk(item, pointer);
            pointer.truncate(length);
            hit
        }),
        Value::Object(members) => members.iter().find_map(|(key, item)| {
            if let Some(brand) = scan_text(key) {
                let path = if pointer.is_empty() {
                    "(object key)".to_owned()
                } else {
                    format!("{pointer} (object key)")
                };
                return Some(CardNumberHit { path, brand });
            }
            let length = pointer.len();
            pointer.push('/');
            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            let hit = walk(item, pointer);
            pointer.truncate(length);
            hit
        }),
        Value::Null | Value::Bool(_) => None,
    }
}

/// A JSON number as the digits it stands for: integers exactly, a float without a fraction as
/// its integer digits (a card number sent as `4242424242424242.0`), other floats as written
/// (their fraction digits never count: they follow a decimal point).
fn scan_number(number: &Number) -> Option<&'static str> {
    if let Some(unsigned) = number.as_u64() {
        return scan(unsigned.to_string().as_bytes());
    }
    if let Some(signed) = number.as_i64() {
        return scan(signed.unsigned_abs().to_string().as_bytes());
    }
    let float = number.as_f64()?;
    if float.is_finite() && float.fract() == 0.0 && float.abs() < 1e20 {
        return scan(format!("{:.0}", float.abs()).as_bytes());
    }
    scan(number.to_string().as_bytes())
}

/// `text` as written, then percent-decoded (`+` as a space) if that changes anything.
fn scan_text(text: &str) -> Option<&'static str> {
    scan(text.as_bytes()).or_else(|| percent_decoded(text).and_then(|decoded| scan(&decoded)))
}

/// `text` with `+` as a space and `%XY` as the byte it encodes (malformed escapes kept as they
/// are); `None` when `text` has neither.
fn percent_decoded(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return None;
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                _ => decoded.push(b'%'),
            },
            other => decoded.push(other),
        }
        i += 1;
    }
    Some(decoded)
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).and_then(|value| u8::try_from(value).ok())
}

/// The shortest and longest card numbers flagged.
const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;

/// The brand of the first card number in `text`, if any (see the module documentation for the
/// rules).
fn scan(text: &[u8]) -> Option<&'static str> {
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A segment: digit groups joined by single spaces or dashes.
        let start = i;
        groups.clear();
        loop {
            let group_start = i;
            while i < text.len() && text[i].is_ascii_digit() {
                i += 1;
            }
            groups.push((group_start, i));
            let joined = i + 1 < text.len() && matches!(text[i], b' ' | b'-') && text[i + 1].is_ascii_digit();
            if !joined {
                break;
            }
            i += 1;
        }
        let open_left = free_left(text, start);
        let open_right = free_right(text, i);
        if let Some(brand) = check_segment(text, &groups, open_left, open_right) {
            return Some(brand);
        }
    }
    None
}

/// Whether a number may start at `start`: nothing before it, or a character that is neither a
/// letter, a digit, `_`, nor a decimal point after a digit.
fn free_left(text: &[u8], start: usize) -> bool {
    match start.checked_sub(1).map(|before| text[before]) {
        None => true,
        Some(b'.') => !(start >= 2 && text[start - 2].is_ascii_digit()),
        Some(byte) => !is_word(byte),
    }
}

/// Whether a number may end just before `end`: the mirror of [`free_left`].
fn free_right(text: &[u8], end: usize) -> bool {
    match text.get(end) {
        None => true,
        Some(b'.') => !text.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(&byte) => !is_word(byte),
    }
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Every run of consecutive groups of one segment that may be a card number: 13 to 19 digits,
/// every group but its last of 4 to 8 digits, an edge group only where the segment's edge is free.
fn check_segment(text: &[u8], groups: &[(usize, usize)], open_left: bool, open_right: bool) -> Option<&'static str> {
    let mut digits = [0u8; MAX_DIGITS];
    for first in 0..groups.len() {
        if first == 0 && !open_left {
            continue;
        }
        let mut count = 0;
        for last in first..groups.len() {
            if last > first {
                let (start, end) = groups[last - 1];
                if !(4..=8).contains(&(end - start)) {
                    break;
                }
            }
            let (start, end) = groups[last];
            if count + (end - start) > MAX_DIGITS {
                break;
            }
            digits[count..count + (end - start)].copy_from_slice(&text[start..end]);
            count += end - start;
            if count < MIN_DIGITS || (last == groups.len() - 1 && !open_right) {
                continue;
            }
            if let Some(brand) = card_brand(&digits[..count]) {
                return Some(brand);
            }
        }
    }
    None
}

/// One row of the issuer table: the numbers of `length` digits whose first `prefix_digits`
/// digits lie in `low..=high`.
struct Issuer {
    brand: &'static str,
    prefix_digits: usize,
    low: u32,
    high: u32,
    lengths: &'static [usize],
}

const fn issuer(brand: &'static str, prefix_digits: usize, low: u32, high: u32, lengths: &'static [usize]) -> Issuer {
    Issuer {
        brand,
        prefix_digits,
        low,
        high,
        lengths,
    }
}

const L13_19: &[usize] = &[13, 14, 15, 16, 17, 18, 19];
const L14_19: &[usize] = &[14, 15, 16, 17, 18, 19];
const L16_19: &[usize] = &[16, 17, 18, 19];

/// The table of the module documentation. No two rows overlap.
const ISSUERS: &[Issuer] = &[
    issuer("Visa", 1, 4, 4, &[13, 16, 19]),
    issuer("Mastercard", 2, 51, 55, &[16]),
    issuer("Mastercard", 4, 2221, 2720, &[16]),
    issuer("American Express", 2, 34, 34, &[15]),
    issuer("American Express", 2, 37, 37, &[15]),
    issuer("Discover", 4, 6011, 6011, L16_19),
    issuer("Discover", 3, 644, 649, L16_19),
    issuer("Discover", 2, 65, 65, L16_19),
    issuer("JCB", 4, 3528, 3589, L16_19),
    issuer("Diners Club", 2, 36, 36, L14_19),
    issuer("Diners Club", 3, 300, 305, L16_19),
    issuer("Diners Club", 2, 38, 39, L16_19),
    issuer("UnionPay", 2, 62, 62, L16_19),
    issuer("Maestro", 4, 5018, 5018, L13_19),
    issuer("Maestro", 4, 5020, 5020, L13_19),
    issuer("Maestro", 4, 5038, 5038, L13_19),
    issuer("Maestro", 4, 5893, 5893, L13_19),
    issuer("Maestro", 4, 6304, 6304, L13_19),
    issuer("Maestro", 4, 6759, 6759, L13_19),
    issuer("Maestro", 4, 6761, 6763, L13_19),
    issuer("Mir", 4, 2200, 2204, L16_19),
];

/// The brand of `digits` (ASCII digits) if a brand issues its prefix at its length and it
/// passes the Luhn check.
fn card_brand(digits: &[u8]) -> Option<&'static str> {
    let row = ISSUERS.iter().find(|row| {
        row.lengths.contains(&digits.len()) && (row.low..=row.high).contains(&prefix_value(digits, row.prefix_digits))
    })?;
    luhn_valid(digits).then_some(row.brand)
}

fn prefix_value(digits: &[u8], count: usize) -> u32 {
    digits
        .iter()
        .take(count)
        .fold(0, |value, digit| value * 10 + u32::from(digit - b'0'))
}

/// The Luhn check (ISO/IEC 7812-1 annex B): from the right, every second digit doubled (minus 9
/// when above 9), the sum a multiple of 10. `digits` are ASCII digits.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            let value = u32::from(digit - b'0');
            match (position % 2 == 1, value * 2) {
                (false, _) => value,
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Stripe's documented test card numbers and the brand each is.
    const STRIPE_TEST_CARDS: [(&str, &str); 15] = [
        ("4242424242424242", "Visa"),
        ("4000056655665556", "Visa"),
        ("5555555555554444", "Mastercard"),
        ("2223003122003222", "Mastercard"),
        ("5200828282828210", "Mastercard"),
        ("5105105105105100", "Mastercard"),
        ("378282246310005", "American Express"),
        ("371449635398431", "American Express"),
        ("6011111111111117", "Discover"),
        ("6011000990139424", "Discover"),
        ("3056930009020004", "Diners Club"),
        ("36227206271667", "Diners Club"),
        ("6555900000604105", "Discover"),
        ("3566002020360505", "JCB"),
        ("6200000000000005", "UnionPay"),
    ];

    fn grouped(card: &str, separator: char) -> String {
        let mut out = String::new();
        for (i, digit) in card.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(separator);
            }
            out.push(digit);
        }
        out
    }

    fn hit(path: &str, brand: &'static str) -> Option<CardNumberHit> {
        Some(CardNumberHit {
            path: path.to_owned(),
            brand,
        })
    }

    #[test]
    fn the_luhn_check_accepts_valid_numbers_and_refuses_one_changed_digit() {
        assert!(luhn_valid(b"79927398713"));
        assert!(luhn_valid(b"4242424242424242"));
        assert!(luhn_valid(b"0"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(!luhn_valid(b"4242424242424241"));
        assert!(!luhn_valid(b"4242424242424224"));
        assert!(!luhn_valid(b""));
        for (card, _) in STRIPE_TEST_CARDS {
            assert!(luhn_valid(card.as_bytes()), "{card}");
        }
    }

    #[test]
    fn every_stripe_test_card_is_found_with_its_brand_however_it_is_written() {
        for (card, brand) in STRIPE_TEST_CARDS {
            let number: u64 = card.parse().unwrap();
            let cases = [
                (json!({"payment": {"card": {"number": card}}}), "/payment/card/number"),
                (
                    json!({"payment": {"cards": [{"n": grouped(card, ' ')}]}}),
                    "/payment/cards/0/n",
                ),
                (json!({"pan": grouped(card, '-')}), "/pan"),
                (json!({"pan": number}), "/pan"),
                (json!({"pan": number as f64}), "/pan"),
                (json!({"pan": -i64::try_from(number).unwrap()}), "/pan"),
                (
                    json!({"note": format!("my card is {card}, expiry 12/34, thanks.")}),
                    "/note",
                ),
                (json!({"note": format!("Order 1234 {}.", grouped(card, ' '))}), "/note"),
                (json!({"a/b~c": [null, true, card]}), "/a~1b~0c/2"),
                (json!(card), ""),
                (json!({"billing": {card: "x"}}), "/billing (object key)"),
                (json!({grouped(card, ' '): 1}), "(object key)"),
            ];
            for (document, path) in cases {
                assert_eq!(find_card_number(&document), hit(path, brand), "{document}");
            }
            let texts = [
                format!("card%5Bnumber%5D={card}&exp_month=12"),
                format!("card%5Bnumber%5D={}&exp_month=12", grouped(card, '+')),
                format!("n={}", grouped(card, ' ').replace(' ', "%20")),
                format!("{{\"id\":1}}\n{{\"pan\":{card}}}\n"),
                format!("{{\"pan\":\"{}\"}}", grouped(card, '-')),
            ];
            for text in texts {
                assert_eq!(find_card_number_in_text(&text), hit("body", brand), "{text}");
            }
        }
    }

    #[test]
    fn grouped_cards_in_the_usual_layouts_are_found() {
        for text in [
            "3782 822463 10005",
            "3622 720627 1667",
            "4242 4242 4242 4242 424",
            "42424242 42424242",
            "4242-4242 4242-4242",
            "(4242 4242 4242 4242)",
            "pan:4242424242424242;",
            "-4242424242424242",
            "4242424242424242.",
        ] {
            assert!(find_card_number_in_text(text).is_some(), "{text}");
        }
    }

    #[test]
    fn a_hit_never_shows_the_digits() {
        let document = json!({"cards": {"4242 4242 4242 4242": {"n": "5555555555554444"}}});
        let hit = find_card_number(&document).unwrap();
        let shown = format!("{hit} {hit:?}");
        assert!(!shown.contains("4242"), "{shown}");
        assert_eq!(hit.path, "/cards (object key)");
        let nested = find_card_number(&json!({"cards": [{"n": "5555555555554444"}]})).unwrap();
        assert_eq!(
            nested.to_string(),
            "what looks like a full Mastercard card number at /cards/0/n"
        );
        assert_eq!(
            find_card_number(&json!("4242424242424242")).unwrap().to_string(),
            "what looks like a full Visa card number at the top level"
        );
    }

    #[test]
    fn numbers_that_are_not_cards_are_not_flagged() {
        let not_cards = [
            // Luhn-valid and of a card length, but no brand issues the prefix at that length.
            "1234567812345670",
            "9999999999999995",
            "0000000000000000",
            // A card number inside a longer digit run, or one changed digit.
            "14242424242424242",
            "42424242424242421",
            "4242424242424241",
            // Ids glued to letters or `_`, fractions, masked numbers, last four.
            "act_4242424242424242",
            "UC4242424242424242xyz",
            "cus_4242424242424242",
            "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "0.4242424242424242",
            "1.4242424242424242e10",
            "**** **** **** 4242",
            "424242******4242",
            "4242",
            // Meta, Google and Instagram ids, page ids, UUIDs, timestamps, micros.
            "23851234567890123",
            "120212345678901234",
            "act_120212345678901",
            "100064293847561",
            "17841400008460056",
            "1234567890",
            "12345678901",
            "123e4567-e89b-12d3-a456-426614174000",
            "550e8400-e29b-41d4-a716-446655440000",
            "2026-03-10T06:00:00.123456Z",
            "2026-03-10 2026-03-11 2026-03-12",
            "1700000000000",
            "123456789012345",
            "555-123-4567 555-987-6543",
            "+1 (555) 123-4567",
            "1 2 3 4 5 6 7 8 9 1 2 3 4 5 6 7",
        ];
        for text in not_cards {
            assert_eq!(find_card_number_in_text(text), None, "{text}");
            assert_eq!(find_card_number(&json!({ text: text })), None, "{text}");
        }
        let numbers = json!({
            "campaign_id": 23851234567890123_u64,
            "ad_id": 120212345678901234_u64,
            "page_id": 100064293847561_u64,
            "spend_micros": 123456789012345_u64,
            "ctr": 0.4242424242424242,
            "ratio": 4.242424242424242e-5,
            "big": 1e300,
        });
        assert_eq!(find_card_number(&numbers), None);
    }

    /// SplitMix64 (Steele, Lea, Flood 2014): a small deterministic generator, enough to make
    /// ids of a given shape reproducibly.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn digit(&mut self, from: u64) -> char {
            let digit = from + self.next() % (10 - from);
            char::from(b'0' + u8::try_from(digit).unwrap())
        }

        /// `prefix` followed by random digits up to `length` digits in all.
        fn id(&mut self, prefix: &str, length: usize) -> String {
            let mut id = prefix.to_owned();
            while id.len() < length {
                id.push(self.digit(0));
            }
            id
        }
    }

    #[test]
    fn a_hundred_thousand_platform_ids_are_never_taken_for_cards() {
        let mut random = SplitMix64(0x5EED_D14A_0001);
        let mut luhn_passes = 0;
        let total = 100_000;
        for i in 0..total {
            let id = match i % 8 {
                0 => random.id("2385", 17),
                1 => random.id("1202", 17),
                2 => random.id("1200", 18),
                3 => random.id("100", 15),
                4 => random.id("1784", 17),
                5 => {
                    let first = random.digit(1).to_string();
                    random.id(&first, 10)
                }
                6 => {
                    let first = random.digit(1).to_string();
                    random.id(&first, 11)
                }
                _ => random.id("1000", 15),
            };
            if luhn_valid(id.as_bytes()) {
                luhn_passes += 1;
            }
            let number: u64 = id.parse().unwrap();
            assert_eq!(find_card_number_in_text(&id), None, "{id}");
            assert_eq!(find_card_number(&json!({"id": id, "n": number})), None, "{id}");
        }
        // The test means something only if Luhn alone would have flagged about one in ten.
        assert!(
            (total * 8 / 100..total * 12 / 100).contains(&luhn_passes),
            "{luhn_passes} of {total} passed Luhn"
        );

        // Ad account ids are written `act_<digits>`; any digits at all, card-like ones included.
        let mut card_like = 0;
        for _ in 0..10_000 {
            let first = random.digit(1).to_string();
            let digits = random.id(&first, 16);
            if card_brand(digits.as_bytes()).is_some() {
                card_like += 1;
            }
            let account = format!("act_{digits}");
            assert_eq!(find_card_number_in_text(&account), None, "{account}");
        }
        assert!(card_like > 100, "only {card_like} card-like account ids were tried");

        // Lists of ids, however they are separated.
        let ids: Vec<String> = (0..50).map(|_| random.id("2385", 17)).collect();
        for separator in [" ", "-", ", ", "\n", "+"] {
            let list = ids.join(separator);
            assert_eq!(find_card_number_in_text(&list), None, "{list}");
        }
    }
}
