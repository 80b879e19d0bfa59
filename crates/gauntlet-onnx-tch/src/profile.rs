//! [`OperatorProfile`]: where the interpreter's time goes, per operator type.
//!
//! Every evaluated node adds its wall time to its operator type's entry; the white box adds
//! the autograd backward pass and the word-flip scoring as entries of their own (names in
//! parentheses), so the entries together cover its model calls. Times are host wall times:
//! on the CPU that is the operator's work, on CUDA (asynchronous) only its dispatch. Timing a
//! node costs two clock reads and an uncontended lock, far below the cheapest operator.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Time spent in one operator type since the profile was last taken.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorTime {
    /// ONNX operator type (`MatMul`), or a white-box step in parentheses.
    pub op: String,
    /// Evaluations of that operator.
    pub calls: u64,
    /// Their summed wall time.
    pub time: Duration,
}

/// Accumulated operator times (thread-safe; shared by every evaluation of one graph).
#[derive(Debug, Default)]
pub struct OperatorProfile {
    entries: Mutex<HashMap<String, (u64, Duration)>>,
}

impl OperatorProfile {
    /// Adds one evaluation of `op` that took `elapsed`.
    pub fn record(&self, op: &str, elapsed: Duration) {
        // A poisoned lock only loses timings; evaluation goes on.
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        // Called for every node: the name is copied only the first time an operator is seen.
        match entries.get_mut(op) {
            Some(entry) => {
                entry.0 += 1;
                entry.1 += elapsed;
            }
            None => {
                entries.insert(op.to_owned(), (1, elapsed));
            }
        }
    }

    /// The times so far, longest first (ties by name), and a fresh start.
    pub fn take(&self) -> Vec<OperatorTime> {
        let entries = match self.entries.lock() {
            Ok(mut entries) => std::mem::take(&mut *entries),
            Err(_) => HashMap::new(),
        };
        let mut out: Vec<OperatorTime> = entries
            .into_iter()
            .map(|(op, (calls, time))| OperatorTime { op, calls, time })
            .collect();
        out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.op.cmp(&b.op)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_per_operator_sorts_longest_first_and_restarts() {
        let p = OperatorProfile::default();
        p.record("Add", Duration::from_micros(5));
        p.record("MatMul", Duration::from_micros(7));
        p.record("Add", Duration::from_micros(4));
        let taken = p.take();
        let rows: Vec<(&str, u64, u128)> = taken
            .iter()
            .map(|t| (t.op.as_str(), t.calls, t.time.as_micros()))
            .collect();
        assert_eq!(rows, [("Add", 2, 9), ("MatMul", 1, 7)]);
        assert!(p.take().is_empty());
    }
}
