//! Shape and indexing operators: everything that moves values without computing new ones,
//! plus the constant generators.
//!
//! Shapes are computed on the host from static integers read with [`to_ints`]; data stays
//! on the device and keeps its autograd history (`Gather` and `Slice` are differentiable
//! with respect to their data input).

use gauntlet_onnx::{attribute, decode};
use tch::{Kind, Scalar, Tensor};

use super::{host_to_tensor, is_float, to_floats, to_ints, Args};
use crate::error::GraphError;

fn shape(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let dims = args.req(0)?.size();
    let rank = dims.len() as i64;
    let clampi = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clampi(args.int("start", 0));
    let end = clampi(args.int("end", rank));
    let picked = if start < end {
        &dims[start..end]
    } else {
        &[][..]
    };
    Ok(Tensor::f_from_slice(picked)?.f_to_device(args.device)?)
}

/// The target shape of `Reshape`: 0 copies the input's dimension (unless `allowzero`),
/// -1 is inferred (by libtorch).
pub(crate) fn reshape_target(
    input: &[i64],
    requested: &[i64],
    allow_zero: bool,
) -> Result<Vec<i64>, String> {
    if requested.iter().filter(|&&d| d == -1).count() > 1 {
        return Err(format!("shape {requested:?} has more than one -1"));
    }
    requested
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            0 if !allow_zero => input.get(i).copied().ok_or_else(|| {
                format!(
                    "shape {requested:?}: 0 at {i} but the input has rank {}",
                    input.len()
                )
            }),
            d if d < -1 => Err(format!("invalid dimension {d} in shape {requested:?}")),
            d => Ok(d),
        })
        .collect()
}

fn reshape(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let target = reshape_target(&x.size(), &args.req_ints(1)?, args.int("allowzero", 0) != 0)
        .map_err(|m| args.err(m))?;
    Ok(x.f_reshape(target.as_slice())?)
}

fn axes_input_or_attr(args: &Args<'_>) -> Result<Option<Vec<i64>>, GraphError> {
    match args.opt(1) {
        Some(t) => Ok(Some(to_ints(t)?)),
        None => Ok(args.ints("axes")),
    }
}

fn unsqueeze(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let axes = axes_input_or_attr(args)?.ok_or_else(|| args.err("no axes given"))?;
    let out_rank = x.dim() as i64 + axes.len() as i64;
    let mut axes: Vec<i64> = axes
        .iter()
        .map(|&a| args.axis(a, out_rank))
        .collect::<Result<_, _>>()?;
    axes.sort_unstable();
    let mut y = x.shallow_clone();
    for a in axes {
        y = y.f_unsqueeze(a)?;
    }
    Ok(y)
}

fn squeeze(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let rank = x.dim() as i64;
    let size = x.size();
    let mut axes: Vec<i64> = match axes_input_or_attr(args)? {
        Some(a) => a
            .iter()
            .map(|&a| args.axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).filter(|&i| size[i as usize] == 1).collect(),
    };
    axes.sort_unstable_by(|a, b| b.cmp(a));
    let mut y = x.shallow_clone();
    for a in axes {
        if size[a as usize] != 1 {
            return Err(args.err(format!(
                "cannot squeeze axis {a} of size {}",
                size[a as usize]
            )));
        }
        y = y.f_squeeze_dim(a)?;
    }
    Ok(y)
}

/// Normalised `(start, end)` of one `Slice` axis of size `dim`, clamped as ONNX specifies
/// (bounds may be `i64::MIN`/`i64::MAX`).
pub(crate) fn slice_bounds(start: i64, end: i64, step: i64, dim: i64) -> (i64, i64) {
    let norm = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
    let (s, e) = (norm(start), norm(end));
    if step > 0 {
        (s.clamp(0, dim), e.clamp(0, dim))
    } else {
        (s.clamp(0, (dim - 1).max(0)), e.clamp(-1, (dim - 1).max(-1)))
    }
}

