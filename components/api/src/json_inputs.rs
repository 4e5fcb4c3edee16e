//! The JSON form of an infer request, deserialized as it is read: each element of `data` goes
//! straight into its wasi-nn carrier bytes, and the limits (inputs, rank, element budget, the
//! shape's count) are enforced element by element. No JSON tree is built, so a 16 MiB body costs
//! its carrier bytes at most (a `serde_json::Value` of it took ~256 MiB), and junk is refused at
//! the first element past what the shape allows.
//!
//! `data` may come before `dtype` and `shape` (serde_json's own maps sort keys, so Rust clients
//! send it first): it is then kept as its raw text (at most the body's size) until they are known.

use crate::dtype::{self, DType, JsonNumber};
use crate::error::ApiError;
use crate::protocol::{elements, InTensor, MAX_ELEMENTS, MAX_INPUTS, MAX_NAME, MAX_RANK};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::cell::{Cell, RefCell};
use std::fmt;

/// What deserialization found wrong, in the API's terms (serde only carries a string).
struct Ctx {
    err: RefCell<Option<ApiError>>,
    budget: Cell<u64>,
}

impl Ctx {
    fn fail<E: de::Error>(&self, e: ApiError) -> E {
        let msg = e.message.clone();
        self.err.borrow_mut().get_or_insert(e);
        E::custom(msg)
    }
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad(code, message)
}

/// Parses `{"inputs": {name: {dtype, shape, data}}}` from any serde_json source.
pub fn parse<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
) -> Result<Vec<InTensor>, ApiError> {
    let ctx = Ctx {
        err: RefCell::new(None),
        budget: Cell::new(MAX_ELEMENTS),
    };
    let r = Top(&ctx).deserialize(&mut *de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    r.map_err(|e| {
        if let Some(api) = ctx.err.take() {
            return api;
        }
        match e.io_error_kind() {
            Some(std::io::ErrorKind::FileTooLarge) => ApiError::new(
                413,
                "payload-too-large",
                format!(
                    "request bodies are limited to {} bytes",
                    crate::protocol::MAX_BODY
                ),
            ),
            Some(_) => bad("body", "the request body could not be read"),
            None => bad("bad-json", format!("the body is not valid JSON: {e}")),
        }
    })
}

/// The `visit_*` methods of a visitor that refuses these JSON kinds with `self.$err()`.
macro_rules! reject {
    (scalars, $err:ident) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(self.$err())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(self.$err())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(self.$err())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(self.$err())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(self.$err())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(self.$err())
        }
    };
    (seq, $err:ident) => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.$err())
        }
    };
    (map, $err:ident) => {
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.$err())
        }
    };
}

struct Top<'c>(&'c Ctx);

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Vec<InTensor>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Top<'_> {
    fn not_object<E: de::Error>(&self) -> E {
        self.0
            .fail(bad("bad-json", "expected an object {\"inputs\": {...}}"))
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Vec<InTensor>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object {\"inputs\": {...}}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.0;
        let mut inputs = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "inputs" || inputs.is_some() {
                let what = if key == "inputs" {
                    "duplicate"
                } else {
                    "unknown"
                };
                return Err(ctx.fail(bad("bad-json", format!("{what} field {key:?}"))));
            }
            inputs = Some(map.next_value_seed(Inputs(ctx))?);
        }
        inputs.ok_or_else(|| ctx.fail(bad("bad-json", "missing \"inputs\"")))
    }
    reject!(scalars, not_object);
    reject!(seq, not_object);
}

struct Inputs<'c>(&'c Ctx);

impl Inputs<'_> {
    fn not_object<E: de::Error>(&self) -> E {
        self.0.fail(bad(
            "bad-json",
            "\"inputs\" must be an object of name -> {dtype, shape, data}",
        ))
    }
}

impl<'de> DeserializeSeed<'de> for Inputs<'_> {
    type Value = Vec<InTensor>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Inputs<'_> {
    type Value = Vec<InTensor>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of name -> {dtype, shape, data}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.0;
        let count = || {
            ctx.fail(bad(
                "bad-json",
                format!("\"inputs\" must have 1 to {MAX_INPUTS} entries"),
            ))
        };
        let mut out: Vec<InTensor> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if out.len() == MAX_INPUTS {
                return Err(count());
            }
            if name.is_empty() || name.len() > MAX_NAME {
                return Err(ctx.fail(bad(
                    "bad-tensor",
                    format!("input names must have 1 to {MAX_NAME} bytes"),
                )));
            }
            if out.iter().any(|t| t.name == name) {
                return Err(ctx.fail(bad("bad-json", format!("input \"{name}\" is given twice"))));
            }
            let t = map.next_value_seed(Tensor { ctx, name: &name })?;
            out.push(t);
        }
        if out.is_empty() {
            return Err(count());
        }
        Ok(out)
    }
    reject!(scalars, not_object);
    reject!(seq, not_object);
}

