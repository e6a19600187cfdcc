//! Diagnostic for the combination weights (issue #19, k = 20; models/flipkart-minilm/NOTES.md):
//! `cargo run --release -p shelfwise-model --example adapt_folds -- MODEL TAXONOMY EXAMPLES.csv TEST.csv`.
//! acc@1 on TEST of one adapted memory (all EXAMPLES) under three weight vectors:
//! - `shipped`: what `adapt` fits (5-fold cross-fitted on the memory's stored int8 rows);
//! - `5-fold`: every component cross-fitted: 5 memories each without one fold of the examples
//!   (fold = rank within the label mod 5), the held-out titles scored by the memory that did not
//!   see them (embedded fresh, as at classification), `adapt::fit_weights` on those;
//! - `test-fitted`: `fit_weights` on TEST itself, a ceiling for any linear weighting, not a result.

#[path = "common/rows.rs"]
mod rows;
use rows::csv_rows;
use shelfwise_model::adapt::{fit_weights, PRIOR_STRENGTH, PRIOR_WEIGHTS};
use shelfwise_model::adapter::Adapter;
use shelfwise_model::head::normalize;
use shelfwise_model::progress::Silent;
use shelfwise_model::shop::{examples_of, parse_paths, read_taxonomy, Shop};
use shelfwise_model::Classifier;

type Z = Vec<Vec<Vec<f32>>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let clf = Classifier::from_bytes(&std::fs::read(&args[1])?)?;
    let taxonomy = parse_paths(&read_taxonomy(&std::fs::read_to_string(&args[2])?)?)?;
    let ex = csv_rows(&std::fs::read_to_string(&args[3])?);
    let test = csv_rows(&std::fs::read_to_string(&args[4])?);
    let shop_of = |rows: &[(String, String)]| -> Result<Adapter, Box<dyn std::error::Error>> {
        let mut shop = Shop::new(&clf);
        shop.set_taxonomy(&clf, &taxonomy, &Silent)?;
        let (t, p): (Vec<String>, Vec<String>) = rows.iter().cloned().unzip();
        shop.add_examples(&clf, examples_of(&t, &p)?, &Silent)?;
        Ok(shop.adapter(&clf)?)
    };
    let full = shop_of(&ex)?;
    let (z_test, gold_test) = scored(&clf, &full, &full, &test)?;
    let acc = |w: &[f32]| -> f64 {
        let right = z_test.iter().zip(&gold_test).filter(|(z, &g)| argmax(&combine(z, w)) == g).count();
        right as f64 / gold_test.len() as f64
    };
    println!("test titles {} of {}, labels {}", gold_test.len(), test.len(), full.labels().len());
    println!("shipped {:.4} {:?}", acc(full.weights()), full.weights());
    let mut rank = std::collections::HashMap::new();
    let fold: Vec<usize> = ex
        .iter()
        .map(|(_, p)| {
            let r = rank.entry(p.clone()).or_insert(0usize);
            *r += 1;
            (*r - 1) % 5
        })
        .collect();
    let (mut z_cf, mut gold_cf) = (Vec::new(), Vec::new());
    for k in 0..5 {
        let train: Vec<(String, String)> = ex.iter().zip(&fold).filter(|(_, &f)| f != k).map(|(r, _)| r.clone()).collect();
        let held: Vec<(String, String)> = ex.iter().zip(&fold).filter(|(_, &f)| f == k).map(|(r, _)| r.clone()).collect();
        let a = shop_of(&train)?;
        let (z, g) = scored(&clf, &a, &full, &held)?;
        z_cf.extend(z);
        gold_cf.extend(g);
    }
    let w = fit_weights(&z_cf, &gold_cf, &PRIOR_WEIGHTS, PRIOR_STRENGTH);
    println!("5-fold ({} held-out) {:.4} {:?}", gold_cf.len(), acc(&w), w);
    let w = fit_weights(&z_test, &gold_test, &PRIOR_WEIGHTS, PRIOR_STRENGTH);
    println!("test-fitted (ceiling, not a result) {:.4} {:?}", acc(&w), w);
    Ok(())
}

/// The z-scored components of `rows` (of labels `full` knows) under `a`, in `full`'s label
/// order. A fold can lack a label of the full memory (a path only its held-out examples had): that
/// label gets the component's lowest value for the title, as a label without a value does in the
/// scorer (`adapter::standardize`).
fn scored(clf: &Classifier, a: &Adapter, full: &Adapter, rows: &[(String, String)]) -> Result<(Z, Vec<usize>), Box<dyn std::error::Error>> {
    let map: Vec<Option<usize>> = (0..full.labels().len()).map(|j| a.labels().find(&full.labels().label_string(j))).collect();
    let rows: Vec<&(String, String)> = rows.iter().filter(|(_, p)| full.labels().find(p).is_some()).collect();
    let (mut z, mut gold) = (Vec::new(), Vec::new());
    for chunk in rows.chunks(64) {
        let titles: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
        let pooled = clf.embedder().embed(&titles)?;
        let head = clf.model_logits(&titles, &pooled)?;
        let za = a.features_z(&titles, &normalize(&pooled, 1.0)?, &head, clf.manifest().head.temperature)?;
        z.extend(za.into_iter().map(|comps| {
            comps
                .into_iter()
                .map(|zc| {
                    let min = zc.iter().copied().fold(f32::INFINITY, f32::min);
                    map.iter().map(|m| m.map_or(min, |i| zc[i])).collect()
                })
                .collect::<Vec<Vec<f32>>>()
        }));
        gold.extend(chunk.iter().map(|(_, p)| full.labels().find(p).expect("filtered")));
    }
    Ok((z, gold))
}

fn combine(z: &[Vec<f32>], w: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; z[0].len()];
    for (wc, zc) in w.iter().zip(z) {
        out.iter_mut().zip(zc).for_each(|(o, x)| *o += wc * x);
    }
    out
}

fn argmax(v: &[f32]) -> usize {
    shelfwise_core::decision::top_k(v, 1)[0]
}
