//! The registries' identifiers and their check characters (`../shared/STANDARDS.md`):
//! the resident identity number (GB 11643-1999) and the unified social credit code
//! (GB 32100-2015, with its embedded GB 11714 organisation code).

use chrono::NaiveDate;

/// Why an identifier is not valid. The messages are shown to users as they are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("has {0} characters; expected 18 (or an old 15-digit number)")]
    Length(usize),
    #[error("has {ch:?} at position {pos}, which is not allowed there")]
    Char { pos: usize, ch: char },
    #[error("holds birth date {0}, which is not a real date")]
    BirthDate(String),
    #[error("holds birth date {0}, which is in the future")]
    FutureBirth(NaiveDate),
    #[error("starts with {0}, which is not a province code (GB/T 2260)")]
    Province(String),
    #[error("has check character {found}; expected {expected}")]
    Check { found: char, expected: char },
    #[error("has {0} characters; an organisation code has 9 (8 and a check character)")]
    OrgLength(usize),
    #[error("has organisation-code check character {found}; expected {expected}")]
    OrgCheck { found: char, expected: char },
    #[error("is neither a resident identity number nor a unified social credit code")]
    NotASubject,
}

/// Removes spaces, folds full-width characters and upper-cases, as extracts need.
fn canonical(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        return std::borrow::Cow::Borrowed(s); // the common case: already canonical
    }
    std::borrow::Cow::Owned(
        jichu_ingest::normalize_text(s)
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    )
}

/// `YYYYMMDD` digits as a calendar date.
fn ymd(digits: &[u8]) -> Option<NaiveDate> {
    let n = |r: std::ops::Range<usize>| {
        digits[r].iter().try_fold(0u32, |acc, d| d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0')))
    };
    NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?)
}

// ---- GB 11643-1999 resident identity number ----

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";
/// GB/T 2260 province-level codes (first two digits), with 71/81/82 (Taiwan, Hong Kong,
/// Macao) and 83 (residence permits of Taiwan residents). Also what tells an all-digit
/// credit code such as `91350203…` from an identity number.
pub const PROVINCES: &[u32] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63,
    64, 65, 71, 81, 82, 83,
];

/// A valid resident identity number and what it encodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResidentId {
    /// The canonical 18-character form (15-digit numbers are upgraded).
    pub id: String,
    pub birth_date: NaiveDate,
    /// The sequence number is odd for men, even for women.
    pub male: bool,
}

/// The ISO 7064 MOD 11-2 check character of the first 17 digits.
pub fn resident_check_char(first17: &[u8]) -> char {
    let sum: u32 = first17.iter().zip(ID_WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    ID_CHECK[(sum % 11) as usize] as char
}

/// Normalises and validates a resident identity number.
pub fn parse_resident_id(s: &str) -> Result<ResidentId, IdError> {
    let s = canonical(s);
    let bytes = s.as_bytes();
    let upgraded;
    let (body, check) = match bytes.len() {
        15 => {
            if let Some(pos) = bytes.iter().position(|b| !b.is_ascii_digit()) {
                return Err(IdError::Char { pos: pos + 1, ch: s[pos..].chars().next().unwrap_or('?') });
            }
            upgraded = [&bytes[..6], b"19", &bytes[6..]].concat();
            (&upgraded[..], None)
        }
        18 => (&bytes[..17], Some(bytes[17])),
        _ => return Err(IdError::Length(s.chars().count())),
    };
    if let Some(pos) = body.iter().position(|b| !b.is_ascii_digit()) {
        return Err(IdError::Char { pos: pos + 1, ch: s[pos..].chars().next().unwrap_or('?') });
    }
    let province = u32::from(body[0] - b'0') * 10 + u32::from(body[1] - b'0');
    if !PROVINCES.contains(&province) {
        return Err(IdError::Province(String::from_utf8_lossy(&body[..2]).into_owned()));
    }
    let birth_date =
        ymd(&body[6..14]).ok_or_else(|| IdError::BirthDate(String::from_utf8_lossy(&body[6..14]).into_owned()))?;
    if birth_date > chrono::Utc::now().date_naive() {
        return Err(IdError::FutureBirth(birth_date));
    }
    let expected = resident_check_char(body);
    if let Some(found) = check
        && found as char != expected
    {
        return Err(IdError::Check { found: found as char, expected });
    }
    let mut id = String::from_utf8(body.to_vec()).unwrap_or_default();
    id.push(expected);
    Ok(ResidentId { id, birth_date, male: (body[16] - b'0') % 2 == 1 })
}

// ---- GB 32100-2015 unified social credit code ----

const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// A well-formed unified social credit code: canonical, in the code's alphabet, with digits
/// where the region code is. Its check characters may still fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditCode {
    pub id: String,
    /// Why a check character fails; None for a valid code.
    pub check_failure: Option<IdError>,
}

impl CreditCode {
    /// Fails its check and is registered in Fujian (positions 3–4 `35`): a mistyped code, or
    /// one of the early Fujian pilot codes, which are legal although they fail the check.
    pub fn may_be_fujian_pilot(&self) -> bool {
        self.check_failure.is_some() && &self.id[2..4] == "35"
    }
}

