//! Range checks for numeric arguments, at parse time: a zero batch size or bucket count, a
//! negative or non-finite rate, is refused by clap with the argument's name and the accepted
//! range, before any work (they used to panic deep in training or classification).

use clap::builder::RangedU64ValueParser;

/// Largest count any argument takes: beyond it, a typo rather than a setting.
pub const MAX_COUNT: u64 = 1 << 24;

/// A count in `min..=max`.
pub fn count(min: u64, max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(min..=max)
}

/// A count in `min..=max`, as u32.
pub fn count_u32(min: u64, max: u64) -> RangedU64ValueParser<u32> {
    RangedU64ValueParser::new().range(min..=max)
}

fn float<T: std::str::FromStr + Into<f64> + Copy>(s: &str, ok: impl Fn(f64) -> bool, what: &str) -> Result<T, String> {
    match s.trim().parse::<T>() {
        Ok(v) if v.into().is_finite() && ok(v.into()) => Ok(v),
        Ok(_) => Err(format!("{s:?} is not {what}")),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// A finite number above 0.
pub fn positive(s: &str) -> Result<f64, String> {
    float(s, |v| v > 0.0, "a finite number above 0")
}

/// A finite number, 0 or more.
pub fn non_negative(s: &str) -> Result<f64, String> {
    float(s, |v| v >= 0.0, "a finite number, 0 or more")
}

/// A finite f32, 0 or more.
pub fn non_negative_f32(s: &str) -> Result<f32, String> {
    float(s, |v| v >= 0.0, "a finite number, 0 or more")
}

/// A finite f32 above 0, at most 10,000 (a model refuses a larger embedding scale).
pub fn scale(s: &str) -> Result<f32, String> {
    float(s, |v| v > 0.0 && v <= 1e4, "a finite number above 0 and at most 10000")
}

/// A probability threshold.
pub fn unit(s: &str) -> Result<f32, String> {
    float(s, |v| (0.0..=1.0).contains(&v), "a number between 0 and 1")
}
