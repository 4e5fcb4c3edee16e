//! `f32[1,3,224,224]`: the notation of every shape message (engine errors, `describe`, the host
//! and API reports), so a user sees one form wherever the message comes from.
use crate::ElementType;
use std::fmt::Display;

/// `ty[d0,d1,...]`; dims are numbers or symbolic names (`f32[batch,1,8,8]`).
pub fn signature<D: Display>(ty: &str, dims: impl IntoIterator<Item = D>) -> String {
    let dims: Vec<String> = dims.into_iter().map(|d| d.to_string()).collect();
    format!("{ty}[{}]", dims.join(","))
}

/// A tensor whose rank the model does not state: `f32[..]`.
pub fn signature_unranked(ty: &str) -> String {
    format!("{ty}[..]")
}

/// A model's element type with its carrier when they differ: `bf16`, `i8 (as i32)`.
pub fn type_label(element: &str, carrier: Option<ElementType>) -> String {
    match carrier {
        Some(c) if element != c.as_str() => format!("{element} (as {})", c.as_str()),
        _ => element.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation() {
        assert_eq!(signature("f32", [1u32, 3, 224, 224]), "f32[1,3,224,224]");
        assert_eq!(signature("f32", ["batch", "1"]), "f32[batch,1]");
        assert_eq!(signature("i64", Vec::<u32>::new()), "i64[]");
        assert_eq!(signature_unranked("u8"), "u8[..]");
        assert_eq!(type_label("i8", Some(ElementType::I32)), "i8 (as i32)");
        assert_eq!(type_label("f32", Some(ElementType::F32)), "f32");
        assert_eq!(type_label("string", None), "string");
    }
}
