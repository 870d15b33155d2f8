//! Public credit records about a citizen or an entity (GB/T 39440-39444).

use super::{Field, Registry, Relation, Schema, Target, check_subject, codes};
use jichu_ingest::FieldKind;

pub static SCHEMA: Schema = Schema {
    registry: Registry::Credit,
    key: Field::new("id", FieldKind::Text, "credit record number"),
    fields: &[
        Field::new(
            "subject_id",
            FieldKind::Identifier(check_subject),
            "the subject: an identity number or a credit code",
        )
        .required()
        .sensitive()
        .link(Target::Subject, Relation::Subject, Relation::CreditRecords),
        Field::new("category", FieldKind::Code(&codes::CREDIT_CATEGORY), "行政许可, 行政处罚, 守信激励 or 失信惩戒")
            .required(),
        Field::new("reason", FieldKind::Text, "the facts and grounds of the decision").text(),
        Field::new("decided_on", FieldKind::Date, "date of the decision"),
        Field::new("authority", FieldKind::Text, "the deciding authority").text(),
        Field::new("status", FieldKind::Code(&codes::CREDIT_STATUS), "publication status (已公示, 已撤销, 已修复…)"),
    ],
    row_check: None,
    doc: "public credit records about a citizen or an entity",
};
