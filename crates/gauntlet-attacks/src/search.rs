//! One beam step of every search, over the states of all active examples at once.
//!
//! * [`gradient_step`] (HotFlip char/word, `sem`, `unk`, `random-gradient`): evaluates every
//!   beam state with ONE batched `loss_gradients` call per `batch_size` states (states that
//!   have spent the budget, and all `random-gradient` states, need only `predict`); records
//!   successes; then expands every state with its best edits by estimate and keeps the
//!   `beam_width` best *distinct* children (distinct ids) by path score, the sum of the
//!   estimates along the path. Per state only the best `4·beam_width` edits are kept; if
//!   duplicates or constraints leave fewer than `beam_width` children the expansion is
//!   redone with every edit, so the result is the exact global top-b. In word searches,
//!   children (states after step 0) are first classified with a forward pass; their
//!   gradient pass runs only
//!   when that classification leaves their example's search going, so an example that
//!   succeeds at every threshold never pays a backward pass for the step it succeeds in.
//!   Word flips are scored by the backend (`WhiteBox::top_word_flips`, on its device);
//!   the other spaces score on the host from the gradients (`best_first`).
//! * [`loss_step`] (`loss-beam`): evaluates every allowed child (optionally a seeded sample
//!   of `candidates_cap` per state) with batched `predict` calls, records successes among
//!   them, and keeps the `beam_width` best distinct children by exact objective.
//!   Character edits of subword models run here too: a child's ids are the re-encoding of
//!   its edited text, and children are distinct by text rather than by ids.
//! * [`random_step`] (`random`): applies the example's number of random allowed edits one
//!   after another and evaluates every prefix; one step finishes the example.
//!
//! Objective: `J = CE(true label)` untargeted, `J = −CE(target)` targeted; the search
//! maximizes it (gradients of targeted runs are negated). Success at τ: the argmax differs
//! from the true label (untargeted) or equals the target (targeted) with probability ≥ τ.
//! For each τ the first success is kept, in beam order (best score first) within a step, so
//! the trajectory never depends on τ — only the stopping point does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use gauntlet_core::{EmbeddingTable, FlipQuery, Probabilities, ScoredFlip, TokenIds, WhiteBox};
use rand::rngs::StdRng;
use rand::Rng;

use crate::best_first::{Scored, WordMasks};
use crate::candidates::{EditSpace, Rules, TopK};
use crate::config::{AttackConfig, AttackKind};
use crate::engine::ModelRef;
use crate::error::AttackError;
use crate::estimate::score_matrix;
use crate::report::Prediction;
use crate::state::{Edit, Space, State};

/// What every step of a run shares.
pub(crate) struct Context<'a> {
    pub config: AttackConfig,
    pub model: ModelRef<'a>,
    pub table: Option<&'a EmbeddingTable>,
    pub tokens: Arc<[String]>,
    pub max_chars: usize,
    pub rules: Rules<'a>,
    /// Target masks of word flips (see [`WordMasks`]).
    pub masks: WordMasks,
    /// The model feeds the zero vector at padding (PAD's score column is 0).
    pub zero_padding: bool,
    /// Score on the reference path (full score matrices, every edit checked).
    pub reference: bool,
    /// Told the number of texts of every model call as it returns, so a slow example shows
    /// progress within its search.
    pub on_evaluated: Option<&'a dyn Fn(usize)>,
}

impl Context<'_> {
    fn evaluated(&self, texts: usize) {
        if let Some(hook) = self.on_evaluated {
            hook(texts);
        }
    }
}

/// A state and the probabilities the model gave it.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub state: State,
    pub probs: Vec<f32>,
}

