//! Numbers as Python has them: integers of any size (kept as their decimal text when they
//! do not fit 64 bits) and floats written the way Python's `repr`/`str` writes them.

use serde_json::{Number, Value};

/// An unsigned integer of any size, in base 10⁹ limbs (least significant first).
#[derive(Debug, Clone, Default)]
pub(crate) struct BigUint(Vec<u32>);

const LIMB: u64 = 1_000_000_000;

impl BigUint {
    /// `self * m + a`.
    pub(crate) fn mul_add(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = (v % LIMB) as u32;
            carry = v / LIMB;
        }
        while carry > 0 {
            self.0.push((carry % LIMB) as u32);
            carry /= LIMB;
        }
    }

    /// `self + other`.
    pub(crate) fn add(&mut self, other: &BigUint) {
        let mut carry = 0u64;
        for i in 0..self.0.len().max(other.0.len()) {
            if i == self.0.len() {
                self.0.push(0);
            }
            let v = u64::from(self.0[i]) + u64::from(other.0.get(i).copied().unwrap_or(0)) + carry;
            self.0[i] = (v % LIMB) as u32;
            carry = v / LIMB;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    /// Reads `digits` in `radix` (2 to 16); `None` when a character is not a digit or there
    /// is none.
    pub(crate) fn parse(digits: &str, radix: u32) -> Option<Self> {
        if digits.is_empty() {
            return None;
        }
        let mut n = BigUint::default();
        for c in digits.chars() {
            n.mul_add(radix, c.to_digit(radix)?);
        }
        Some(n)
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|l| *l == 0)
    }

    fn to_u64(&self) -> Option<u64> {
        let mut v: u64 = 0;
        for limb in self.0.iter().rev() {
            v = v.checked_mul(LIMB)?.checked_add(u64::from(*limb))?;
        }
        Some(v)
    }

    fn decimal(&self) -> String {
        let mut limbs = self.0.iter().rev().skip_while(|l| **l == 0);
        let Some(first) = limbs.next() else {
            return "0".to_owned();
        };
        let mut s = first.to_string();
        for l in limbs {
            s.push_str(&format!("{l:09}"));
        }
        s
    }
}

/// A Python integer as a value: a JSON number when it fits 64 bits, else its decimal text
/// (serde_json numbers cannot hold more; the text is what Python's `str()` gives).
pub(crate) fn int_value(negative: bool, magnitude: &BigUint) -> Value {
    if magnitude.is_zero() {
        return Value::Number(0u64.into());
    }
    match magnitude.to_u64() {
        Some(v) if !negative => Value::Number(v.into()),
        Some(v) if v <= 1 << 63 => Value::Number((v.wrapping_neg() as i64).into()),
        _ => Value::String(format!(
            "{}{}",
            if negative { "-" } else { "" },
            magnitude.decimal()
        )),
    }
}

/// A Python float as a value: a JSON number when finite, else Python's text for it (`inf`,
/// `-inf`, `nan`), as JSON numbers cannot be infinite or NaN.
pub(crate) fn float_value(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None => Value::String(float_repr(f)),
    }
}

/// Python's `repr(float)` (which `str()` and `json.dumps` use): the shortest digits that read
/// back the same, in fixed notation when the decimal exponent is from -4 to 15 (`1000.0`,
/// `0.0001`), else in scientific notation with a signed exponent of at least two digits
/// (`1e-05`, `1.5e+20`, `1e+16`); `inf`, `-inf` and `nan` for the others.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` writes the shortest round-trip digits, as Python's repr does.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;
    let decpt = exp + 1;
    let body = if !(-4 < decpt && decpt <= 16) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let e = decpt - 1;
        format!(
            "{first}{frac}e{}{:02}",
            if e < 0 { '-' } else { '+' },
            e.unsigned_abs()
        )
    } else if decpt <= 0 {
        format!("0.{}{digits}", "0".repeat(decpt.unsigned_abs() as usize))
    } else if decpt >= n {
        format!("{digits}{}.0", "0".repeat((decpt - n) as usize))
    } else {
        let (int, frac) = digits.split_at(decpt as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

/// Python's `float(text)`: surrounding whitespace allowed, `inf`/`infinity`/`nan` in any case
/// with an optional sign, else a decimal literal (too large → infinity). Underscores are not
/// handled here: the YAML reader removes them first.
pub(crate) fn python_float(text: &str) -> Option<f64> {
    let t = text.trim_matches(super::py_space);
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    let lower = unsigned.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return t.parse().ok();
    }
    // Rust's parser takes the same decimal literals (digits, one dot, an exponent) and
    // rounds correctly; it also takes words Python does not (checked above).
    if !unsigned
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        || !unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
    {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn floats_print_like_python() {
        // Read off Python 3.11 `repr(float)`.
        for (f, text) in [
            (1000.0, "1000.0"),
            (1e-5, "1e-05"),
            (1.5e20, "1.5e+20"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.1, "0.1"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (2.5e-5, "2.5e-05"),
            (123_456_789.123_456_79, "123456789.12345679"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1e100, "1e+100"),
            (-1.5, "-1.5"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(float_repr(f), text, "{f:?}");
        }
    }

    #[test]
    fn big_ints_keep_their_digits() {
        let big = |s: &str, radix| BigUint::parse(s, radix).unwrap();
        assert_eq!(
            int_value(false, &big("12345678901234567890", 10)),
            Value::Number(12345678901234567890u64.into())
        );
        assert_eq!(
            int_value(true, &big("9223372036854775808", 10)),
            Value::Number(i64::MIN.into())
        );
        assert_eq!(
            int_value(true, &big("12345678901234567890", 10)),
            Value::String("-12345678901234567890".into())
        );
        assert_eq!(
            int_value(false, &big("123456789abcdef0123", 16)),
            Value::String("5373003642731685151011".into())
        );
        assert_eq!(int_value(true, &big("0", 10)), Value::Number(0u64.into()));
        assert_eq!(python_float(" 1e3 "), Some(1000.0));
        assert_eq!(python_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(python_float("infinit"), None);
        assert_eq!(python_float("1_0"), None);
    }
}
