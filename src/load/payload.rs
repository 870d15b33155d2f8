//! The sorter's payload for a record: its link targets, then its encoded value. Carrying the
//! targets beside the value, worked out by the parallel read stage, lets the single merging
//! thread write edges without decoding values.

/// The parts of a payload.
#[derive(Debug, PartialEq)]
pub struct Parts<'a> {
    pub targets: Vec<&'a str>,
    pub value: &'a [u8],
}

/// `[count][len][target]…[value]`; targets are identifiers (at most 255 bytes), "" for none.
pub fn join(targets: &[&str], value: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(1 + targets.iter().map(|t| t.len() + 1).sum::<usize>() + value.len());
    p.push(targets.len() as u8);
    for t in targets {
        let t = &t.as_bytes()[..t.len().min(255)];
        p.push(t.len() as u8);
        p.extend_from_slice(t);
    }
    p.extend_from_slice(value);
    p
}

/// Splits a payload made by [`join`].
pub fn split(p: &[u8]) -> Parts<'_> {
    let n = usize::from(p[0]);
    let mut at = 1;
    let mut targets = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::from(p[at]);
        targets.push(std::str::from_utf8(&p[at + 1..at + 1 + len]).unwrap_or(""));
        at += 1 + len;
    }
    Parts { targets, value: &p[at..] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = join(&["a", "", "xyz"], b"value");
        assert_eq!(split(&p), Parts { targets: vec!["a", "", "xyz"], value: b"value" });
        let p = join(&[], b"v");
        assert_eq!(split(&p), Parts { targets: vec![], value: b"v" });
    }
}
