//! Golden records: every source's contribution to a record is kept, and the record every
//! consumer reads — the golden record — is computed from them by declared survivorship rules
//! ([`rules`]) and stored, so that reads cost what they did before ([`survive`]).
//!
//! A record that only one source has ever supplied keeps no separate contribution: the record
//! is that contribution (its load names the source). The first time a second source (or a
//! steward) supplies it, both contributions are written to the `contributions` column family
//! and the record is flagged `sourced`; from then on every load recomputes it from them.

pub mod rules;
pub mod survive;

pub use rules::{Rule, Rules};
pub use survive::{
    Candidate, Cell, Choice, Chosen, Conflict, Contribution, Golden, Provenance, STEWARD, choose, conflicts,
    identity_fields, may_conflict, survive,
};
