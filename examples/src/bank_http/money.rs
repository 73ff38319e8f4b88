//! Money on the wire: decimal amounts (`1000.0`, `12.5`) kept as exact integer cents.
//!
//! Clients of a bank API send amounts as JSON numbers, which serde reads as IEEE
//! doubles. An amount is read back from the *shortest* decimal text of that double
//! (what the client wrote, for up to 15 significant digits), then parsed exactly:
//! no binary rounding ever reaches a balance. Amounts are limited to
//! [`MAX_BALANCE`] cents (15 digits), so every accepted amount and every balance
//! converts back to a double and prints exactly as well.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::bank::MAX_BALANCE;

/// An amount read from a request: at most two decimal places, from 0 to
/// [`MAX_BALANCE`] cents. Deserializes from a JSON number (`500`, `500.25`) or a
/// decimal string (query parameters: `min_balance=100.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub u64);

/// A number of cents written as a decimal JSON number (`1300.0`, `0.29`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal(pub u64);

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Exact below 2^53 cents; the shortest text of the quotient is the decimal.
        #[allow(clippy::cast_precision_loss)]
        let value = self.0 as f64 / 100.0;
        serializer.serialize_f64(value)
    }
}

/// Why a text is not an [`Amount`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// A minus sign.
    #[error("an amount must not be negative, got {0}")]
    Negative(String),
    /// NaN or an infinity.
    #[error("an amount must be a finite number, got {0}")]
    NotFinite(String),
    /// More than two digits after the point.
    #[error("an amount has at most two decimal places (cents), got {0}")]
    TooManyPlaces(String),
    /// Above the largest balance.
    #[error("an amount must be at most {max}, got {0}", max = Decimal(MAX_BALANCE))]
    OutOfRange(String),
    /// Not digits with an optional point.
    #[error("an amount must be a decimal number such as 1000.0 or 12.5, got {0:?}")]
    NotADecimal(String),
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Parses a decimal text (`"1000"`, `"1000.5"`, `"0.29"`) into cents, exactly.
pub fn parse_cents(text: &str) -> Result<u64, AmountError> {
    let owned = || text.to_owned();
    if text.starts_with('-') {
        return Err(AmountError::Negative(owned()));
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("nan") || lower.contains("inf") {
        return Err(AmountError::NotFinite(owned()));
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || (text.ends_with('.')) {
        return Err(AmountError::NotADecimal(owned()));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 2 {
        return Err(AmountError::TooManyPlaces(owned()));
    }
    let whole: u64 = whole.trim_start_matches('0').parse::<u64>().or_else(|_| {
        if whole.bytes().all(|b| b == b'0') {
            Ok(0)
        } else {
            Err(AmountError::OutOfRange(owned()))
        }
    })?;
    let cents_part: u64 = format!("{fraction:0<2}")
        .parse()
        .map_err(|_| AmountError::NotADecimal(owned()))?;
    whole
        .checked_mul(100)
        .and_then(|c| c.checked_add(cents_part))
        .filter(|&cents| cents <= MAX_BALANCE)
        .ok_or_else(|| AmountError::OutOfRange(owned()))
}

/// Cents from a double, through its shortest decimal text (see the module docs).
pub fn cents_of_f64(value: f64) -> Result<u64, AmountError> {
    if !value.is_finite() {
        return Err(AmountError::NotFinite(value.to_string()));
    }
    if value.is_sign_negative() && value != 0.0 {
        return Err(AmountError::Negative(value.to_string()));
    }
    if value >= 1e13 {
        return Err(AmountError::OutOfRange(format!("{value:e}")));
    }
    parse_cents(&value.abs().to_string())
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AmountVisitor)
    }
}

struct AmountVisitor;

impl Visitor<'_> for AmountVisitor {
    type Value = Amount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount: a decimal number with at most two places, such as 1000.0")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
        parse_cents(&v.to_string()).map(Amount).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
        parse_cents(&v.to_string()).map(Amount).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
        cents_of_f64(v).map(Amount).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
        parse_cents(v.trim()).map(Amount).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_exact_cents() {
        for (text, cents) in [
            ("0", 0),
            ("1000", 100_000),
            ("1000.0", 100_000),
            ("500.5", 50_050),
            ("0.29", 29),
            ("0.10", 10),
            ("007.50", 750),
            ("9999999999999.99", MAX_BALANCE),
        ] {
            assert_eq!(parse_cents(text), Ok(cents), "{text}");
        }
        // Doubles whose binary value is not the decimal still give the decimal.
        for (value, cents) in [(0.29, 29), (1000.0, 100_000), (1.15, 115), (4.35, 435)] {
            assert_eq!(cents_of_f64(value), Ok(cents), "{value}");
        }
    }

    #[test]
    fn bad_amounts_say_what_is_wrong() {
        use AmountError::*;
        let err = |t: &str| parse_cents(t).unwrap_err();
        assert!(matches!(err("-5"), Negative(_)));
        assert!(matches!(err("1.005"), TooManyPlaces(_)));
        assert!(matches!(err("10000000000000"), OutOfRange(_)));
        assert!(matches!(err("99999999999999999999999"), OutOfRange(_)));
        assert!(matches!(err("NaN"), NotFinite(_)));
        for bad in ["", ".5", "5.", "1e3", "1,5", " 1", "+1", "0x10"] {
            assert!(matches!(err(bad), NotADecimal(_)), "{bad:?}");
        }
        assert!(matches!(cents_of_f64(f64::NAN), Err(NotFinite(_))));
        assert!(matches!(cents_of_f64(f64::INFINITY), Err(NotFinite(_))));
        assert!(matches!(cents_of_f64(-0.5), Err(Negative(_))));
        assert!(matches!(cents_of_f64(1e300), Err(OutOfRange(_))));
        assert_eq!(
            TooManyPlaces("1.005".into()).to_string(),
            "an amount has at most two decimal places (cents), got 1.005"
        );
        assert_eq!(
            OutOfRange("1e300".into()).to_string(),
            "an amount must be at most 9999999999999.99, got 1e300"
        );
    }

    #[test]
    fn json_numbers_and_strings_deserialize() {
        let amount = |json: &str| serde_json::from_str::<Amount>(json);
        assert_eq!(amount("1000.0").unwrap(), Amount(100_000));
        assert_eq!(amount("12").unwrap(), Amount(1_200));
        assert_eq!(amount("\"12.5\"").unwrap(), Amount(1_250));
        let message = amount("-1").unwrap_err().to_string();
        assert!(message.contains("must not be negative"), "{message}");
        assert!(amount("true").is_err());
    }

    #[test]
    fn cents_serialize_as_decimal_numbers() {
        let json = |cents| serde_json::to_string(&Decimal(cents)).unwrap();
        assert_eq!(json(130_000), "1300.0");
        assert_eq!(json(29), "0.29");
        assert_eq!(json(MAX_BALANCE), "9999999999999.99");
        assert_eq!(Decimal(5).to_string(), "0.05");
    }
}
