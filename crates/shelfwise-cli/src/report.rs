//! `shelfwise eval --report`: the evaluation JSON drawn as one self-contained HTML page. Charts are
//! inline SVG written here, there is no script, and every title or category name is escaped as
//! text, so the page loads nothing and runs nothing.

use std::fmt::Write;

use serde_json::Value;
use shelfwise_core::metrics::Paired;

const MODEL_COLOUR: &str = "#1f6feb";
const BASELINE_COLOUR: &str = "#d97706";

/// Text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::Number(n) => format!("{:.4}", n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => esc(s),
        _ => "–".into(),
    }
}

/// One line of a chart: name, colour, points in data coordinates.
struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    points: Vec<(f64, f64)>,
}

/// A line chart on [x0, x1] × [0, 1] with a legend.
fn line_chart(title: &str, x_label: &str, (x0, x1): (f64, f64), series: &[Series]) -> String {
    let (w, h, left, bottom, top, right) = (460.0, 300.0, 48.0, 40.0, 28.0, 16.0);
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| top + (1.0 - y.clamp(0.0, 1.0)) * (h - top - bottom);
    let mut s = format!(r#"<svg role="img" aria-label="{t}" viewBox="0 0 {w} {h}" width="{w}" height="{h}"><title>{t}</title>"#, t = esc(title));
    for i in 0..=5 {
        let y = i as f64 / 5.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{y:.1}</text>"##,
            w - right,
            left - 6.0,
            py(y) + 4.0,
            yy = py(y)
        );
    }
    for i in 0..=5 {
        let x = x0 + (x1 - x0) * i as f64 / 5.0;
        let _ = write!(s, r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{x:.2}</text>"#, px(x), h - bottom + 16.0);
    }
    let _ = write!(s, r#"<text x="{:.1}" y="{}" font-size="12" text-anchor="middle">{}</text>"#, px((x0 + x1) / 2.0), h - 6.0, esc(x_label));
    // Legend along the top, each entry as wide as its name.
    let mut lx = left + 8.0;
    for ser in series {
        let pts: Vec<String> = ser.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        let _ = write!(s, r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#, ser.colour, pts.join(" "));
        for &(x, y) in &ser.points {
            let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{x:.2}: {y:.4}</title></circle>"#, px(x), py(y), ser.colour);
        }
        let ly = top - 12.0;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{}" width="12" height="4" fill="{}"/><text x="{}" y="{ly}" font-size="12">{}</text>"#,
            ly - 4.0,
            ser.colour,
            lx + 16.0,
            esc(ser.name)
        );
        lx += 16.0 + 6.5 * ser.name.chars().count() as f64 + 14.0;
    }
    s.push_str("</svg>");
    s
}

/// Bars of accuracy per confidence bin against the diagonal, each bar labelled with its count.
fn reliability_chart(bins: &[Value]) -> String {
    let (w, h, left, bottom, top) = (460.0, 300.0, 48.0, 40.0, 16.0);
    let inner_w = w - left - 16.0;
    let py = |y: f64| top + (1.0 - y.clamp(0.0, 1.0)) * (h - top - bottom);
    let mut s =
        String::from(r#"<svg role="img" aria-label="Reliability diagram" viewBox="0 0 460 300" width="460" height="300"><title>Reliability diagram</title>"#);
    for i in 0..=5 {
        let y = i as f64 / 5.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{y:.1}</text><text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{y:.1}</text>"##,
            w - 16.0,
            left - 6.0,
            py(y) + 4.0,
            left + y * inner_w,
            h - bottom + 16.0,
            yy = py(y)
        );
    }
    for b in bins {
        let (lo, hi) = (num(&b["lo"]).unwrap_or(0.0), num(&b["hi"]).unwrap_or(0.0));
        let count = b["count"].as_u64().unwrap_or(0);
        if count == 0 {
            continue;
        }
        let acc = num(&b["accuracy"]).unwrap_or(0.0);
        let conf = num(&b["confidence"]).unwrap_or(0.0);
        let x = left + lo * inner_w + 1.0;
        let bw = (hi - lo) * inner_w - 2.0;
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{MODEL_COLOUR}" opacity="0.75"><title>confidence {lo:.1}–{hi:.1}: {count} titles, mean confidence {conf:.3}, accuracy {acc:.3}</title></rect><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{count}</text>"#,
            py(acc),
            py(0.0) - py(acc),
            x + bw / 2.0,
            py(acc) - 3.0
        );
    }
    let _ = write!(s, r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{top}" stroke="#999" stroke-dasharray="4 4"/>"##, py(0.0), left + inner_w);
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{}" font-size="12" text-anchor="middle">top-1 confidence (bars: accuracy; numbers: titles)</text></svg>"#,
        left + inner_w / 2.0,
        h - 6.0
    );
    s
}

fn points(arr: &Value, x: &str, y: &str) -> Vec<(f64, f64)> {
    arr.as_array().into_iter().flatten().filter_map(|p| Some((num(&p[x])?, num(&p[y])?))).collect()
}

/// The page: `out` is what `shelfwise eval` writes with `--json` (model metrics at the top level,
/// the baseline's under "baseline"), computed with details.
pub fn html(out: &Value) -> String {
    let base = out.get("baseline");
    let model_name = out["model"]["name"].as_str().unwrap_or("model");
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>shelfwise evaluation: {name}</title><style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;padding:0 1em;color:#1b1f24}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border-bottom:1px solid #e3e3e3;padding:3px 10px;text-align:right}}
th:first-child,td:first-child,td.t,th.t{{text-align:left}}.charts{{display:flex;flex-wrap:wrap;gap:1.5em}}
figure{{margin:0}}figcaption{{font-weight:600;margin-bottom:.3em}}.scroll{{max-height:480px;overflow:auto}}
.ex{{color:#555;font-size:13px;text-align:left}}
</style></head><body>
<h1>shelfwise evaluation</h1>
<p>Model <b>{name}</b> (sha256 <code>{sha}</code>) on <b>{data}</b>, {rows} titles{base_note}.</p>"#,
        name = esc(model_name),
        sha = esc(out["model"]["file_sha256"].as_str().unwrap_or("")),
        data = esc(out["data"]["file"].as_str().unwrap_or("")),
        rows = cell(&out["data"]["rows"]),
        base_note = match base {
            Some(b) => format!("; baseline: scikit-learn's TF-IDF + LinearSVC recipe trained on <b>{}</b>", esc(b["train_csv"]["file"].as_str().unwrap_or(""))),
            None => String::new(),
        }
    );

    // Model against baseline.
    h.push_str("<h2>Model and baseline</h2><table><tr><th>metric</th><th>model</th>");
    if base.is_some() {
        h.push_str("<th>baseline</th><th>model − baseline</th>");
    }
    h.push_str("</tr>");
    let rows: [(&str, &str, Option<&str>); 11] = [
        ("acc@1", "acc_at_1", None),
        ("acc@3", "acc_at_3", None),
        ("acc@5", "acc_at_5", None),
        ("acc@1, first 30 % of words", "prefix_acc_at_1", Some("0.3")),
        ("acc@1, first 60 % of words", "prefix_acc_at_1", Some("0.6")),
        ("hierarchical F1", "hier_f1", None),
        ("macro F1", "macro_f1", None),
        ("weighted F1", "weighted_f1", None),
        ("ECE (lower is better)", "ece", None),
        ("gold labels unseen in training", "unseen_gold", None),
        ("titles", "n", None),
    ];
    for (label, key, sub) in rows {
        let get = |v: &Value| match sub {
            Some(s) => v[key][s].clone(),
            None => v[key].clone(),
        };
        let _ = write!(h, "<tr><td>{}</td><td>{}</td>", esc(label), cell(&get(out)));
        if let Some(b) = base {
            let diff = match (num(&get(out)), num(&get(b))) {
                (Some(m), Some(bv)) if key != "n" && key != "ece" => format!("{:+.4}", m - bv),
                _ => "–".into(),
            };
            // The baseline is an uncalibrated softmax of SVM margins: its ECE means nothing.
            let bcell = if key == "ece" { "–".into() } else { cell(&get(b)) };
            let _ = write!(h, "<td>{bcell}</td><td>{diff}</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    // Title by title: whether the differences above are beyond the noise of this many titles.
    for (what, key) in [("Whole titles", "whole"), ("First 60 % of words", "prefix60")] {
        if let Ok(p) = serde_json::from_value::<Paired>(out["paired"][key].clone()) {
            let _ = write!(h, "<p>{}: {}.</p>", esc(what), esc(&p.describe("model", "baseline")));
        }
    }

    // Charts.
    h.push_str(r#"<div class="charts">"#);
    let mut curve = vec![Series { name: "model", colour: MODEL_COLOUR, points: points(&out["details"]["typing_curve"], "fraction", "acc_at_1") }];
    if let Some(b) = base {
        curve.push(Series { name: "baseline", colour: BASELINE_COLOUR, points: points(&b["details"]["typing_curve"], "fraction", "acc_at_1") });
    }
    let _ = write!(
        h,
        "<figure><figcaption>acc@1 while typing</figcaption>{}</figure>",
        line_chart("acc@1 against the fraction of the title's words typed", "fraction of words typed", (0.1, 1.0), &curve)
    );
    let _ = write!(
        h,
        "<figure><figcaption>Reliability (model)</figcaption>{}</figure>",
        reliability_chart(out["details"]["reliability"].as_array().map(Vec::as_slice).unwrap_or(&[]))
    );
    let th = &out["thresholds"];
    let abstain = [
        Series { name: "coverage", colour: MODEL_COLOUR, points: points(th, "threshold", "coverage") },
        Series { name: "accuracy when answering", colour: "#16a34a", points: points(th, "threshold", "accuracy") },
        Series { name: "right decision", colour: "#9333ea", points: points(th, "threshold", "decision_precision") },
    ];
    let _ = write!(
        h,
        "<figure><figcaption>Abstaining (model)</figcaption>{}</figure></div>",
        line_chart("coverage and accuracy against the abstain threshold", "abstain threshold", (0.3, 1.0), &abstain)
    );
    h.push_str("<table><tr><th>threshold</th><th>coverage</th><th>accuracy when answering</th><th>right decision (leaf or backed-off parent on the gold path)</th></tr>");
    for t in th.as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            cell(&t["threshold"]),
            cell(&t["coverage"]),
            cell(&t["accuracy"]),
            cell(&t["decision_precision"])
        );
    }
    h.push_str("</table>");

    // Per level.
    h.push_str("<h2>Accuracy per level</h2><table><tr><th>level</th><th>model</th>");
    if base.is_some() {
        h.push_str("<th>baseline</th>");
    }
    h.push_str("</tr>");
    for (i, v) in out["level_acc"].as_array().into_iter().flatten().enumerate() {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td>", i + 1, cell(v));
        if let Some(b) = base {
            let _ = write!(h, "<td>{}</td>", cell(&b["level_acc"][i]));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");

    // Per category, worst first.
    h.push_str(r#"<h2>Per category (model, worst F1 first)</h2><div class="scroll"><table><tr><th>category</th><th>support</th><th>predicted</th><th>precision</th><th>recall</th><th>F1</th></tr>"#);
    for c in out["details"]["per_category"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            cell(&c["path"]),
            cell(&c["support"]),
            cell(&c["predicted"]),
            cell(&c["precision"]),
            cell(&c["recall"]),
            cell(&c["f1"])
        );
    }
    h.push_str("</table></div>");

    // Confusions.
    h.push_str(
        "<h2>Most confused categories (model)</h2><table><tr><th>gold</th><th class=\"t\">predicted</th><th>titles</th><th class=\"ex\">examples</th></tr>",
    );
    for c in out["details"]["confusions"].as_array().into_iter().flatten() {
        let ex: Vec<String> = c["examples"].as_array().into_iter().flatten().map(|t| esc(t.as_str().unwrap_or(""))).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"t\">{}</td><td>{}</td><td class=\"ex\">{}</td></tr>",
            cell(&c["gold"]),
            cell(&c["predicted"]),
            cell(&c["count"]),
            ex.join("<br>")
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_titles_and_names() {
        assert_eq!(esc(r#"<img src=x onerror="a"> & 'b'"#), "&lt;img src=x onerror=&quot;a&quot;&gt; &amp; &#39;b&#39;");
        let out = json!({
            "model": { "name": "<script>x</script>" },
            "data": { "file": "a.csv", "rows": 1 },
            "acc_at_1": 0.5,
            "details": { "confusions": [{ "gold": "A", "predicted": "B", "count": 1, "examples": ["<b>bold</b>"] }] },
        });
        let page = html(&out);
        assert!(!page.contains("<script") && !page.contains("<b>bold"), "{page}");
        assert!(page.contains("&lt;b&gt;bold&lt;/b&gt;"));
    }

    #[test]
    fn says_whether_the_difference_to_the_baseline_is_noise() {
        let out = json!({
            "acc_at_1": 0.5,
            "baseline": { "acc_at_1": 0.4, "train_csv": { "file": "t.csv" } },
            "paired": { "whole": { "only_first": 8, "only_second": 0, "p_value": 0.0078125 }, "prefix60": { "only_first": 2, "only_second": 3, "p_value": 1.0 } },
        });
        let page = html(&out);
        assert!(page.contains("<p>Whole titles: only the model right on 8, only the baseline on 0 (exact McNemar p = 0.008: model ahead).</p>"), "{page}");
        assert!(
            page.contains("<p>First 60 % of words: only the model right on 2, only the baseline on 3 (exact McNemar p = 1.000: within noise).</p>"),
            "{page}"
        );
        assert!(!html(&json!({ "acc_at_1": 0.5 })).contains("McNemar"), "no baseline: no paired line");
    }
}
