//! Cell-level normalisation: full-width folding, names, dates, numbers, codes, identifiers.

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

/// Removes whitespace between two CJK characters (`王 磊`, `王　磊` → `王磊`): printed lists
/// pad two-character names to line up with three-character ones. Names in other scripts keep
/// their spaces (`Zhang Wei`), and `·` in transliterated names stays.
pub fn normalize_name(s: &str) -> Cow<'_, str> {
    let chars: Vec<char> = s.chars().collect();
    let drop = |i: usize| {
        if !chars[i].is_whitespace() {
            return false;
        }
        let before = chars[..i].iter().rev().find(|c| !c.is_whitespace());
        let after = chars[i + 1..].iter().find(|c| !c.is_whitespace());
        before.is_some_and(|c| is_han(*c)) && after.is_some_and(|c| is_han(*c))
    };
    if !(0..chars.len()).any(drop) {
        return Cow::Borrowed(s);
    }
    Cow::Owned((0..chars.len()).filter(|&i| !drop(i)).map(|i| chars[i]).collect())
}

/// Han ideographs (basic, extensions A–F, compatibility) and `〇`.
fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3007 | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xf900..=0xfaff | 0x20000..=0x3134f)
}

/// Cleans an identifier cell of what spreadsheets do to it: a leading apostrophe (their text
/// marker) is dropped; a number in scientific notation (`3.50203E+17`: the digits are lost)
/// is refused with a message that says so.
pub fn identifier_cell(s: &str) -> Result<&str, String> {
    let s = s.strip_prefix('\'').unwrap_or(s).trim();
    let (mantissa, exponent) = match s.split_once(['E', 'e']) {
        Some(parts) => parts,
        None => return Ok(s),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => digits(a) && (b.is_empty() || digits(b)),
        None => digits(mantissa),
    };
    let exponent_ok = digits(exponent.strip_prefix(['+', '-']).unwrap_or(exponent));
    if mantissa_ok && exponent_ok {
        return Err("is a number in scientific notation: a spreadsheet turned the identifier into a number \
             and its digits are lost; export the column as text"
            .into());
    }
    Ok(s)
}

/// Why a date cell did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateError {
    /// Not a real date in any of the formats.
    Invalid,
    /// A date-time whose time is not midnight: which day is meant is not clear.
    TimeOfDay,
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

    /// Parses a date cell: a date in one of the formats, or a date-time at midnight in one
    /// (what database exports write: `1985-08-11 00:00:00`).
    pub fn parse_cell(&self, s: &str) -> Result<NaiveDate, DateError> {
        if let Some(d) = self.parse(s) {
            return Ok(d);
        }
        let Some((date, time)) = s.split_once([' ', 'T']) else { return Err(DateError::Invalid) };
        let date = self.parse(date.trim()).ok_or(DateError::Invalid)?;
        match midnight(time.trim()) {
            Some(true) => Ok(date),
            Some(false) => Err(DateError::TimeOfDay),
            None => Err(DateError::Invalid),
        }
    }

    /// The year-9999 dates that extracts write for "no end" (`9999-12-31`), in any format.
    pub fn is_far_future(&self, s: &str) -> bool {
        self.formats.iter().any(|(_, items)| {
            let mut parsed = Parsed::new();
            chrono::format::parse(&mut parsed, s, items.iter()).is_ok() && parsed.year() == Some(9999)
        })
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

/// Whether a time of day (`00:00`, `0:00:00`, `00:00:00.000`) is midnight; None when it is
/// not a time.
fn midnight(t: &str) -> Option<bool> {
    let (hms, fraction) = t.split_once('.').unwrap_or((t, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<u32> = hms.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let valid = matches!(parts.as_slice(), [h, m] | [h, m, _] if *h < 24 && *m < 60)
        && parts.get(2).is_none_or(|s| *s < 61)
        && hms.split(':').all(|p| (1..=2).contains(&p.len()));
    valid.then(|| parts.iter().all(|p| *p == 0) && fraction.bytes().all(|b| b == b'0'))
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

/// The stored form of a code: canonical when the list knows it; as sent in an open list;
/// None (refused) when a closed list does not know it.
pub fn parse_code<'s>(s: &'s str, list: &crate::CodeList) -> Option<Cow<'s, str>> {
    match list.canonical(s) {
        Some(c) => Some(Cow::Borrowed(c)),
        None if list.closed => None,
        None => Some(Cow::Borrowed(s)),
    }
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
    fn midnight_date_times_are_dates_other_times_are_not() {
        let f = DateFormats::new(&formats());
        let want = NaiveDate::from_ymd_opt(1985, 8, 11).unwrap();
        for s in ["1985-08-11 00:00:00", "1985-08-11T00:00:00", "1985/8/11 0:00", "1985-08-11 00:00:00.000"] {
            assert_eq!(f.parse_cell(s), Ok(want), "{s}");
        }
        assert_eq!(f.parse_cell("1985-08-11 13:45:00"), Err(DateError::TimeOfDay));
        for s in ["1985-08-11 noon", "1985-08-11 24:00:00", "1985-08-32 00:00:00", "1985-08-11 00:00:00 x"] {
            assert_eq!(f.parse_cell(s), Err(DateError::Invalid), "{s}");
        }
        assert!(f.is_far_future("9999-12-31") && f.is_far_future("9999/12/31") && !f.is_far_future("2099-12-31"));
    }

    #[test]
    fn spaces_between_han_characters_of_a_name_go() {
        for (given, want) in [
            ("王 磊", "王磊"),
            ("王\u{3000}磊", "王磊"),
            ("王  磊", "王磊"),
            ("欧阳 娜 娜", "欧阳娜娜"),
            ("Zhang Wei", "Zhang Wei"),
            ("阿依古丽·买买提", "阿依古丽·买买提"),
            ("王 Lei", "王 Lei"),
            ("王磊", "王磊"),
        ] {
            assert_eq!(normalize_name(given), want, "{given}");
        }
    }

    #[test]
    fn identifier_cells_lose_the_apostrophe_and_refuse_scientific_notation() {
        assert_eq!(identifier_cell("'350203198001010011"), Ok("350203198001010011"));
        assert_eq!(identifier_cell("91350100M000100Y43"), Ok("91350100M000100Y43"));
        for s in ["3.50203E+17", "3.50203e17", "3E+17", "3.5020319800101E+17"] {
            assert!(identifier_cell(s).unwrap_err().contains("scientific notation"), "{s}");
        }
        // A credit code may hold an E among other characters: not a number.
        assert_eq!(identifier_cell("91350200E00000012X"), Ok("91350200E00000012X"));
    }

    #[test]
    fn decimals_keep_exact_value() {
        assert_eq!(parse_decimal("1,000.50万元").unwrap().to_string(), "1000.50");
        assert_eq!(parse_decimal("abc"), None);
    }
}
