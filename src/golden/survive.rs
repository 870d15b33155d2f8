//! Computing a golden record from its contributions.

use super::rules::{Rule, Rules};
use crate::model::{Record, Registry};
use jichu_ingest::Value;
use std::collections::BTreeMap;

/// The source of a data steward's decisions (a review item resolved): ranked first for the
/// fields it has a value for.
pub const STEWARD: &str = "steward";

/// One source's latest contribution to a record.
#[derive(Clone, Debug)]
pub struct Contribution {
    pub source: String,
    /// Newer contributions have larger values (the order their loads finished; the running
    /// load is the newest).
    pub recency: u64,
    /// Its values as the source sent them; `ended` once a snapshot of the source no longer
    /// holds it.
    pub record: Record,
}

/// Where a golden value came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Provenance {
    /// Index into the contributions.
    pub contribution: usize,
    pub chosen: Chosen,
}

/// What chose a golden value (named only when asked: a load computes many and shows none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Chosen {
    /// A steward's decision.
    Steward,
    /// The only contribution.
    SoleSource,
    /// The field's rule at this index.
    Rule(usize),
}

impl Provenance {
    /// The rule as `explain` shows it: `steward`, `sole_source`, or the rule's text.
    pub fn rule(&self, rules: &Rules, registry: Registry, field: usize) -> String {
        match self.chosen {
            Chosen::Steward => STEWARD.into(),
            Chosen::SoleSource => "sole_source".into(),
            Chosen::Rule(i) => rules.of(registry, field).get(i).map_or_else(String::new, Rule::name),
        }
    }
}

/// Sources that disagree on a value that identifies the record.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    pub field: usize,
    /// Each live source's value, newest first.
    pub values: Vec<(String, Value)>,
}

/// The record consumers see, with each field's provenance.
#[derive(Clone, Debug)]
pub struct Golden {
    pub values: Vec<Option<Value>>,
    pub extras: Vec<(String, String)>,
    /// No source contributes any more.
    pub ended: bool,
    /// A contribution carries a flagged key, or sources disagree on what identifies it.
    pub needs_review: bool,
    pub effective_from: Option<chrono::NaiveDate>,
    pub provenance: Vec<Option<Provenance>>,
    pub conflicts: Vec<Conflict>,
}

/// The fields on which a disagreement between sources is an identity conflict (a review
/// item), not an ordinary update.
pub fn identity_fields(registry: Registry) -> &'static [&'static str] {
    match registry {
        Registry::Citizens => &["name", "birth_date", "gender"],
        Registry::Entities => &["name", "legal_rep_id"],
        _ => &[],
    }
}

/// A value as compared for identity: text without whitespace between characters, full-width
/// forms folded.
fn identity_form(v: &Value) -> Value {
    match v {
        Value::Text(t) => {
            let folded = jichu_ingest::normalize_text(t);
            Value::Text(jichu_ingest::normalize_name(&folded).chars().filter(|c| !c.is_whitespace()).collect())
        }
        v => v.clone(),
    }
}

/// A field's value as the rules see it: there or not, and equal to another or not. Decoded
/// values, or their encodings (a load compares those, without decoding).
pub trait Cell: PartialEq {
    fn present(&self) -> bool;
}

impl Cell for Option<Value> {
    fn present(&self) -> bool {
        self.is_some()
    }
}

/// An encoded field: every value format writes an absent value as the one byte 0.
impl Cell for &[u8] {
    fn present(&self) -> bool {
        *self != [0u8]
    }
}

/// A contribution as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a, C> {
    pub source: &'a str,
    /// Newer contributions have larger values.
    pub recency: u64,
    pub ended: bool,
    /// One cell per field, in schema order (a missing one is absent).
    pub cells: &'a [C],
}

/// Which contribution each field's value comes from.
#[derive(Clone, Debug)]
pub struct Choice {
    pub provenance: Vec<Option<Provenance>>,
    /// The contributions the rules tried, newest first: the live ones, or all when none is.
    pub order: Vec<usize>,
    /// No source contributes any more.
    pub ended: bool,
    /// The steward's contribution, if it stands.
    pub steward: Option<usize>,
}