/// The search of one example.
pub(crate) struct ExampleRun<'a> {
    pub index: usize,
    pub space: Space<'a>,
    pub label: usize,
    /// The label whose loss is differentiated: the true one, or the target.
    pub objective: usize,
    pub targeted: bool,
    pub budget: usize,
    pub random_changes: usize,
    pub beam: Vec<State>,
    pub initial: Hit,
    /// Changes of the states in `beam`.
    pub step: usize,
    pub rng: StdRng,
    pub thresholds: Vec<f64>,
    /// First success at each threshold.
    pub hits: Vec<Option<Hit>>,
    /// The best state (by exact objective) of the last evaluation.
    pub last: Option<Hit>,
    pub forward: u64,
    pub backward: u64,
    pub started: Instant,
    pub done: bool,
}

impl ExampleRun<'_> {
    fn succeeds(&self, probs: &[f32], tau: f64) -> bool {
        let p = prediction(probs);
        let fooled = if self.targeted {
            p.label == self.objective
        } else {
            p.label != self.label
        };
        fooled && p.probability >= tau
    }

    /// The exact objective J of probabilities.
    fn objective_of(&self, probs: &[f32]) -> f64 {
        let p = f64::from(probs.get(self.objective).copied().unwrap_or(0.0)).max(1e-30);
        if self.targeted {
            p.ln()
        } else {
            -p.ln()
        }
    }

    fn record(&mut self, state: &State, probs: &[f32]) {
        for t in 0..self.thresholds.len() {
            if self.hits[t].is_none() && self.succeeds(probs, self.thresholds[t]) {
                self.hits[t] = Some(Hit {
                    state: state.clone(),
                    probs: probs.to_vec(),
                });
            }
        }
    }

    /// Whether recording `probs` (one row per beam state) would hit every threshold.
    fn would_finish(&self, probs: &[Vec<f32>]) -> bool {
        self.thresholds.iter().zip(&self.hits).all(|(&tau, hit)| {
            hit.is_some() || probs.iter().any(|p| !p.is_empty() && self.succeeds(p, tau))
        })
    }

    fn all_hit(&self) -> bool {
        self.hits.iter().all(Option::is_some)
    }
}

/// Checks a model answer has `n` rows of `classes` probabilities.
pub(crate) fn check_rows(p: &Probabilities, n: usize, classes: usize) -> Result<(), AttackError> {
    if p.classes != classes || p.len() != n || p.values.len() != n * classes {
        return Err(AttackError::model_output(format!(
            "the model answered {} rows of {} classes for {n} texts of {classes} classes",
            p.len(),
            p.classes
        )));
    }
    Ok(())
}

/// The argmax of a probability row.
pub(crate) fn prediction(probs: &[f32]) -> Prediction {
    let (label, p) = gauntlet_core::classifier::argmax(probs);
    Prediction {
        label,
        probability: f64::from(p),
    }
}

