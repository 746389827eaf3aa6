//! A minimal, in-memory edit of an ONNX model: make a batch-1 recognition model accept any batch.
//!
//! fr_feature.onnx is exported with a fixed input `[1,3,112,112]` and ends with
//! `Reshape(x, [1,-1])`. Run with N faces, that Reshape would glue the N embeddings into one
//! row, and ONNX Runtime refuses N ≠ 1 on the input anyway. The edit renames the first dimension
//! of the graph's input and output to a symbolic `batch`, and turns a constant Reshape target
//! `[1,-1]` into `[-1, dim]`. The weights and every other byte are kept; the file on disk is
//! untouched (and was checked by sha256 before). Checked by the tests: batch outputs equal the
//! one-by-one outputs.
//!
//! Protocol Buffers wire format only as far as needed: fields are kept in order, untouched
//! fields are copied byte for byte, edited messages are re-encoded with new lengths.

/// One field of a protobuf message: number, wire type and the raw payload.
#[derive(Debug, Clone)]
struct Field {
    number: u64,
    wire: u8,
    /// Varint value for wire type 0; bytes for 1, 2 and 5.
    varint: u64,
    bytes: Vec<u8>,
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn parse(buf: &[u8]) -> Option<Vec<Field>> {
    let mut pos = 0;
    let mut fields = Vec::new();
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let (number, wire) = (key >> 3, (key & 7) as u8);
        let mut f = Field {
            number,
            wire,
            varint: 0,
            bytes: Vec::new(),
        };
        match wire {
            0 => f.varint = read_varint(buf, &mut pos)?,
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                f.bytes = buf.get(pos..pos + n)?.to_vec();
                pos += n;
            }
            2 => {
                let n = read_varint(buf, &mut pos)? as usize;
                f.bytes = buf.get(pos..pos.checked_add(n)?)?.to_vec();
                pos += n;
            }
            _ => return None,
        }
        fields.push(f);
    }
    Some(fields)
}

fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        write_varint(&mut out, (f.number << 3) | f.wire as u64);
        match f.wire {
            0 => write_varint(&mut out, f.varint),
            2 => {
                write_varint(&mut out, f.bytes.len() as u64);
                out.extend_from_slice(&f.bytes);
            }
            _ => out.extend_from_slice(&f.bytes),
        }
    }
    out
}

fn bytes_field(number: u64, bytes: Vec<u8>) -> Field {
    Field {
        number,
        wire: 2,
        varint: 0,
        bytes,
    }
}

fn string_of(fields: &[Field], number: u64) -> Option<String> {
    fields
        .iter()
        .find(|f| f.number == number && f.wire == 2)
        .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
}

// Field numbers of onnx.proto.
const MODEL_GRAPH: u64 = 7;
const GRAPH_NODE: u64 = 1;
const GRAPH_INITIALIZER: u64 = 5;
const GRAPH_INPUT: u64 = 11;
const GRAPH_OUTPUT: u64 = 12;
const NODE_INPUT: u64 = 1;
const NODE_OUTPUT: u64 = 2;
const NODE_OP_TYPE: u64 = 4;
const VALUE_INFO_TYPE: u64 = 2;
const TYPE_TENSOR: u64 = 1;
const TENSOR_TYPE_SHAPE: u64 = 2;
const SHAPE_DIM: u64 = 1;
const DIM_PARAM: u64 = 2;
const TENSOR_DIMS: u64 = 1;
const TENSOR_DATA_TYPE: u64 = 2;
const TENSOR_NAME: u64 = 8;
const TENSOR_RAW_DATA: u64 = 9;
const TENSOR_INT64_DATA: u64 = 7;
const INT64: u64 = 7;

/// Replaces the first dimension of a ValueInfoProto's tensor shape by the symbol `batch`.
fn make_first_dim_symbolic(value_info: &[u8]) -> Option<Vec<u8>> {
    let mut vi = parse(value_info)?;
    let ty = vi.iter_mut().find(|f| f.number == VALUE_INFO_TYPE)?;
    let mut ty_fields = parse(&ty.bytes)?;
    let tensor = ty_fields.iter_mut().find(|f| f.number == TYPE_TENSOR)?;
    let mut tensor_fields = parse(&tensor.bytes)?;
    let shape = tensor_fields.iter_mut().find(|f| f.number == TENSOR_TYPE_SHAPE)?;
    let mut dims = parse(&shape.bytes)?;
    let first = dims.iter_mut().find(|f| f.number == SHAPE_DIM)?;
    first.bytes = encode(&[bytes_field(DIM_PARAM, b"batch".to_vec())]);
    shape.bytes = encode(&dims);
    tensor.bytes = encode(&tensor_fields);
    ty.bytes = encode(&ty_fields);
    Some(encode(&vi))
}