struct Tensor<'c, 'n> {
    ctx: &'c Ctx,
    name: &'n str,
}

enum Data {
    /// Converted as read: carrier bytes and element count.
    Carrier(Vec<u8>, u64),
    /// Read before `dtype` was known.
    Raw(Box<RawValue>),
}

impl<'de> DeserializeSeed<'de> for Tensor<'_, '_> {
    type Value = InTensor;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Tensor<'_, '_> {
    fn not_object<E: de::Error>(&self) -> E {
        self.ctx.fail(bad(
            "bad-json",
            format!("input \"{}\": expected {{dtype, shape, data}}", self.name),
        ))
    }
}

impl<'de> Visitor<'de> for Tensor<'_, '_> {
    type Value = InTensor;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("{dtype, shape, data}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (ctx, name) = (self.ctx, self.name);
        let mut dtype: Option<DType> = None;
        let mut shape: Option<(Vec<u64>, u64)> = None;
        let mut data: Option<Data> = None;
        while let Some(key) = map.next_key::<String>()? {
            let seen = match key.as_str() {
                "dtype" => dtype.is_some(),
                "shape" => shape.is_some(),
                "data" => data.is_some(),
                _ => {
                    return Err(ctx.fail(bad(
                        "bad-json",
                        format!("input \"{name}\": unknown field {key:?}"),
                    )))
                }
            };
            if seen {
                return Err(ctx.fail(bad(
                    "bad-json",
                    format!("input \"{name}\": duplicate field {key:?}"),
                )));
            }
            match key.as_str() {
                "dtype" => {
                    let s = map.next_value_seed(DTypeName { ctx, name })?;
                    dtype = Some(s);
                }
                "shape" => {
                    let dims = map.next_value_seed(Shape { ctx, name })?;
                    let mut budget = ctx.budget.get();
                    let n = elements(name, &dims, &mut budget).map_err(|e| ctx.fail(e))?;
                    ctx.budget.set(budget);
                    shape = Some((dims, n));
                }
                _ => {
                    data = Some(match dtype {
                        Some(d) => {
                            let limit = shape.as_ref().map(|s| s.1);
                            let (bytes, count) = map.next_value_seed(Elements {
                                ctx,
                                name,
                                dtype: d,
                                limit,
                            })?;
                            Data::Carrier(bytes, count)
                        }
                        None => Data::Raw(map.next_value::<Box<RawValue>>()?),
                    });
                }
            }
        }
        let missing = |k: &str| {
            ctx.fail(bad(
                "bad-json",
                format!("input \"{name}\": missing \"{k}\""),
            ))
        };
        let dtype = dtype.ok_or_else(|| missing("dtype"))?;
        let (dims, n) = shape.ok_or_else(|| missing("shape"))?;
        let data = data.ok_or_else(|| missing("data"))?;
        let (carrier, count) = match data {
            Data::Carrier(b, c) => (b, c),
            Data::Raw(raw) => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                Elements {
                    ctx,
                    name,
                    dtype,
                    limit: Some(n),
                }
                .deserialize(&mut de)
                .map_err(|e: serde_json::Error| {
                    ctx.fail::<A::Error>(bad("bad-json", e.to_string()))
                })?
            }
        };
        if count != n {
            return Err(ctx.fail(bad(
                "shape",
                format!("input \"{name}\": the shape has {n} elements, data has {count}"),
            )));
        }
        Ok(InTensor {
            name: name.to_string(),
            dtype,
            dims: dims.iter().map(|&d| d as u32).collect(),
            carrier,
        })
    }
    reject!(scalars, not_object);
    reject!(seq, not_object);
}

struct DTypeName<'c, 'n> {
    ctx: &'c Ctx,
    name: &'n str,
}

