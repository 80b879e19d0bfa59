//! Element-wise, reduction, normalisation and matrix operators.
//!
//! Binary operators broadcast numpy-style, as libtorch does. Integer `Div` truncates (as ONNX
//! Runtime does) instead of promoting to float; `Cast` truncates floats toward zero.

use tch::{Kind, Scalar, Tensor};

use super::{is_float, to_floats, Args};
use crate::error::GraphError;

/// The libtorch kind of an ONNX element-type code (`Cast.to`).
pub(crate) fn kind_of(code: i64) -> Option<Kind> {
    Some(match code {
        1 => Kind::Float,
        2 => Kind::Uint8,
        3 => Kind::Int8,
        5 => Kind::Int16,
        6 => Kind::Int,
        7 => Kind::Int64,
        9 => Kind::Bool,
        10 => Kind::Half,
        11 => Kind::Double,
        16 => Kind::BFloat16,
        _ => return None,
    })
}

fn unary(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    Ok(match args.node.op_type.as_str() {
        "Sqrt" => x.f_sqrt()?,
        "Erf" => x.f_erf()?,
        "Gelu" => match args.string("approximate").as_deref() {
            None | Some("none") => x.f_gelu("none")?,
            Some("tanh") => x.f_gelu("tanh")?,
            Some(other) => return Err(args.err(format!("Gelu approximate={other:?} is unknown"))),
        },
        "Tanh" => x.f_tanh()?,
        "Relu" => x.f_relu()?,
        "Sigmoid" => x.f_sigmoid()?,
        "Exp" => x.f_exp()?,
        "Log" => x.f_log()?,
        "Abs" => x.f_abs()?,
        "Neg" => x.f_neg()?,
        "Reciprocal" => x.f_reciprocal()?,
        "Floor" => x.f_floor()?,
        "Ceil" => x.f_ceil()?,
        "Not" => x.f_logical_not()?,
        // HuggingFace exports guard attention softmax against all-masked rows with it.
        "IsNaN" => x.f_isnan()?,
        // Identity, and Dropout at inference.
        _ => x.shallow_clone(),
    })
}

fn binary(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let (a, b) = (args.req(0)?, args.req(1)?);
    Ok(match args.node.op_type.as_str() {
        "Add" => a.f_add(b)?,
        "Sub" => a.f_sub(b)?,
        "Mul" => a.f_mul(b)?,
        "Div" if !is_float(a) && !is_float(b) => a.f_div_tensor_mode(b, "trunc")?,
        "Div" => a.f_div(b)?,
        // ONNX Pow keeps the base's type.
        "Pow" => a.f_pow(b)?.f_to_kind(a.kind())?,
        "And" => a.f_logical_and(b)?,
        "Or" => a.f_logical_or(b)?,
        "Equal" => a.f_eq_tensor(b)?,
        "Less" => a.f_lt_tensor(b)?,
        "LessOrEqual" => a.f_le_tensor(b)?,
        "Greater" => a.f_gt_tensor(b)?,
        "GreaterOrEqual" => a.f_ge_tensor(b)?,
        other => return Err(args.err(format!("{other} is not a binary operator"))),
    })
}

fn variadic(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let mut acc = args.req(0)?.shallow_clone();
    for k in 1..args.inputs.len() {
        let x = args.req(k)?;
        acc = match args.node.op_type.as_str() {
            "Min" => acc.f_minimum(x)?,
            "Max" => acc.f_maximum(x)?,
            _ => acc.f_add(x)?,
        };
    }
    Ok(acc)
}

