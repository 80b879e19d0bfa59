//! The embedding table as word-flip scoring reads it, and the bf16 filter of the CPU path.
//!
//! On a CPU with bf16 dot-product instructions (x86 `avx512_bf16`), libtorch's bf16 matrix
//! product runs about 3× faster than the fp32 one on the shapes of a beam step (measured
//! on these 2 cores: 0.92 against 2.66 ms for the demo word-cnn's 13,395 × 128 table times
//! 90 gradient rows; end to end in `bench/results/attack_speed.md`). Its scores are not
//! exact, but their error is bounded: rounding `g` and `e` to bf16 (8 significant bits,
//! unit roundoff `u = 2⁻⁸`) moves each product `g_i e_i` by at most `(2u + u²)·|g_i e_i|`,
//! the fp32 accumulation adds at most about `D · 2⁻²⁴` of `Σ|g_i e_i|`, and rounding the
//! result to bf16 at most `u` of its magnitude; with `Σ|g_i e_i| ≤ ‖g‖·‖e‖` the total is
//! below `(3.01 u + D · 2⁻²⁴) ‖g‖‖e‖`. [`slack`] allows `(4u + D · 2⁻²³) ‖g‖ · max‖e‖`,
//! plus an absolute floor for flushed subnormals, so that [`gauntlet_core::bounded_scan::exact_best_flips`] can pick each
//! state's exact `k` best from the product, rescoring only the candidates that could be
//! among them with [`gauntlet_core::scoring::dot`] — the reference's own summation, so
//! the estimates equal the host reference's bit for bit. The bound is checked on every
//! rescored candidate; a violation (a library that accumulates in bf16, say) sends the
//! call to the exact fp32 path.

use std::sync::Mutex;

use gauntlet_core::bounded_scan::{exact_best_flips, LANES};
use gauntlet_core::column_scan::FlipRow;
use gauntlet_core::scoring::{dot, ScoredFlip};
use gauntlet_core::{EmbeddingTable, TargetMask};
use half::slice::HalfFloatSliceExt;
use tch::{Device, Kind, TchError, Tensor};

/// The environment variable that turns the bf16 filter off (`exact`).
pub const SCORING_VAR: &str = "GAUNTLET_SCORING";

/// The embedding table of a model, prepared once for word-flip scoring.
pub struct ScoringTable {
    table: Tensor,
    filter: Option<Bf16Filter>,
}

/// The bf16 copy of the table and what the exact rescoring needs.
struct Bf16Filter {
    table: Tensor,
    /// The exact rows, on the host.
    rows: EmbeddingTable,
    /// The largest row norm, rounded up.
    max_norm: f32,
    /// The host copy of the last product's bit patterns, reused so that its pages stay
    /// mapped (held as `f16` only because tch copies 16-bit floats as `Half`; never read
    /// as `f16`).
    product: Mutex<Vec<half::f16>>,
}

impl std::fmt::Debug for ScoringTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoringTable")
            .field("size", &self.table.size())
            .field("bf16_filter", &self.filter.is_some())
            .finish()
    }
}

impl ScoringTable {
    /// `table` (`[V, D]`, the model's embedding table on its device), with the bf16 filter
    /// where it pays: an `f32` table on a CPU with bf16 dot-product instructions.
    /// `GAUNTLET_SCORING=exact` in the environment turns the filter off (to measure its
    /// gain, or to rule it out).
    pub fn new(table: Tensor) -> Result<Self, TchError> {
        let wanted = table.device() == Device::Cpu
            && table.kind() == Kind::Float
            && cpu_has_bf16_dot_products()
            && std::env::var(SCORING_VAR).ok().as_deref() != Some("exact");
        if wanted {
            Self::with_bf16_filter(table)
        } else {
            Ok(Self::exact(table))
        }
    }

    /// `table` scored by the exact product only.
    pub fn exact(table: Tensor) -> Self {
        Self {
            table,
            filter: None,
        }
    }