impl DTypeName<'_, '_> {
    fn not_string<E: de::Error>(&self) -> E {
        self.ctx.fail(bad(
            "dtype",
            format!("input \"{}\": dtype must be a string", self.name),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for DTypeName<'_, '_> {
    type Value = DType;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<DType, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DTypeName<'_, '_> {
    type Value = DType;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a dtype name")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<DType, E> {
        DType::parse(s).ok_or_else(|| {
            self.ctx.fail(bad(
                "dtype",
                format!(
                    "input \"{}\": unknown dtype {:?} (float32, int64, uint8, bool, ...)",
                    self.name,
                    s.chars().take(40).collect::<String>()
                ),
            ))
        })
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<DType, E> {
        Err(self.not_string())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<DType, E> {
        Err(self.not_string())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<DType, E> {
        Err(self.not_string())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<DType, E> {
        Err(self.not_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<DType, E> {
        Err(self.not_string())
    }
    reject!(seq, not_string);
    reject!(map, not_string);
}

struct Shape<'c, 'n> {
    ctx: &'c Ctx,
    name: &'n str,
}

impl Shape<'_, '_> {
    fn not_list<E: de::Error>(&self) -> E {
        self.ctx.fail(bad(
            "shape",
            format!("input \"{}\": shape must be a list", self.name),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for Shape<'_, '_> {
    type Value = Vec<u64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<u64>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shape<'_, '_> {
    type Value = Vec<u64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of dimensions")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
        let (ctx, name) = (self.ctx, self.name);
        let mut dims = Vec::new();
        while let Some(d) = seq.next_element_seed(Dim { ctx, name })? {
            if dims.len() == MAX_RANK {
                return Err(ctx.fail(bad(
                    "shape",
                    format!(
                        "input \"{name}\": rank {} is above {MAX_RANK}",
                        MAX_RANK + 1
                    ),
                )));
            }
            dims.push(d);
        }
        Ok(dims)
    }
    reject!(scalars, not_list);
    reject!(map, not_list);
}

/// One dimension: a non-negative integer.
struct Dim<'c, 'n> {
    ctx: &'c Ctx,
    name: &'n str,
}

impl Dim<'_, '_> {
    fn not_dim<E: de::Error>(&self) -> E {
        self.ctx.fail(bad(
            "shape",
            format!(
                "input \"{}\": shape must be a list of non-negative integers",
                self.name
            ),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for Dim<'_, '_> {
    type Value = u64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Dim<'_, '_> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| self.not_dim())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<u64, E> {
        Err(self.not_dim())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<u64, E> {
        Err(self.not_dim())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<u64, E> {
        Err(self.not_dim())
    }
    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Err(self.not_dim())
    }
    reject!(seq, not_dim);
    reject!(map, not_dim);
}

/// `data`: a flat list converted element by element. `limit`: the shape's count when known
/// (one more is an error at once), else the request's remaining element budget.
struct Elements<'c, 'n> {
    ctx: &'c Ctx,
    name: &'n str,
    dtype: DType,
    limit: Option<u64>,
}

impl Elements<'_, '_> {
    fn not_flat<E: de::Error>(&self) -> E {
        self.ctx.fail(bad(
            "bad-tensor",
            format!(
                "input \"{}\": data must be a flat list (row-major)",
                self.name
            ),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for Elements<'_, '_> {
    type Value = (Vec<u8>, u64);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = (Vec<u8>, u64);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a flat list of numbers")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (ctx, name, d) = (self.ctx, self.name, self.dtype);
        let mut out = Vec::new();
        let mut count: u64 = 0;
        while let Some(v) = seq.next_element_seed(Element { ctx, name })? {
            match self.limit {
                Some(n) if count == n => {
                    return Err(ctx.fail(bad(
                        "shape",
                        format!("input \"{name}\": the shape has {n} elements, data has more"),
                    )))
                }
                None if count == ctx.budget.get() => {
                    return Err(ctx.fail(ApiError::new(
                        413,
                        "too-large",
                        format!(
                            "input \"{name}\": more than {count} elements; a request may carry at most {MAX_ELEMENTS}"
                        ),
                    )))
                }
                _ => {}
            }
            dtype::push_json(name, d, v, &mut out).map_err(|e| ctx.fail(e))?;
            count += 1;
        }
        Ok((out, count))
    }
    reject!(scalars, not_flat);
    reject!(map, not_flat);
}

/// One element of `data`: a number (or a boolean, for `bool`); a nested list or object is
/// refused at once. Strings and null reach the dtype's conversion as `Other`.
struct Element<'c, 'n> {
    ctx: &'c Ctx,
    name: &'n str,
}

impl Element<'_, '_> {
    fn not_flat<E: de::Error>(&self) -> E {
        self.ctx.fail(bad(
            "bad-tensor",
            format!(
                "input \"{}\": data must be a flat list (row-major)",
                self.name
            ),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = JsonNumber;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_, '_> {
    type Value = JsonNumber;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(JsonNumber::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(JsonNumber::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(JsonNumber::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(JsonNumber::F64(v))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(JsonNumber::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(JsonNumber::Other)
    }
    reject!(seq, not_flat);
    reject!(map, not_flat);
}
