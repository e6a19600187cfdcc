//! acc@1 of each adaptation component alone and of the fitted combination, on a labelled CSV:
//! `cargo run --release -p shelfwise-model --example adapt_probe -- ADAPTED.shelfwise TEST.csv`
//! (a diagnostic for models/flipkart-minilm/NOTES.md; the CSV's first two columns are title and path).
//! With a third argument OUT.tsv, also writes the labels (first line, tab-separated paths) and a
//! line a title (in the CSV's order, rows of known labels): gold label id, the combined logits;
//! and OUT.tsv.z, every such title's z-scored components as little-endian f32, [titles][components][labels]
//! (for trying a component or a weighting offline).

#[path = "common/rows.rs"]
mod rows;
use rows::csv_rows;
use shelfwise_model::head::normalize;
use shelfwise_model::Classifier;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let clf = Classifier::from_bytes(&std::fs::read(&args[1])?)?;
    let a = clf.adapter().ok_or("not an adapted model")?;
    let text = std::fs::read_to_string(&args[2])?;
    let mut rdr = csv_rows(&text);
    rdr.retain(|(_, p)| a.labels().find(p).is_some());
    let c = a.features().len();
    let mut right = vec![0usize; c + 1];
    let mut dump = String::new();
    let mut zdump: Vec<u8> = Vec::new();
    if args.len() > 3 {
        let paths: Vec<String> = a.labels().labels().iter().map(|p| shelfwise_core::taxonomy::join_path(p)).collect();
        dump.push_str(&paths.join("\t"));
        dump.push('\n');
    }
    for chunk in rdr.chunks(64) {
        let titles: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
        let pooled = clf.embedder().embed(&titles)?;
        let head = clf.model_logits(&titles, &pooled)?;
        let z = a.features_z(&titles, &normalize(&pooled, 1.0)?, &head, clf.manifest().head.temperature)?;
        for ((_, p), zs) in chunk.iter().zip(&z) {
            let gold = a.labels().find(p).unwrap();
            for (f, zc) in zs.iter().enumerate() {
                right[f] += usize::from(argmax(zc) == gold);
            }
            for zc in zs {
                for x in zc {
                    zdump.extend_from_slice(&x.to_le_bytes());
                }
            }
            let comb = a.combine(zs);
            right[c] += usize::from(argmax(&comb) == gold);
            if args.len() > 3 {
                dump.push_str(&format!("{gold}\t{}\n", comb.iter().map(|x| format!("{x:.5}")).collect::<Vec<_>>().join("\t")));
            }
        }
    }
    if args.len() > 3 {
        std::fs::write(&args[3], dump)?;
        std::fs::write(format!("{}.z", args[3]), &zdump)?;
    }
    let n = rdr.len() as f64;
    for (f, r) in a.features().iter().zip(&right) {
        println!("{:>15} {:.4}", f.name(), *r as f64 / n);
    }
    println!("{:>15} {:.4} (n {})", "combined", right[c] as f64 / n, rdr.len());
    Ok(())
}

fn argmax(v: &[f32]) -> usize {
    shelfwise_core::decision::top_k(v, 1)[0]
}
