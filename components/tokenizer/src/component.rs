//! The `text` world's exports (wit/tokenizer.wit) over [`crate::core`].

use crate::core::{self, Code, Enc, Options, Tok, Unit};
use exports::secure_context::inference::tokenizer as wit;

wit_bindgen::generate!({ world: "text", path: "../../wit", generate_all });

struct Component;

impl wit::Guest for Component {
    type Tokenizer = Tok;
}

fn error(e: core::Error) -> wit::Error {
    wit::Error {
        code: match e.code {
            Code::InvalidTokenizer => wit::ErrorCode::InvalidTokenizer,
            Code::InvalidArgument => wit::ErrorCode::InvalidArgument,
            Code::TooLarge => wit::ErrorCode::TooLarge,
        },
        message: e.message,
    }
}

fn options(o: wit::EncodeOptions) -> Options {
    Options {
        add_special_tokens: o.add_special_tokens,
        offsets: match o.offsets {
            wit::OffsetUnit::Utf8 => Unit::Utf8,
            wit::OffsetUnit::CodePoints => Unit::CodePoints,
            wit::OffsetUnit::Utf16 => Unit::Utf16,
        },
        truncation: o.truncation.map(|t| core::Truncation {
            max_length: t.max_length,
            stride: t.stride,
        }),
    }
}

fn encoding(e: Enc) -> wit::Encoding {
    wit::Encoding {
        ids: e.ids,
        type_ids: e.type_ids,
        tokens: e.tokens,
        offsets: e
            .offsets
            .into_iter()
            .map(|(start, end)| wit::Span { start, end })
            .collect(),
        attention_mask: e.attention_mask,
        special_tokens_mask: e.special_tokens_mask,
        word_ids: e.word_ids,
        sequence_ids: e.sequence_ids,
    }
}

fn encoded(e: core::Encoded) -> wit::Encoded {
    wit::Encoded {
        encoding: encoding(e.encoding),
        overflowing: e.overflowing.into_iter().map(encoding).collect(),
    }
}

impl wit::GuestTokenizer for Tok {
    fn load(json: Vec<u8>) -> Result<wit::Tokenizer, wit::Error> {
        Tok::load(&json).map(wit::Tokenizer::new).map_err(error)
    }

    fn info(&self) -> wit::TokenizerInfo {
        let i = Tok::info(self);
        wit::TokenizerInfo {
            model: i.model,
            vocab_size: i.vocab_size,
            truncation: i.truncation.map(|t| wit::Truncation {
                max_length: t.max_length,
                stride: t.stride,
            }),
            padding: i.padding,
        }
    }

    fn encode(
        &self,
        text: String,
        pair: Option<String>,
        options_: wit::EncodeOptions,
    ) -> Result<wit::Encoded, wit::Error> {
        Tok::encode(self, &text, pair.as_deref(), options(options_))
            .map(encoded)
            .map_err(error)
    }

    fn encode_batch(
        &self,
        texts: Vec<String>,
        options_: wit::EncodeOptions,
    ) -> Result<Vec<wit::Encoded>, wit::Error> {
        Tok::encode_batch(self, &texts, options(options_))
            .map(|v| v.into_iter().map(encoded).collect())
            .map_err(error)
    }

    fn decode(&self, ids: Vec<u32>, skip_special_tokens: bool) -> Result<String, wit::Error> {
        Tok::decode(self, &ids, skip_special_tokens).map_err(error)
    }

    fn token_to_id(&self, token: String) -> Option<u32> {
        Tok::token_to_id(self, &token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        Tok::id_to_token(self, id)
    }
}

export!(Component);
