//! Category paths ("A > B > C") and the label space a classifier predicts over.
//!
//! A label is one distinct category path seen in training. Paths have mixed depth and a label may be
//! the ancestor of another label (Flipkart has both "Clothing > Women" and "Clothing > Women > Tops"),
//! so the tree is built over every prefix of every label and each label points at its own node.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Separator between path segments in CSVs and in the model manifest.
pub const PATH_SEPARATOR: &str = " > ";

/// Parses `"A > B > C"` into trimmed segments. Whitespace inside a segment is collapsed so that
/// `"Home  >Decor"` and `"Home > Decor"` are the same category.
pub fn parse_path(raw: &str) -> Result<Vec<String>, CoreError> {
    let segments: Vec<String> = raw.split('>').map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(CoreError::BadPath(raw.to_string()));
    }
    Ok(segments)
}

/// Joins segments back into the canonical `"A > B > C"` form.
pub fn join_path(segments: &[String]) -> String {
    segments.join(PATH_SEPARATOR)
}

/// One node of the category tree: a prefix of at least one label path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// 1 for a top-level category.
    pub level: usize,
    pub parent: Option<usize>,
}

/// The labels a model predicts and the tree they live in.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSpace {
    labels: Vec<Vec<String>>,
    nodes: Vec<Node>,
    /// Node of each label.
    label_node: Vec<usize>,
    /// For each node, the labels in its subtree (itself included).
    node_labels: Vec<Vec<usize>>,
    index: HashMap<String, usize>,
}

impl LabelSpace {
    /// Builds the label space from distinct label paths, kept in the given order.
    pub fn new(labels: Vec<Vec<String>>) -> Result<Self, CoreError> {
        if labels.is_empty() {
            return Err(CoreError::EmptyLabelSpace);
        }
        let mut nodes: Vec<Node> = Vec::new();
        let mut node_index: HashMap<Vec<String>, usize> = HashMap::new();
        let mut label_node = Vec::with_capacity(labels.len());
        let mut index = HashMap::new();
        for (li, path) in labels.iter().enumerate() {
            if path.is_empty() || path.iter().any(|s| s.is_empty()) {
                return Err(CoreError::BadPath(join_path(path)));
            }
            if index.insert(join_path(path), li).is_some() {
                return Err(CoreError::DuplicateLabel(join_path(path)));
            }
            let mut parent = None;
            for depth in 1..=path.len() {
                let prefix = path[..depth].to_vec();
                let id = *node_index.entry(prefix).or_insert_with(|| {
                    nodes.push(Node { name: path[depth - 1].clone(), level: depth, parent });
                    nodes.len() - 1
                });
                parent = Some(id);
            }
            label_node.push(parent.expect("non-empty path"));
        }
        let mut node_labels = vec![Vec::new(); nodes.len()];
        for (li, &n) in label_node.iter().enumerate() {
            let mut cur = Some(n);
            while let Some(c) = cur {
                node_labels[c].push(li);
                cur = nodes[c].parent;
            }
        }
        Ok(Self { labels, nodes, label_node, node_labels, index })
    }

    /// Builds the label space from raw `"A > B"` strings, deduplicated, sorted for determinism.
    pub fn from_raw_paths<'a>(raw: impl IntoIterator<Item = &'a str>) -> Result<Self, CoreError> {
        let mut paths: Vec<Vec<String>> = raw.into_iter().map(parse_path).collect::<Result<_, _>>()?;
        paths.sort();
        paths.dedup();
        Self::new(paths)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn labels(&self) -> &[Vec<String>] {
        &self.labels
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn label(&self, i: usize) -> &[String] {
        &self.labels[i]
    }

    pub fn label_string(&self, i: usize) -> String {
        join_path(&self.labels[i])
    }

    /// Every label as `"A > B > C"`, in label order.
    pub fn label_strings(&self) -> Vec<String> {
        self.labels.iter().map(|l| join_path(l)).collect()
    }

    /// Index of a label given as `"A > B > C"` (normalised like [`parse_path`]).
    pub fn find(&self, raw: &str) -> Option<usize> {
        let p = parse_path(raw).ok()?;
        self.index.get(&join_path(&p)).copied()
    }

    pub fn label_node(&self, label: usize) -> usize {
        self.label_node[label]
    }

    /// Node ids from the top level down to the node itself.
    pub fn node_chain(&self, node: usize) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut cur = Some(node);
        while let Some(c) = cur {
            chain.push(c);
            cur = self.nodes[c].parent;
        }
        chain.reverse();
        chain
    }

    /// The segments of a node's path.
    pub fn node_path(&self, node: usize) -> Vec<String> {
        self.node_chain(node).into_iter().map(|n| self.nodes[n].name.clone()).collect()
    }

    /// Score of every node: the summed probability of the labels in its subtree. A label's
    /// probability therefore never exceeds its parent's, which is what makes backing off sound.
    pub fn node_scores(&self, label_probs: &[f32]) -> Vec<f32> {
        debug_assert_eq!(label_probs.len(), self.labels.len());
        self.node_labels.iter().map(|ls| ls.iter().map(|&l| label_probs[l]).sum::<f32>().min(1.0)).collect()
    }

    pub fn max_depth(&self) -> usize {
        self.nodes.iter().map(|n| n.level).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> LabelSpace {
        LabelSpace::from_raw_paths(["Clothing > Women > Tops", "Clothing > Women", "Clothing > Men > Shirts", "Footwear > Women > Ballerinas"]).unwrap()
    }

    #[test]
    fn parses_and_normalises_paths() {
        assert_eq!(parse_path(" Home  Decor >Clocks > Wall ").unwrap(), vec!["Home Decor", "Clocks", "Wall"]);
        assert!(matches!(parse_path("A > > B"), Err(CoreError::BadPath(_))));
        assert!(matches!(parse_path(""), Err(CoreError::BadPath(_))));
    }

    #[test]
    fn builds_tree_with_internal_labels() {
        let s = space();
        assert_eq!(s.len(), 4);
        // Sorted: Clothing > Men > Shirts, Clothing > Women, Clothing > Women > Tops, Footwear > ...
        assert_eq!(s.label_string(1), "Clothing > Women");
        let women = s.label_node(1);
        let tops = s.label_node(2);
        assert_eq!(s.nodes()[tops].parent, Some(women));
        assert_eq!(s.node_path(tops), vec!["Clothing", "Women", "Tops"]);
        // Clothing, Men, Shirts, Women, Tops, Footwear, Women, Ballerinas
        assert_eq!(s.nodes().len(), 8);
        assert_eq!(s.find("Clothing >Women> Tops"), Some(2));
        assert_eq!(s.find("Clothing > Kids"), None);
    }

    #[test]
    fn node_scores_sum_subtrees() {
        let s = space();
        let scores = s.node_scores(&[0.1, 0.2, 0.3, 0.4]);
        let clothing = s.node_chain(s.label_node(2))[0];
        assert!((scores[clothing] - 0.6).abs() < 1e-6);
        assert!((scores[s.label_node(1)] - 0.5).abs() < 1e-6, "internal label includes its children");
        assert!((scores[s.label_node(2)] - 0.3).abs() < 1e-6);
    }

    #[test]
    fn rejects_duplicates_and_empty() {
        assert!(matches!(LabelSpace::new(vec![]), Err(CoreError::EmptyLabelSpace)));
        let a = vec!["A".to_string()];
        assert!(matches!(LabelSpace::new(vec![a.clone(), a]), Err(CoreError::DuplicateLabel(_))));
    }
}
