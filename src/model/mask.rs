//! De-identified forms of field values, one per kind of field: what a department granted a
//! field as `masked` sees. Defined once here, applied wherever a record leaves the service.

use jichu_ingest::Value;
use serde_json::{Value as Json, json};

/// How a field's value is masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// Identity numbers, credit codes: the first 6 and last 4 characters (`350203********123X`).
    Identifier,
    /// Phone numbers: the first 3 and last 4 digits (`138****5678`).
    Phone,
    /// Names: the first and last character (`林*英`; two characters: `林*`).
    Name,
    /// Addresses: up to the road (`厦门市思明区莲前西路`).
    Address,
    /// Dates: the year.
    Year,
    /// Locations: rounded to 0.01° (about a kilometre).
    Location,
    /// Anything else: withheld (`***`).
    Withheld,
}

const WITHHELD: &str = "***";

fn keep_ends(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len().max(1));
    }
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// A name's first and last character, the middle starred.
pub fn mask_name(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "*".into(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

/// An address up to its road: through the first road word (`路`, `大道`, `街`, `道`, `巷`,
/// `弄`); without one, through the last district-level word (`区`, `县`, `市`).
pub fn mask_address(s: &str) -> String {
    for road in ["大道", "路", "街", "道", "巷", "弄"] {
        if let Some(i) = s.find(road) {
            return s[..i + road.len()].to_string();
        }
    }
    match s.rfind(['区', '县', '市']) {
        Some(i) => s[..i + '区'.len_utf8()].to_string(),
        None => WITHHELD.into(),
    }
}

impl Mask {
    /// The masked form of a text (identifiers, names, addresses, phones).
    pub fn text(self, s: &str) -> String {
        match self {
            Mask::Identifier => keep_ends(s, 6, 4),
            Mask::Phone => keep_ends(s, 3, 4),
            Mask::Name => mask_name(s),
            Mask::Address => mask_address(s),
            Mask::Year | Mask::Location | Mask::Withheld => WITHHELD.into(),
        }
    }

    /// The masked form of a value, as JSON.
    pub fn value(self, v: &Value) -> Json {
        use chrono::Datelike;
        match (self, v) {
            (_, Value::Date(_)) if v.is_open_end() => Json::Null,
            (Mask::Year, Value::Date(d)) => json!(d.year().to_string()),
            (Mask::Location, Value::Point(p)) => {
                json!({"lon": (p.x() * 100.0).round() / 100.0, "lat": (p.y() * 100.0).round() / 100.0})
            }
            (m, Value::Text(s)) => json!(m.text(s)),
            _ => json!(WITHHELD),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_forms_are_as_specified() {
        assert_eq!(Mask::Identifier.text("35020319850811222X"), "350203********222X");
        assert_eq!(Mask::Identifier.text("91350100M000100Y43"), "913501********0Y43");
        assert_eq!(Mask::Phone.text("13812345678"), "138****5678");
        assert_eq!(Mask::Name.text("林秀英"), "林*英");
        assert_eq!(Mask::Name.text("王磊"), "王*");
        assert_eq!(Mask::Name.text("欧阳娜娜"), "欧**娜");
        assert_eq!(Mask::Address.text("厦门市思明区莲前西路2号"), "厦门市思明区莲前西路");
        assert_eq!(Mask::Address.text("福建省厦门市思明区湖滨南路88号1201室"), "福建省厦门市思明区湖滨南路");
        assert_eq!(Mask::Address.text("厦门市海沧区海沧大道1号"), "厦门市海沧区海沧大道");
        assert_eq!(Mask::Address.text("厦门市思明区"), "厦门市思明区");
        let born = Value::Date(chrono::NaiveDate::from_ymd_opt(1985, 8, 11).unwrap());
        assert_eq!(Mask::Year.value(&born), json!("1985"));
        let p = Value::Point(geo::Point::new(118.08764, 24.45321));
        assert_eq!(Mask::Location.value(&p), json!({"lon": 118.09, "lat": 24.45}));
        assert_eq!(Mask::Withheld.value(&Value::Text("男".into())), json!("***"));
    }
}