    /// `table` with the bf16 filter whatever the CPU (without the instructions libtorch
    /// emulates bf16: correct, slower; tests use it to check the filter everywhere).
    pub fn with_bf16_filter(table: Tensor) -> Result<Self, TchError> {
        let _no_grad = tch::no_grad_guard();
        let table = table.f_detach()?.f_to_kind(Kind::Float)?;
        let (rows, dim) = table.size2()?;
        let values = Vec::<f32>::try_from(table.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
        let rows = EmbeddingTable {
            rows: rows as usize,
            dim: dim as usize,
            values,
        };
        let max_norm = (0..rows.rows)
            .map(|v| norm(rows.row(v)))
            .fold(0f32, f32::max);
        let filter = Bf16Filter {
            table: table.f_to_kind(Kind::BFloat16)?,
            rows,
            max_norm,
            product: Mutex::new(Vec::new()),
        };
        Ok(Self {
            table,
            filter: Some(filter),
        })
    }

    /// The table on the model's device.
    pub fn table(&self) -> &Tensor {
        &self.table
    }

    /// Whether the CPU path goes through the bf16 filter.
    pub fn filters_in_bf16(&self) -> bool {
        self.filter.is_some()
    }

    /// Each state's exact `k` best flips through the filter, with `g` the signed gradient
    /// rows `[R, D]` of `rows` and `rows[r].base` recomputed exactly; `None` when there is
    /// no filter, a gradient is not finite or the product broke its bound (the caller then
    /// takes the exact path).
    pub(crate) fn filtered_flips(
        &self,
        g: &Tensor,
        rows: &mut [FlipRow],
        masks: &[TargetMask],
        states: usize,
        k: usize,
    ) -> Result<Option<Vec<Vec<ScoredFlip>>>, TchError> {
        let Some(filter) = &self.filter else {
            return Ok(None);
        };
        let exact = &filter.rows;
        let dim = exact.dim;
        let host_g = Vec::<f32>::try_from(g.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
        if host_g.len() != rows.len() * dim || host_g.iter().any(|x| !x.is_finite()) {
            return Ok(None);
        }
        let mut slacks = Vec::with_capacity(rows.len());
        for (row, g) in rows.iter_mut().zip(host_g.chunks_exact(dim)) {
            let current = row.current as usize;
            if current >= exact.rows {
                return Err(TchError::Shape(format!(
                    "id {current} is outside the embedding table's {} rows",
                    exact.rows
                )));
            }
            row.base = dot(g, exact.row(current));
            slacks.push(slack(norm(g), filter.max_norm, dim));
        }
        if slacks.iter().any(|s| !s.is_finite()) {
            return Ok(None);
        }
        // Zero rows up to a whole lane: the scan reads whole lanes, and oneDNN compiles a
        // kernel per product shape, so few distinct widths keep its kernels cached.
        let width = rows.len();
        let stride = width.div_ceil(LANES) * LANES;
        let g = g.f_to_kind(Kind::BFloat16)?;
        let g = if stride > width {
            let zeros = Tensor::f_zeros(
                [(stride - width) as i64, dim as i64],
                (Kind::BFloat16, g.device()),
            )?;
            Tensor::f_cat(&[g, zeros], 0)?
        } else {
            g
        };
        // The bits as a `Half` tensor: tch's element type for `half::bf16` claims `Half`,
        // so the patterns travel through `half::f16`, whose claim is true.
        let product = filter
            .table
            .f_mm(&g.f_tr()?)?
            .f_contiguous()?
            .f_view_dtype(Kind::Half)?;
        let n = product.numel();
        let mut host = filter
            .product
            .lock()
            .map_err(|_| TchError::Kind("a scoring call panicked".into()))?;
        host.resize(n, half::f16::ZERO);
        product.f_copy_data(&mut host[..n], n)?;
        let exact_score =
            |r: usize, v: u32| dot(&host_g[r * dim..(r + 1) * dim], exact.row(v as usize));
        exact_best_flips(
            host[..n].reinterpret_cast(),
            stride,
            &slacks,
            rows,
            masks,
            states,
            k,
            exact_score,
        )
        .map_err(TchError::Shape)
    }
}

/// `‖x‖`, summed in `f64` and rounded up.
fn norm(x: &[f32]) -> f32 {
    let squares: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    (squares.sqrt() * (1.0 + 1e-6)) as f32
}

/// The error bound of one row of the bf16 product (see the module docs):
/// `(2⁻⁶ + D · 2⁻²³) ‖g‖ max‖e‖` plus `D · 2⁻¹²⁰` for products flushed to zero.
fn slack(g_norm: f32, max_norm: f32, dim: usize) -> f32 {
    let relative = 1.0 / 64.0 + dim as f32 * f32::powi(2.0, -23);
    g_norm * max_norm * relative + dim as f32 * f32::powi(2.0, -120)
}

/// Whether this CPU computes bf16 dot products in hardware.
fn cpu_has_bf16_dot_products() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
