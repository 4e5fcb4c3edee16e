//! `DENSIFY` of sparse weights (TFLite's sparse format, in MediaPipe's sparse face detector):
//! tract-tflite has no `DENSIFY`, and the value is known at load, so the output becomes the
//! dense constant.
use super::super::rewriter::{Const, Rewriter};
use super::super::{elem_size, invalid};
use super::Matched;
use crate::error::{NnError, NnResult};
use tract_tflite::tflite;

pub(super) fn rewrite<'a>(rw: &mut Rewriter<'a>, m: &Matched<'a>) -> NnResult<bool> {
    let Some(c) = densify(rw, m.input(0)?, m.output())? else {
        return Ok(false);
    };
    rw.set_const(m.output(), c);
    Ok(true)
}

/// The dense value of a constant sparse tensor (TFLite's `SparsityParameters`: the
/// dimensions, split into blocks by `block_map`, traversed in `traversal_order`, each dense or
/// compressed as CSR segments and indices). Every index is checked.
fn densify(rw: &Rewriter, ix: i32, out: i32) -> NnResult<Option<Const>> {
    let Some(t) = rw.old_tensor(ix) else {
        return Ok(None);
    };
    let Some(sparsity) = t.sparsity() else {
        return Ok(None);
    };
    let buffers = rw.model.buffers();
    let data = buffers
        .as_ref()
        .filter(|b| t.buffer() != 0 && (t.buffer() as usize) < b.len())
        .and_then(|b| b.get(t.buffer() as usize).data());
    let Some(data) = data else {
        return Ok(None);
    };
    let ty = t.type_();
    let size = elem_size(ty).ok_or_else(|| NnError::unsupported(format!("sparse {ty:?}")))?;
    let shape = rw.concrete_shape(out)?;
    let n = shape.len();
    let total = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let total = total
        .filter(|&t| t <= crate::limits::Limits::default().max_tensor_elements)
        .ok_or_else(|| NnError::too_large("densified tensor too large"))?;
    let order: Vec<usize> = sparsity
        .traversal_order()
        .iter()
        .flatten()
        .map(|d| d as usize)
        .collect();
    let block_map: Vec<usize> = sparsity
        .block_map()
        .iter()
        .flatten()
        .map(|d| d as usize)
        .collect();
    let metas: Vec<tflite::DimensionMetadata> = sparsity.dim_metadata().iter().flatten().collect();
    let levels = n + block_map.len();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    if order.len() != levels || metas.len() != levels || !sorted.iter().copied().eq(0..levels) {
        return Err(invalid(
            "sparsity parameters do not match the tensor's rank",
        ));
    }
    // Size of each expanded dimension: blocked dims count blocks, then the block sizes.
    let mut dims: Vec<usize> = shape.clone();
    let mut blocks = vec![];
    for (j, &d) in block_map.iter().enumerate() {
        let b = usize::try_from(
            metas[order.iter().position(|&o| o == n + j).unwrap_or(0)].dense_size(),
        )
        .ok()
        .filter(|&b| b > 0 && d < n && dims[d].is_multiple_of(b))
        .ok_or_else(|| invalid("bad sparsity block size"))?;
        dims[d] /= b;
        blocks.push(b);
    }
    dims.extend(&blocks);
    let index_vec = |m: &tflite::DimensionMetadata, segments: bool| -> Option<Vec<usize>> {
        let v: Vec<usize> = if segments {
            if let Some(v) = m.array_segments_as_int_32_vector() {
                v.values()?.iter().map(|x| x.max(0) as usize).collect()
            } else if let Some(v) = m.array_segments_as_uint_16_vector() {
                v.values()?.iter().map(|x| x as usize).collect()
            } else {
                m.array_segments_as_uint_8_vector()?
                    .values()?
                    .bytes()
                    .iter()
                    .map(|&x| x as usize)
                    .collect()
            }
        } else if let Some(v) = m.array_indices_as_int_32_vector() {
            v.values()?.iter().map(|x| x.max(0) as usize).collect()
        } else if let Some(v) = m.array_indices_as_uint_16_vector() {
            v.values()?.iter().map(|x| x as usize).collect()
        } else {
            m.array_indices_as_uint_8_vector()?
                .values()?
                .bytes()
                .iter()
                .map(|&x| x as usize)
                .collect()
        };
        Some(v)
    };
    enum Level {
        Dense(usize),
        Csr(Vec<usize>, Vec<usize>),
    }
    let mut plan = vec![];
    for (level, m) in metas.iter().enumerate() {
        let d = dims[order[level]];
        if m.format() == tflite::DimensionType::DENSE {
            if m.dense_size() as usize != d {
                return Err(invalid("sparsity dense size does not match the shape"));
            }
            plan.push(Level::Dense(d));
        } else {
            let seg = index_vec(m, true).ok_or_else(|| invalid("CSR level without segments"))?;
            let ind = index_vec(m, false).ok_or_else(|| invalid("CSR level without indices"))?;
            if ind.iter().any(|&i| i >= d)
                || seg.windows(2).any(|w| w[0] > w[1])
                || seg.last().is_some_and(|&l| l > ind.len())
            {
                return Err(invalid("CSR segments or indices out of range"));
            }
            plan.push(Level::Csr(seg, ind));
        }
    }
    let values = data.bytes();
    let mut dense = vec![0u8; total * size];
    let mut next = 0usize;
    let mut coords = vec![0usize; levels];
    // Depth-first over the levels; `pos` is the position within the current level.
    let mut stack: Vec<(usize, usize, usize)> = vec![(0, 0, 0)]; // (level, parent, i)
    while let Some((level, parent, i)) = stack.pop() {
        if level == levels {
            let mut flat = 0usize;
            for (d, &size_d) in shape.iter().enumerate() {
                let mut c = coords[d];
                if let Some(j) = block_map.iter().position(|&b| b == d) {
                    c = c * blocks[j] + coords[n + j];
                }
                flat = flat * size_d + c;
            }
            let src = values
                .get(next * size..(next + 1) * size)
                .ok_or_else(|| invalid("sparse tensor has fewer values than its indices"))?;
            dense[flat * size..(flat + 1) * size].copy_from_slice(src);
            next += 1;
            continue;
        }
        let (start, end) = match &plan[level] {
            Level::Dense(d) => (parent * d, parent * d + d),
            Level::Csr(seg, _) => {
                let s = *seg
                    .get(parent)
                    .ok_or_else(|| invalid("CSR segment out of range"))?;
                let e = *seg
                    .get(parent + 1)
                    .ok_or_else(|| invalid("CSR segment out of range"))?;
                (s, e)
            }
        };
        let pos = start + i;
        if pos >= end {
            continue;
        }
        // Siblings after this one, then this one's subtree (popped first).
        stack.push((level, parent, i + 1));
        coords[order[level]] = match &plan[level] {
            Level::Dense(_) => i,
            Level::Csr(_, ind) => ind[pos],
        };
        stack.push((level + 1, pos, 0));
    }
    if next * size != values.len() {
        return Err(invalid("sparse tensor has more values than its indices"));
    }
    Ok(Some(Const {
        ty,
        shape,
        data: dense,
    }))
}
