//! Paired t-test on per-example losses (Bělohlávek et al. 2018, section 5.2): do two models
//! differ on the same test examples more than chance allows?
//!
//! The two-sided p-value comes from Student's t distribution through the regularized
//! incomplete beta function, `p = I_{df/(df+t²)}(df/2, 1/2)`, evaluated with Lentz's
//! continued fraction; accurate to about 1e-10, ample for reporting.

use serde::Serialize;

/// Result of a paired t-test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedTTest {
    /// Number of pairs.
    pub n: usize,
    /// Mean of `a − b`.
    pub mean_difference: f64,
    /// The t statistic.
    pub t: f64,
    /// Degrees of freedom (`n − 1`).
    pub degrees_of_freedom: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Paired t-test of `a` against `b`; `None` with fewer than two pairs or unequal lengths.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Option<PairedTTest> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let n = a.len() as f64;
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean = diffs.iter().sum::<f64>() / n;
    let variance = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let df = n - 1.0;
    let (t, p_value) = if variance == 0.0 {
        if mean == 0.0 {
            (0.0, 1.0)
        } else {
            (mean.signum() * f64::INFINITY, 0.0)
        }
    } else {
        let t = mean / (variance / n).sqrt();
        (
            t,
            regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5),
        )
    };
    Some(PairedTTest {
        n: a.len(),
        mean_difference: mean,
        t,
        degrees_of_freedom: df,
        p_value,
    })
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9).
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |acc, (i, c)| {
            acc + c / (x + i as f64 + 1.0)
        });
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// `I_x(a, b)`, the regularized incomplete beta function.
pub fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    // The continued fraction converges fast for x < (a+1)/(a+b+2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_continued_fraction(1.0 - x, b, a) / b
    }
}

fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut f = d;
    for m in 1..300 {
        let m = f64::from(m);
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + numerator / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_match_student_t_tables() {
        // Two-sided p for t = 2.0 with 10 df is 0.07339; t = 2.228 is the 5% critical value.
        let p = regularized_incomplete_beta(10.0 / (10.0 + 4.0), 5.0, 0.5);
        assert!((p - 0.073_388).abs() < 1e-5, "{p}");
        let p = regularized_incomplete_beta(10.0 / (10.0 + 2.228_f64.powi(2)), 5.0, 0.5);
        assert!((p - 0.05).abs() < 1e-4, "{p}");
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn paired_test_on_hand_computed_example() {
        // Differences 1, 2, 3, 4: mean 2.5, sd 1.291, t = 2.5 / (1.291/2) = 3.873, df 3.
        let a = [2.0, 4.0, 6.0, 8.0];
        let b = [1.0, 2.0, 3.0, 4.0];
        let test = paired_t_test(&a, &b).expect("two or more pairs");
        assert!((test.t - 3.872_983).abs() < 1e-5, "{test:?}");
        assert!((test.p_value - 0.030_466).abs() < 1e-4, "{test:?}");
        assert_eq!(paired_t_test(&a, &a).map(|t| t.p_value), Some(1.0));
        assert!(paired_t_test(&a[..1], &b[..1]).is_none());
    }
}