fn slice(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let rank = x.dim() as i64;
    let starts = args.req_ints(1)?;
    let ends = args.req_ints(2)?;
    let axes = match args.opt(3) {
        Some(t) => to_ints(t)?,
        None => (0..starts.len() as i64).collect(),
    };
    let steps = match args.opt(4) {
        Some(t) => to_ints(t)?,
        None => vec![1; starts.len()],
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(args.err("starts, ends, axes and steps differ in length"));
    }
    let mut y = x.shallow_clone();
    for k in 0..starts.len() {
        let axis = args.axis(axes[k], rank)?;
        let step = steps[k];
        if step == 0 {
            return Err(args.err("slice step 0"));
        }
        let dim = y.size()[axis as usize];
        let (s, e) = slice_bounds(starts[k], ends[k], step, dim);
        y = if step > 0 {
            y.f_slice(axis, s, e.max(s), step)?
        } else {
            // libtorch has no negative steps: gather the indices instead.
            let idx: Vec<i64> = (0..).map(|i| s + i * step).take_while(|&i| i > e).collect();
            let idx = Tensor::f_from_slice(&idx)?.f_to_device(args.device)?;
            y.f_index_select(axis, &idx)?
        };
    }
    Ok(y)
}

fn gather(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let data = args.req(0)?;
    let indices = args.req(1)?.f_to_kind(Kind::Int64)?;
    let size = data.size();
    let axis = args.axis(args.int("axis", 0), size.len() as i64)?;
    let dim = size[axis as usize];
    // Negative indices count from the end; out-of-range ones stay out of range, so
    // libtorch reports them.
    let wrap = indices.f_lt(0)?.f_to_kind(Kind::Int64)?.f_mul_scalar(dim)?;
    let idx = indices.f_add(&wrap)?;
    let mut out_shape: Vec<i64> = size[..axis as usize].to_vec();
    out_shape.extend(indices.size());
    out_shape.extend(&size[axis as usize + 1..]);
    Ok(data
        .f_index_select(axis, &idx.f_flatten(0, -1)?)?
        .f_reshape(out_shape.as_slice())?)
}

/// `GatherElements`: `out[i][j] = data[index[i][j]][j]` along `axis` (RoBERTa's position
/// ids are built with it); negative indices count from the end.
fn gather_elements(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let data = args.req(0)?;
    let indices = args.req(1)?.f_to_kind(Kind::Int64)?;
    let axis = args.axis(args.int("axis", 0), data.dim() as i64)?;
    let dim = data.size()[axis as usize];
    let wrap = indices.f_lt(0)?.f_to_kind(Kind::Int64)?.f_mul_scalar(dim)?;
    Ok(data.f_gather(axis, &indices.f_add(&wrap)?, false)?)
}

