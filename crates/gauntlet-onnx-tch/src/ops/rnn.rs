//! `LSTM` and `GRU` as ONNX defines them, unrolled over time with libtorch primitives so
//! autograd reaches the inputs.
//!
//! Weight layouts: LSTM `W` is `[dirs, 4H, in]` with gates in i, o, f, c order and `B` is
//! `[dirs, 8H]` (input biases, then recurrent); GRU `W` is `[dirs, 3H, in]` in z, r, h order
//! with `linear_before_reset` choosing where the reset gate applies. With `sequence_lens`,
//! a step `t >= len` leaves the state untouched and writes zeros to `Y`: the forward
//! direction's final state is the state at each sequence's last valid step, and the reverse
//! direction effectively starts there. Peepholes, `clip`, `input_forget` and non-default
//! activations are refused.

use tch::{Kind, Tensor};

use super::{to_ints, Args};
use crate::error::GraphError;

/// What both cells share: inputs in `[T, B, in]` order, directions and lengths.
struct Setup {
    x: Tensor,
    steps: i64,
    batch: i64,
    hidden: i64,
    /// For each direction, whether it runs backwards in time.
    reverse: Vec<bool>,
    /// `valid[t]` is `[B, 1]`, true where step `t` is inside the sequence.
    valid: Option<Vec<Tensor>>,
    batch_first: bool,
}

fn setup(args: &Args<'_>, default_activations: &[&str]) -> Result<Setup, GraphError> {
    if args.float("clip", 0.0) != 0.0 || crate::ops::attribute_float(args, "clip").is_some() {
        return Err(args.err("RNN clip is not supported"));
    }
    if args.int("input_forget", 0) != 0 {
        return Err(args.err("LSTM input_forget=1 is not supported"));
    }
    if let Some(acts) = gauntlet_onnx::attribute(args.node, "activations") {
        let acts: Vec<String> = acts
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).to_lowercase())
            .collect();
        let default = default_activations.iter().map(|a| a.to_lowercase());
        if !acts.iter().zip(default.cycle()).all(|(a, d)| *a == d) {
            return Err(args.err(format!(
                "activations {acts:?} are not supported (only the defaults)"
            )));
        }
    }
    let batch_first = args.int("layout", 0) != 0;
    let x = args.req(0)?;
    let x = if batch_first {
        x.f_transpose(0, 1)?
    } else {
        x.shallow_clone()
    };
    let (steps, batch, _) = x.size3()?;
    let dirs = args.req(1)?.size().first().copied().unwrap_or(1);
    let reverse = match args.string("direction").as_deref() {
        None | Some("forward") => vec![false],
        Some("reverse") => vec![true],
        Some("bidirectional") => vec![false, true],
        Some(other) => return Err(args.err(format!("unknown direction {other:?}"))),
    };
    if reverse.len() as i64 != dirs {
        return Err(args.err(format!(
            "direction needs {} weight sets, W has {dirs}",
            reverse.len()
        )));
    }
    let hidden = args.int("hidden_size", 0);
    if hidden <= 0 {
        return Err(args.err("hidden_size must be positive"));
    }
    let valid = match args.opt(4) {
        Some(lens) => {
            let lens = lens.f_to_kind(Kind::Int64)?;
            if to_ints(&lens)?.len() as i64 != batch {
                return Err(args.err("sequence_lens must have one entry per batch row"));
            }
            Some(
                (0..steps)
                    .map(|t| Ok(lens.f_gt(t)?.f_unsqueeze(1)?))
                    .collect::<Result<Vec<_>, GraphError>>()?,
            )
        }
        None => None,
    };
    Ok(Setup {
        x,
        steps,
        batch,
        hidden,
        reverse,
        valid,
        batch_first,
    })
}

impl Setup {
    /// Initial state `k` (`initial_h` / `initial_c`) of direction `d`, or zeros.
    fn initial(&self, given: Option<&Tensor>, d: i64) -> Result<Tensor, GraphError> {
        Ok(match given {
            Some(t) if self.batch_first => t.f_select(1, d)?,
            Some(t) => t.f_select(0, d)?,
            None => Tensor::f_zeros([self.batch, self.hidden], (self.x.kind(), self.x.device()))?,
        })
    }

    /// Time steps of direction `d` in the order it visits them.
    fn order(&self, d: usize) -> Vec<i64> {
        if self.reverse[d] {
            (0..self.steps).rev().collect()
        } else {
            (0..self.steps).collect()
        }
    }

    /// Keeps `old` where step `t` is padding.
    fn keep(&self, t: i64, new: &Tensor, old: &Tensor) -> Result<Tensor, GraphError> {
        Ok(match &self.valid {
            Some(v) => new.f_where_self(&v[t as usize], old)?,
            None => new.shallow_clone(),
        })
    }