/// Reduction axes: the `axes` input (ReduceSum from opset 13, all reductions from 18) or
/// attribute; none means every axis unless `noop_with_empty_axes`.
fn reduce(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let rank = x.dim() as i64;
    let keep = args.int("keepdims", 1) != 0;
    let given = match args.opt(1) {
        Some(t) => Some(super::to_ints(t)?),
        None => args.ints("axes"),
    };
    let axes: Vec<i64> = match given {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&a| args.axis(a, rank))
            .collect::<Result<_, _>>()?,
        _ if args.int("noop_with_empty_axes", 0) != 0 => return Ok(x.shallow_clone()),
        _ => (0..rank).collect(),
    };
    if axes.is_empty() {
        return Ok(x.shallow_clone());
    }
    Ok(match args.node.op_type.as_str() {
        "ReduceMean" => x.f_mean_dim(axes.as_slice(), keep, x.kind())?,
        "ReduceMax" => x.f_amax(axes.as_slice(), keep)?,
        "ReduceMin" => x.f_amin(axes.as_slice(), keep)?,
        _ => x.f_sum_dim_intlist(axes.as_slice(), keep, x.kind())?,
    })
}

fn softmax(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let axis = args.axis(args.int("axis", -1), x.dim() as i64)?;
    Ok(if args.node.op_type == "LogSoftmax" {
        x.f_log_softmax(axis, x.kind())?
    } else {
        x.f_softmax(axis, x.kind())?
    })
}

fn layer_norm(args: &Args<'_>) -> Result<Vec<Tensor>, GraphError> {
    let x = args.req(0)?;
    let rank = x.dim() as i64;
    let axis = args.axis(args.int("axis", -1), rank)?;
    let eps = f64::from(args.float("epsilon", 1e-5));
    let size = x.size();
    let normalized = &size[axis as usize..];
    let y = x.f_layer_norm(normalized, Some(args.req(1)?), args.opt(2), eps, false)?;
    if args.outputs() <= 1 {
        return Ok(vec![y]);
    }
    let dims: Vec<i64> = (axis..rank).collect();
    let mean = x.f_mean_dim(dims.as_slice(), true, x.kind())?;
    let var = x
        .f_sub(&mean)?
        .f_square()?
        .f_mean_dim(dims.as_slice(), true, x.kind())?;
    let inv_std = var.f_add_scalar(eps)?.f_rsqrt()?;
    Ok(vec![y, mean, inv_std])
}

fn gemm(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let mut a = args.req(0)?.shallow_clone();
    let mut b = args.req(1)?.shallow_clone();
    if args.int("transA", 0) != 0 {
        a = a.f_tr()?;
    }
    if args.int("transB", 0) != 0 {
        b = b.f_tr()?;
    }
    let mut y = a.f_matmul(&b)?;
    let alpha = f64::from(args.float("alpha", 1.0));
    if alpha != 1.0 {
        y = y.f_mul_scalar(alpha)?;
    }
    if let Some(c) = args.opt(2) {
        let beta = f64::from(args.float("beta", 1.0));
        y = y.f_add(&c.f_mul_scalar(beta)?)?;
    }
    Ok(y)
}

/// A scalar of the tensor's own kind (so integer clamping stays integer).
fn scalar_like(x: &Tensor, v: f64) -> Scalar {
    if is_float(x) {
        Scalar::float(v)
    } else {
        Scalar::int(v as i64)
    }
}

fn clip(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    // Opset 6 used attributes; opset 11+ optional inputs.
    let bound = |k: usize, attr: &str| -> Result<Option<f64>, GraphError> {
        match args.opt(k) {
            Some(t) => Ok(to_floats(t)?.first().copied()),
            None => Ok(crate::ops::attribute_float(args, attr)),
        }
    };
    let mut y = x.shallow_clone();
    if let Some(lo) = bound(1, "min")? {
        y = y.f_clamp_min(scalar_like(x, lo))?;
    }
    if let Some(hi) = bound(2, "max")? {
        y = y.f_clamp_max(scalar_like(x, hi))?;
    }
    Ok(y)
}

fn cumsum(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let axis_value = super::to_ints(args.req(1)?)?;
    let axis = args.axis(axis_value.first().copied().unwrap_or(0), x.dim() as i64)?;
    let reverse = args.int("reverse", 0) != 0;
    let src = if reverse {
        x.f_flip([axis])?
    } else {
        x.shallow_clone()
    };
    let mut y = src.f_cumsum(axis, x.kind())?;
    if args.int("exclusive", 0) != 0 {
        y = y.f_sub(&src)?;
    }
    Ok(if reverse { y.f_flip([axis])? } else { y })
}