/// Adds one pass to every run with a text among `requests` (run indices). One evaluation
/// counts once per example however many calls of `batch_size` texts its texts were split
/// into, so pass counts never depend on which examples shared a batch (a shard reports
/// what the whole run reports).
fn count(runs: &mut [ExampleRun<'_>], requests: impl IntoIterator<Item = usize>, backward: bool) {
    let mut seen = vec![false; runs.len()];
    for r in requests {
        if !std::mem::replace(&mut seen[r], true) {
            runs[r].forward += 1;
            runs[r].backward += u64::from(backward);
        }
    }
}

/// Model probabilities for states, in calls of at most `batch_size` texts; one counted
/// evaluation.
fn predict_states(
    ctx: &Context<'_>,
    runs: &mut [ExampleRun<'_>],
    requests: &[(usize, TokenIds)],
) -> Result<Vec<Vec<f32>>, AttackError> {
    let out = predict_uncounted(ctx, requests)?;
    count(runs, requests.iter().map(|(r, _)| *r), false);
    Ok(out)
}

/// [`predict_states`] without pass counting, for an evaluation its caller splits up.
fn predict_uncounted(
    ctx: &Context<'_>,
    requests: &[(usize, TokenIds)],
) -> Result<Vec<Vec<f32>>, AttackError> {
    let classifier = ctx.model.classifier();
    let classes = classifier.labels().len();
    let mut out = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(ctx.config.batch_size) {
        let batch: Vec<TokenIds> = chunk.iter().map(|(_, ids)| ids.clone()).collect();
        let probs = classifier.predict(&batch)?;
        check_rows(&probs, batch.len(), classes)?;
        out.extend((0..batch.len()).map(|k| probs.row(k).to_vec()));
        ctx.evaluated(batch.len());
    }
    Ok(out)
}

/// What makes two children the same: their ids or, for character edits of subword models,
/// their text (two misspellings the tokenizer reads as the same ids, e.g. `[UNK]`, score
/// alike now but lead to different texts after further edits).
#[derive(PartialEq, Eq, Hash)]
enum Identity {
    Ids(TokenIds),
    Text(String),
}

fn identity(state: &State, space: &Space<'_>) -> Result<Identity, AttackError> {
    Ok(match &space.retokenize {
        Some(retokenize) => Identity::Text(retokenize.text_of(state)),
        None => Identity::Ids(state.ids(space)?),
    })
}

/// Keeps the `b` best distinct children; `cands` are (score, parent, estimate, edit).
fn select_distinct(
    mut cands: Vec<(f64, usize, f32, Edit)>,
    beam: &[State],
    space: &Space<'_>,
    b: usize,
    exact: bool,
) -> Result<Vec<State>, AttackError> {
    cands.sort_by(|x, y| {
        y.0.total_cmp(&x.0)
            .then_with(|| x.1.cmp(&y.1))
            .then_with(|| x.3.cmp(&y.3))
    });
    let mut seen: HashSet<Identity> = HashSet::new();
    let mut out = Vec::new();
    for (score, parent, estimate, edit) in cands {
        let mut child = beam[parent].apply(&edit, space, f64::from(estimate));
        if exact {
            child.score = score;
        }
        if seen.insert(identity(&child, space)?) {
            out.push(child);
            if out.len() == b {
                break;
            }
        }
    }
    Ok(out)
}

/// What the gradient pass of one state left for its expansion.
pub(crate) enum StateScores {
    /// Nothing: the state was only classified (or the search draws random gradients).
    Nothing,
    /// The gradient `[positions, dim]`, in the search's sign.
    Gradient(Vec<f32>),
    /// Word flips scored by the backend, best first, and whether more exist.
    Flips(Vec<Scored>, bool),
}

/// A state to evaluate: (run, beam index, ids).
type StateRequest = (usize, usize, TokenIds);

/// What a gradient pass gave a state: (run, beam index, probabilities, scores).
type StateAnswer = (usize, usize, Vec<f32>, StateScores);

/// Whether word flips are scored by the backend (`top_word_flips`) instead of on the host.
fn backend_flips(ctx: &Context<'_>) -> bool {
    !ctx.reference
        && ctx.rules.space == EditSpace::WordFlips
        && ctx.config.kind != AttackKind::RandomGradient
}

/// The best `k` of a backend's flips (asked for `k + 1`) as word-flip edits, and whether
/// more than `k` exist.
fn as_edits(flips: Vec<ScoredFlip>, k: usize) -> (Vec<Scored>, bool) {
    let more = flips.len() > k;
    let kept = flips
        .into_iter()
        .take(k)
        .map(|f| {
            let edit = Edit::WordFlip {
                word: f.position,
                to: f.id,
            };
            (f.estimate, edit)
        })
        .collect();
    (kept, more)
}

/// Splits the first `n` requests off `requests`.
fn take_chunk<T>(requests: &mut Vec<T>, n: usize) -> Vec<T> {
    let rest = requests.split_off(n.min(requests.len()));
    std::mem::replace(requests, rest)
}

/// Runs one forward and backward pass per `batch_size` chunk of `states` through `pass`,
/// which answers the chunk's probabilities and one [`StateScores`] per state; checks the
/// answer's shape and counts one forward and backward pass per run (see [`count`]).
fn gradient_passes(
    ctx: &Context<'_>,
    runs: &mut [ExampleRun<'_>],
    states: Vec<StateRequest>,
    mut pass: impl FnMut(
        &dyn WhiteBox,
        &[ExampleRun<'_>],
        &[(usize, usize)],
        &[TokenIds],
    ) -> Result<(Probabilities, Vec<StateScores>), AttackError>,
) -> Result<Vec<StateAnswer>, AttackError> {
    let wb = ctx
        .model
        .white_box()
        .ok_or(AttackError::NeedsGradients(ctx.config.kind))?;
    let classes = wb.labels().len();
    let mut out = Vec::with_capacity(states.len());
    let in_pass: Vec<usize> = states.iter().map(|&(r, _, _)| r).collect();
    let mut states = states;
    while !states.is_empty() {
        let chunk = take_chunk(&mut states, ctx.config.batch_size);
        let owners: Vec<(usize, usize)> = chunk.iter().map(|&(r, s, _)| (r, s)).collect();
        let batch: Vec<TokenIds> = chunk.into_iter().map(|(_, _, ids)| ids).collect();
        let (probabilities, scored) = pass(wb, runs, &owners, &batch)?;
        ctx.evaluated(batch.len());
        check_rows(&probabilities, batch.len(), classes)?;
        if scored.len() != batch.len() {
            return Err(AttackError::model_output(format!(
                "{} gradient answers for {} texts",
                scored.len(),
                batch.len()
            )));
        }
        for (j, (&(r, s), scored)) in owners.iter().zip(scored).enumerate() {
            out.push((r, s, probabilities.row(j).to_vec(), scored));
        }
    }
    count(runs, in_pass, true);
    Ok(out)
}

/// Scores word flips of `states` on the backend: probabilities and, per state, its best
/// `k` flips and whether more exist.
fn score_flips(
    ctx: &Context<'_>,
    runs: &mut [ExampleRun<'_>],
    states: Vec<StateRequest>,
    k: usize,
) -> Result<Vec<StateAnswer>, AttackError> {
    gradient_passes(ctx, runs, states, |wb, runs, owners, batch| {
        let queries: Vec<FlipQuery> = owners
            .iter()
            .map(|&(r, s)| FlipQuery {
                label: runs[r].objective,
                sign: if runs[r].targeted { -1.0 } else { 1.0 },
                targets: WordMasks::query_targets(&ctx.rules, &runs[r].beam[s], &runs[r].space),
            })
            .collect();
        let answer = wb.top_word_flips(batch, &queries, &ctx.masks.masks, k.saturating_add(1))?;
        let scored = answer
            .flips
            .into_iter()
            .map(|flips| {
                let (kept, more) = as_edits(flips, k);
                StateScores::Flips(kept, more)
            })
            .collect();
        Ok((answer.probabilities, scored))
    })
}

/// Gradients of `states` (in each run's sign) and their probabilities.
fn gradients(
    ctx: &Context<'_>,
    runs: &mut [ExampleRun<'_>],
    states: Vec<StateRequest>,
) -> Result<Vec<StateAnswer>, AttackError> {
    gradient_passes(ctx, runs, states, |wb, runs, owners, batch| {
        let labels: Vec<usize> = owners.iter().map(|&(r, _)| runs[r].objective).collect();
        let answer = wb.loss_gradients(batch, &labels)?;
        let scored = answer
            .gradients
            .into_iter()
            .zip(owners)
            .map(|(g, &(r, _))| {
                let mut g = g.values;
                if runs[r].targeted {
                    g.iter_mut().for_each(|v| *v = -*v);
                }
                StateScores::Gradient(g)
            })
            .collect();
        Ok((answer.probabilities, scored))
    })
}

/// One gradient-guided beam step for every run.
pub(crate) fn gradient_step(
    ctx: &mut Context<'_>,
    runs: &mut [ExampleRun<'_>],
) -> Result<(), AttackError> {
    let random = ctx.config.kind == AttackKind::RandomGradient;
    let k = ctx.config.beam_width.saturating_mul(4);
    let mut grad_req = Vec::new();
    let mut fwd_req = Vec::new();
    let mut checks = 0;
    // Word searches: a forward pass is far cheaper than a gradient pass plus the vocabulary
    // product it feeds. Character searches score a small alphabet and run many steps, where
    // the extra forward pass per step costs more than the backward passes it saves
    // (measured on an AG News char-cnn-lstm: 14.3 forward + 6.7 backward passes and 866 ms
    // per attacked example with the check, 8.7 + 7.6 and 589 ms without).
    let check_first = ctx.rules.space != EditSpace::Chars;
    for (r, run) in runs.iter().enumerate() {
        for (s, state) in run.beam.iter().enumerate() {
            let ids = state.ids(&run.space)?;
            if random || run.step >= run.budget {
                fwd_req.push((r, s, ids));
            } else if run.step > 0 && check_first {
                // Children are classified first; they get their gradient pass only if the
                // search goes on (the backward pass of a finishing step is never wasted).
                fwd_req.insert(checks, (r, s, ids));
                checks += 1;
            } else {
                grad_req.push((r, s, ids));
            }
        }
    }
    let mut probs: Vec<Vec<Vec<f32>>> = runs
        .iter()
        .map(|r| vec![Vec::new(); r.beam.len()])
        .collect();
    let mut scores: Vec<Vec<StateScores>> = runs
        .iter()
        .map(|r| (0..r.beam.len()).map(|_| StateScores::Nothing).collect())
        .collect();
    if !fwd_req.is_empty() {
        let owners: Vec<(usize, usize)> = fwd_req.iter().map(|&(r, s, _)| (r, s)).collect();
        let requests: Vec<(usize, TokenIds)> =
            fwd_req.into_iter().map(|(r, _, ids)| (r, ids)).collect();
        let answers = predict_states(ctx, runs, &requests)?;
        for (&(r, s), row) in owners.iter().zip(answers) {
            probs[r][s] = row;
        }
        let mut going_on: Vec<Option<bool>> = vec![None; runs.len()];
        for ((r, s), (_, ids)) in owners.into_iter().zip(requests).take(checks) {
            let on = *going_on[r].get_or_insert_with(|| !runs[r].would_finish(&probs[r]));
            if on {
                grad_req.push((r, s, ids));
            }
        }
    }
    if !grad_req.is_empty() {
        let answers = if backend_flips(ctx) {
            score_flips(ctx, runs, grad_req, k)?
        } else {
            gradients(ctx, runs, grad_req)?
        };
        for (r, s, row, scored) in answers {
            // A checked state keeps the probabilities of its check.
            if probs[r][s].is_empty() {
                probs[r][s] = row;
            }
            scores[r][s] = scored;
        }
    }
    for (r, scored) in scores.iter_mut().enumerate() {
        let run = &mut runs[r];
        let states = std::mem::take(&mut run.beam);
        for (state, p) in states.iter().zip(&probs[r]) {
            run.record(state, p);
        }
        run.last = states
            .iter()
            .zip(&probs[r])
            .map(|(s, p)| (run.objective_of(p), s, p))
            .fold(None::<(f64, &State, &Vec<f32>)>, |best, cur| match best {
                Some(b) if b.0 >= cur.0 => Some(b),
                _ => Some(cur),
            })
            .map(|(_, s, p)| Hit {
                state: s.clone(),
                probs: p.clone(),
            });
        run.beam = states;
        if run.all_hit() || run.step >= run.budget {
            run.done = true;
            continue;
        }
        let b = ctx.config.beam_width;
        let (mut children, dropped) = expand(ctx, run, scored, k)?;
        if children.len() < b && dropped {
            if backend_flips(ctx) {
                // The backend kept only the best k flips of each state: score them all.
                let states: Vec<StateRequest> = run
                    .beam
                    .iter()
                    .enumerate()
                    .map(|(s, st)| Ok((0, s, st.ids(&run.space)?)))
                    .collect::<Result<_, AttackError>>()?;
                let all = score_flips(ctx, std::slice::from_mut(run), states, usize::MAX)?;
                *scored = all.into_iter().map(|(_, _, _, sc)| sc).collect();
            }
            children = expand(ctx, run, scored, usize::MAX)?.0;
        }
        if children.is_empty() {
            run.done = true;
        } else {
            run.beam = children;
            run.step += 1;
        }
    }
    Ok(())
}

/// The best `k` edits of one state from its pass: the reference path (a full score matrix,
/// every edit enumerated and checked) or the fast paths of [`crate::best_first`].
fn state_edits(
    ctx: &mut Context<'_>,
    run: &mut ExampleRun<'_>,
    s: usize,
    scored: &StateScores,
    k: usize,
) -> Result<(Vec<Scored>, bool), AttackError> {
    if let StateScores::Flips(flips, more) = scored {
        let more = *more || flips.len() > k;
        return Ok((flips.iter().take(k).copied().collect(), more));
    }
    let table = ctx
        .table
        .ok_or(AttackError::NeedsGradients(ctx.config.kind))?;
    let state = &run.beam[s];
    let ids = state.ids(&run.space)?;
    let positions = ids.positions();
    let random;
    let g: &[f32] = match scored {
        StateScores::Gradient(g) if ctx.config.kind != AttackKind::RandomGradient => g,
        _ => {
            random = random_direction(&mut run.rng, positions * table.dim);
            &random
        }
    };
    if ctx.reference {
        let scores = score_matrix(g, positions, table, ctx.zero_padding)?;
        let mut top = TopK::new(k);
        ctx.rules
            .enumerate(state, &run.space, Some(&scores.view()), &mut top);
        let mut dropped = false;
        let kept = top.finish(&mut dropped);
        return Ok((kept, dropped));
    }
    Ok(match ctx.rules.space {
        EditSpace::Chars => {
            let scores = score_matrix(g, positions, table, ctx.zero_padding)?;
            ctx.rules
                .best_char_edits(state, &run.space, &scores.view(), k)
        }
        EditSpace::Sem | EditSpace::Unk => {
            ctx.rules.best_word_edits(state, &run.space, g, table, k)
        }
        EditSpace::WordFlips => {
            // Off the reference path the backend scores every word-flip state before
            // expansion (`score_flips`, `random_direction_flips`).
            return Err(AttackError::model_output(
                "a word-flip state reached expansion unscored",
            ));
        }
    })
}

fn expand(
    ctx: &mut Context<'_>,
    run: &mut ExampleRun<'_>,
    scored: &[StateScores],
    k: usize,
) -> Result<(Vec<State>, bool), AttackError> {
    let drawn;
    let random_flips = ctx.config.kind == AttackKind::RandomGradient
        && !ctx.reference
        && ctx.rules.space == EditSpace::WordFlips;
    let scored = if random_flips {
        drawn = random_direction_flips(ctx, run, k)?;
        &drawn[..]
    } else {
        scored
    };
    let mut cands = Vec::new();
    let mut dropped = false;
    for s in 0..run.beam.len() {
        let nothing = StateScores::Nothing;
        let (top, more) = state_edits(ctx, run, s, scored.get(s).unwrap_or(&nothing), k)?;
        dropped |= more;
        let score = run.beam[s].score;
        for (est, edit) in top {
            cands.push((score + f64::from(est), s, est, edit));
        }
    }
    Ok((
        select_distinct(cands, &run.beam, &run.space, ctx.config.beam_width, false)?,
        dropped,
    ))
}

/// The `random-gradient` direction of a state: `len` draws from U(−1, 1).
fn random_direction(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// `random-gradient` word flips of every state of `run`, scored in ONE backend call. Each
/// state's random direction is drawn in beam order, exactly as [`state_edits`] draws them
/// one state at a time on the reference path, so both paths consume the generator alike.
fn random_direction_flips(
    ctx: &Context<'_>,
    run: &mut ExampleRun<'_>,
    k: usize,
) -> Result<Vec<StateScores>, AttackError> {
    let table = ctx
        .table
        .ok_or(AttackError::NeedsGradients(ctx.config.kind))?;
    let wb = ctx
        .model
        .white_box()
        .ok_or(AttackError::NeedsGradients(ctx.config.kind))?;
    let (mut batch, mut directions, mut queries) = (Vec::new(), Vec::new(), Vec::new());
    for state in &run.beam {
        let ids = state.ids(&run.space)?;
        let direction = random_direction(&mut run.rng, ids.positions() * table.dim);
        queries.push(FlipQuery {
            label: run.objective,
            sign: 1.0,
            targets: WordMasks::query_targets(&ctx.rules, state, &run.space),
        });
        batch.push(ids);
        directions.push(direction);
    }
    let answers = wb.score_word_flips(
        &batch,
        &directions,
        &queries,
        &ctx.masks.masks,
        k.saturating_add(1),
    )?;
    if answers.len() != batch.len() {
        return Err(AttackError::model_output(format!(
            "{} flip answers for {} states",
            answers.len(),
            batch.len()
        )));
    }
    Ok(answers
        .into_iter()
        .map(|flips| {
            let (kept, more) = as_edits(flips, k);
            StateScores::Flips(kept, more)
        })
        .collect())
}

/// Every allowed edit of a state, in a deterministic order, sampled down to the cap.
fn all_edits(
    ctx: &mut Context<'_>,
    state: &State,
    space: &Space<'_>,
    rng: &mut StdRng,
) -> Vec<Edit> {
    let mut top = TopK::new(usize::MAX);
    ctx.rules.enumerate(state, space, None, &mut top);
    let mut edits: Vec<Edit> = top.finish(&mut false).into_iter().map(|(_, e)| e).collect();
    if let Some(cap) = ctx.config.candidates_cap {
        if edits.len() > cap {
            let mut keep = rand::seq::index::sample(rng, edits.len(), cap).into_vec();
            keep.sort_unstable();
            edits = keep.into_iter().map(|i| edits[i]).collect();
        }
    }
    edits
}

/// One exact-loss beam step for every run.
pub(crate) fn loss_step(ctx: &mut Context<'_>, runs: &mut [ExampleRun]) -> Result<(), AttackError> {
    let mut children: Vec<Vec<(usize, Edit)>> = Vec::with_capacity(runs.len());
    for run in runs.iter_mut() {
        let mut mine = Vec::new();
        for (s, state) in run.beam.iter().enumerate() {
            let edits = all_edits(ctx, state, &run.space, &mut run.rng);
            mine.extend(edits.into_iter().map(|e| (s, e)));
        }
        children.push(mine);
    }
    let mut answers: Vec<Vec<Vec<f32>>> = vec![Vec::new(); runs.len()];
    let batch = ctx.config.batch_size;
    let flat: Vec<(usize, usize)> = children
        .iter()
        .enumerate()
        .flat_map(|(r, c)| (0..c.len()).map(move |c| (r, c)))
        .collect();
    for chunk in flat.chunks(batch) {
        let requests: Vec<(usize, TokenIds)> = chunk
            .iter()
            .map(|&(r, c)| {
                let (parent, edit) = children[r][c];
                let run = &runs[r];
                let ids = run.beam[parent]
                    .apply(&edit, &run.space, 0.0)
                    .ids(&run.space)?;
                Ok((r, ids))
            })
            .collect::<Result<_, AttackError>>()?;
        // Children are encoded chunk by chunk to bound memory; the step is one evaluation.
        for ((r, _), row) in requests.iter().zip(predict_uncounted(ctx, &requests)?) {
            answers[*r].push(row);
        }
    }
    count(runs, flat.iter().map(|&(r, _)| r), false);
    for (r, run) in runs.iter_mut().enumerate() {
        let mut order: Vec<(f64, usize)> = answers[r]
            .iter()
            .enumerate()
            .map(|(c, p)| (run.objective_of(p), c))
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        for &(_, c) in &order {
            let p = &answers[r][c];
            if run
                .thresholds
                .iter()
                .enumerate()
                .any(|(t, &tau)| run.hits[t].is_none() && run.succeeds(p, tau))
            {
                let (parent, edit) = children[r][c];
                let state = run.beam[parent].apply(&edit, &run.space, 0.0);
                run.record(&state, p);
            }
        }
        if let Some(&(_, c)) = order.first() {
            let (parent, edit) = children[r][c];
            run.last = Some(Hit {
                state: run.beam[parent].apply(&edit, &run.space, 0.0),
                probs: answers[r][c].clone(),
            });
        }
        let cands = order
            .iter()
            .map(|&(j, c)| (j, children[r][c].0, 0.0, children[r][c].1))
            .collect();
        let next = select_distinct(cands, &run.beam, &run.space, ctx.config.beam_width, true)?;
        if next.is_empty() || run.all_hit() || run.step + 1 >= run.budget {
            run.done = true;
        } else {
            run.beam = next;
            run.step += 1;
        }
    }
    Ok(())
}

/// A uniformly random allowed edit of `state`, if any.
fn random_edit(
    ctx: &mut Context<'_>,
    state: &State,
    space: &Space<'_>,
    rng: &mut StdRng,
) -> Option<Edit> {
    match ctx.rules.space {
        EditSpace::WordFlips => {
            let words: Vec<usize> = (0..state.words.len())
                .filter(|&i| !(ctx.rules.one_change_per_word && state.changed[i]))
                .filter(|&i| space.editable(i))
                .collect();
            let ids = ctx.rules.ids.clone();
            if words.is_empty() || ids.len() < 2 {
                return None;
            }
            let word = words[rng.gen_range(0..words.len())];
            let current = state.words[word][0].id;
            if !ctx.rules.targets.native {
                let targets: Vec<u32> = ctx
                    .rules
                    .targets
                    .of(current)
                    .iter()
                    .copied()
                    .filter(|&to| to != current)
                    .collect();
                return (!targets.is_empty()).then(|| Edit::WordFlip {
                    word,
                    to: targets[rng.gen_range(0..targets.len())],
                });
            }
            loop {
                let to = rng.gen_range(ids.clone());
                if to != current {
                    return Some(Edit::WordFlip { word, to });
                }
            }
        }
        _ => {
            let mut top = TopK::new(usize::MAX);
            ctx.rules.enumerate(state, space, None, &mut top);
            let edits = top.finish(&mut false);
            if edits.is_empty() {
                None
            } else {
                Some(edits[rng.gen_range(0..edits.len())].1)
            }
        }
    }
}

/// Random changes: every run makes its number of random edits and is evaluated after each.
pub(crate) fn random_step(
    ctx: &mut Context<'_>,
    runs: &mut [ExampleRun<'_>],
) -> Result<(), AttackError> {
    let mut prefixes: Vec<Vec<State>> = Vec::with_capacity(runs.len());
    for run in runs.iter_mut() {
        let mut state = run.initial.state.clone();
        let mut mine = Vec::new();
        for _ in 0..run.random_changes {
            let Some(edit) = random_edit(ctx, &state, &run.space, &mut run.rng) else {
                break;
            };
            state = state.apply(&edit, &run.space, 0.0);
            mine.push(state.clone());
        }
        prefixes.push(mine);
    }
    let requests: Vec<(usize, TokenIds)> = prefixes
        .iter()
        .enumerate()
        .flat_map(|(r, states)| {
            let space = &runs[r].space;
            states.iter().map(move |s| Ok((r, s.ids(space)?)))
        })
        .collect::<Result<_, AttackError>>()?;
    let answers = predict_states(ctx, runs, &requests)?;
    let mut answers = answers.into_iter();
    for (run, states) in runs.iter_mut().zip(prefixes) {
        for state in states {
            let Some(p) = answers.next() else { break };
            run.record(&state, &p);
            run.last = Some(Hit { state, probs: p });
        }
        run.done = true;
    }
    Ok(())
}
