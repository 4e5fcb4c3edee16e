//! secure-context tokenizer component: a model's `tokenizer.json` run by Hugging Face's
//! `tokenizers` crate inside the sandbox (world `text` in wit/tokenizer.wit), so the text never
//! has to leave the browser to become token ids. `core` is plain Rust, tested natively;
//! `component` exists only in the wasm build.
mod check;
pub mod core;

#[cfg(target_arch = "wasm32")]
mod component;