fn uscc_value(b: u8) -> Option<u32> {
    USCC_ALPHABET.iter().position(|&c| c == b).map(|p| p as u32)
}

/// The check character of the first 17 characters (all in the code's alphabet).
pub fn credit_check_char(first17: &[u8]) -> char {
    let sum: u32 = first17.iter().zip(USCC_WEIGHTS).map(|(&b, w)| uscc_value(b).unwrap_or(0) * w).sum();
    USCC_ALPHABET[((31 - sum % 31) % 31) as usize] as char
}

/// The GB 11714 check character of an organisation code's first 8 characters.
pub fn org_check_char(first8: &[u8]) -> char {
    let value = |b: u8| if b.is_ascii_digit() { u32::from(b - b'0') } else { u32::from(b - b'A') + 10 };
    let sum: u32 = first8.iter().zip(ORG_WEIGHTS).map(|(&b, w)| value(b) * w).sum();
    match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        n => char::from(b'0' + n as u8),
    }
}

/// Normalises and validates a GB 11714 organisation code: 8 characters and a check character
/// (written with or without the hyphen before it: `12345678-9`).
pub fn parse_organisation_code(s: &str) -> Result<String, IdError> {
    let s: String = canonical(s).chars().filter(|&c| c != '-').collect();
    let b = s.as_bytes();
    if b.len() != 9 || !s.is_ascii() {
        return Err(IdError::OrgLength(s.chars().count()));
    }
    if let Some(pos) = b[..8].iter().position(|c| !c.is_ascii_digit() && !c.is_ascii_uppercase()) {
        return Err(IdError::Char { pos: pos + 1, ch: b[pos] as char });
    }
    let expected = org_check_char(&b[..8]);
    if b[8] as char != expected {
        return Err(IdError::OrgCheck { found: b[8] as char, expected });
    }
    Ok(s)
}

/// Normalises a unified social credit code and checks its form; the check characters are
/// tested but a failure is returned in [`CreditCode::check_failure`], not as an error.
pub fn read_credit_code(s: &str) -> Result<CreditCode, IdError> {
    let s = canonical(s);
    let b = s.as_bytes();
    if b.len() != 18 || !s.is_ascii() {
        return Err(IdError::Length(s.chars().count()));
    }
    if let Some(pos) = b.iter().position(|&c| uscc_value(c).is_none()) {
        return Err(IdError::Char { pos: pos + 1, ch: b[pos] as char });
    }
    if let Some(pos) = b[2..8].iter().position(|c| !c.is_ascii_digit()) {
        return Err(IdError::Char { pos: pos + 3, ch: b[pos + 2] as char });
    }
    let expected = credit_check_char(&b[..17]);
    let org_expected = org_check_char(&b[8..16]);
    let check_failure = if b[17] as char != expected {
        Some(IdError::Check { found: b[17] as char, expected })
    } else if b[16] as char != org_expected {
        Some(IdError::OrgCheck { found: b[16] as char, expected: org_expected })
    } else {
        None
    };
    Ok(CreditCode { id: s.into_owned(), check_failure })
}

/// Normalises and validates a unified social credit code: both check characters must hold.
/// (Early Fujian pilot codes that fail them are let in by the loader's allow-list, not here.)
pub fn parse_credit_code(s: &str) -> Result<String, IdError> {
    let code = read_credit_code(s)?;
    match code.check_failure {
        None => Ok(code.id),
        Some(e) => Err(e),
    }
}

// ---- subjects of credit records and licences ----

/// Which registry an identifier belongs to, told by its form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectKind {
    Citizen,
    Entity,
}

/// A resident identity number or a valid credit code, told apart by which check it passes.
pub fn parse_subject(s: &str) -> Result<(SubjectKind, String), IdError> {
    if let Ok(r) = parse_resident_id(s) {
        return Ok((SubjectKind::Citizen, r.id));
    }
    match parse_credit_code(s) {
        Ok(id) => Ok((SubjectKind::Entity, id)),
        Err(_) => Err(IdError::NotASubject),
    }
}

