//! HotFlip word-flip scoring on a libtorch device, for backends that keep their gradients
//! there (the native models and the ONNX interpreter).
//!
//! [`top_word_flips`] implements [`gauntlet_core::WhiteBox::top_word_flips`] from the
//! padded gradient `[B, T, D]` and the embedding table `[V, D]` without bringing either to
//! the host: it gathers the rows of positions that may change and multiplies them by the
//! table in ONE matrix product for every state of the batch. Then, by [`Selection`]:
//! * on an accelerator, each row is masked with its [`TargetMask`] and its current id and
//!   `topk` runs per row on the device, so only `k` (value, id) pairs per position travel
//!   back;
//! * on the CPU, where the product is host memory already, one best-first scan
//!   ([`gauntlet_core::column_scan`]) picks each state's `k` best, reading masks only for
//!   entries that beat the current `k`-th estimate; the product is laid out `[V, R]`, one
//!   line per id, and computed a block of ids at a time into one buffer that the scan
//!   reads while it is still in cache;
//! * on a CPU with bf16 dot products, when the [`ScoringTable`] carries the bf16 filter
//!   ([`crate::bf16_filter`]): the product in bf16, and the exact scores of the few
//!   candidates its error bound cannot rule out; the estimates then equal the host
//!   reference's bit for bit.
//!
//! Either way the host subtracts `g_p · e_{x_p}` and keeps the `k` best of each state in
//! [`gauntlet_core::scoring::flip_order`]. The sign of a query is applied to the gradient
//! rows before the product, so a targeted search ranks by `−g · e` exactly (negation is
//! exact in floating point). Estimates match the host reference
//! ([`gauntlet_core::scoring::reference_top_flips`]) up to the summation order of the
//! matrix product.

use gauntlet_core::column_scan::{ColumnScan, FlipRow};
use gauntlet_core::scoring::{keep_best, ScoredFlip};
use gauntlet_core::{FlipQuery, TargetMask, TokenIds};
use tch::{Device, Kind, TchError, Tensor};

pub use crate::bf16_filter::ScoringTable;

/// Where the `k` best flips are picked from the score matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Masked fill and `topk` per row on the device; only `k` pairs per row travel back.
    /// The choice for accelerators.
    Device,
    /// One best-first scan of the `[V, R]` product on the host
    /// ([`gauntlet_core::column_scan`]): the mask is read only for entries that beat the
    /// current `k`-th estimate. The choice on the CPU, where the product is host memory.
    Host,
}

impl Selection {
    /// The selection for a device.
    pub fn for_device(device: Device) -> Self {
        if device == Device::Cpu {
            Self::Host
        } else {
            Self::Device
        }
    }
}

/// The `k` best flips of every state (see the crate docs), selected as
/// [`Selection::for_device`] says. `grad` is the gradient of each state's query-label loss
/// with respect to its embedded inputs, padded `[B, T, D]` (any shape whose rows are `D`
/// wide); `positions[i]` are the row offsets of state `i`'s real positions; `table` holds
/// the `[V, D]` table on the same device.
pub fn top_word_flips(
    grad: &Tensor,
    table: &ScoringTable,
    positions: &[Vec<usize>],
    batch: &[TokenIds],
    queries: &[FlipQuery],
    masks: &[TargetMask],
    k: usize,
) -> Result<Vec<Vec<ScoredFlip>>, TchError> {
    let selection = Selection::for_device(grad.device());
    top_word_flips_by(selection, grad, table, positions, batch, queries, masks, k)
}

/// [`top_word_flips`] with the selection given (both are tested on the CPU).
#[allow(clippy::too_many_arguments)]
pub fn top_word_flips_by(
    selection: Selection,
    grad: &Tensor,
    table: &ScoringTable,
    positions: &[Vec<usize>],
    batch: &[TokenIds],
    queries: &[FlipQuery],
    masks: &[TargetMask],
    k: usize,
) -> Result<Vec<Vec<ScoredFlip>>, TchError> {
    top_word_flips_in_blocks(
        selection,
        HOST_BLOCK_SCORES,
        grad,
        table,
        positions,
        batch,
        queries,
        masks,
        k,
    )
}

