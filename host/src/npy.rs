//! `.npy` files in and out, as wasi-nn tensors (npyz does the format).
use anyhow::{bail, Context, Result};
use half::f16;
use inference::{ElementType, TensorData};
use npyz::{AutoSerialize, Deserialize, NpyFile, Serialize, WriterBuilder};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Little-endian element encoding shared by reading and writing.
trait Element: Deserialize + Serialize + AutoSerialize + Copy {
    const TY: ElementType;
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

macro_rules! element {
    ($t:ty, $ty:expr) => {
        impl Element for $t {
            const TY: ElementType = $ty;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes())
            }
            fn get(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("element-sized chunk"))
            }
        }
    };
}
element!(f16, ElementType::F16);
element!(f32, ElementType::F32);
element!(f64, ElementType::F64);
element!(u8, ElementType::U8);
element!(i32, ElementType::I32);
element!(i64, ElementType::I64);

fn decode<T: Element>(npy: NpyFile<&[u8]>, dims: Vec<u32>) -> Result<TensorData> {
    let mut data = Vec::new();
    for v in npy.into_vec::<T>()? {
        v.put(&mut data);
    }
    Ok(TensorData::new(dims, T::TY, data))
}

/// Reads a C-ordered `.npy` of float16/32/64, uint8, bool (as u8), int32 or int64.
pub fn read(path: &Path) -> Result<TensorData> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let npy = NpyFile::new(&bytes[..])
        .with_context(|| format!("{} is not a .npy file", path.display()))?;
    if npy.order() != npyz::Order::C {
        bail!(
            "{}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
            path.display()
        );
    }
    let dims = npy
        .shape()
        .iter()
        .map(|&d| u32::try_from(d).context("dimension does not fit in u32"))
        .collect::<Result<Vec<u32>>>()?;
    let npyz::DType::Plain(ts) = npy.dtype() else {
        bail!("{}: structured arrays are not supported", path.display())
    };
    use npyz::TypeChar as C;
    match (ts.type_char(), ts.size_field()) {
        (C::Float, 2) => decode::<f16>(npy, dims),
        (C::Float, 4) => decode::<f32>(npy, dims),
        (C::Float, 8) => decode::<f64>(npy, dims),
        (C::Uint, 1) => decode::<u8>(npy, dims),
        (C::Bool, 1) => {
            let v: Vec<bool> = npy.into_vec()?;
            Ok(TensorData::new(
                dims,
                ElementType::U8,
                v.into_iter().map(u8::from).collect(),
            ))
        }
        (C::Int, 4) => decode::<i32>(npy, dims),
        (C::Int, 8) => decode::<i64>(npy, dims),
        _ => bail!(
            "{}: dtype {ts} is not supported (float16/32/64, uint8, bool, int32, int64)",
            path.display()
        ),
    }
}

fn encode<T: Element>(path: &Path, t: &TensorData) -> Result<()> {
    let shape: Vec<u64> = t.dims.iter().map(|&d| d as u64).collect();
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()?;
    w.extend(t.data.chunks_exact(t.ty.size()).map(T::get))?;
    w.finish()?;
    Ok(())
}

pub fn write(path: &Path, t: &TensorData) -> Result<()> {
    match t.ty {
        ElementType::F16 => encode::<f16>(path, t),
        ElementType::F32 => encode::<f32>(path, t),
        ElementType::F64 => encode::<f64>(path, t),
        ElementType::U8 => encode::<u8>(path, t),
        ElementType::I32 => encode::<i32>(path, t),
        ElementType::I64 => encode::<i64>(path, t),
        ElementType::Bf16 => bail!("bf16 has no .npy dtype"),
    }
}

/// Output names become file names: anything but letters, digits and `._-` turns into `_`.
pub fn file_name(output: &str) -> String {
    let safe: String = output
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // "." and ".." are legal characters but not legal names.
    let safe = if safe.trim_matches('.').is_empty() {
        safe.replace('.', "_")
    } else {
        safe
    };
    // File systems cap names at 255 bytes: a long name keeps its start and gets a digest of
    // the whole, so distinct outputs stay distinct files.
    if safe.len() > MAX_STEM {
        let digest: String = Sha256::digest(output.as_bytes())
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        return format!("{}-{digest}.npy", &safe[..MAX_STEM - 17]);
    }
    format!("{safe}.npy")
}

const MAX_STEM: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = std::env::temp_dir().join(format!("sc-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let t = TensorData::new(
            vec![2, 3],
            ElementType::F32,
            (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect(),
        );
        write(&p, &t).unwrap();
        assert_eq!(read(&p).unwrap(), t);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn long_output_names_fit_a_file_name() {
        let a = file_name(&"x".repeat(400));
        let b = file_name(&format!("{}y", "x".repeat(399)));
        assert!(a.len() <= 255 && b.len() <= 255, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn hostile_output_names_stay_in_the_directory() {
        assert_eq!(file_name("probabilities"), "probabilities.npy");
        assert_eq!(file_name("../../etc/passwd"), ".._.._etc_passwd.npy");
        assert_eq!(file_name(".."), "__.npy");
        assert_eq!(file_name("a/b:c"), "a_b_c.npy");
    }
}
