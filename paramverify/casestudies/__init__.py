"""Built-in case studies: small real-data classifiers stored as ONNX files.

Three models ship in ``paramverify/casestudies/data/`` (see ``PROVENANCE.md``
there; ``python -m paramverify.casestudies.build`` regenerates every file
bit-for-bit):

``cat``
    The seed paper's logistic regression on R's ``MASS::cats``:
    ``y = sigmoid(c0 + c1*Hwt + c2*Bwt)``; ``y > 0.5`` predicts *male*.
``ath-relu`` / ``ath-linear``
    2-3-1 MLPs (ReLU / linear hidden layer, sigmoid output) on ``DAAG::ais``
    height and weight, standardized inside the model; ``y > 0.5`` predicts
    *male*.

Every model has input ``x`` (float32 ``[N, d]``, raw units, features in
``feature_names`` order) and output ``y`` (float32 ``[N, 1]``, probability
of class 1).  The input domain of each case study is the bounding box of its
data set, which a test checks against the CSV.
"""

from __future__ import annotations

import csv
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paramverify.errors import SpecError

DATA_DIR: Path = Path(__file__).resolve().parent / "data"

#: The seed paper's CAT logistic-regression coefficients (c0, c1 for Hwt, c2 for Bwt).
CAT_COEFFICIENTS: tuple[float, float, float] = (-3.51518067, 0.07577862, 1.18118408)

#: Training settings shared by both ATH models (used by ``build.py``).
ATH_TRAINING: Mapping[str, float | int] = types.MappingProxyType(
    {"seed": 0, "epochs": 3000, "lr": 0.01, "hidden_units": 3}
)


