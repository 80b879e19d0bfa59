//! Convolution and pooling over 1-D and 2-D spatial axes (`[N, C, L]` or `[N, C, H, W]`).
//!
//! ONNX pads are `[begin..., end...]`; libtorch only pads symmetrically, so asymmetric pads
//! are applied beforehand with `constant_pad_nd` (zeros for convolution, -inf for max
//! pooling). `auto_pad` other than `NOTSET`/`VALID` is refused.

use tch::Tensor;

use super::Args;
use crate::error::GraphError;

/// Spatial geometry shared by `Conv` and `MaxPool`.
struct Window {
    strides: Vec<i64>,
    dilations: Vec<i64>,
    /// Symmetric padding passed to libtorch after any asymmetric part was applied.
    padding: Vec<i64>,
}

fn window(
    args: &Args<'_>,
    x: &Tensor,
    spatial: usize,
    pad_value: f64,
) -> Result<(Tensor, Window), GraphError> {
    match args.string("auto_pad").as_deref() {
        None | Some("NOTSET") | Some("VALID") => {}
        Some(other) => {
            return Err(args.err(format!(
                "auto_pad {other} is not supported; export with explicit pads"
            )))
        }
    }
    let valid = args.string("auto_pad").as_deref() == Some("VALID");
    let strides = args.ints("strides").unwrap_or_else(|| vec![1; spatial]);
    let dilations = args.ints("dilations").unwrap_or_else(|| vec![1; spatial]);
    let pads = match args.ints("pads") {
        Some(p) if !valid => p,
        _ => vec![0; 2 * spatial],
    };
    if strides.len() != spatial || dilations.len() != spatial || pads.len() != 2 * spatial {
        return Err(args.err(format!(
            "strides {strides:?}, dilations {dilations:?} or pads {pads:?} do not fit {spatial} spatial axes"
        )));
    }
    let (begin, end) = pads.split_at(spatial);
    if begin == end {
        return Ok((
            x.shallow_clone(),
            Window {
                strides,
                dilations,
                padding: begin.to_vec(),
            },
        ));
    }
    // constant_pad_nd lists the last axis first.
    let torch_pads: Vec<i64> = (0..spatial)
        .rev()
        .flat_map(|i| [begin[i], end[i]])
        .collect();
    let padded = x.f_constant_pad_nd(torch_pads.as_slice())?;
    let padded = if pad_value == 0.0 {
        padded
    } else {
        // Fill the new border with `pad_value` by padding a mask alongside.
        let ones = x.f_ones_like()?.f_constant_pad_nd(torch_pads.as_slice())?;
        let fill = padded.f_full_like(pad_value)?;
        padded.f_where_self(&ones.f_ne(0)?, &fill)?
    };
    Ok((
        padded,
        Window {
            strides,
            dilations,
            padding: vec![0; spatial],
        },
    ))
}

/// `Conv`: 1-D or 2-D, with groups, strides, dilations and pads.
pub(crate) fn conv(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let w = args.req(1)?;
    let spatial = x.dim().saturating_sub(2);
    if !(1..=2).contains(&spatial) {
        return Err(args.err(format!(
            "Conv over {spatial} spatial axes is not supported (1-D and 2-D are)"
        )));
    }
    let (x, win) = window(args, x, spatial, 0.0)?;
    let output_padding = vec![0; spatial];
    Ok(x.f_convolution(
        w,
        args.opt(2),
        win.strides.as_slice(),
        win.padding.as_slice(),
        win.dilations.as_slice(),
        false,
        output_padding.as_slice(),
        args.int("group", 1),
    )?)
}

/// `MaxPool` (values only; the optional indices output is refused).
pub(crate) fn max_pool(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    if args.outputs() > 1 {
        return Err(args.err("MaxPool's indices output is not supported"));
    }
    let spatial = x.dim().saturating_sub(2);
    let kernel = args
        .ints("kernel_shape")
        .ok_or_else(|| args.err("MaxPool needs kernel_shape"))?;
    if kernel.len() != spatial || !(1..=2).contains(&spatial) {
        return Err(args.err(format!(
            "kernel_shape {kernel:?} does not fit input rank {}",
            x.dim()
        )));
    }
    let (x, mut win) = window(args, x, spatial, f64::NEG_INFINITY)?;
    if args.ints("strides").is_none() {
        win.strides = vec![1; spatial];
    }
    let ceil = args.int("ceil_mode", 0) != 0;
    Ok(if spatial == 1 {
        x.f_max_pool1d(
            kernel.as_slice(),
            win.strides.as_slice(),
            win.padding.as_slice(),
            win.dilations.as_slice(),
            ceil,
        )?
    } else {
        x.f_max_pool2d(
            kernel.as_slice(),
            win.strides.as_slice(),
            win.padding.as_slice(),
            win.dilations.as_slice(),
            ceil,
        )?
    })
}

/// `GlobalMaxPool` / `GlobalAveragePool`: over every spatial axis, keeping them as size 1.
pub(crate) fn global_pool(args: &Args<'_>) -> Result<Tensor, GraphError> {
    let x = args.req(0)?;
    let axes: Vec<i64> = (2..x.dim() as i64).collect();
    Ok(if args.node.op_type == "GlobalMaxPool" {
        x.f_amax(axes.as_slice(), true)?
    } else {
        x.f_mean_dim(axes.as_slice(), true, x.kind())?
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{eval, floats};
    use gauntlet_onnx::Attr;

    #[test]
    fn asymmetric_conv_pads_match_explicit_zero_padding() {
        let x = floats(&[1.0, 2.0, 3.0], &[1, 1, 3]);
        let w = floats(&[1.0, 1.0], &[1, 1, 2]);
        let y = eval("Conv", vec![x, w], &[("pads", Attr::Ints(vec![1, 0]))], 1).unwrap();
        // Input [0, 1, 2, 3] with a width-2 box filter.
        assert_eq!(
            Vec::<f32>::try_from(y[0].flatten(0, -1)).unwrap(),
            [1.0, 3.0, 5.0]
        );
    }

    #[test]
    fn max_pool_pads_with_minus_infinity() {
        let x = floats(&[-1.0, -2.0], &[1, 1, 2]);
        let y = eval(
            "MaxPool",
            vec![x],
            &[
                ("kernel_shape", Attr::Ints(vec![2])),
                ("pads", Attr::Ints(vec![1, 0])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(
            Vec::<f32>::try_from(y[0].flatten(0, -1)).unwrap(),
            [-1.0, -1.0]
        );
    }
}