/// Runs the operators of this module.
pub(crate) fn run(args: &Args<'_>) -> Result<Vec<Tensor>, GraphError> {
    let y = match args.node.op_type.as_str() {
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "And" | "Or" | "Equal" | "Less" | "LessOrEqual"
        | "Greater" | "GreaterOrEqual" => binary(args)?,
        "Min" | "Max" | "Sum" => variadic(args)?,
        "Where" => {
            let cond = args.req(0)?.f_to_kind(Kind::Bool)?;
            args.req(1)?.f_where_self(&cond, args.req(2)?)?
        }
        "Cast" => {
            let to = args.int("to", 0);
            let kind = kind_of(to).ok_or_else(|| args.err(format!("cannot cast to type {to}")))?;
            args.req(0)?.f_to_kind(kind)?
        }
        "Dropout" => {
            let x = args.req(0)?;
            let mut outs = vec![x.shallow_clone()];
            if args.outputs() > 1 {
                outs.push(x.f_ones_like()?.f_to_kind(Kind::Bool)?);
            }
            return Ok(outs);
        }
        "Softmax" | "LogSoftmax" => softmax(args)?,
        "LayerNormalization" => return layer_norm(args),
        "MatMul" => args.req(0)?.f_matmul(args.req(1)?)?,
        "Gemm" => gemm(args)?,
        "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceSum" => reduce(args)?,
        "Clip" => clip(args)?,
        "CumSum" => cumsum(args)?,
        "ArgMax" => {
            let x = args.req(0)?;
            if args.int("select_last_index", 0) != 0 {
                return Err(args.err("ArgMax with select_last_index=1 is not supported"));
            }
            let axis = args.axis(args.int("axis", 0), x.dim() as i64)?;
            x.f_argmax(axis, args.int("keepdims", 1) != 0)?
        }
        _ => unary(args)?,
    };
    Ok(vec![y])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{eval, floats, ints};
    use gauntlet_onnx::builder::Attr;
    use tch::Tensor;

    #[test]
    fn is_nan_marks_nans_only() {
        let y = eval("IsNaN", vec![floats(&[1.0, f32::NAN, 0.0], &[3])], &[], 1).unwrap();
        let marks: Vec<bool> = Vec::<i64>::try_from(&y[0].to_kind(tch::Kind::Int64))
            .unwrap()
            .into_iter()
            .map(|v| v == 1)
            .collect();
        assert_eq!(marks, [false, true, false]);
    }

    #[test]
    fn integer_division_truncates_like_onnx_runtime() {
        let y = eval(
            "Div",
            vec![ints(&[7, -7], &[2]), ints(&[2, 2], &[2])],
            &[],
            1,
        )
        .unwrap();
        assert_eq!(Vec::<i64>::try_from(&y[0]).unwrap(), [3, -3]);
    }

    #[test]
    fn reductions_read_axes_from_inputs_or_attributes() {
        let x = floats(&[1.0, 5.0, 3.0, 2.0], &[2, 2]);
        let by_input = eval(
            "ReduceSum",
            vec![x.as_ref().map(Tensor::shallow_clone), ints(&[1], &[1])],
            &[],
            1,
        )
        .unwrap();
        assert_eq!(
            Vec::<f32>::try_from(by_input[0].flatten(0, -1)).unwrap(),
            [6.0, 5.0]
        );
        let by_attr = eval(
            "ReduceMax",
            vec![x],
            &[("axes", Attr::Ints(vec![0])), ("keepdims", Attr::Int(0))],
            1,
        )
        .unwrap();
        assert_eq!(Vec::<f32>::try_from(&by_attr[0]).unwrap(), [3.0, 5.0]);
    }

    #[test]
    fn exclusive_reverse_cumsum() {
        let y = eval(
            "CumSum",
            vec![ints(&[1, 2, 3], &[3]), ints(&[0], &[])],
            &[("exclusive", Attr::Int(1)), ("reverse", Attr::Int(1))],
            1,
        )
        .unwrap();
        assert_eq!(Vec::<i64>::try_from(&y[0]).unwrap(), [5, 3, 0]);
    }
}
