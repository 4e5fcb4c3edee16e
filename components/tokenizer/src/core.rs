//! The tokenizer itself, in plain Rust (tested natively): a `tokenizer.json` read by the
//! `tokenizers` crate, encodings with offsets in the unit the caller asked for, and the limits
//! that keep bad input an error instead of a trap.

use std::cell::RefCell;
use tokenizers::{
    Encoding, PaddingStrategy, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

pub const MAX_TOKENIZER_BYTES: usize = 64 << 20;
pub const MAX_TEXT_BYTES: usize = 4 << 20;
pub const MAX_BATCH: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidTokenizer,
    InvalidArgument,
    TooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Utf8,
    CodePoints,
    Utf16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub max_length: u32,
    pub stride: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub add_special_tokens: bool,
    pub offsets: Unit,
    pub truncation: Option<Truncation>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enc {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub tokens: Vec<String>,
    pub offsets: Vec<(u32, u32)>,
    pub attention_mask: Vec<u32>,
    pub special_tokens_mask: Vec<u32>,
    pub word_ids: Vec<Option<u32>>,
    pub sequence_ids: Vec<Option<u32>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded {
    pub encoding: Enc,
    pub overflowing: Vec<Enc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub model: String,
    pub vocab_size: u32,
    pub truncation: Option<Truncation>,
    pub padding: Option<u32>,
}

pub struct Tok {
    inner: RefCell<Tokenizer>,
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Tok {
    pub fn load(json: &[u8]) -> Result<Tok, Error> {
        if json.len() > MAX_TOKENIZER_BYTES {
            return Err(Error::new(
                Code::TooLarge,
                format!(
                    "tokenizer.json is {} bytes; the limit is {MAX_TOKENIZER_BYTES}",
                    json.len()
                ),
            ));
        }
        crate::check::check(json).map_err(|m| {
            Error::new(
                Code::InvalidTokenizer,
                format!("not a usable tokenizer.json: {m}"),
            )
        })?;
        // No threads in the sandbox's wasm: keep the crate from asking rayon for any.
        tokenizers::utils::parallelism::set_parallelism(false);
        let t = Tokenizer::from_bytes(json).map_err(|e| {
            Error::new(
                Code::InvalidTokenizer,
                format!("not a usable tokenizer.json: {e}"),
            )
        })?;
        if let Some(tr) = t.get_truncation() {
            check_truncation(&t, tr.max_length, tr.stride)
                .map_err(|m| Error::new(Code::InvalidTokenizer, format!("tokenizer.json: {m}")))?;
        }
        Ok(Tok {
            inner: RefCell::new(t),
        })
    }

    pub fn info(&self) -> Info {
        let t = self.inner.borrow();
        let model = match t.get_model() {
            tokenizers::ModelWrapper::BPE(_) => "BPE",
            tokenizers::ModelWrapper::WordPiece(_) => "WordPiece",
            tokenizers::ModelWrapper::Unigram(_) => "Unigram",
            tokenizers::ModelWrapper::WordLevel(_) => "WordLevel",
        };
        Info {
            model: model.to_string(),
            vocab_size: u32_of(t.get_vocab_size(true)),
            truncation: t.get_truncation().map(|p| Truncation {
                max_length: u32_of(p.max_length),
                stride: u32_of(p.stride),
            }),
            padding: t.get_padding().map(|p| match p.strategy {
                PaddingStrategy::Fixed(n) => u32_of(n),
                PaddingStrategy::BatchLongest => 0,
            }),
        }
    }

    /// Runs `f` with the caller's truncation in place of the file's, then puts the file's back.
    fn with_options<R>(
        &self,
        opts: &Options,
        f: impl FnOnce(&Tokenizer) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let Some(tr) = opts.truncation else {
            return f(&self.inner.borrow());
        };
        let saved = self.inner.borrow().get_truncation().cloned();
        {
            let mut t = self.inner.borrow_mut();
            check_truncation(&t, tr.max_length as usize, tr.stride as usize)
                .map_err(|m| Error::new(Code::InvalidArgument, m))?;
            let params = TruncationParams {
                max_length: tr.max_length as usize,
                stride: tr.stride as usize,
                strategy: TruncationStrategy::LongestFirst,
                direction: TruncationDirection::Right,
            };
            t.with_truncation(Some(params))
                .map_err(|e| Error::new(Code::InvalidArgument, format!("truncation: {e}")))?;
        }
        let r = f(&self.inner.borrow());
        // Restoring what load() accepted cannot fail.
        let _ = self.inner.borrow_mut().with_truncation(saved);
        r
    }

    pub fn encode(&self, text: &str, pair: Option<&str>, opts: Options) -> Result<Encoded, Error> {
        check_text(text)?;
        if let Some(p) = pair {
            check_text(p)?;
        }
        self.with_options(&opts, |t| {
            let input: tokenizers::EncodeInput = match pair {
                Some(p) => (text, p).into(),
                None => text.into(),
            };
            let e = if opts.offsets == Unit::Utf8 {
                t.encode(input, opts.add_special_tokens)
            } else {
                t.encode_char_offsets(input, opts.add_special_tokens)
            }
            .map_err(encode_error)?;
            Ok(encoded(e, opts.offsets, &[text, pair.unwrap_or("")]))
        })
    }

    pub fn encode_batch(&self, texts: &[String], opts: Options) -> Result<Vec<Encoded>, Error> {
        if texts.len() > MAX_BATCH {
            return Err(Error::new(
                Code::TooLarge,
                format!("{} texts; the limit is {MAX_BATCH} a batch", texts.len()),
            ));
        }
        let mut total = 0usize;
        for t in texts {
            check_text(t)?;
            total += t.len();
        }
        if total > MAX_TEXT_BYTES {
            return Err(Error::new(
                Code::TooLarge,
                format!("the batch has {total} bytes of text; the limit is {MAX_TEXT_BYTES}"),
            ));
        }
        self.with_options(&opts, |t| {
            let inputs: Vec<tokenizers::EncodeInput> =
                texts.iter().map(|s| s.as_str().into()).collect();
            let es = if opts.offsets == Unit::Utf8 {
                t.encode_batch(inputs, opts.add_special_tokens)
            } else {
                t.encode_batch_char_offsets(inputs, opts.add_special_tokens)
            }
            .map_err(encode_error)?;
            Ok(es
                .into_iter()
                .zip(texts)
                .map(|(e, s)| encoded(e, opts.offsets, &[s.as_str()]))
                .collect())
        })
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, Error> {
        let t = self.inner.borrow();
        let n = u32_of(t.get_vocab_size(true));
        if let Some(bad) = ids.iter().find(|&&i| i >= n) {
            return Err(Error::new(
                Code::InvalidArgument,
                format!("id {bad} is outside the vocabulary (size {n})"),
            ));
        }
        t.decode(ids, skip_special_tokens)
            .map_err(|e| Error::new(Code::InvalidArgument, format!("cannot decode: {e}")))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.borrow().token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.borrow().id_to_token(id)
    }
}

fn check_text(text: &str) -> Result<(), Error> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(Error::new(
            Code::TooLarge,
            format!(
                "the text is {} bytes; the limit is {MAX_TEXT_BYTES}",
                text.len()
            ),
        ));
    }
    Ok(())
}

/// What `tokenizers` refuses with an error anyway, refused before it can misbehave: a window
/// that the special tokens fill, or a stride that would never advance.
fn check_truncation(t: &Tokenizer, max_length: usize, stride: usize) -> Result<(), String> {
    let added = t
        .get_post_processor()
        .map(|p| tokenizers::PostProcessor::added_tokens(p, true))
        .unwrap_or(0);
    if max_length == 0 || max_length <= added {
        return Err(format!(
            "truncation max-length {max_length} leaves no room next to {added} special tokens"
        ));
    }
    if stride >= max_length - added {
        return Err(format!(
            "truncation stride {stride} must be below max-length {max_length} minus {added} special tokens"
        ));
    }
    Ok(())
}

fn encode_error(e: tokenizers::Error) -> Error {
    Error::new(Code::InvalidArgument, format!("cannot encode: {e}"))
}

fn encoded(mut e: Encoding, unit: Unit, texts: &[&str]) -> Encoded {
    let overflowing = e
        .take_overflowing()
        .into_iter()
        .map(|o| convert(o, unit, texts))
        .collect();
    Encoded {
        encoding: convert(e, unit, texts),
        overflowing,
    }
}

/// Code-point offsets (what `encode_char_offsets` gives) become UTF-16 ones through a prefix
/// count of each input; UTF-8 and code points pass through.
fn convert(e: Encoding, unit: Unit, texts: &[&str]) -> Enc {
    let sequence_ids: Vec<Option<u32>> =
        e.get_sequence_ids().iter().map(|s| s.map(u32_of)).collect();
    let offsets = if unit == Unit::Utf16 {
        let maps: Vec<Vec<u32>> = texts.iter().map(|t| utf16_prefix(t)).collect();
        e.get_offsets()
            .iter()
            .zip(&sequence_ids)
            .map(
                |(&(s, end), seq)| match seq.and_then(|q| maps.get(q as usize)) {
                    Some(m) => (at(m, s), at(m, end)),
                    None => (u32_of(s), u32_of(end)),
                },
            )
            .collect()
    } else {
        e.get_offsets()
            .iter()
            .map(|&(s, end)| (u32_of(s), u32_of(end)))
            .collect()
    };
    Enc {
        ids: e.get_ids().to_vec(),
        type_ids: e.get_type_ids().to_vec(),
        tokens: e.get_tokens().to_vec(),
        offsets,
        attention_mask: e.get_attention_mask().to_vec(),
        special_tokens_mask: e.get_special_tokens_mask().to_vec(),
        word_ids: e.get_word_ids().to_vec(),
        sequence_ids,
    }
}

/// `m[i]` = UTF-16 units before the i-th code point; one entry past the end.
fn utf16_prefix(t: &str) -> Vec<u32> {
    let mut m = Vec::with_capacity(t.len() + 1);
    let mut n = 0u32;
    m.push(0);
    for c in t.chars() {
        n += c.len_utf16() as u32;
        m.push(n);
    }
    m
}

fn at(m: &[u32], i: usize) -> u32 {
    m.get(i).copied().unwrap_or_else(|| *m.last().unwrap_or(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDLEVEL: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
      "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
      "model":{"type":"WordLevel","vocab":{"[UNK]":0,"a":1,"😀":2,"b":3},"unk_token":"[UNK]"}}"#;

    fn opts(unit: Unit) -> Options {
        Options {
            add_special_tokens: true,
            offsets: unit,
            truncation: None,
        }
    }

    #[test]
    fn offsets_in_each_unit() {
        let t = Tok::load(WORDLEVEL.as_bytes()).unwrap();
        let text = "😀 a b";
        let by = |u| t.encode(text, None, opts(u)).unwrap().encoding.offsets;
        assert_eq!(by(Unit::Utf8), vec![(0, 4), (5, 6), (7, 8)]);
        assert_eq!(by(Unit::CodePoints), vec![(0, 1), (2, 3), (4, 5)]);
        assert_eq!(by(Unit::Utf16), vec![(0, 2), (3, 4), (5, 6)]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(Tok::load(b"{").err().unwrap().code, Code::InvalidTokenizer);
        assert_eq!(Tok::load(b"").err().unwrap().code, Code::InvalidTokenizer);
        let t = Tok::load(WORDLEVEL.as_bytes()).unwrap();
        assert_eq!(
            t.decode(&[99], false).unwrap_err().code,
            Code::InvalidArgument
        );
        let big = "a ".repeat(MAX_TEXT_BYTES / 2 + 1);
        assert_eq!(
            t.encode(&big, None, opts(Unit::Utf8)).unwrap_err().code,
            Code::TooLarge
        );
        let huge = vec![b' '; MAX_TOKENIZER_BYTES + 1];
        assert_eq!(Tok::load(&huge).err().unwrap().code, Code::TooLarge);
        let many = vec!["a".to_string(); MAX_BATCH + 1];
        assert_eq!(
            t.encode_batch(&many, opts(Unit::Utf8)).unwrap_err().code,
            Code::TooLarge
        );
        let heavy = vec!["ab".repeat(MAX_TEXT_BYTES / 8); 5];
        assert_eq!(
            t.encode_batch(&heavy, opts(Unit::Utf8)).unwrap_err().code,
            Code::TooLarge
        );
        for (max_length, stride) in [(0, 0), (4, 4), (4, 9)] {
            let o = Options {
                truncation: Some(Truncation { max_length, stride }),
                ..opts(Unit::Utf8)
            };
            assert_eq!(
                t.encode("a b", None, o).unwrap_err().code,
                Code::InvalidArgument,
                "{max_length} {stride}"
            );
        }
    }

    #[test]
    fn truncation_windows_then_the_file_again() {
        let t = Tok::load(WORDLEVEL.as_bytes()).unwrap();
        let o = Options {
            truncation: Some(Truncation {
                max_length: 2,
                stride: 1,
            }),
            ..opts(Unit::Utf8)
        };
        let e = t.encode("a b a b", None, o).unwrap();
        assert_eq!(e.encoding.ids, vec![1, 3]);
        let plain = t.encode("a b a b", None, opts(Unit::Utf8)).unwrap();
        assert_eq!(plain.encoding.ids.len(), 4);
        assert!(plain.overflowing.is_empty());
    }
}
