//! From label probabilities to what a seller sees: top-k suggestions with per-level scores, and a
//! back-off to the deepest confident category when no leaf is confident enough.

use serde::{Deserialize, Serialize};

use crate::taxonomy::LabelSpace;

/// One segment of a suggested path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathSegment {
    pub name: String,
    /// 1 for a top-level category.
    pub level: usize,
}

/// One ranked category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// Label index in the model's label space (stable for one model file).
    pub id: usize,
    pub path: Vec<PathSegment>,
    /// Calibrated probability of exactly this category.
    pub score: f32,
    /// Probability of each ancestor (level 1 first) and of the category itself (last): the sum over
    /// the labels beneath it.
    #[serde(rename = "levelScores")]
    pub level_scores: Vec<f32>,
}

/// The deepest category whose subtree probability reaches the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackOff {
    pub path: Vec<PathSegment>,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub suggestions: Vec<Suggestion>,
    /// True when the top suggestion's score is below the threshold.
    pub abstained: bool,
    /// Set when abstaining: the deepest category (if any) that is confident enough.
    #[serde(rename = "backOff")]
    pub back_off: Option<BackOff>,
}

impl Decision {
    /// What an empty title gets: nothing to suggest.
    pub fn empty() -> Self {
        Self { suggestions: Vec::new(), abstained: true, back_off: None }
    }
}

/// Indices of the `k` largest values, largest first; ties keep the lower index first so that
/// results are identical on every platform.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    let cmp = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    if k < idx.len() && k > 0 {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.truncate(k);
    idx
}

fn segments(space: &LabelSpace, node: usize) -> Vec<PathSegment> {
    space.node_chain(node).into_iter().map(|n| PathSegment { name: space.nodes()[n].name.clone(), level: space.nodes()[n].level }).collect()
}

/// Builds the decision for one title. `threshold` is in [0, 1]; 0 never abstains.
pub fn decide(space: &LabelSpace, label_probs: &[f32], k: usize, threshold: f32) -> Decision {
    let node_scores = space.node_scores(label_probs);
    let suggestions: Vec<Suggestion> = top_k(label_probs, k)
        .into_iter()
        .map(|l| {
            let node = space.label_node(l);
            Suggestion {
                id: l,
                path: segments(space, node),
                score: label_probs[l],
                level_scores: space.node_chain(node).iter().map(|&n| node_scores[n]).collect(),
            }
        })
        .collect();
    let top = suggestions.first().map(|s| s.score).unwrap_or(0.0);
    let abstained = top < threshold;
    let back_off = if abstained {
        // Deepest node that is confident enough; among equals the most probable, then lowest id.
        (0..node_scores.len())
            .filter(|&n| node_scores[n] >= threshold)
            .max_by(|&a, &b| {
                let (na, nb) = (&space.nodes()[a], &space.nodes()[b]);
                na.level.cmp(&nb.level).then(node_scores[a].total_cmp(&node_scores[b])).then(b.cmp(&a))
            })
            .map(|n| BackOff { path: segments(space, n), score: node_scores[n] })
    } else {
        None
    };
    Decision { suggestions, abstained, back_off }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> LabelSpace {
        LabelSpace::from_raw_paths(["Shoes > Running", "Shoes > Trail", "Shoes > Kids", "Kitchen > Kettles"]).unwrap()
    }

    #[test]
    fn top_k_orders_and_breaks_ties_by_index() {
        assert_eq!(top_k(&[0.1, 0.5, 0.5, 0.2], 3), vec![1, 2, 3]);
        assert_eq!(top_k(&[0.1, 0.5], 5), vec![1, 0]);
        assert!(top_k(&[0.1], 0).is_empty());
    }

    #[test]
    fn confident_leaf_is_not_backed_off() {
        let s = space();
        // Labels sorted: Kitchen > Kettles, Shoes > Kids, Shoes > Running, Shoes > Trail
        let d = decide(&s, &[0.05, 0.05, 0.8, 0.1], 2, 0.5);
        assert!(!d.abstained);
        assert_eq!(d.back_off, None);
        assert_eq!(d.suggestions.len(), 2);
        assert_eq!(d.suggestions[0].id, 2);
        assert_eq!(d.suggestions[0].path, vec![PathSegment { name: "Shoes".into(), level: 1 }, PathSegment { name: "Running".into(), level: 2 }]);
        assert!((d.suggestions[0].level_scores[0] - 0.95).abs() < 1e-6);
        assert!((d.suggestions[0].level_scores[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn uncertain_leaf_backs_off_to_parent() {
        let s = space();
        let d = decide(&s, &[0.1, 0.3, 0.35, 0.25], 3, 0.5);
        assert!(d.abstained);
        let b = d.back_off.unwrap();
        assert_eq!(b.path.len(), 1);
        assert_eq!(b.path[0].name, "Shoes");
        assert!((b.score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn nothing_confident_gives_no_back_off() {
        let s = LabelSpace::from_raw_paths(["A > x", "B > y", "C > z"]).unwrap();
        let d = decide(&s, &[0.3, 0.3, 0.4], 1, 0.9);
        assert!(d.abstained);
        assert_eq!(d.back_off, None);
    }
}