/// The kind of an identifier already in canonical form (as stored): by its form, so that an
/// allow-listed pilot code is still an entity's.
pub fn subject_kind(canonical_id: &str) -> Option<SubjectKind> {
    if parse_resident_id(canonical_id).is_ok() {
        Some(SubjectKind::Citizen)
    } else {
        read_credit_code(canonical_id).ok().map(|_| SubjectKind::Entity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn standard_examples_validate() {
        let r = parse_resident_id("11010519491231002X").unwrap();
        assert_eq!(r.birth_date, NaiveDate::from_ymd_opt(1949, 12, 31).unwrap());
        assert!(!r.male);
        assert!(parse_resident_id("440524188001010014").unwrap().male);
        assert_eq!(parse_credit_code("91350100M000100Y43").unwrap(), "91350100M000100Y43");
    }

    #[test]
    fn extracts_are_normalised_before_checking() {
        for dirty in ["11010519491231002x", " 110105 19491231002X ", "１１０１０５１９４９１２３１００２Ｘ"]
        {
            assert_eq!(parse_resident_id(dirty).unwrap().id, "11010519491231002X", "{dirty}");
        }
        assert_eq!(parse_credit_code("91350100m000100y43").unwrap(), "91350100M000100Y43");
    }

    #[test]
    fn fifteen_digit_numbers_upgrade() {
        let r = parse_resident_id("110105491231002").unwrap();
        assert_eq!(r.id, "11010519491231002X");
    }

    #[test]
    fn bad_numbers_say_why() {
        assert_eq!(parse_resident_id("110105194912310021"), Err(IdError::Check { found: '1', expected: 'X' }));
        assert!(matches!(parse_resident_id("110105194902300021"), Err(IdError::BirthDate(_))));
        assert!(matches!(parse_resident_id("110105209901010011"), Err(IdError::FutureBirth(_))));
        assert_eq!(parse_resident_id("1101051949"), Err(IdError::Length(10)));
        assert!(matches!(parse_credit_code("91110100M000100Y43"), Err(IdError::Check { .. })));
        assert!(matches!(parse_credit_code("9135010OM000100Y43"), Err(IdError::Char { pos: 8, .. })));
    }

    #[test]
    fn fujian_codes_that_fail_their_check_are_refused_but_known_as_possible_pilots() {
        assert!(matches!(parse_credit_code("91350211M0000XUF46"), Err(IdError::Check { .. })));
        let c = read_credit_code("91350211M0000XUF46").unwrap();
        assert!(c.may_be_fujian_pilot());
        // A valid Fujian code with one character changed is refused too.
        assert!(parse_credit_code("91350100M000100Y44").is_err());
        assert!(read_credit_code("91350100M000100Y44").unwrap().may_be_fujian_pilot());
        assert!(!read_credit_code("91110100M000100Y44").unwrap().may_be_fujian_pilot());
        assert_eq!(subject_kind("91350211M0000XUF46"), Some(SubjectKind::Entity));
    }

    #[test]
    fn subjects_are_told_apart() {
        assert_eq!(parse_subject("11010519491231002X").unwrap().0, SubjectKind::Citizen);
        assert_eq!(parse_subject("91350100M000100Y43").unwrap().0, SubjectKind::Entity);
        assert_eq!(parse_subject("hello"), Err(IdError::NotASubject));
        // All digits, and MOD 11-2 would accept it: the province code tells it apart.
        for i in 0..2000 {
            let code = crate::generator::entity_id(i);
            assert_eq!(parse_subject(&code).unwrap().0, SubjectKind::Entity, "{code}");
        }
        assert!(matches!(parse_resident_id("913502198001010019"), Err(IdError::Province(_))));
    }

    fn resident_id() -> impl Strategy<Value = String> {
        (prop::sample::select(PROVINCES.to_vec()), 0u32..10000, 0i64..35000, 0u32..1000).prop_map(
            |(p, rest, days, seq)| {
                let region = p * 10000 + rest;
                let date = NaiveDate::from_ymd_opt(1920, 1, 1).unwrap() + chrono::Duration::days(days);
                let body = format!("{region:06}{}{seq:03}", date.format("%Y%m%d"));
                let check = resident_check_char(body.as_bytes());
                format!("{body}{check}")
            },
        )
    }

    fn credit_code() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec![b'1', b'5', b'9', b'Y']),
            1u8..4,
            110000u32..660000,
            prop::collection::vec(0usize..31, 8),
        )
            .prop_map(|(authority, category, region, org)| {
                let org8: Vec<u8> = org.iter().map(|&i| USCC_ALPHABET[i]).collect();
                let mut body = vec![authority, b'0' + category];
                body.extend(format!("{region:06}").bytes());
                body.extend(&org8);
                body.push(org_check_char(&org8) as u8);
                let check = credit_check_char(&body);
                format!("{}{check}", String::from_utf8(body).unwrap())
            })
            .prop_filter("organisation check character must be in the code's alphabet", |s| {
                parse_credit_code(s).is_ok()
            })
    }

    proptest! {
        #[test]
        fn generated_resident_ids_validate(id in resident_id()) {
            prop_assert_eq!(parse_resident_id(&id).unwrap().id, id);
        }

        #[test]
        fn one_changed_character_is_caught(id in resident_id(), pos in 0usize..18, c in prop::sample::select(b"0123456789X".to_vec())) {
            let mut b = id.clone().into_bytes();
            prop_assume!(b[pos] != c);
            b[pos] = c;
            prop_assert!(parse_resident_id(std::str::from_utf8(&b).unwrap()).is_err());
        }

        #[test]
        fn generated_credit_codes_validate(code in credit_code()) {
            prop_assert_eq!(parse_credit_code(&code).unwrap(), code.clone());
        }

        #[test]
        fn one_changed_credit_character_is_caught(code in credit_code(), pos in 0usize..18, i in 0usize..31) {
            let mut b = code.clone().into_bytes();
            prop_assume!(b[pos] != USCC_ALPHABET[i]);
            b[pos] = USCC_ALPHABET[i];
            let changed = String::from_utf8(b).unwrap();
            prop_assert!(parse_credit_code(&changed).is_err(), "{} accepted", changed);
        }
    }
}
