//! Named tensors in compute's request and reply (the format is in lib.rs's ABI notes; its
//! JavaScript side is static/engine-threads.js). Malformed bytes are an `invalid-argument` error.
use inference::{ElementType, NnError, NnResult, TensorData};

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> NnResult<&'a [u8]> {
        if self.0.len() < n {
            return Err(NnError::invalid(format!(
                "tensor request cut short in {what}"
            )));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self, what: &str) -> NnResult<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn text(&mut self, what: &str) -> NnResult<&'a str> {
        let n = self.u32(what)? as usize;
        std::str::from_utf8(self.take(n, what)?)
            .map_err(|_| NnError::invalid(format!("tensor request: {what} is not UTF-8")))
    }
}

pub fn decode(bytes: &[u8]) -> NnResult<Vec<(String, TensorData)>> {
    let mut r = Reader(bytes);
    let count = r.u32("the tensor count")?;
    let mut out = Vec::new();
    for _ in 0..count {
        let name = r.text("a tensor name")?.to_string();
        let ty_name = r.text("an element type")?;
        let ty = ElementType::parse(ty_name)
            .ok_or_else(|| NnError::invalid(format!("unknown tensor type \"{ty_name}\"")))?;
        let rank = r.u32("a rank")? as usize;
        // Each dim is 4 bytes: a rank larger than what is left is malformed, not an allocation.
        if rank > r.0.len() / 4 {
            return Err(NnError::invalid(format!(
                "tensor {name}: rank {rank} past the end of the request"
            )));
        }
        let dims = (0..rank)
            .map(|_| r.u32("a dimension"))
            .collect::<NnResult<Vec<u32>>>()?;
        let n = r.u32("a data length")? as usize;
        let data = r.take(n, "tensor data")?.to_vec();
        out.push((name, TensorData::new(dims, ty, data)));
    }
    if !r.0.is_empty() {
        return Err(NnError::invalid(
            "tensor request: bytes after the last tensor",
        ));
    }
    Ok(out)
}

pub fn encode(tensors: &[(String, TensorData)]) -> Vec<u8> {
    let mut out = Vec::new();
    let u32le = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_le_bytes());
    u32le(&mut out, tensors.len());
    for (name, t) in tensors {
        for text in [name.as_str(), t.ty.wit_name()] {
            u32le(&mut out, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        u32le(&mut out, t.dims.len());
        for &d in &t.dims {
            u32le(&mut out, d as usize);
        }
        u32le(&mut out, t.data.len());
        out.extend_from_slice(&t.data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip() {
        let t = vec![
            (
                "x".to_string(),
                TensorData::new(vec![1, 2], ElementType::F32, vec![0; 8]),
            ),
            (
                "ids".to_string(),
                TensorData::new(vec![3], ElementType::I64, vec![7; 24]),
            ),
        ];
        assert_eq!(decode(&encode(&t)).unwrap(), t);
    }

    #[test]
    fn malformed_requests_are_invalid_argument() {
        let good = encode(&[(
            "x".into(),
            TensorData::new(vec![2], ElementType::F32, vec![1; 8]),
        )]);
        for bad in [&good[..good.len() - 1], &[1, 0, 0, 0][..], &[][..]] {
            let e = decode(bad).unwrap_err();
            assert_eq!(e.code, inference::ErrorCode::InvalidArgument, "{bad:?}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        let mut huge_rank = encode(&[(
            "x".into(),
            TensorData::new(vec![], ElementType::F32, vec![]),
        )]);
        let at = 4 + 4 + 1 + 4 + 4;
        huge_rank[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge_rank).unwrap_err().message.contains("rank"));
    }
}