@dataclass(frozen=True)
class CaseStudy:
    """One built-in model together with its data set and input domain.

    ``class_names[1]`` is the class the model's output ``y`` estimates the
    probability of; a point gets label 1 iff ``y > level``.  ``domain_lo``
    and ``domain_hi`` bound the inputs (raw units, ``feature_names`` order).
    ``load_data`` reads ``data_columns`` (the CSV's names for the features,
    in model input order) and returns ``X`` (float64 ``[N, d]``) and ``y``
    (float64 ``[N]`` of 0.0/1.0, 1.0 for rows whose ``label_column`` equals
    ``positive_label``).
    """

    name: str
    title: str
    onnx_path: Path
    feature_names: tuple[str, ...]
    feature_units: tuple[str, ...]
    class_names: tuple[str, str]
    level: float
    domain_lo: tuple[float, ...]
    domain_hi: tuple[float, ...]
    data_path: Path
    data_columns: tuple[str, ...]
    label_column: str
    positive_label: str
    n_rows: int
    description: str = ""
    input_name: str = "x"
    output_name: str = "y"

    def __post_init__(self) -> None:
        d = len(self.feature_names)
        lengths = {len(self.feature_units), len(self.data_columns), len(self.domain_lo), len(self.domain_hi)}
        if lengths != {d}:
            raise SpecError("feature_names", "feature_names, feature_units, data_columns and the domain bounds "
                            "differ in length")
        if any(lo > hi for lo, hi in zip(self.domain_lo, self.domain_hi)):
            raise SpecError("domain_lo", "every lower bound must be <= its upper bound")

    @property
    def n_features(self) -> int:
        """Number of model inputs."""
        return len(self.feature_names)

    @property
    def domain(self) -> tuple[np.ndarray, np.ndarray]:
        """The input box as two float64 arrays ``(lo, hi)``."""
        return np.array(self.domain_lo, dtype=np.float64), np.array(self.domain_hi, dtype=np.float64)

    def load_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Read the CSV extract; return ``(X, y)`` as float64 arrays."""
        return _load_csv(self.data_path, self.data_columns, self.label_column, self.positive_label)


def _load_csv(
    path: Path, columns: tuple[str, ...], label_column: str, positive_label: str
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``columns`` and a 0/1 label from a CSV file with a header row."""
    if not path.is_file():
        raise SpecError("data_path", f"file {str(path)!r} is missing",
                        "run `python -m paramverify.casestudies.build`")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in (*columns, label_column) if c not in header]
        if missing:
            raise SpecError("data_path", f"{path.name} lacks columns {missing}", f"it has {header}")
        rows = list(reader)
    try:
        X = np.array([[float(r[c]) for c in columns] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise SpecError("data_path", f"{path.name} has a non-numeric feature value: {exc}") from exc
    y = np.array([1.0 if r[label_column] == positive_label else 0.0 for r in rows], dtype=np.float64)
    return X.reshape(len(rows), len(columns)), y


_CAT = CaseStudy(
    name="cat",
    title="CAT: logistic regression, sex of cats from heart and body weight (MASS::cats)",
    onnx_path=DATA_DIR / "cat.onnx",
    feature_names=("Hwt", "Bwt"),
    feature_units=("g", "kg"),
    class_names=("female", "male"),
    level=0.5,
    domain_lo=(6.3, 2.0),
    domain_hi=(20.5, 3.9),
    data_path=DATA_DIR / "cats.csv",
    data_columns=("Hwt", "Bwt"),
    label_column="Sex",
    positive_label="M",
    n_rows=144,
    description=(
        "y = sigmoid(c0 + c1*Hwt + c2*Bwt) with the seed paper's coefficients "
        f"c0={CAT_COEFFICIENTS[0]}, c1={CAT_COEFFICIENTS[1]}, c2={CAT_COEFFICIENTS[2]} "
        "(stored as float32); y > 0.5 predicts male."
    ),
)

def _ath(name: str, title: str, onnx_file: str, description: str) -> CaseStudy:
    """An ATH case study: same data, features, classes and domain, its own model."""
    return CaseStudy(
        name=name,
        title=title,
        onnx_path=DATA_DIR / onnx_file,
        feature_names=("height", "weight"),
        feature_units=("cm", "kg"),
        class_names=("female", "male"),
        level=0.5,
        domain_lo=(148.9, 37.8),
        domain_hi=(209.4, 123.2),
        data_path=DATA_DIR / "ais.csv",
        data_columns=("ht", "wt"),
        label_column="sex",
        positive_label="m",
        n_rows=202,
        description=description,
    )


_ATH_RELU = _ath(
    "ath-relu",
    "ATH-ReLU: 2-3-1 ReLU MLP, sex of athletes from height and weight (DAAG::ais)",
    "ath_relu.onnx",
    "Standardize (Sub/Div) -> Gemm 2x3 -> Relu -> Gemm 3x1 -> Sigmoid; y > 0.5 predicts male.",
)
_ATH_LINEAR = _ath(
    "ath-linear",
    "ATH-Linear: 2-3-1 linear MLP, sex of athletes from height and weight (DAAG::ais)",
    "ath_linear.onnx",
    "Standardize (Sub/Div) -> Gemm 2x3 -> Gemm 3x1 -> Sigmoid; y > 0.5 predicts male.",
)


CASE_STUDIES: Mapping[str, CaseStudy] = types.MappingProxyType(
    {cs.name: cs for cs in (_CAT, _ATH_RELU, _ATH_LINEAR)}
)


def get_case_study(name: str) -> CaseStudy:
    """Return the case study called ``name``; raise :class:`SpecError` listing valid names."""
    try:
        return CASE_STUDIES[name]
    except (KeyError, TypeError):
        raise SpecError("case_study", f"unknown case study {name!r}",
                        f"valid names: {', '.join(sorted(CASE_STUDIES))}") from None


def load_case_study_data(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of case study ``name`` as float64 arrays."""
    return get_case_study(name).load_data()


__all__ = [
    "ATH_TRAINING",
    "CASE_STUDIES",
    "CAT_COEFFICIENTS",
    "CaseStudy",
    "DATA_DIR",
    "get_case_study",
    "load_case_study_data",
]
