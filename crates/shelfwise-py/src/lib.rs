//! `shelfwise._shelfwise`: the Python bindings of [`shelfwise_model::Classifier`]. Type conversion
//! only: loading, batching (`Classifier::classify_catalogue`, as the CLI's `classify --batch`) and
//! deciding are the model crate's; `python/shelfwise/__init__.py` turns
//! the columns returned here into a `pyarrow.Table`. Every failure is a `shelfwise.ShelfwiseError`
//! whose `.code` is the model's stable error code (the CLI's and the browser's).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use shelfwise_core::Decision;
use shelfwise_model::catalogue::Workers;
use shelfwise_model::{Classifier as Model, ModelError, MAX_TITLE_BYTES};

/// The shipped model (models/flipkart-minilm/model.shelfwise), compiled into the extension so that
/// the wheel carries it and every Ray actor or Spark executor that imports shelfwise has it.
static SHIPPED_MODEL: &[u8] = include_bytes!("../../../models/flipkart-minilm/model.shelfwise");

create_exception!(_shelfwise, ShelfwiseError, PyException, "A shelfwise failure; `.code` is its stable error code.");

fn error(code: &str, message: impl std::fmt::Display) -> PyErr {
    let err = ShelfwiseError::new_err(format!("[{code}] {message}"));
    Python::attach(|py| err.value(py).setattr("code", code).expect("exception instances take attributes"));
    err
}

fn model_error(e: ModelError) -> PyErr {
    error(e.code(), &e)
}

fn path_of(segments: &[shelfwise_core::decision::PathSegment]) -> String {
    segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(" > ")
}

/// One classified title, as the columns of `classify`'s table.
struct Row {
    path: Option<String>,
    score: Option<f32>,
    abstained: bool,
    back_off_path: Option<String>,
    top_k: Vec<(String, f32)>,
    error: Option<&'static str>,
}

impl Row {
    /// A title's decision, or its error code (e.g. `INPUT_TOO_LONG`, as in the CLI's `error`
    /// column) with no suggestions.
    fn of(decided: Result<Decision, ModelError>) -> Self {
        match decided {
            Ok(d) => Self::new(d, None),
            Err(e) => Self::new(Decision::empty(), Some(e.code())),
        }
    }

    fn new(d: Decision, error: Option<&'static str>) -> Self {
        let top_k: Vec<(String, f32)> = d.suggestions.iter().map(|s| (path_of(&s.path), s.score)).collect();
        Self {
            path: top_k.first().map(|t| t.0.clone()),
            score: top_k.first().map(|t| t.1),
            abstained: d.abstained,
            back_off_path: d.back_off.as_ref().map(|b| path_of(&b.path)),
            top_k,
            error,
        }
    }
}

/// The model, loaded once; share one instance between threads (its methods release the GIL).
#[pyclass(subclass, module = "shelfwise._shelfwise", name = "_Classifier", frozen)]
struct PyClassifier {
    model: Model,
}

#[pymethods]
impl PyClassifier {
    /// Loads and verifies a model file (`path=None`: the shipped model).
    #[new]
    #[pyo3(signature = (path=None))]
    fn new(py: Python<'_>, path: Option<std::path::PathBuf>) -> PyResult<Self> {
        let bytes = match &path {
            None => std::borrow::Cow::Borrowed(SHIPPED_MODEL),
            Some(p) => std::borrow::Cow::Owned(std::fs::read(p)?),
        };
        let model = py.detach(|| Model::from_bytes(&bytes)).map_err(model_error)?;
        Ok(Self { model })
    }

    /// Top-`k` suggestions for one title, as a dict.
    #[pyo3(signature = (title, k=5, threshold=0.5))]
    fn suggest<'py>(&self, py: Python<'py>, title: &str, k: usize, threshold: f32) -> PyResult<Bound<'py, PyDict>> {
        let d = py.detach(|| self.model.suggest(title, k, threshold)).map_err(model_error)?;
        let out = PyDict::new(py);
        let suggestions = PyList::empty(py);
        for s in &d.suggestions {
            let item = PyDict::new(py);
            item.set_item("id", s.id)?;
            item.set_item("path", path_of(&s.path))?;
            item.set_item("score", s.score)?;
            item.set_item("level_scores", s.level_scores.clone())?;
            suggestions.append(item)?;
        }
        out.set_item("suggestions", suggestions)?;
        out.set_item("abstained", d.abstained)?;
        let back_off = match &d.back_off {
            None => None,
            Some(b) => {
                let item = PyDict::new(py);
                item.set_item("path", path_of(&b.path))?;
                item.set_item("score", b.score)?;
                Some(item)
            }
        };
        out.set_item("back_off", back_off)?;
        Ok(out)
    }

    /// Classifies many titles on `threads` threads (None: all cores), without the GIL. Returns
    /// the columns (path, score, abstained, back_off_path, top_k, error) as lists.
    #[pyo3(signature = (titles, k=5, threshold=0.5, threads=None))]
    #[allow(clippy::type_complexity)]
    fn _classify_columns<'py>(
        &self,
        py: Python<'py>,
        titles: Vec<Option<String>>,
        k: usize,
        threshold: f32,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let workers = match threads {
            None => Workers::Pool,
            Some(0) => return Err(error("INVALID_ARGUMENT", "threads must be at least 1")),
            Some(n) => Workers::Threads(n),
        };
        let rows = py
            .detach(|| {
                // A missing title is a blank one.
                let titles: Vec<&str> = titles.iter().map(|t| t.as_deref().unwrap_or("")).collect();
                let decided = self.model.classify_catalogue(&titles, k, threshold, workers, &|_| {})?;
                Ok::<_, ModelError>(decided.into_iter().map(Row::of).collect::<Vec<_>>())
            })
            .map_err(model_error)?;
        let out = PyDict::new(py);
        out.set_item("path", rows.iter().map(|r| r.path.as_deref()).collect::<Vec<_>>())?;
        out.set_item("score", rows.iter().map(|r| r.score).collect::<Vec<_>>())?;
        out.set_item("abstained", rows.iter().map(|r| r.abstained).collect::<Vec<_>>())?;
        out.set_item("back_off_path", rows.iter().map(|r| r.back_off_path.as_deref()).collect::<Vec<_>>())?;
        out.set_item("top_k", rows.iter().map(|r| r.top_k.clone()).collect::<Vec<_>>())?;
        out.set_item("error", rows.iter().map(|r| r.error).collect::<Vec<_>>())?;
        Ok(out)
    }

    /// The model's label paths, in its label order (an adapted model's: its shop's).
    #[getter]
    fn labels(&self) -> Vec<String> {
        let l = self.model.labels();
        l.label_strings()
    }

    /// The model's manifest name.
    #[getter]
    fn name(&self) -> String {
        self.model.manifest().name.clone()
    }
}

/// The quantized-matmul implementation this build runs (e.g. "x86-64-avx2").
#[pyfunction]
fn kernels() -> &'static str {
    shelfwise_model::kernels()
}

#[pymodule]
fn _shelfwise(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyClassifier>()?;
    m.add("ShelfwiseError", m.py().get_type::<ShelfwiseError>())?;
    m.add("MAX_TITLE_BYTES", MAX_TITLE_BYTES)?;
    m.add_function(wrap_pyfunction!(kernels, m)?)?;
    Ok(())
}
