//! Range requests: one `bytes=` range of a file.

#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No range to honour: the full response.
    None,
    /// First and last byte, inclusive.
    Satisfiable(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// One `bytes=` range; several ranges or an unknown unit are ignored (full response).
pub fn parse_range(v: &str, size: u64) -> RangeSpec {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeSpec::None;
    };
    if spec.contains(',') {
        return RangeSpec::None;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::None;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Some(n) = num(b) else {
            return RangeSpec::None;
        };
        if n == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        let n = n.min(size);
        return RangeSpec::Satisfiable(size - n, size - 1);
    }
    let Some(start) = num(a) else {
        return RangeSpec::None;
    };
    let end = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        match num(b) {
            Some(e) if e >= start => e.min(size.saturating_sub(1)),
            _ => return RangeSpec::None,
        }
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Satisfiable(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert!(matches!(
            parse_range("bytes=0-9", 100),
            RangeSpec::Satisfiable(0, 9)
        ));
        assert!(matches!(
            parse_range("bytes=-10", 100),
            RangeSpec::Satisfiable(90, 99)
        ));
        assert!(matches!(
            parse_range("bytes=90-", 100),
            RangeSpec::Satisfiable(90, 99)
        ));
        assert!(matches!(
            parse_range("bytes=90-1000", 100),
            RangeSpec::Satisfiable(90, 99)
        ));
        assert!(matches!(
            parse_range("bytes=100-", 100),
            RangeSpec::Unsatisfiable
        ));
        assert!(matches!(parse_range("bytes=5-1", 100), RangeSpec::None));
        assert!(matches!(parse_range("items=0-1", 100), RangeSpec::None));
        assert!(matches!(parse_range("bytes=0-1,3-4", 100), RangeSpec::None));
    }

    #[test]
    fn suffixes_and_empty_files() {
        assert_eq!(
            parse_range("bytes=-1000", 100),
            RangeSpec::Satisfiable(0, 99)
        );
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), RangeSpec::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999-", 100),
            RangeSpec::None
        );
    }
}
