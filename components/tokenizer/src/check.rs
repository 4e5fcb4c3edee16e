//! What `tokenizers` 0.22.2 accepts in a tokenizer.json but then panics on (a trap in wasm, where
//! panics abort), refused up front with an error instead. Found by the damaged-file test
//! (tests/text/test_tokenizer.py); each check says which panic it prevents.
//!
//! - `Precompiled` normalizer (SentencePiece's `nmt_nfkc` charsmap): its double-array trie is
//!   indexed without bounds checks, and the normalized strings are sliced at offsets the trie
//!   gives. Every path the lookup can take is walked here: every position it may read must be in
//!   the array, every leaf must point at a char boundary of the strings.
//! - `TemplateProcessing`: a special token the template names but `special_tokens` lacks is
//!   indexed blindly, and a `$B` in the single-sequence template indexes a second sequence that
//!   is not there; `ids` and `tokens` of a special token must pair up.

use serde_json::Value;

pub fn check(json: &[u8]) -> Result<(), String> {
    // Parse errors are left to `tokenizers`, which reports them with positions.
    let Ok(v) = serde_json::from_slice::<Value>(json) else {
        return Ok(());
    };
    if let Some(n) = v.get("normalizer") {
        normalizer(n)?;
    }
    if let Some(p) = v.get("post_processor") {
        processor(p)?;
    }
    Ok(())
}

