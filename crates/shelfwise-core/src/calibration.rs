//! Softmax with temperature, and fitting the temperature on held-out data so that a score of 0.8
//! means right 80 % of the time (what makes the abstain threshold meaningful to a seller).

/// Numerically stable softmax of `logits / temperature`.
pub fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![1.0 / logits.len().max(1) as f32; logits.len()];
    }
    let exps: Vec<f32> = logits.iter().map(|&l| ((l - max) / temperature).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Mean negative log-likelihood of `gold` under `softmax(logits / t)`; `gold = None` rows (a
/// category unknown to the model) are skipped.
pub fn nll(logits: &[Vec<f32>], gold: &[Option<usize>], t: f32) -> f64 {
    let mut total = 0.0f64;
    let mut n = 0usize;
    for (l, g) in logits.iter().zip(gold) {
        if let Some(g) = g {
            let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = l.iter().map(|&x| (((x - max) / t) as f64).exp()).sum::<f64>().ln();
            total += lse - ((l[*g] - max) / t) as f64;
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        total / n as f64
    }
}

/// Mean binary cross-entropy between the top-1 confidence under temperature `t` and whether the
/// top-1 label is right (`gold = None`, a category the model cannot know, is always wrong).
/// This is the quantity ECE measures, so fitting it calibrates what the seller sees.
pub fn top1_bce(logits: &[Vec<f32>], gold: &[Option<usize>], t: f32) -> f64 {
    let mut total = 0.0f64;
    for (l, g) in logits.iter().zip(gold) {
        let top = crate::decision::top_k(l, 1)[0];
        let max = l[top];
        let sum = l.iter().map(|&x| (((x - max) / t) as f64).exp()).sum::<f64>();
        let conf = (1.0 / sum).clamp(1e-9, 1.0 - 1e-9);
        total -= if *g == Some(top) { conf.ln() } else { (1.0 - conf).ln() };
    }
    total / logits.len().max(1) as f64
}

/// Golden-section search for the minimum of a unimodal `f` on log t in [0.05, 20].
fn golden_log_t(f: impl Fn(f32) -> f64) -> f32 {
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let f = |x: f64| f(x.exp() as f32);
    let (mut c, mut d) = (b - phi * (b - a), a + phi * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..60 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0).exp() as f32
}

/// The temperature minimising NLL of the gold labels.
pub fn fit_temperature(logits: &[Vec<f32>], gold: &[Option<usize>]) -> f32 {
    golden_log_t(|t| nll(logits, gold, t))
}

/// The temperature minimising [`top1_bce`]: calibrates top-1 confidence, counting held-out titles
/// whose category the model has never seen as errors.
pub fn fit_temperature_top1(logits: &[Vec<f32>], gold: &[Option<usize>]) -> f32 {
    golden_log_t(|t| top1_bce(logits, gold, t))
}

/// Weights tried for the label-name prior (see [`fit_prior_weight`]).
pub const PRIOR_WEIGHTS: [f32; 9] = [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0];

/// `logits + weight · extra`, row by row.
pub fn with_prior(logits: &[Vec<f32>], extra: &[Vec<f32>], weight: f32) -> Vec<Vec<f32>> {
    logits.iter().zip(extra).map(|(l, e)| l.iter().zip(e).map(|(l, e)| l + weight * e).collect()).collect()
}

/// The weight of [`PRIOR_WEIGHTS`] whose `logits + weight · extra` has the lowest held-out NLL,
/// each at its own best temperature (the temperature is fitted again afterwards for what the
/// seller sees). NLL rather than accuracy: a smooth criterion picks the same weight on another
/// sample of a shop far more often than a count of right answers does. 0 (no prior) when nothing
/// beats it, or when no row has a known gold label.
pub fn fit_prior_weight(logits: &[Vec<f32>], extra: &[Vec<f32>], gold: &[Option<usize>]) -> f32 {
    let score = |w: f32| {
        let z = with_prior(logits, extra, w);
        let t = fit_temperature(&z, gold);
        nll(&z, gold, t)
    };
    let mut best = (0.0, score(0.0));
    for &w in &PRIOR_WEIGHTS[1..] {
        let s = score(w);
        if s < best.1 - 1e-9 {
            best = (w, s);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_weight_is_chosen_by_held_out_nll() {
        // Logits that cannot tell classes 0 and 1 apart; `extra` points at the gold class on 90 %
        // of rows: some weight > 0 must win. With `extra` pointing the wrong way, 0 must.
        let logits = vec![vec![1.0f32, 1.0, -1.0]; 100];
        let gold: Vec<Option<usize>> = (0..100).map(|i| Some(i % 2)).collect();
        let good: Vec<Vec<f32>> = (0..100).map(|i| if (i % 2 == 0) == (i % 10 != 0) { vec![1.0, 0.0, 0.0] } else { vec![0.0, 1.0, 0.0] }).collect();
        assert!(fit_prior_weight(&logits, &good, &gold) > 0.0);
        let bad = vec![vec![0.0f32, 0.0, 1.0]; 100];
        assert_eq!(fit_prior_weight(&logits, &bad, &gold), 0.0);
        assert_eq!(fit_prior_weight(&logits, &good, &vec![None; 100]), 0.0);
        assert_eq!(with_prior(&[vec![1.0, 2.0]], &[vec![0.5, -1.0]], 2.0), vec![vec![2.0, 0.0]]);
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, 0.0], 1.0);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] < 1e-30);
        let p = softmax(&[1.0, 2.0, 3.0], 2.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[2] / p[1] - (0.5f32).exp()).abs() < 1e-5);
    }

    #[test]
    fn fitted_temperature_recovers_the_generating_one() {
        // Two classes, logit margin 4: with true temperature 2, p(correct) = sigmoid(2) ≈ 0.881.
        // Build data where exactly that fraction is correct; the fit must find t ≈ 2.
        let mut logits = Vec::new();
        let mut gold = Vec::new();
        for i in 0..1000 {
            logits.push(vec![4.0, 0.0]);
            gold.push(Some(if i < 881 { 0 } else { 1 }));
        }
        gold.push(None);
        logits.push(vec![0.0, 0.0]);
        let t = fit_temperature(&logits, &gold);
        assert!((t - 2.0).abs() < 0.02, "{t}");
    }

    #[test]
    fn top1_fit_counts_unknown_gold_as_wrong() {
        // Margin 4, 80 % right (the unknown rows are wrong): best confidence 0.8 → t = 4 / ln 4.
        let logits = vec![vec![4.0f32, 0.0]; 100];
        let gold: Vec<Option<usize>> = (0..100).map(|i| if i < 80 { Some(0) } else { None }).collect();
        let t = fit_temperature_top1(&logits, &gold);
        assert!((t - 4.0 / 4f32.ln()).abs() < 0.02, "{t}");
    }
}
