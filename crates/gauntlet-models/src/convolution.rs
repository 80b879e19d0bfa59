//! Max-pooled 1-D convolutions of several widths, computed as matrix products over
//! unfolded windows instead of oneDNN convolutions.
//!
//! A width-`w` filter bank with weights `W [F, D, w]` gives, at output position `t`,
//! `b + W·window(t)`, where `window(t)` is `x[t .. t + w]` flattened in `W`'s `[D, w]`
//! order. `x.unfold(1, w, 1)` lays every window out as `[N, L − w + 1, D, w]`, so a bank is
//! one `addmm` with `W` viewed as `[F, D·w]`, and its backward pass is one product and one
//! fold. Attack batches are small and change shape at every call (a few states, lengths
//! that vary); oneDNN plans a primitive and re-lays-out its weights for each new shape,
//! which showed as most of a small forward pass in profiles of the demo word-cnn. The
//! weights stay the `nn::Conv1D` variables, so bundles, training and the ONNX export are
//! unchanged; the result equals the convolution up to the summation order (tested).
//!
//! The word CNN uses it. The character CNN's banks have few maps over 25-dimensional
//! characters, so it goes one step further and computes all of them in one product
//! (`char_cnn_lstm::FilterBank`).

use tch::{nn, Tensor};

use crate::batch::{conv_valid, masked_max};

/// For `x` `[N, L, D]` (`L` at least the widest filter) and banks `(width, conv)`: each
/// bank's ReLU output, max-pooled over the positions valid for `lengths` (`[N]`, int64;
/// see [`conv_valid`]), concatenated to `[N, Σ F]`.
pub(crate) fn pooled_convolutions(
    x: &Tensor,
    banks: &[(i64, nn::Conv1D)],
    lengths: &Tensor,
) -> Tensor {
    let (n, l, d) = x.size3().unwrap_or((0, 0, 0));
    let pooled: Vec<Tensor> = banks
        .iter()
        .map(|(w, conv)| {
            let maps = conv.ws.size()[0];
            let out_len = l - w + 1;
            let windows = x.unfold(1, *w, 1).reshape([n * out_len, d * w]);
            let weights = conv.ws.reshape([maps, d * w]).tr();
            let h = match &conv.bs {
                Some(bias) => bias.addmm(&windows, &weights),
                None => windows.matmul(&weights),
            }
            .reshape([n, out_len, maps]);
            let valid = conv_valid(lengths, out_len, *w).unsqueeze(-1);
            // ReLU is increasing: pooling first gives the same maxima on `[N, F]`.
            masked_max(&h, &valid, 1).relu()
        })
        .collect();
    Tensor::cat(&pooled, 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tch::nn::Module;
    use tch::{Device, Kind};

    /// The reference: one libtorch convolution per bank, pooled as before.
    fn by_convolution(x: &Tensor, banks: &[(i64, nn::Conv1D)], lengths: &Tensor) -> Tensor {
        let xt = x.transpose(1, 2);
        let pooled: Vec<Tensor> = banks
            .iter()
            .map(|(w, conv)| {
                let h = conv.forward(&xt).relu();
                let valid = conv_valid(lengths, h.size()[2], *w).unsqueeze(1);
                masked_max(&h, &valid, 2)
            })
            .collect();
        Tensor::cat(&pooled, 1)
    }

    #[test]
    fn equals_one_convolution_per_width_forward_and_backward() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let banks: Vec<(i64, nn::Conv1D)> = [1, 2, 4]
            .into_iter()
            .map(|w| (w, nn::conv1d(vs.root() / w, 6, 5, w, Default::default())))
            .collect();
        // Lengths shorter than a filter, equal to one, and the full padded length.
        let lengths = Tensor::from_slice(&[2i64, 4, 7]);
        let x = Tensor::randn([3, 7, 6], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let fast = pooled_convolutions(&x, &banks, &lengths);
        let reference = by_convolution(&x, &banks, &lengths);
        assert_eq!(fast.size(), vec![3, 15]);
        let diff = (&fast - &reference).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "forward differs by {diff}");
        // A different weight on every output, so a wrong offset shows in the gradient.
        let weights = Tensor::randn([3, 15], (Kind::Float, Device::Cpu));
        let grad = |y: &Tensor| {
            let g = Tensor::run_backward(&[(y * &weights).sum(Kind::Float)], &[&x], true, false);
            g.into_iter().next().unwrap()
        };
        let diff = (grad(&fast) - grad(&reference))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-5, "input gradient differs by {diff}");
    }
}
