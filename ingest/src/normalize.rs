//! Cell-level normalisation: full-width folding, dates, numbers, codes.

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use std::borrow::Cow;

/// Trims and folds full-width ASCII (`０-９`, `Ａ-Ｚ`, `（`…) and the ideographic space to
/// their half-width forms. Borrows when nothing changes, which is the common case.
pub fn normalize_text(s: &str) -> Cow<'_, str> {
    let trimmed = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{3000}' || c == '\u{feff}');
    // Full-width forms are U+FF01..U+FF5E (UTF-8 lead byte EF) and U+3000 (lead byte E3).
    if !trimmed.bytes().any(|b| b == 0xef || b == 0xe3) || !trimmed.chars().any(is_full_width) {
        return Cow::Borrowed(trimmed);
    }
    Cow::Owned(trimmed.chars().map(fold_char).collect())
}

fn is_full_width(c: char) -> bool {
    matches!(c, '\u{ff01}'..='\u{ff5e}' | '\u{3000}')
}

fn fold_char(c: char) -> char {
    match c {
        '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// A spec's date formats, parsed once (chrono re-parses a format string on every call).
#[derive(Clone, Debug)]
pub struct DateFormats {
    formats: Vec<(String, Vec<Item<'static>>)>,
}

impl DateFormats {
    pub fn new(formats: &[String]) -> DateFormats {
        let formats =
            formats.iter().map(|f| (f.clone(), StrftimeItems::new(f).parse_to_owned().unwrap_or_default())).collect();
        DateFormats { formats }
    }

    /// Parses a date with the first format that matches the whole cell. Years before 1800 or
    /// after 2200 are typos in practice, not registry dates, and are refused.
    pub fn parse(&self, s: &str) -> Option<NaiveDate> {
        self.formats
            .iter()
            .find_map(|(text, items)| {
                if text == "%Y-%m-%d" {
                    return iso_date(s);
                }
                let mut parsed = Parsed::new();
                chrono::format::parse(&mut parsed, s, items.iter()).ok()?;
                parsed.to_naive_date().ok()
            })
            .filter(|d| (1800..=2200).contains(&d.year()))
    }
}

/// The common `YYYY-MM-DD` without the general parser.
fn iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    }
    let n = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |a, d| d.is_ascii_digit().then(|| a * 10 + u32::from(d - b'0')))
    };
    NaiveDate::from_ymd_opt(n(0..4)? as i32, n(5..7)?, n(8..10)?)
}

/// Parses an exact decimal, tolerating thousands separators and a `万元`/`万` unit suffix.
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim_end_matches("万元").trim_end_matches('万').trim();
    let cleaned: Cow<'_, str> = if s.contains(',') { Cow::Owned(s.replace(',', "")) } else { Cow::Borrowed(s) };
    cleaned.parse::<Decimal>().ok()
}

/// Parses a finite, non-negative number.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    s.replace(',', "").parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// Maps a label or one of its aliases to the canonical label.
pub fn parse_code(s: &str, codes: &[(&'static str, &'static [&'static str])]) -> Option<&'static str> {
    codes
        .iter()
        .find(|(canonical, aliases)| *canonical == s || aliases.iter().any(|a| a.eq_ignore_ascii_case(s)))
        .map(|(canonical, _)| *canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats() -> Vec<String> {
        ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn folds_full_width_and_trims() {
        assert_eq!(normalize_text("  １１０１０５ｘ　"), "110105x");
        assert_eq!(normalize_text("厦门市思明区（中山路）"), "厦门市思明区(中山路)");
        assert!(matches!(normalize_text(" 张三 "), Cow::Borrowed("张三")));
    }

    #[test]
    fn dates_in_every_listed_shape() {
        let want = NaiveDate::from_ymd_opt(2020, 1, 2).unwrap();
        for s in ["2020-01-02", "2020/1/2", "20200102", "2020年1月2日", "2020年01月02日"] {
            assert_eq!(DateFormats::new(&formats()).parse(s), Some(want), "{s}");
        }
        for s in ["2020-02-30", "2020-13-01", "02/01/2020", "", "0020-01-01"] {
            assert_eq!(DateFormats::new(&formats()).parse(s), None, "{s}");
        }
    }

    #[test]
    fn decimals_keep_exact_value() {
        assert_eq!(parse_decimal("1,000.50万元").unwrap().to_string(), "1000.50");
        assert_eq!(parse_decimal("abc"), None);
    }
}