fn normalizer(n: &Value) -> Result<(), String> {
    match n.get("type").and_then(Value::as_str) {
        Some("Sequence") => {
            for inner in n
                .get("normalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                normalizer(inner)?;
            }
            Ok(())
        }
        Some("Precompiled") => match n.get("precompiled_charsmap").and_then(Value::as_str) {
            Some(b64) => precompiled(b64),
            None => Ok(()), // an empty charsmap is an identity normalizer; other shapes fail to parse
        },
        _ => Ok(()),
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s.as_bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The unit accessors of spm_precompiled 0.1.4 (`ArrayUnitTrait`), on usize as it stores them.
fn has_leaf(u: usize) -> bool {
    (u >> 8) & 1 == 1
}
fn value(u: usize) -> usize {
    u & ((1usize << 31) - 1)
}
fn label(u: usize) -> usize {
    u & ((1usize << 31) | 0xFF)
}
fn offset(u: usize) -> usize {
    (u >> 10) << ((u & (1usize << 9)) >> 6)
}

fn precompiled(b64: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("Precompiled normalizer: {why}"));
    let Some(bytes) = base64_decode(b64) else {
        return Ok(()); // not base64: the crate refuses it itself
    };
    if bytes.is_empty() {
        return Ok(());
    }
    if bytes.len() < 4 {
        return bad("the charsmap is shorter than its header");
    }
    let trie_size = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let units = trie_size / 4;
    if units
        .checked_mul(4)
        .and_then(|n| n.checked_add(4))
        .is_none_or(|n| n > bytes.len())
    {
        return Ok(()); // too short for its trie: the crate's parser refuses it
    }
    let array: Vec<usize> = bytes[4..4 + units * 4]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let normalized = &bytes[4 + units * 4..];
    if std::str::from_utf8(normalized).is_err() {
        return Ok(()); // the crate refuses non-UTF-8 strings itself
    }
    let Some(&root) = array.first() else {
        return bad("the trie is empty");
    };
    // Walk every node a lookup can reach: from a node at `pos`, byte c (1..=255) reads
    // array[pos ^ c]; on a label match it moves to (pos ^ c) ^ offset, reading a leaf there.
    // Positions up to 255 past the array can still read inside it; beyond that the first read
    // is out of bounds and refused, so `seen` covers every position a cycle could revisit.
    let mut seen = vec![false; array.len() + 256];
    let mut stack = vec![offset(root)];
    while let Some(pos) = stack.pop() {
        if pos < seen.len() {
            if seen[pos] {
                continue;
            }
            seen[pos] = true;
        }
        for c in 1..=255usize {
            let q = pos ^ c;
            let Some(&unit) = array.get(q) else {
                return bad("the trie reads outside its array");
            };
            if label(unit) != c {
                continue;
            }
            let next = q ^ offset(unit);
            if has_leaf(unit) {
                let Some(&leaf) = array.get(next) else {
                    return bad("a trie leaf is outside its array");
                };
                let at = value(leaf);
                if at > normalized.len()
                    || (at < normalized.len() && (normalized[at] & 0xC0) == 0x80)
                {
                    return bad("a trie leaf points outside the normalized strings");
                }
            }
            stack.push(next);
        }
    }
    Ok(())
}

fn processor(p: &Value) -> Result<(), String> {
    match p.get("type").and_then(Value::as_str) {
        Some("Sequence") => {
            for inner in p
                .get("processors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                processor(inner)?;
            }
            Ok(())
        }
        Some("TemplateProcessing") => template(p),
        _ => Ok(()),
    }
}

fn template(p: &Value) -> Result<(), String> {
    let bad = |why: String| Err(format!("TemplateProcessing: {why}"));
    let specials = p.get("special_tokens").and_then(Value::as_object);
    for (name, t) in specials.into_iter().flatten() {
        let ids = t.get("ids").and_then(Value::as_array).map(Vec::len);
        let tokens = t.get("tokens").and_then(Value::as_array).map(Vec::len);
        if ids != tokens {
            return bad(format!(
                "special token {name:?} has {ids:?} ids for {tokens:?} tokens"
            ));
        }
    }
    for (which, single) in [("single", true), ("pair", false)] {
        for piece in p.get(which).and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = piece
                .get("SpecialToken")
                .and_then(|s| s.get("id"))
                .and_then(Value::as_str)
            {
                if !specials.is_some_and(|m| m.contains_key(id)) {
                    return bad(format!(
                        "the {which} template names {id:?}, which is not among its special tokens"
                    ));
                }
            }
            let seq = piece
                .get("Sequence")
                .and_then(|s| s.get("id"))
                .and_then(Value::as_str);
            if single && seq == Some("B") {
                return bad("the single template uses the second sequence $B".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("AAAA").unwrap(), vec![0, 0, 0]);
        assert!(base64_decode("a b").is_none());
    }

    #[test]
    fn refuses_what_would_panic() {
        let pre = |b64: &str| {
            format!(r#"{{"normalizer":{{"type":"Precompiled","precompiled_charsmap":"{b64}"}}}}"#)
        };
        assert!(check(pre("AAAA").as_bytes()).is_err()); // 3 bytes: no header
        assert!(check(pre("AAAAAA==").as_bytes()).is_err()); // header, empty trie
        assert!(check(pre("").as_bytes()).is_ok());
        // One unit whose offset sends byte 1 past the array.
        let one = {
            let mut b = 4u32.to_le_bytes().to_vec();
            b.extend_from_slice(&(1u32 << 10).to_le_bytes());
            b.iter().map(|x| format!("{x:08b}")).collect::<String>()
        };
        let b64: String = one
            .as_bytes()
            .chunks(6)
            .map(|c| {
                let mut v = 0u8;
                for (i, &bit) in c.iter().enumerate() {
                    v |= (bit - b'0') << (5 - i);
                }
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[v as usize]
                    as char
            })
            .collect();
        assert!(check(pre(&b64).as_bytes()).is_err());
        let tp = |single: &str, specials: &str| {
            format!(
                r#"{{"post_processor":{{"type":"TemplateProcessing","single":{single},"pair":[],"special_tokens":{specials}}}}}"#
            )
        };
        let cls = r#"{"[CLS]":{"id":"[CLS]","ids":[1],"tokens":["[CLS]"]}}"#;
        assert!(
            check(tp(r#"[{"SpecialToken":{"id":"[CLS]","type_id":0}}]"#, cls).as_bytes()).is_ok()
        );
        assert!(
            check(tp(r#"[{"SpecialToken":{"id":"<x>","type_id":0}}]"#, cls).as_bytes()).is_err()
        );
        assert!(check(tp(r#"[{"Sequence":{"id":"B","type_id":0}}]"#, cls).as_bytes()).is_err());
        let uneven = r#"{"[CLS]":{"id":"[CLS]","ids":[1,2],"tokens":["[CLS]"]}}"#;
        assert!(check(tp("[]", uneven).as_bytes()).is_err());
    }
}
