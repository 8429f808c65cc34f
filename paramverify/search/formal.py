"""The formal reward for small models: proved label invariance under rounding boxes.

Instead of sampling, a policy's reward is the fraction of reward inputs that
are classified correctly by the float model *and* whose label the bound
engine proves invariant (``api.verify(problem, "label")`` returns
``Verified``) for every weight assignment in the policy's rounding box.

The box of a layer quantized to ``b`` bits is, per weight tensor, the
rounding box of :class:`paramverify.specs.QuantizationScheme` (``|p - q(p)|
<= scale / 2``, per channel along the output-channel axis when the weights
are quantized per channel), widened elementwise where needed so that it also
contains the weights the QDQ export writes (``|w_exported - w0|``, plus a
relative ``4 eps`` margin for the float64 subtraction).  The boxes of all
quantized layers are combined into one ``AbsoluteDelta`` with a per-tensor
radius array.  Biases stay float, as in the export.  Activations are not
parameters, so a formal policy quantizes weights only (its ``act_bits`` are
``None``; BitOps count activations at 32 bits).

Guarantee: a counted input keeps its (correct) label for every parameter
value in the box, hence for the exported quantized weights, in real
arithmetic (the engine's bounds round outward).  ``Falsified`` and
``Unknown`` inputs are not counted, so the reward is a proved lower bound on
the quantized model's accuracy on the reward inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import onnx
import torch

from paramverify.distributed.tasks import LabelJob
from paramverify.errors import SpecError
from paramverify.ir import load_model
from paramverify.options import BatchPool, Options
from paramverify.properties import labels as output_labels
from paramverify.search.env import Evaluation
from paramverify.search.layers import layer_infos, onnx_layers
from paramverify.search.space import BitPolicy, LayerInfo
from paramverify.smoothing.onnx_torch import load_onnx
from paramverify.smoothing.quant import QuantSpec, quantize_weight
from paramverify.specs import AbsoluteDelta, QuantizationScheme, quantization_radius


@dataclass(frozen=True)
class FormalConfig:
    """Backend and per-query time limit of the formal reward; the weight scheme."""

    backend: str = "bounds"
    query_timeout_s: float = 10.0
    seed: int = 0
    weight_symmetric: bool = True
    weight_per_channel: bool = True

    def __post_init__(self) -> None:
        if not (np.isfinite(self.query_timeout_s) and self.query_timeout_s > 0):
            raise SpecError("query_timeout", f"must be a positive number of seconds, got {self.query_timeout_s!r}")


class FormalEvaluator:
    """Reward = fraction of inputs correct and proved label-invariant (see the module docstring)."""

    def __init__(self, model: onnx.ModelProto, inputs: np.ndarray, labels: np.ndarray, config: FormalConfig) -> None:
        if len(inputs) == 0 or len(inputs) != len(labels):
            raise SpecError("inputs", f"need one label per input, got {len(inputs)} inputs, {len(labels)} labels")
        self.config = config
        self.model = model
        self.graph = load_model(model)
        self.torch_model = load_onnx(model)
        self.inputs = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
        self.labels = np.asarray(labels, dtype=np.int64)
        example = torch.from_numpy(self.graph.as_batch(self.inputs[:1]).astype(np.float32))
        self.layers: tuple[LayerInfo, ...] = layer_infos(self.torch_model, example)
        self.onnx = onnx_layers(model, self.torch_model)
        nominal = output_labels(self.graph.evaluate(self.inputs), 0.5)
        self.correct = nominal == self.labels
        self.pool: BatchPool | None = None  # set by --workers/--ray-address: one task per image

    def weight_spec(self, bits: int) -> QuantSpec:
        return QuantSpec(bits, self.config.weight_symmetric, self.config.weight_per_channel)

    def radii(self, policy: BitPolicy) -> dict[str, np.ndarray]:
        """Per weight initializer: the rounding-box radius, widened to contain the exported weights."""
        if any(a is not None for a in policy.act_bits):
            raise SpecError("policy", "the formal variant quantizes weights only (act_bits must be null)")
        modules = dict(self.torch_model.named_modules())
        out: dict[str, np.ndarray] = {}
        for name, bits in zip(policy.layers, policy.weight_bits):
            lay = self.onnx[name]
            w0 = self.graph.initializers[lay.weight]
            scheme = QuantizationScheme(bits=int(bits), symmetric=self.config.weight_symmetric,
                                        per_channel=self.config.weight_per_channel, channel_axis=lay.axis,
                                        params=(lay.weight,))
            r = quantization_radius(w0, scheme)
            exported = quantize_weight(modules[name].weight, self.weight_spec(int(bits))).numpy().astype(np.float64)
            if lay.transposed:
                exported = exported.T
            gap = np.abs(exported - w0) * (1.0 + 4.0 * np.finfo(np.float64).eps)
            out[lay.weight] = np.maximum(r, gap)
        return out

    def evaluate(self, policy: BitPolicy) -> Evaluation:
        start = time.perf_counter()
        spec = AbsoluteDelta(MappingProxyType(self.radii(policy)))
        options = Options(timeout_s=self.config.query_timeout_s, seed=self.config.seed)
        job = LabelJob(self.graph, spec, self.config.backend, options)
        xs = [self.inputs[i] for i in np.flatnonzero(self.correct)]
        names = self.pool.map(job, xs) if self.pool is not None else [job(x) for x in xs]  # one task per image
        queries = len(names)
        proved, falsified = names.count("verified"), names.count("falsified")
        unknown = queries - proved - falsified
        if "interrupted" in names:
            # the engine kept its partial answer, but an episode scored on it would be cached and
            # replayed on --resume: abandon the episode instead (the runner keeps the last finished one)
            raise KeyboardInterrupt
        n = len(self.inputs)
        metrics = {"proved_fraction": proved / n, "nominal_accuracy": float(np.mean(self.correct)),
                   "falsified": float(falsified), "unknown": float(unknown)}
        return Evaluation(proved / n, MappingProxyType(metrics), samples=queries, seconds=time.perf_counter() - start)


def weight_only_model(evaluator: FormalEvaluator, policy: BitPolicy) -> torch.nn.Module:
    """The torch model with the policy's weights fake-quantized (activations float)."""
    from paramverify.smoothing.quant import QuantPolicy, quantize_model

    mapping = policy.to_quant_mapping(weight_symmetric=evaluator.config.weight_symmetric,
                                      weight_per_channel=evaluator.config.weight_per_channel)
    return quantize_model(evaluator.torch_model, QuantPolicy.from_mapping(mapping)).eval()