/// [`top_word_flips_by`] with the host's block size given (tests split tiny tables).
#[allow(clippy::too_many_arguments)]
fn top_word_flips_in_blocks(
    selection: Selection,
    block_scores: usize,
    grad: &Tensor,
    table: &ScoringTable,
    positions: &[Vec<usize>],
    batch: &[TokenIds],
    queries: &[FlipQuery],
    masks: &[TargetMask],
    k: usize,
) -> Result<Vec<Vec<ScoredFlip>>, TchError> {
    // The table is the model's parameter: nothing here may grow an autograd graph (and
    // `mm` into a buffer refuses one).
    let _no_grad = tch::no_grad_guard();
    let scoring = table;
    let table = scoring.table();
    let device = grad.device();
    let (vocab, dim) = table.size2()?;
    let mut rows = Vec::new();
    let (mut offsets, mut signs) = (Vec::new(), Vec::new());
    for (state, ((ids, query), at)) in batch.iter().zip(queries).zip(positions).enumerate() {
        let TokenIds::Words(words) = ids else {
            return Err(TchError::Kind("word flips need word ids".into()));
        };
        for (position, (target, (&id, &offset))) in
            query.targets.iter().zip(words.iter().zip(at)).enumerate()
        {
            if let Some(mask) = *target {
                rows.push(FlipRow {
                    state,
                    position,
                    current: id,
                    mask,
                    base: 0.0,
                });
                offsets.push(offset as i64);
                signs.push(query.sign);
            }
        }
    }
    if rows.is_empty() || vocab == 0 || k == 0 {
        return Ok(vec![Vec::new(); batch.len()]);
    }
    let to_device = |t: Tensor| t.f_to_device(device);
    let offsets = to_device(Tensor::f_from_slice(&offsets)?)?;
    let current: Vec<i64> = rows.iter().map(|r| i64::from(r.current)).collect();
    let current = to_device(Tensor::f_from_slice(&current)?)?;
    let signs = to_device(Tensor::f_from_slice(&signs)?)?.f_unsqueeze(1)?;
    // [R, D]: the gradient rows of positions that may change, in the query's sign.
    let g = grad
        .f_reshape([-1, dim])?
        .f_index_select(0, &offsets)?
        .f_to_kind(table.kind())?
        .f_mul(&signs.f_to_kind(table.kind())?)?;
    if selection == Selection::Host {
        if let Some(flips) = scoring.filtered_flips(&g, &mut rows, masks, batch.len(), k)? {
            return Ok(flips);
        }
    }
    let base = g
        .f_mul(&table.f_index_select(0, &current)?)?
        .f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;
    let base = Vec::<f32>::try_from(base.f_to_device(Device::Cpu)?)?;
    for (row, b) in rows.iter_mut().zip(base) {
        row.base = b;
    }
    match selection {
        Selection::Host => host_top_flips(&g, table, &rows, masks, batch.len(), k, block_scores),
        Selection::Device => device_top_flips(&g, table, &rows, &current, masks, batch.len(), k),
    }
}

/// Scores a block of the product holds (`ids × rows`): about 1 MB of `f32`, so that the
/// block stays in the core's cache between the matrix product and the scan.
const HOST_BLOCK_SCORES: usize = 1 << 18;

/// [`Selection::Host`]: the `[V, R]` product one block of ids at a time, each computed
/// into the same buffer, copied to the host (in cache) and fed to one
/// [`ColumnScan`]. Against one `[V, R]` product this saves allocating, faulting in and
/// copying a matrix of `V · R` scores per call (15k × 100 floats, 6 MB, for ten states
/// of a word-cnn sentence); the products of a block are the same dot products. A block
/// holds about `block_scores` scores (at least one id).
fn host_top_flips(
    g: &Tensor,
    table: &Tensor,
    rows: &[FlipRow],
    masks: &[TargetMask],
    states: usize,
    k: usize,
    block_scores: usize,
) -> Result<Vec<Vec<ScoredFlip>>, TchError> {
    let (vocab, _) = table.size2()?;
    let width = rows.len();
    let mut scan = ColumnScan::new(rows, masks, states, k).map_err(TchError::Shape)?;
    let g_t = g.f_tr()?;
    let block = (block_scores / width.max(1))
        .max(1)
        .min(vocab.max(1) as usize) as i64;
    let float = table.kind() == Kind::Float;
    let out = Tensor::f_empty([block, width as i64], (Kind::Float, Device::Cpu))?;
    let mut host = vec![0f32; block as usize * width];
    let mut start = 0;
    while start < vocab {
        let len = block.min(vocab - start);
        let ids = table.f_narrow(0, start, len)?;
        let product = if float {
            ids.f_mm_out(&out.f_narrow(0, 0, len)?, &g_t)?
        } else {
            ids.f_matmul(&g_t)?.f_to_kind(Kind::Float)?
        };
        let n = len as usize * width;
        product.f_copy_data(&mut host[..n], n)?;
        scan.feed(&host[..n]).map_err(TchError::Shape)?;
        start += len;
    }
    Ok(scan.finish())
}