    /// Stacks per-direction outputs into ONNX's `Y`, `Y_h` (and `Y_c`) layouts.
    fn finish(
        &self,
        ys: Vec<Vec<Tensor>>,
        states: Vec<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>, GraphError> {
        let per_dir: Vec<Tensor> = ys
            .iter()
            .map(|steps| Tensor::f_stack(steps, 0))
            .collect::<Result<_, _>>()?;
        let y = Tensor::f_stack(&per_dir, 1)?; // [T, dirs, B, H]
        let mut outs = vec![if self.batch_first {
            y.f_permute([2, 0, 1, 3])?
        } else {
            y
        }];
        for state in states {
            let s = Tensor::f_stack(&state, 0)?; // [dirs, B, H]
            outs.push(if self.batch_first {
                s.f_transpose(0, 1)?
            } else {
                s
            });
        }
        Ok(outs)
    }
}

/// The `[dirs, k*H]` bias halves of direction `d`: (input, recurrent), zeros when absent.
fn biases(
    args: &Args<'_>,
    d: i64,
    width: i64,
    like: &Tensor,
) -> Result<(Tensor, Tensor), GraphError> {
    Ok(match args.opt(3) {
        Some(b) => {
            let b = b.f_select(0, d)?;
            (b.f_narrow(0, 0, width)?, b.f_narrow(0, width, width)?)
        }
        None => {
            let z = Tensor::f_zeros([width], (like.kind(), like.device()))?;
            (z.shallow_clone(), z)
        }
    })
}

/// `LSTM`: outputs `Y`, `Y_h`, `Y_c`.
pub(crate) fn lstm(args: &Args<'_>) -> Result<Vec<Tensor>, GraphError> {
    if args.opt(7).is_some() {
        return Err(args.err("LSTM peepholes (input P) are not supported"));
    }
    let s = setup(args, &["Sigmoid", "Tanh", "Tanh"])?;
    let (w_all, r_all) = (args.req(1)?, args.req(2)?);
    let h4 = 4 * s.hidden;
    let (mut ys, mut hs, mut cs) = (Vec::new(), Vec::new(), Vec::new());
    for d in 0..s.reverse.len() {
        let di = d as i64;
        let w = w_all.f_select(0, di)?;
        let r_t = r_all.f_select(0, di)?.f_tr()?;
        let (wb, rb) = biases(args, di, h4, w_all)?;
        let xw = s.x.f_matmul(&w.f_tr()?)?.f_add(&wb.f_add(&rb)?)?;
        let mut h = s.initial(args.opt(5), di)?;
        let mut c = s.initial(args.opt(6), di)?;
        let zeros = h.f_zeros_like()?;
        let mut y: Vec<Option<Tensor>> = (0..s.steps).map(|_| None).collect();
        for t in s.order(d) {
            let gates = xw.f_select(0, t)?.f_add(&h.f_matmul(&r_t)?)?;
            let g = gates.f_chunk(4, -1)?;
            let (i, o, f, cand) = (
                g[0].f_sigmoid()?,
                g[1].f_sigmoid()?,
                g[2].f_sigmoid()?,
                g[3].f_tanh()?,
            );
            let c_new = f.f_mul(&c)?.f_add(&i.f_mul(&cand)?)?;
            let h_new = o.f_mul(&c_new.f_tanh()?)?;
            y[t as usize] = Some(s.keep(t, &h_new, &zeros)?);
            c = s.keep(t, &c_new, &c)?;
            h = s.keep(t, &h_new, &h)?;
        }
        ys.push(y.into_iter().flatten().collect());
        hs.push(h);
        cs.push(c);
    }
    s.finish(ys, vec![hs, cs])
}

/// `GRU`: outputs `Y`, `Y_h`.
pub(crate) fn gru(args: &Args<'_>) -> Result<Vec<Tensor>, GraphError> {
    let s = setup(args, &["Sigmoid", "Tanh"])?;
    let (w_all, r_all) = (args.req(1)?, args.req(2)?);
    let hid = s.hidden;
    let before_reset = args.int("linear_before_reset", 0) != 0;
    let (mut ys, mut hs) = (Vec::new(), Vec::new());
    for d in 0..s.reverse.len() {
        let di = d as i64;
        let w = w_all.f_select(0, di)?;
        let r = r_all.f_select(0, di)?;
        let r_zr_t = r.f_narrow(0, 0, 2 * hid)?.f_tr()?;
        let r_h_t = r.f_narrow(0, 2 * hid, hid)?.f_tr()?;
        let (wb, rb) = biases(args, di, 3 * hid, w_all)?;
        let rb_zr = rb.f_narrow(0, 0, 2 * hid)?;
        let rb_h = rb.f_narrow(0, 2 * hid, hid)?;
        let xw = s.x.f_matmul(&w.f_tr()?)?.f_add(&wb)?;
        let mut h = s.initial(args.opt(5), di)?;
        let zeros = h.f_zeros_like()?;
        let mut y: Vec<Option<Tensor>> = (0..s.steps).map(|_| None).collect();
        for t in s.order(d) {
            let xt = xw.f_select(0, t)?;
            let x_zr = xt.f_narrow(1, 0, 2 * hid)?;
            let x_h = xt.f_narrow(1, 2 * hid, hid)?;
            let zr = x_zr
                .f_add(&h.f_matmul(&r_zr_t)?)?
                .f_add(&rb_zr)?
                .f_sigmoid()?;
            let (z, reset) = (zr.f_narrow(1, 0, hid)?, zr.f_narrow(1, hid, hid)?);
            let recurrent = if before_reset {
                reset.f_mul(&h.f_matmul(&r_h_t)?.f_add(&rb_h)?)?
            } else {
                reset.f_mul(&h)?.f_matmul(&r_h_t)?.f_add(&rb_h)?
            };
            let cand = x_h.f_add(&recurrent)?.f_tanh()?;
            // (1 - z) * cand + z * h
            let h_new = cand.f_add(&z.f_mul(&h.f_sub(&cand)?)?)?;
            y[t as usize] = Some(s.keep(t, &h_new, &zeros)?);
            h = s.keep(t, &h_new, &h)?;
        }
        ys.push(y.into_iter().flatten().collect());
        hs.push(h);
    }
    s.finish(ys, vec![hs])
}
