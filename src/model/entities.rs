//! Legal entities: companies and organisations, keyed by the unified social credit code.

use super::{Field, Mask, Registry, Relation, Schema, Target, check_credit_code, check_resident_id, codes};
use jichu_ingest::FieldKind;

pub static SCHEMA: Schema = Schema {
    registry: Registry::Entities,
    key: Field::new("id", FieldKind::Identifier(check_credit_code), "unified social credit code (18 characters)"),
    fields: &[
        Field::new("name", FieldKind::Name, "registered name").required().name(),
        Field::new("legal_rep_name", FieldKind::Name, "legal representative's name").personal().name(),
        Field::new(
            "legal_rep_id",
            FieldKind::Identifier(check_resident_id),
            "legal representative's identity number (→ citizens)",
        )
        .sensitive()
        .link(Target::Citizens, Relation::LegalRep, Relation::Represents),
        Field::new("founded_on", FieldKind::Date, "date of establishment"),
        Field::new("registered_capital", FieldKind::Decimal, "registered capital in 万元 (exact decimal)"),
        Field::new("kind", FieldKind::Text, "enterprise type (企业类型)").keyword(),
        Field::new("business_scope", FieldKind::Text, "business scope").text(),
        Field::new("address", FieldKind::Text, "registered address").text().masked_as(Mask::Address),
        Field::new("location", FieldKind::Point, "location of the registered address (WGS84)"),
        Field::new(
            "status",
            FieldKind::Code(&codes::ENTITY_STATUS),
            "registration status (存续, 吊销, 注销, 撤销, 迁出…)",
        ),
    ],
    row_check: None,
    doc: "companies and organisations, keyed by the unified social credit code",
};