/// [`Selection::Device`]: masked `[R, V]` scores and `topk` per row on the device, merged
/// per state on the host.
fn device_top_flips(
    g: &Tensor,
    table: &Tensor,
    rows: &[FlipRow],
    current: &Tensor,
    masks: &[TargetMask],
    states: usize,
    k: usize,
) -> Result<Vec<Vec<ScoredFlip>>, TchError> {
    let device = g.device();
    let vocab = table.size2()?.0;
    let mut scores = g.f_matmul(&table.f_tr()?)?;
    let mask_of: Vec<i64> = rows.iter().map(|r| r.mask as i64).collect();
    let allowed = allowed_rows(masks, &mask_of, vocab, device)?;
    let _ = scores.f_masked_fill_(&allowed.f_logical_not()?, f64::NEG_INFINITY)?;
    let _ = scores.f_scatter_value_(1, &current.f_unsqueeze(1)?, f64::NEG_INFINITY)?;
    let kk = k.clamp(1, vocab as usize) as i64;
    let (values, ids) = scores.f_topk(kk, 1, true, true)?;
    let host = |t: &Tensor| t.f_to_device(Device::Cpu)?.f_flatten(0, -1);
    let values = Vec::<f32>::try_from(host(&values.f_to_kind(Kind::Float)?)?)?;
    let ids = Vec::<i64>::try_from(host(&ids)?)?;
    let kk = kk as usize;
    let mut out: Vec<Vec<ScoredFlip>> = vec![Vec::new(); states];
    for (r, row) in rows.iter().enumerate() {
        for j in 0..kk {
            let value = values[r * kk + j];
            if value == f32::NEG_INFINITY {
                break;
            }
            out[row.state].push(ScoredFlip {
                position: row.position,
                id: ids[r * kk + j] as u32,
                estimate: value - row.base,
            });
        }
    }
    Ok(out.into_iter().map(|flips| keep_best(flips, k)).collect())
}

/// [`top_word_flips`] for gradients given on the host (`gradients[i]` is `[positions,
/// dim]` of `batch[i]`): they are stacked into one `[P, D]` tensor on `table`'s device.
pub fn score_host_gradients(
    gradients: &[Vec<f32>],
    table: &ScoringTable,
    batch: &[TokenIds],
    queries: &[FlipQuery],
    masks: &[TargetMask],
    k: usize,
) -> Result<Vec<Vec<ScoredFlip>>, TchError> {
    let (_, dim) = table.table().size2()?;
    let dim = dim as usize;
    let mut positions = Vec::with_capacity(batch.len());
    let mut at = 0;
    for (ids, g) in batch.iter().zip(gradients) {
        if g.len() != ids.positions() * dim {
            return Err(TchError::Shape(format!(
                "gradient of {} values for {} positions of width {dim}",
                g.len(),
                ids.positions()
            )));
        }
        positions.push((at..at + ids.positions()).collect::<Vec<usize>>());
        at += ids.positions();
    }
    let flat: Vec<f32> = gradients.iter().flatten().copied().collect();
    let grad = Tensor::f_from_slice(&flat)?
        .f_reshape([at as i64, dim as i64])?
        .f_to_device(table.table().device())?;
    top_word_flips(&grad, table, &positions, batch, queries, masks, k)
}

