//! The sorter's payload for a record: its link targets, its location, then its encoded
//! value. Carrying targets and location beside the value, worked out by the parallel read
//! stage, lets the single merging thread write edges and points without decoding values.

/// The parts of a payload.
#[derive(Debug, PartialEq)]
pub struct Parts<'a> {
    pub targets: Vec<&'a str>,
    pub point: Option<(f64, f64)>,
    pub value: &'a [u8],
}

/// `[count][len][target]…[0 | 1 lon lat][value]`; targets are identifiers (at most 255
/// bytes), "" for none; lon and lat are f64 little-endian.
pub fn join(targets: &[&str], point: Option<(f64, f64)>, value: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(18 + targets.iter().map(|t| t.len() + 1).sum::<usize>() + value.len());
    p.push(targets.len() as u8);
    for t in targets {
        let t = &t.as_bytes()[..t.len().min(255)];
        p.push(t.len() as u8);
        p.extend_from_slice(t);
    }
    match point {
        Some((lon, lat)) => {
            p.push(1);
            p.extend_from_slice(&lon.to_le_bytes());
            p.extend_from_slice(&lat.to_le_bytes());
        }
        None => p.push(0),
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
    let f64_at = |i: usize| f64::from_le_bytes(p[i..i + 8].try_into().unwrap_or_default());
    let point = (p[at] == 1).then(|| (f64_at(at + 1), f64_at(at + 9)));
    at += if point.is_some() { 17 } else { 1 };
    Parts { targets, point, value: &p[at..] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = join(&["a", "", "xyz"], Some((118.1, 24.5)), b"value");
        assert_eq!(split(&p), Parts { targets: vec!["a", "", "xyz"], point: Some((118.1, 24.5)), value: b"value" });
        let p = join(&[], None, b"v");
        assert_eq!(split(&p), Parts { targets: vec![], point: None, value: b"v" });
    }
}