class FormalTest:
    """Final numbers of a formal policy on test inputs: proved fraction and plain accuracy."""

    def __init__(self, model: onnx.ModelProto, inputs: np.ndarray, labels: np.ndarray, config: FormalConfig) -> None:
        self.evaluator = FormalEvaluator(model, inputs, labels, config)
        self._results: dict[str, dict[str, object]] = {}

    @property
    def certifications(self) -> int:
        return len(self._results)

    def state(self) -> dict[str, object]:
        return dict(self._results)

    def load(self, state: dict[str, object]) -> None:
        self._results = {k: dict(v) for k, v in state.items()}  # type: ignore[call-overload]

    def has(self, key: str) -> bool:
        return key in self._results

    def certify_policy(self, policy: BitPolicy | None) -> dict[str, object]:
        """``policy`` None: the float model (nothing perturbed, proved fraction = accuracy)."""
        key = "float" if policy is None else policy.key
        if key in self._results:
            return self._results[key]
        ev = self.evaluator
        x = torch.from_numpy(ev.graph.as_batch(ev.inputs).astype(np.float32))
        if policy is None:
            proved = float(np.mean(ev.correct))
            model = ev.torch_model
            seconds = 0.0
        else:
            e = ev.evaluate(policy)
            proved, seconds = e.reward, e.seconds
            model = weight_only_model(ev, policy)
        with torch.inference_mode():
            out = model(x).numpy()
        accuracy = float(np.mean(output_labels(out, 0.5) == ev.labels))
        res: dict[str, object] = {"metrics": {"proved_fraction": proved, "accuracy": accuracy},
                                  "images": len(ev.inputs), "seconds": round(seconds, 3)}
        self._results[key] = res
        return res