/// `[R, V]` (or `[1, V]` when every row shares one mask) booleans: which ids row `r` may
/// take.
fn allowed_rows(
    masks: &[TargetMask],
    mask_of: &[i64],
    vocab: i64,
    device: Device,
) -> Result<Tensor, TchError> {
    let width = vocab as usize;
    let mut flat = vec![0u8; masks.len() * width];
    for (m, mask) in masks.iter().enumerate() {
        for (slot, &ok) in flat[m * width..(m + 1) * width]
            .iter_mut()
            .zip(mask.as_slice())
        {
            *slot = u8::from(ok);
        }
    }
    let table = Tensor::f_from_slice(&flat)?
        .f_reshape([masks.len() as i64, vocab])?
        .f_to_device(device)?
        .f_to_kind(Kind::Bool)?;
    let first = mask_of.first().copied().unwrap_or(0);
    if mask_of.iter().all(|&m| m == first) {
        return table.f_narrow(0, first, 1);
    }
    let index = Tensor::f_from_slice(mask_of)?.f_to_device(device)?;
    table.f_index_select(0, &index)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gauntlet_core::scoring::reference_state_flips;
    use gauntlet_core::EmbeddingTable;

    /// Exactly representable values (multiples of 1/4), so device and host agree exactly.
    fn setup() -> (EmbeddingTable, Vec<f32>) {
        let (rows, dim) = (7, 3);
        let values: Vec<f32> = (0..rows * dim)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.25)
            .collect();
        // Two states padded to T = 4: a different gradient at every position.
        let grad: Vec<f32> = (0..2 * 4 * dim)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.5)
            .collect();
        (EmbeddingTable { rows, dim, values }, grad)
    }

    #[test]
    fn device_flips_equal_the_host_reference() {
        let (table, grad) = setup();
        let dim = table.dim;
        let masks = vec![
            TargetMask::from_ids(7, 2..7),
            TargetMask::from_ids(7, [1, 3, 5]),
        ];
        let batch = [TokenIds::Words(vec![2, 3, 6]), TokenIds::Words(vec![4, 5])];
        let positions = [vec![0, 1, 2], vec![4, 5]];
        let queries = [
            FlipQuery {
                label: 0,
                sign: 1.0,
                targets: vec![Some(0), None, Some(1)],
            },
            FlipQuery {
                label: 1,
                sign: -1.0,
                targets: vec![Some(1), Some(0)],
            },
        ];
        let g = Tensor::from_slice(&grad).reshape([2, 4, dim as i64]);
        // A parameter, as a model's table is: scoring must not build an autograd graph.
        let e = ScoringTable::exact(
            Tensor::from_slice(&table.values)
                .reshape([7, dim as i64])
                .set_requires_grad(true),
        );
        // Host blocks of 1, 2 and 3 ids (5 gradient rows) and the whole table at once.
        let runs = [
            (Selection::Device, HOST_BLOCK_SCORES),
            (Selection::Host, 1),
            (Selection::Host, 10),
            (Selection::Host, 15),
            (Selection::Host, HOST_BLOCK_SCORES),
        ];
        for ((selection, block), k) in runs
            .into_iter()
            .flat_map(|run| [1, 3, 100].map(|k| (run, k)))
        {
            let got = top_word_flips_in_blocks(
                selection, block, &g, &e, &positions, &batch, &queries, &masks, k,
            )
            .unwrap();
            for (i, ids) in batch.iter().enumerate() {
                let TokenIds::Words(words) = ids else {
                    unreachable!()
                };
                let rows: Vec<f32> = positions[i]
                    .iter()
                    .flat_map(|&p| grad[p * dim..(p + 1) * dim].to_vec())
                    .collect();
                let want =
                    reference_state_flips(words, &rows, &table, &queries[i], &masks, k).unwrap();
                assert_eq!(
                    got[i], want,
                    "{selection:?}, blocks of {block}: state {i}, k = {k}"
                );
            }
        }
    }

    #[test]
    fn states_with_no_changeable_position_get_no_flips() {
        let (table, grad) = setup();
        let g = Tensor::from_slice(&grad).reshape([2, 4, 3]);
        let e = ScoringTable::exact(Tensor::from_slice(&table.values).reshape([7, 3]));
        let masks = vec![TargetMask::from_ids(7, 0..7)];
        let q = FlipQuery {
            label: 0,
            sign: 1.0,
            targets: vec![None],
        };
        let got = top_word_flips(
            &g,
            &e,
            &[vec![0]],
            &[TokenIds::Words(vec![1])],
            &[q],
            &masks,
            5,
        )
        .unwrap();
        assert_eq!(got, vec![Vec::<ScoredFlip>::new()]);
    }

    /// A deterministic stream of values in [-1, 1).
    fn stream(seed: u64) -> impl FnMut() -> f32 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    #[test]
    fn the_bf16_filter_gives_the_host_references_flips_bit_for_bit() {
        // Values no binary fraction of few digits holds, a nonzero row 0, a different
        // gradient at every position, and ids 40.. crowded within bf16's error of each
        // other, so that the filter's candidates, not its approximate scores, decide.
        let (rows, dim, states, len) = (90, 37, 3, 5);
        let mut next = stream(11);
        let values: Vec<f32> = (0..rows * dim)
            .map(|i| {
                let (v, d) = (i / dim, i % dim);
                if v >= 40 {
                    0.3 + 1e-4 * v as f32 + 1e-3 * d as f32
                } else {
                    next()
                }
            })
            .collect();
        let table = EmbeddingTable { rows, dim, values };
        let grad: Vec<f32> = (0..states * len * dim).map(|_| next()).collect();
        let batch: Vec<TokenIds> = (0..states)
            .map(|s| {
                TokenIds::Words(
                    (0..len as u32)
                        .map(|p| (7 * s as u32 + 3 * p) % 60)
                        .collect(),
                )
            })
            .collect();
        let positions: Vec<Vec<usize>> = (0..states)
            .map(|s| (s * len..(s + 1) * len).collect())
            .collect();
        let masks = vec![
            TargetMask::from_ids(rows, 0..rows as u32),
            TargetMask::from_ids(rows, (0..rows as u32).filter(|v| v % 4 != 1)),
        ];
        let queries: Vec<FlipQuery> = (0..states)
            .map(|s| FlipQuery {
                label: s % 2,
                sign: if s == 1 { -1.0 } else { 1.0 },
                targets: (0..len).map(|p| (p != 2).then_some((p + s) % 2)).collect(),
            })
            .collect();
        let g = Tensor::from_slice(&grad).reshape([states as i64, len as i64, dim as i64]);
        let e = Tensor::from_slice(&table.values).reshape([rows as i64, dim as i64]);
        let filtered = ScoringTable::with_bf16_filter(e).unwrap();
        assert!(filtered.filters_in_bf16());
        for k in [1, 4, 25, 1000] {
            let got =
                top_word_flips(&g, &filtered, &positions, &batch, &queries, &masks, k).unwrap();
            for (i, ids) in batch.iter().enumerate() {
                let TokenIds::Words(words) = ids else {
                    unreachable!()
                };
                let rows = &grad[i * len * dim..(i + 1) * len * dim];
                let want =
                    reference_state_flips(words, rows, &table, &queries[i], &masks, k).unwrap();
                assert_eq!(got[i], want, "state {i}, k = {k}");
            }
        }
    }

    #[test]
    fn a_gradient_the_filter_cannot_bound_goes_to_the_exact_path() {
        let (table, mut grad) = setup();
        grad[1] = f32::INFINITY;
        let g = Tensor::from_slice(&grad).reshape([2, 4, 3]);
        let e = Tensor::from_slice(&table.values).reshape([7, 3]);
        let masks = vec![TargetMask::from_ids(7, 0..7)];
        let batch = [TokenIds::Words(vec![1, 2])];
        let queries = [FlipQuery {
            label: 0,
            sign: 1.0,
            targets: vec![Some(0), Some(0)],
        }];
        let run = |table: &ScoringTable| {
            top_word_flips(&g, table, &[vec![0, 1]], &batch, &queries, &masks, 3).unwrap()
        };
        let exact = run(&ScoringTable::exact(e.shallow_clone()));
        assert_eq!(run(&ScoringTable::with_bf16_filter(e).unwrap()), exact);
        assert_eq!(exact[0].len(), 3);
    }
}
