//! Conversion between `TensorProto` and plain host vectors.
//!
//! Values may be stored in `raw_data` (little-endian, what exporters write) or in the typed
//! repeated fields; both are read. External data (weights in side files) is refused with a
//! message, since a bundle must be one self-contained `model.onnx`.

use crate::error::OnnxError;
use crate::proto::TensorProto;

/// ONNX element types Gauntlet reads (`TensorProto.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// 32-bit float.
    Float = 1,
    /// Unsigned byte.
    Uint8 = 2,
    /// Signed byte.
    Int8 = 3,
    /// 32-bit signed integer.
    Int32 = 6,
    /// 64-bit signed integer.
    Int64 = 7,
    /// Boolean (one byte each).
    Bool = 9,
    /// 64-bit float.
    Double = 11,
}

impl DataType {
    /// The type of an ONNX element-type code, if Gauntlet reads it.
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            1 => Self::Float,
            2 => Self::Uint8,
            3 => Self::Int8,
            6 => Self::Int32,
            7 => Self::Int64,
            9 => Self::Bool,
            11 => Self::Double,
            _ => return None,
        })
    }

    /// The ONNX element-type code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A tensor's values on the host, widened to the two types computation needs.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// Float and double values.
    Float(Vec<f32>),
    /// Integer and boolean values (booleans as 0/1).
    Int(Vec<i64>),
}

/// A decoded constant tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions (empty for a scalar).
    pub dims: Vec<i64>,
    /// The element type as stored.
    pub data_type: DataType,
    /// The values, row-major.
    pub data: TensorData,
}

impl HostTensor {
    /// Number of elements the dimensions call for.
    pub fn numel(&self) -> usize {
        self.dims.iter().map(|&d| d.max(0) as usize).product()
    }
}

fn tensor_err(t: &TensorProto, message: impl Into<String>) -> OnnxError {
    OnnxError::Tensor {
        name: t.name.clone(),
        message: message.into(),
    }
}

fn chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// Decodes a `TensorProto`.
pub fn decode(t: &TensorProto) -> Result<HostTensor, OnnxError> {
    if !t.external_data.is_empty() || t.data_location == 1 {
        return Err(tensor_err(
            t,
            "weights are stored in an external data file; re-export the model with all weights inside model.onnx",
        ));
    }
    let data_type = DataType::from_code(t.data_type)
        .ok_or_else(|| tensor_err(t, format!("unsupported element type code {}", t.data_type)))?;
    if t.dims.iter().any(|&d| d < 0) {
        return Err(tensor_err(t, format!("negative dimension in {:?}", t.dims)));
    }
    let raw = &t.raw_data;
    let data = match data_type {
        DataType::Float if !raw.is_empty() => {
            TensorData::Float(chunks::<4>(raw).map(f32::from_le_bytes).collect())
        }
        DataType::Float => TensorData::Float(t.float_data.clone()),
        DataType::Double if !raw.is_empty() => TensorData::Float(
            chunks::<8>(raw)
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
        ),
        DataType::Double => TensorData::Float(t.double_data.iter().map(|&v| v as f32).collect()),
        DataType::Int64 if !raw.is_empty() => {
            TensorData::Int(chunks::<8>(raw).map(i64::from_le_bytes).collect())
        }
        DataType::Int64 => TensorData::Int(t.int64_data.clone()),
        DataType::Int32 if !raw.is_empty() => TensorData::Int(
            chunks::<4>(raw)
                .map(|b| i64::from(i32::from_le_bytes(b)))
                .collect(),
        ),
        DataType::Int32 => TensorData::Int(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        DataType::Uint8 | DataType::Bool if !raw.is_empty() => {
            TensorData::Int(raw.iter().map(|&b| i64::from(b)).collect())
        }
        DataType::Int8 if !raw.is_empty() => {
            TensorData::Int(raw.iter().map(|&b| i64::from(b as i8)).collect())
        }
        DataType::Uint8 | DataType::Bool | DataType::Int8 => {
            TensorData::Int(t.int32_data.iter().map(|&v| i64::from(v)).collect())
        }
    };
    let tensor = HostTensor {
        dims: t.dims.clone(),
        data_type,
        data,
    };
    let len = match &tensor.data {
        TensorData::Float(v) => v.len(),
        TensorData::Int(v) => v.len(),
    };
    if len != tensor.numel() {
        return Err(tensor_err(
            t,
            format!(
                "holds {len} values but its dimensions {:?} need {}",
                t.dims,
                tensor.numel()
            ),
        ));
    }
    Ok(tensor)
}

/// A float tensor in `raw_data`.
pub fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: dims.to_vec(),
        data_type: DataType::Float.code(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 tensor in `raw_data`.
pub fn int64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: dims.to_vec(),
        data_type: DataType::Int64.code(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_typed_storage_decode_alike() {
        let raw = float_tensor("w", &[2, 2], &[1.0, -2.0, 3.5, 0.0]);
        let typed = TensorProto {
            name: "w".into(),
            dims: vec![2, 2],
            data_type: 1,
            float_data: vec![1.0, -2.0, 3.5, 0.0],
            ..Default::default()
        };
        assert_eq!(decode(&raw).unwrap(), decode(&typed).unwrap());
        let ints = decode(&int64_tensor("i", &[3], &[7, -1, 0])).unwrap();
        assert_eq!(ints.data, TensorData::Int(vec![7, -1, 0]));
    }

    #[test]
    fn wrong_length_and_external_data_are_refused() {
        let short = TensorProto {
            name: "w".into(),
            dims: vec![3],
            data_type: 1,
            float_data: vec![1.0],
            ..Default::default()
        };
        assert!(decode(&short).unwrap_err().to_string().contains("need 3"));
        let external = TensorProto {
            data_location: 1,
            ..float_tensor("e", &[1], &[1.0])
        };
        assert!(decode(&external)
            .unwrap_err()
            .to_string()
            .contains("external"));
    }
}