/// The int64 values of a TensorProto (raw_data or int64_data), if it is a small int64 vector.
fn int64_values(tensor: &[Field]) -> Option<Vec<i64>> {
    let ty = tensor.iter().find(|f| f.number == TENSOR_DATA_TYPE)?.varint;
    if ty != INT64 {
        return None;
    }
    if let Some(raw) = tensor.iter().find(|f| f.number == TENSOR_RAW_DATA) {
        return Some(
            raw.bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        );
    }
    let mut v = Vec::new();
    for f in tensor.iter().filter(|f| f.number == TENSOR_INT64_DATA) {
        if f.wire == 0 {
            v.push(f.varint as i64);
        } else {
            let mut pos = 0;
            while pos < f.bytes.len() {
                v.push(read_varint(&f.bytes, &mut pos)? as i64);
            }
        }
    }
    Some(v)
}

/// Returns the model with a dynamic batch dimension, or `None` when the graph does not have the
/// expected shape (the caller then runs one face at a time).
pub fn dynamic_batch(model: &[u8], embedding_dim: usize) -> Option<Vec<u8>> {
    let mut top = parse(model)?;
    let graph = top.iter_mut().find(|f| f.number == MODEL_GRAPH && f.wire == 2)?;
    let mut g = parse(&graph.bytes)?;

    // The graph's output name: the only Reshape we may touch is the one producing it (a
    // Reshape inside the network, e.g. a flatten before a dense layer, has another target).
    let output_name = {
        let out = g.iter().find(|f| f.number == GRAPH_OUTPUT)?;
        string_of(&parse(&out.bytes)?, 1)?
    };
    // Names of the constant shapes fed to Reshape nodes.
    let mut reshape_targets = Vec::new();
    for node in g.iter().filter(|f| f.number == GRAPH_NODE) {
        let n = parse(&node.bytes)?;
        if string_of(&n, NODE_OP_TYPE).as_deref() == Some("Reshape") {
            let text = |number| -> Vec<String> {
                n.iter()
                    .filter(|f| f.number == number)
                    .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
                    .collect()
            };
            if text(NODE_OUTPUT) != [output_name.clone()] {
                return None;
            }
            reshape_targets.push(text(NODE_INPUT).get(1)?.clone());
        }
    }
    let mut fixed_reshapes = 0;
    let (mut inputs, mut outputs) = (0, 0);
    for f in g.iter_mut() {
        match f.number {
            GRAPH_INITIALIZER => {
                let mut t = parse(&f.bytes)?;
                let Some(name) = string_of(&t, TENSOR_NAME) else {
                    continue;
                };
                if !reshape_targets.contains(&name) {
                    continue;
                }
                if int64_values(&t)? != [1, -1] {
                    return None;
                }
                let raw: Vec<u8> = [-1i64, embedding_dim as i64]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                t.retain(|x| x.number != TENSOR_RAW_DATA && x.number != TENSOR_INT64_DATA);
                t.push(bytes_field(TENSOR_RAW_DATA, raw));
                // dims stay [2].
                debug_assert!(t.iter().any(|x| x.number == TENSOR_DIMS));
                f.bytes = encode(&t);
                fixed_reshapes += 1;
            }
            GRAPH_INPUT if inputs == 0 => {
                // The first graph input is the image (initializers may be listed after it).
                f.bytes = make_first_dim_symbolic(&f.bytes)?;
                inputs += 1;
            }
            GRAPH_OUTPUT if outputs == 0 => {
                f.bytes = make_first_dim_symbolic(&f.bytes)?;
                outputs += 1;
            }
            _ => {}
        }
    }
    if fixed_reshapes != reshape_targets.len() || inputs != 1 || outputs != 1 {
        return None;
    }
    graph.bytes = encode(&g);
    Some(encode(&top))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_unknown_fields_are_kept() {
        let fields = vec![
            Field {
                number: 1,
                wire: 0,
                varint: 300,
                bytes: vec![],
            },
            bytes_field(2, b"abc".to_vec()),
            Field {
                number: 3,
                wire: 5,
                varint: 0,
                bytes: vec![1, 2, 3, 4],
            },
        ];
        let bytes = encode(&fields);
        assert_eq!(&bytes[..3], &[0x08, 0xac, 0x02]);
        assert_eq!(encode(&parse(&bytes).unwrap()), bytes);
        assert!(
            parse(&[0x0a, 0x05, 1]).is_none(),
            "truncated length-delimited field"
        );
    }

    #[test]
    fn a_graph_without_the_expected_shape_is_left_alone() {
        // A ModelProto with an empty graph.
        let model = encode(&[bytes_field(MODEL_GRAPH, vec![])]);
        assert!(dynamic_batch(&model, 512).is_none());
        assert!(dynamic_batch(b"not a model", 512).is_none());
    }
}