/// The broadcast of two shapes (numpy rules), as `Expand` needs.
fn broadcast(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let n = a.len().max(b.len());
    let at = |s: &[i64], i: usize| {
        let pad = n - s.len();
        if i < pad {
            1
        } else {
            s[i - pad]
        }
    };
    (0..n)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

fn expand(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let requested = args.req_ints(1)?;
    let target = broadcast(&x.size(), &requested)
        .ok_or_else(|| args.err(format!("cannot broadcast {:?} to {requested:?}", x.size())))?;
    Ok(x.f_expand(target.as_slice(), false)?)
}

fn flatten(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let size = x.size();
    let rank = size.len() as i64;
    let axis = args.int("axis", 1);
    let axis = if axis < 0 { axis + rank } else { axis };
    if !(0..=rank).contains(&axis) {
        return Err(args.err(format!("axis {axis} out of range for rank {rank}")));
    }
    let outer: i64 = size[..axis as usize].iter().product();
    let inner: i64 = size[axis as usize..].iter().product();
    Ok(x.f_reshape([outer, inner])?)
}

fn range(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let (start, limit, delta) = (args.req(0)?, args.req(1)?, args.req(2)?);
    let first = |t: &Tensor| -> Result<f64, GraphError> {
        to_floats(t)?
            .first()
            .copied()
            .ok_or_else(|| args.err("Range bounds must be scalars"))
    };
    let (s, l, d) = (first(start)?, first(limit)?, first(delta)?);
    if d == 0.0 {
        return Err(args.err("Range delta 0"));
    }
    let n = ((l - s) / d).ceil().max(0.0) as i64;
    let kind = start.kind();
    let steps = Tensor::f_arange(n, (Kind::Double, args.device))?;
    Ok(steps.f_mul_scalar(d)?.f_add_scalar(s)?.f_to_kind(kind)?)
}

fn constant(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let node = args.node;
    if let Some(t) = attribute(node, "value").and_then(|a| a.t.as_ref()) {
        return host_to_tensor(&decode(t)?, args.device);
    }
    let dev = args.device;
    if let Some(a) = attribute(node, "value_float") {
        return Ok(Tensor::f_from_slice(&[a.f.unwrap_or(0.0)])?
            .f_reshape([0i64; 0])?
            .f_to_device(dev)?);
    }
    if let Some(a) = attribute(node, "value_floats") {
        return Ok(Tensor::f_from_slice(&a.floats)?.f_to_device(dev)?);
    }
    if let Some(a) = attribute(node, "value_int") {
        return Ok(Tensor::f_from_slice(&[a.i.unwrap_or(0)])?
            .f_reshape([0i64; 0])?
            .f_to_device(dev)?);
    }
    if let Some(a) = attribute(node, "value_ints") {
        return Ok(Tensor::f_from_slice(&a.ints)?.f_to_device(dev)?);
    }
    Err(args.err("Constant without a value, value_float(s) or value_int(s) attribute"))
}

fn constant_of_shape(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let dims = args.req_ints(0)?;
    let value = match attribute(args.node, "value").and_then(|a| a.t.as_ref()) {
        Some(t) => host_to_tensor(&decode(t)?, args.device)?,
        None => Tensor::f_zeros([1], (Kind::Float, args.device))?,
    };
    let kind = value.kind();
    let fill: Scalar = if is_float(&value) {
        Scalar::float(to_floats(&value)?.first().copied().unwrap_or(0.0))
    } else {
        Scalar::int(to_ints(&value)?.first().copied().unwrap_or(0))
    };
    Ok(Tensor::f_full(dims.as_slice(), fill, (kind, args.device))?)
}

fn split(args: &Args<'_>) -> Result<Vec<Tensor>, GraphError> {
    let x = args.req(0)?;
    let axis = args.axis(args.int("axis", 0), x.dim() as i64)?;
    let dim = x.size()[axis as usize];
    let sizes = match args.opt(1) {
        Some(t) => to_ints(t)?,
        None => match args.ints("split") {
            Some(s) if !s.is_empty() => s,
            _ => {
                let parts = args.int("num_outputs", args.outputs() as i64).max(1);
                let chunk = (dim + parts - 1) / parts;
                (0..parts)
                    .map(|k| (dim - k * chunk).clamp(0, chunk))
                    .collect()
            }
        },
    };
    Ok(x.f_split_with_sizes(sizes.as_slice(), axis)?)
}

/// Runs the operators of this module.
pub(crate) fn run(args: &Args<'_>) -> Result<Vec<Tensor>, GraphError> {
    let y = match args.node.op_type.as_str() {
        "Shape" => shape(args)?,
        "Reshape" => reshape(args)?,
        "Transpose" => {
            let x = args.req(0)?;
            let perm = args
                .ints("perm")
                .unwrap_or_else(|| (0..x.dim() as i64).rev().collect());
            x.f_permute(perm.as_slice())?
        }
        "Unsqueeze" => unsqueeze(args)?,
        "Squeeze" => squeeze(args)?,
        "Concat" => {
            let xs: Vec<&Tensor> = (0..args.inputs.len())
                .map(|k| args.req(k))
                .collect::<Result<_, _>>()?;
            let rank = xs.first().map_or(1, |x| x.dim() as i64);
            Tensor::f_cat(&xs, args.axis(args.int("axis", 0), rank)?)?
        }
        "Slice" => slice(args)?,
        "Gather" => gather(args)?,
        "GatherElements" => gather_elements(args)?,
        "Expand" => expand(args)?,
        "Tile" => args.req(0)?.f_repeat(args.req_ints(1)?.as_slice())?,
        "Flatten" => flatten(args)?,
        "Range" => range(args)?,
        "Constant" => constant(args)?,
        "ConstantOfShape" => constant_of_shape(args)?,
        "Split" => return split(args),
        other => return Err(args.err(format!("{other} is not a shape operator"))),
    };
    Ok(vec![y])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{eval, floats, ints};
    use super::*;

    #[test]
    fn reshape_copies_zero_and_infers_minus_one() {
        assert_eq!(reshape_target(&[2, 3, 4], &[0, -1], false), Ok(vec![2, -1]));
        assert!(reshape_target(&[2, 3], &[-1, -1], false).is_err());
        let x = floats(&[0.0; 24], &[2, 3, 4]);
        let y = eval("Reshape", vec![x, ints(&[0, -1, 2], &[3])], &[], 1).unwrap();
        assert_eq!(y[0].size(), [2, 6, 2]);
    }

    #[test]
    fn slice_clamps_int64_extremes_and_supports_negative_steps() {
        assert_eq!(slice_bounds(1, i64::MAX, 1, 5), (1, 5));
        assert_eq!(slice_bounds(-2, i64::MAX, 1, 5), (3, 5));
        assert_eq!(slice_bounds(-1, i64::MIN, -1, 5), (4, -1));
        let x = ints(&[0, 1, 2, 3, 4], &[5]);
        let whole = eval(
            "Slice",
            vec![
                x.as_ref().map(Tensor::shallow_clone),
                ints(&[1], &[1]),
                ints(&[i64::MAX], &[1]),
            ],
            &[],
            1,
        )
        .unwrap();
        assert_eq!(Vec::<i64>::try_from(&whole[0]).unwrap(), [1, 2, 3, 4]);
        let reversed = eval(
            "Slice",
            vec![
                x,
                ints(&[-1], &[1]),
                ints(&[i64::MIN], &[1]),
                ints(&[0], &[1]),
                ints(&[-2], &[1]),
            ],
            &[],
            1,
        )
        .unwrap();
        assert_eq!(Vec::<i64>::try_from(&reversed[0]).unwrap(), [4, 2, 0]);
    }

    #[test]
    fn gather_on_an_inner_axis_with_negative_and_scalar_indices() {
        let x = floats(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], &[2, 3]);
        let y = eval(
            "Gather",
            vec![x.as_ref().map(Tensor::shallow_clone), ints(&[-1, 0], &[2])],
            &[("axis", gauntlet_onnx::Attr::Int(1))],
            1,
        )
        .unwrap();
        assert_eq!(
            Vec::<f32>::try_from(y[0].flatten(0, -1)).unwrap(),
            [2.0, 0.0, 5.0, 3.0]
        );
        let s = eval("Gather", vec![x, ints(&[1], &[])], &[], 1).unwrap();
        assert_eq!(s[0].size(), [3]);
    }

    #[test]
    fn gather_elements_picks_along_the_axis_with_negative_indices() {
        // ONNX's example: data [[1,2],[3,4]], indices [[0,0],[1,0]], axis 1 → [[1,1],[4,3]].
        let x = floats(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let y = eval(
            "GatherElements",
            vec![x, ints(&[0, -2, -1, 0], &[2, 2])],
            &[("axis", gauntlet_onnx::Attr::Int(1))],
            1,
        )
        .unwrap();
        assert_eq!(
            Vec::<f32>::try_from(y[0].flatten(0, -1)).unwrap(),
            [1.0, 1.0, 4.0, 3.0]
        );
    }

    #[test]
    fn shape_start_end_and_expand_broadcast() {
        let x = floats(&[0.0; 6], &[1, 2, 3]);
        let y = eval(
            "Shape",
            vec![x.as_ref().map(Tensor::shallow_clone)],
            &[("start", gauntlet_onnx::Attr::Int(-2))],
            1,
        )
        .unwrap();
        assert_eq!(Vec::<i64>::try_from(&y[0]).unwrap(), [2, 3]);
        let e = eval("Expand", vec![x, ints(&[4, 1, 1], &[3])], &[], 1).unwrap();
        assert_eq!(e[0].size(), [4, 2, 3]);
    }
}