/// Applies `rules` to `candidates`: live contributions (all of them when none is live) are
/// tried newest first; a steward's value comes before every rule.
pub fn choose<C: Cell>(registry: Registry, rules: &Rules, candidates: &[Candidate<'_, C>]) -> Choice {
    let fields = registry.schema().fields.len();
    let live = |c: &Candidate<'_, C>| !c.ended && c.source != STEWARD;
    let any_live = candidates.iter().any(live);
    // Newest first (ties by source, so the answer does not depend on key order).
    let mut order: Vec<usize> = (0..candidates.len()).filter(|&i| live(&candidates[i]) || !any_live).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&candidates[a], &candidates[b]);
        y.recency.cmp(&x.recency).then_with(|| x.source.cmp(y.source))
    });
    let steward = candidates.iter().position(|c| c.source == STEWARD && !c.ended);
    let sole = order.len() == 1 && steward.is_none();
    let cell = |i: usize, field: usize| candidates[i].cells.get(field).filter(|c| c.present());
    let mut provenance = Vec::with_capacity(fields);
    for field in 0..fields {
        let chosen = match steward.filter(|&s| cell(s, field).is_some()) {
            Some(s) => Some(Provenance { contribution: s, chosen: Chosen::Steward }),
            None => rules.of(registry, field).iter().enumerate().find_map(|(r, rule)| {
                let pick = match rule {
                    Rule::Source(name) => {
                        order.iter().copied().find(|&i| candidates[i].source == *name && cell(i, field).is_some())
                    }
                    Rule::MostRecent => order.iter().copied().find(|&i| cell(i, field).is_some()),
                    Rule::MostFrequent => most_frequent(&order, |i| cell(i, field)),
                };
                let chosen = if sole { Chosen::SoleSource } else { Chosen::Rule(r) };
                pick.map(|i| Provenance { contribution: i, chosen })
            }),
        };
        provenance.push(chosen);
    }
    Choice { provenance, order, ended: !any_live, steward }
}

