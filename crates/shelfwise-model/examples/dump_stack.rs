//! The stack's inputs on a labelled CSV, for stacker experiments (models/flipkart-minilm/NOTES.md):
//! `cargo run --release -p shelfwise-model --example dump_stack -- MODEL.shelfwise TEST.csv DIR NAME [as-is]`
//! writes, for each row's whole title and its 30 % / 60 % prefixes, the head's logits and the
//! lexical part's scores (the format of `train::lexical::dump_scores`). With `as-is`, each row's
//! title alone (e.g. a held-out dump's texts, prefixes already among them; scripts/stack-experiment.py).

use shelfwise_core::prefix;
use shelfwise_model::train::lexical::dump_scores;
use shelfwise_model::Classifier;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let clf = Classifier::from_bytes(&std::fs::read(&args[1])?)?;
    let lex = clf.lexical().ok_or("no lexical part")?;
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_path(&args[2])?;
    let header = rdr.headers()?.clone();
    let col = |name: &str| header.iter().position(|c| c.trim_start_matches('\u{feff}') == name).ok_or(format!("no column {name}"));
    let (ti, pi) = (col("title")?, col("category_path")?);
    let fractions: &[f64] = if args.get(5).map(String::as_str) == Some("as-is") { &[] } else { &[0.3, 0.6] };
    let rows: Vec<csv::StringRecord> = rdr.records().collect::<Result<_, _>>()?;
    let (mut texts, mut gold, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows.iter().filter(|r| r.len() > ti.max(pi)) {
        let t = r[ti].to_string();
        let y = clf.labels().find(&r[pi]);
        for (i, x) in std::iter::once(t.clone()).chain(fractions.iter().map(|&f| prefix(&t, f))).enumerate() {
            texts.push(x);
            gold.push(y);
            whole.push(i == 0);
        }
    }
    let (mut head, mut svm) = (Vec::new(), Vec::new());
    for chunk in texts.chunks(64) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        head.extend(clf.head_logits(&refs)?);
        svm.extend(chunk.iter().map(|t| lex.scores(t)));
    }
    dump_scores(std::path::Path::new(&args[3]), &args[4], &texts, &gold, &whole, &head, &svm)?;
    Ok(())
}
