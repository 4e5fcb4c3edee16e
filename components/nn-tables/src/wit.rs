//! The conversions between these tables and each binding's generated WIT types: wit-bindgen
//! (the engine component, the API) and wasmtime's `bindgen!` (the host) both name the cases in
//! UpperCamelCase, so one macro writes every binding's `From` impls, each case pair once. The
//! host's tests check the pairs against its generated types, by name and discriminant.

/// `wit_conversions!(tensor_type = PATH, error_code = PATH)` (either or both) implements `From`
/// both ways between [`ElementType`](crate::ElementType) / [`ErrorCode`](crate::ErrorCode) and
/// the binding's `wasi:nn/tensor.tensor-type` / `wasi:nn/errors.error-code`. Invoke it in the
/// crate that generated the bindings (the orphan rule allows it there).
#[macro_export]
macro_rules! wit_conversions {
    (@both $ours:ty, $wit:ty, $($a:ident = $b:ident),+) => {
        impl ::core::convert::From<$ours> for $wit {
            fn from(x: $ours) -> Self {
                type O = $ours;
                type W = $wit;
                match x { $(O::$a => W::$b,)+ }
            }
        }
        impl ::core::convert::From<$wit> for $ours {
            fn from(x: $wit) -> Self {
                type O = $ours;
                type W = $wit;
                match x { $(W::$b => O::$a,)+ }
            }
        }
    };
    (@tensor_type $tt:ty) => {
        $crate::wit_conversions!(@both $crate::ElementType, $tt,
            F16 = Fp16, F32 = Fp32, F64 = Fp64, Bf16 = Bf16, U8 = U8, I32 = I32, I64 = I64);
    };
    (@error_code $ec:ty) => {
        $crate::wit_conversions!(@both $crate::ErrorCode, $ec,
            InvalidArgument = InvalidArgument, InvalidEncoding = InvalidEncoding,
            Timeout = Timeout, RuntimeError = RuntimeError,
            UnsupportedOperation = UnsupportedOperation, TooLarge = TooLarge,
            NotFound = NotFound, Security = Security, Unknown = Unknown);
    };
    ($(tensor_type = $tt:ty)? $(, error_code = $ec:ty)? $(,)?) => {
        $( $crate::wit_conversions!(@tensor_type $tt); )?
        $( $crate::wit_conversions!(@error_code $ec); )?
    };
    (error_code = $ec:ty $(,)?) => {
        $crate::wit_conversions!(@error_code $ec);
    };
}

#[cfg(test)]
mod tests {
    use crate::{ElementType, ErrorCode};

    /// The cases of `enum NAME { ... }` in a WIT file, comments dropped.
    fn wit_enum(wit: &str, name: &str) -> Vec<String> {
        let start = wit
            .find(&format!("enum {name} {{"))
            .unwrap_or_else(|| panic!("no enum {name}"));
        let body = &wit[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
        body.lines()
            .map(|l| l.split("//").next().unwrap())
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// The tables follow the wasi-nn WIT the engine exports, case for case and in order (the
    /// enums' discriminants are the WIT's).
    #[test]
    fn tables_match_the_wasi_nn_wit() {
        let wit = include_str!("../../../wit/deps/wasi-nn/wasi-nn.wit");
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let types: Vec<&str> = ElementType::ALL.iter().map(|t| t.wit_name()).collect();
        assert_eq!(wit_enum(wit, "tensor-type"), names(&types));
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(wit_enum(wit, "error-code"), names(&codes));
    }
}
