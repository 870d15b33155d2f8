//! Citizens: natural persons, keyed by the resident identity number (GB 11643-1999).

use super::{Field, Mask, Registry, Schema, check_resident_id, codes, ids};
use jichu_ingest::{FieldKind, MappedRow, Reason, Value};

pub static SCHEMA: Schema = Schema {
    registry: Registry::Citizens,
    key: Field::new("id", FieldKind::Identifier(check_resident_id), "resident identity number (18 characters)")
        .sensitive(),
    fields: &[
        Field::new("name", FieldKind::Name, "name (姓名)").required().personal().name(),
        Field::new(
            "gender",
            FieldKind::Code(&codes::GENDER),
            "gender (性别, GB/T 2261.1: 男 or 女; codes 1, 2 accepted); derived from the identity number when absent or unknown",
        )
        .personal(),
        Field::new("ethnicity", FieldKind::Code(&codes::ETHNICITY), "ethnicity (民族, GB 3304: 汉族…; codes 01–56 accepted)")
            .personal(),
        Field::new(
            "birth_date",
            FieldKind::Date,
            "birth date (出生日期); derived from the identity number when absent",
        )
        .personal(),
        Field::new("household_address", FieldKind::Text, "registered household address (户籍地址)")
            .personal()
            .text_in("address")
            .masked_as(Mask::Address),
        Field::new("address", FieldKind::Text, "current address (现住址)").personal().text().masked_as(Mask::Address),
        Field::new("phone", FieldKind::Text, "phone number").sensitive().masked_as(Mask::Phone),
        Field::new("location", FieldKind::Point, "location of the current address (WGS84)").sensitive(),
    ],
    row_check: Some(check_row),
    doc: "natural persons, keyed by the resident identity number",
};

const GENDER: usize = 1;
const BIRTH_DATE: usize = 3;

/// The identity number encodes birth date and gender: fill them when absent, and refuse a
/// row whose columns contradict its own number.
fn check_row(row: &mut MappedRow) -> Result<(), (Reason, String)> {
    let id = ids::parse_resident_id(&row.id).map_err(|e| (Reason::InvalidId, e.to_string()))?;
    match &row.values[BIRTH_DATE] {
        Some(Value::Date(d)) if *d != id.birth_date => {
            return Err((
                Reason::InvalidValue,
                format!("`birth_date` {d} contradicts the identity number ({})", id.birth_date),
            ));
        }
        Some(_) => {}
        None => row.values[BIRTH_DATE] = Some(Value::Date(id.birth_date)),
    }
    let gender = if id.male { "男" } else { "女" };
    match &row.values[GENDER] {
        Some(Value::Text(g)) if g == "未知的性别" || g == "未说明的性别" => {
            row.values[GENDER] = Some(Value::Text(gender.into()))
        }
        Some(Value::Text(g)) if g != gender => {
            return Err((Reason::InvalidValue, format!("`gender` {g} contradicts the identity number ({gender})")));
        }
        Some(_) => {}
        None => row.values[GENDER] = Some(Value::Text(gender.into())),
    }
    Ok(())
}