/// Whether live sources' values of an identity field differ at all (compared as they are; a
/// difference may still be only spacing or full-width forms, which [`conflicts`] tells).
pub fn may_conflict<C: Cell>(registry: Registry, candidates: &[Candidate<'_, C>], choice: &Choice) -> bool {
    let schema = registry.schema();
    identity_fields(registry).iter().filter_map(|name| schema.field_index(name)).any(|field| {
        let decided = choice.steward.is_some_and(|s| candidates[s].cells.get(field).is_some_and(Cell::present));
        let mut cells = choice
            .order
            .iter()
            .filter(|&&i| !candidates[i].ended)
            .filter_map(|&i| candidates[i].cells.get(field).filter(|c| c.present()));
        let first = cells.next();
        !decided && cells.any(|c| Some(c) != first)
    })
}

/// Computes the golden record from `contributions` by `rules` ([`choose`]), with its values.
pub fn survive(registry: Registry, rules: &Rules, contributions: &[Contribution]) -> Golden {
    let candidates: Vec<Candidate<'_, Option<Value>>> = contributions
        .iter()
        .map(|c| Candidate { source: &c.source, recency: c.recency, ended: c.record.ended, cells: &c.record.values })
        .collect();
    let choice = choose(registry, rules, &candidates);
    let Choice { provenance, order, ended, steward } = choice;
    let values = provenance
        .iter()
        .enumerate()
        .map(|(field, p)| p.and_then(|p| contributions[p.contribution].record.values.get(field).cloned().flatten()))
        .collect();
    // Extras: every candidate's, a newer value for the same name replacing an older one.
    let mut extras = BTreeMap::new();
    for &i in order.iter().rev() {
        for (k, v) in &contributions[i].record.extras {
            extras.insert(k.clone(), v.clone());
        }
    }
    let conflicts = conflicts(registry, contributions, &order, steward);
    let flagged = order.iter().any(|&i| contributions[i].record.needs_review);
    Golden {
        values,
        extras: extras.into_iter().collect(),
        ended,
        needs_review: flagged || !conflicts.is_empty(),
        effective_from: order.iter().find_map(|&i| contributions[i].record.effective_from),
        provenance,
        conflicts,
    }
}

/// The candidate holding the value most candidates share; ties to the newest.
fn most_frequent<'a, C: PartialEq + 'a>(order: &[usize], value: impl Fn(usize) -> Option<&'a C>) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None; // (count, candidate)
    for &i in order {
        let Some(v) = value(i) else { continue };
        let count = order.iter().filter(|&&j| value(j) == Some(v)).count();
        // Candidates come newest first: an equal count found later is older and loses.
        if best.is_none_or(|(c, _)| count > c) {
            best = Some((count, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Identity fields on which live sources disagree, unless a steward has decided them
/// (`order`: the contributions tried, newest first, as [`choose`] gives them).
pub fn conflicts(
    registry: Registry,
    contributions: &[Contribution],
    order: &[usize],
    steward: Option<usize>,
) -> Vec<Conflict> {
    let schema = registry.schema();
    let mut found = Vec::new();
    for name in identity_fields(registry) {
        let Some(field) = schema.field_index(name) else { continue };
        if steward.is_some_and(|s| contributions[s].record.values.get(field).is_some_and(Option::is_some)) {
            continue;
        }
        let values = || {
            order.iter().filter(|&&i| !contributions[i].record.ended).filter_map(move |&i| {
                let v = contributions[i].record.values.get(field)?.as_ref()?;
                Some((i, v))
            })
        };
        // Equal values are the same identity without normalising them (the common case), and
        // nothing is copied unless they differ.
        let Some((_, first)) = values().next() else { continue };
        if values().any(|(_, v)| v != first && identity_form(v) != identity_form(first)) {
            let values = values().map(|(i, v)| (contributions[i].source.clone(), v.clone())).collect();
            found.push(Conflict { field, values });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn citizen(source: &str, recency: u64, name: &str, phone: Option<&str>) -> Contribution {
        let schema = Registry::Citizens.schema();
        let mut values = vec![None; schema.fields.len()];
        values[schema.field_index("name").unwrap()] = Some(Value::Text(name.into()));
        values[schema.field_index("phone").unwrap()] = phone.map(|p| Value::Text(p.into()));
        Contribution {
            source: source.into(),
            recency,
            record: Record {
                registry: Registry::Citizens,
                id: "x".into(),
                values,
                extras: vec![],
                load_id: recency as u32,
                ended: false,
                needs_review: false,
                effective_from: None,
                sourced: true,
                sources: vec![],
            },
        }
    }

    fn field(name: &str) -> usize {
        Registry::Citizens.schema().field_index(name).unwrap()
    }

    fn text(g: &Golden, name: &str) -> Option<String> {
        g.values[field(name)].as_ref().and_then(|v| v.as_text()).map(str::to_string)
    }

    #[test]
    fn the_authority_wins_its_fields_and_the_newest_the_others() {
        let rules = Rules::parse("[citizens]\nname = [\"source:公安\", \"most_recent\"]\n").unwrap();
        let c = [citizen("公安", 1, "王磊", Some("111")), citizen("人社", 2, "王 磊磊", Some("222"))];
        let g = survive(Registry::Citizens, &rules, &c);
        assert_eq!(text(&g, "name").as_deref(), Some("王磊"));
        assert_eq!(text(&g, "phone").as_deref(), Some("222"));
        let rule = |f: &str| g.provenance[field(f)].unwrap().rule(&rules, Registry::Citizens, field(f));
        assert_eq!(g.provenance[field("name")].unwrap().contribution, 0);
        assert_eq!(rule("name"), "source:公安");
        assert_eq!(rule("phone"), "most_recent");
        assert_eq!(g.conflicts.len(), 1, "the names differ");
        assert!(g.needs_review);
    }

    #[test]
    fn spacing_and_full_width_are_not_conflicts() {
        let c = [citizen("公安", 1, "王磊", None), citizen("人社", 2, "王　磊", Some("1"))];
        let g = survive(Registry::Citizens, &Rules::default(), &c);
        assert!(g.conflicts.is_empty());
        assert!(!g.needs_review);
    }

    #[test]
    fn an_empty_value_falls_through_to_the_next_rule() {
        let rules = Rules::parse("[citizens]\nphone = [\"source:公安\", \"most_recent\"]\n").unwrap();
        let c = [citizen("公安", 3, "王磊", None), citizen("人社", 2, "王磊", Some("222"))];
        let g = survive(Registry::Citizens, &rules, &c);
        assert_eq!(text(&g, "phone").as_deref(), Some("222"));
    }

    #[test]
    fn most_frequent_takes_the_majority_and_ties_go_to_the_newest() {
        let rules = Rules::parse("[citizens]\nphone = [\"most_frequent\"]\n").unwrap();
        let c = [
            citizen("a", 1, "王磊", Some("1")),
            citizen("b", 2, "王磊", Some("1")),
            citizen("c", 3, "王磊", Some("3")),
        ];
        assert_eq!(text(&survive(Registry::Citizens, &rules, &c), "phone").as_deref(), Some("1"));
        let c = [citizen("a", 1, "王磊", Some("1")), citizen("c", 3, "王磊", Some("3"))];
        assert_eq!(text(&survive(Registry::Citizens, &rules, &c), "phone").as_deref(), Some("3"));
    }

    #[test]
    fn ended_contributions_drop_out_until_none_is_left() {
        let mut c = [citizen("公安", 1, "王磊", Some("111")), citizen("人社", 2, "王磊", Some("222"))];
        c[1].record.ended = true;
        let g = survive(Registry::Citizens, &Rules::default(), &c);
        assert_eq!(text(&g, "phone").as_deref(), Some("111"));
        assert!(!g.ended);
        c[0].record.ended = true;
        let g = survive(Registry::Citizens, &Rules::default(), &c);
        assert!(g.ended);
        assert_eq!(text(&g, "phone").as_deref(), Some("222"), "an ended record keeps its last values");
    }

    #[test]
    fn a_steward_decides_a_conflict() {
        let rules = Rules::parse("[citizens]\nname = [\"source:公安\"]\n").unwrap();
        let mut steward = citizen(STEWARD, 9, "王蕾", None);
        steward.record.values = vec![None; steward.record.values.len()];
        steward.record.values[field("name")] = Some(Value::Text("王蕾".into()));
        let c = [citizen("公安", 1, "王磊", Some("1")), citizen("人社", 2, "王蕾", Some("2")), steward];
        let g = survive(Registry::Citizens, &rules, &c);
        assert_eq!(text(&g, "name").as_deref(), Some("王蕾"));
        assert_eq!(g.provenance[field("name")].unwrap().rule(&rules, Registry::Citizens, field("name")), STEWARD);
        assert!(g.conflicts.is_empty() && !g.needs_review);
        assert_eq!(text(&g, "phone").as_deref(), Some("2"));
    }
}
