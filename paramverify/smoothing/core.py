"""The smoothed classifier: Monte Carlo prediction and certification.

Design after Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via
Randomized Smoothing" (ICML 2019): one class, :class:`Smooth`, with
``predict`` and ``certify``.  The noise is generated in batches on the model's
device from independently seeded *blocks* of ``noise_block`` samples, so the
counts depend on the seed and the block size but never on the batch size, and a
certificate records the seed that regenerates its noise (incremental
certification of a quantized copy reuses it, see :mod:`.incremental`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import beta, binomtest, norm

from paramverify.errors import BackendUnavailableError, ModelError, SpecError, check
from paramverify.smoothing import ABSTAIN

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Stream ids inside one call's base seed: selection (n0), estimation (n), predict.
STREAM_SELECT = 0
STREAM_ESTIMATE = 1
STREAM_PREDICT = 2

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class SmoothOptions:
    """Everything that shapes how samples are drawn and evaluated.

    ``sigma`` is the noise level (in input units); ``batch_size`` how many noisy
    copies go through the model at once; ``device`` "cpu", "cuda", "cuda:N" or
    "auto" (CUDA when available, else the CPU); ``dtype`` the compute precision
    of the model ("float32", "bfloat16", "float16"; lower precisions run under
    autocast, the noise itself is always float32); ``noise_block`` the number of samples drawn from one seeded
    generator (part of what makes a run repeatable); ``channels_last`` switches
    4-D batches to NHWC, faster for convolutions on a GPU.
    """

    sigma: float
    batch_size: int = 1000
    device: str = "cpu"
    dtype: str = "float32"
    noise_block: int = 256
    channels_last: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.sigma, (int, float)) and math.isfinite(self.sigma) and self.sigma > 0):
            raise SpecError("sigma", f"must be a positive finite number, got {self.sigma!r}", "e.g. --sigma 0.25")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise SpecError("batch_size", f"must be a positive integer, got {self.batch_size!r}", "e.g. --batch 1000")
        if not (isinstance(self.noise_block, int) and self.noise_block >= 1):
            raise SpecError("noise_block", f"must be a positive integer, got {self.noise_block!r}", "use 256")
        if self.dtype not in _DTYPES:
            raise SpecError("dtype", f"unknown compute dtype {self.dtype!r}", f"use one of {sorted(_DTYPES)}")
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise SpecError("device", f"unknown device {self.device!r}", "use cpu, cuda or auto")


@dataclass(frozen=True)
class NoiseSpec:
    """Identifies one noise stream: regenerate it with :func:`noise_stream`.

    Sample ``i`` of the stream is row ``i % block`` of block ``i // block``,
    drawn by a generator on ``device_type`` seeded from ``(seed, stream, i // block)``.
    CPU and CUDA generators differ, so a stream is only reproducible on the same
    device type.
    """

    seed: int
    stream: int
    block: int
    device_type: str


@dataclass(frozen=True)
class Prediction:
    """Result of :meth:`Smooth.predict`; ``predict`` is ``ABSTAIN`` (-1) or a class."""

    predict: int
    counts: tuple[int, ...]
    n: int
    alpha: float
    p_value: float
    noise: NoiseSpec
    seconds: float


@dataclass(frozen=True)
class Certificate:
    """Result of :meth:`Smooth.certify`.

    ``predict`` is ``ABSTAIN`` (-1) or the certified class, ``radius`` the
    certified L2 radius (0.0 on abstain), ``pa_lower`` the one-sided
    Clopper-Pearson lower bound on ``pA`` at level ``1 - alpha``, ``count`` the
    number of the ``n`` estimation samples that hit ``guess`` (the class chosen
    from ``n0`` selection samples; kept on abstain too).  ``noise`` regenerates
    the estimation samples; ``labels`` (only with ``keep_labels=True``) holds the
    base classifier's label for each of them, in stream order.
    """

    predict: int
    radius: float
    pa_lower: float
    guess: int
    count: int
    n0: int
    n: int
    alpha: float
    sigma: float
    noise: NoiseSpec
    seconds: float
    labels: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def abstained(self) -> bool:
        return self.predict == ABSTAIN


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` Clopper-Pearson lower bound on a binomial p."""
    if k <= 0:
        return 0.0
    return float(beta.ppf(alpha, k, n - k + 1))


def clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` Clopper-Pearson upper bound on a binomial p."""
    if k >= n:
        return 1.0
    return float(beta.ppf(1.0 - alpha, k + 1, n - k))


def radius_from_pa(pa_lower: float, sigma: float) -> float:
    """``sigma * PhiInverse(pa_lower)``; 0.0 when ``pa_lower <= 1/2``."""
    if pa_lower <= 0.5:
        return 0.0
    return float(sigma * norm.ppf(pa_lower))


def block_seed(seed: int, stream: int, block_index: int) -> int:
    """Seed of one noise block, a 63-bit hash of ``(seed, stream, block_index)``."""
    words = np.random.SeedSequence([seed & (2**63 - 1), stream, block_index]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


#: spawn key of per-input seeds (keeps them apart from :func:`block_seed`'s hashes)
_INPUT_KEY = 0x1A9B7


def input_seed(seed: int, index: int) -> int:
    """Base seed of input ``index`` in a run seeded with ``seed``: a 62-bit hash of
    ``(seed, index)``, so an input's noise does not depend on the other inputs
    (nor on how many processes certify them)."""
    if index < 0:
        raise SpecError("index", f"must be >= 0, got {index}")
    words = np.random.SeedSequence([seed & (2**63 - 1), index, _INPUT_KEY]).generate_state(2, dtype=np.uint32)
    return ((int(words[0]) << 30) ^ int(words[1])) & (2**62 - 1)


class NoiseStream:
    """Gaussian samples ``N(0, I)`` of one shape, in blocks; ``take(k)`` the next k.

    Every block is one ``torch.randn`` call of ``(block, *shape)`` from a freshly
    seeded generator, so the values do not depend on how the stream is sliced.
    """

    def __init__(self, spec: NoiseSpec, shape: tuple[int, ...], device: torch.device) -> None:
        check(spec.device_type == device.type, "noise stream regenerated on another device type")
        self._spec = spec
        self._shape = tuple(shape)
        self._device = device
        self._gen = torch.Generator(device=device)
        self._next_block = 0
        self._carry: torch.Tensor | None = None

    def _draw_block(self, out: torch.Tensor | None) -> torch.Tensor:
        self._gen.manual_seed(block_seed(self._spec.seed, self._spec.stream, self._next_block))
        self._next_block += 1
        size = (self._spec.block, *self._shape)
        if out is None:
            return torch.randn(size, generator=self._gen, device=self._device, dtype=torch.float32)
        return torch.randn(size, generator=self._gen, out=out)

    def take(self, k: int) -> torch.Tensor:
        out = torch.empty((k, *self._shape), device=self._device, dtype=torch.float32)
        pos = 0
        if self._carry is not None:
            m = min(k, self._carry.shape[0])
            out[:m] = self._carry[:m]
            self._carry = self._carry[m:] if m < self._carry.shape[0] else None
            pos = m
        block = self._spec.block
        while pos < k:
            if k - pos >= block:
                self._draw_block(out[pos : pos + block])
                pos += block
            else:
                tmp = self._draw_block(None)
                m = k - pos
                out[pos:] = tmp[:m]
                self._carry = tmp[m:]
                pos = k
        return out


@contextlib.contextmanager
def one_torch_thread(device: torch.device | None = None) -> Iterator[None]:
    """Run small CPU work on one intra-op thread (restored afterwards); no-op on other devices.

    For small models intra-op threads only add synchronisation overhead, and under
    CPU contention they slow small ops by an order of magnitude.
    """
    if device is not None and device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str) -> torch.device:
    """``torch.device`` for ``name`` ("auto": CUDA when available, else the CPU).

    Raises BackendUnavailableError when CUDA is asked for explicitly and is absent.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            "device 'cuda' requested but torch.cuda.is_available() is False; use --device cpu"
        )
    return dev


class Smooth:
    """A randomized-smoothing wrapper around a base classifier ``f``.

    The smoothed classifier is ``g(x) = argmax_c P(f(x + e) = c)`` with
    ``e ~ N(0, sigma^2 I)``.

    Guarantees (Cohen et al. 2019, Theorems 1-2), over the randomness of the
    sampling noise only, for a fixed model and a fixed input ``x``:

    * :meth:`predict`: with probability at least ``1 - alpha`` it returns either
      ``ABSTAIN`` or ``g(x)``.
    * :meth:`certify`: with probability at least ``1 - alpha``, if it returns a
      class ``c`` and radius ``R > 0``, then ``g(x + d) = c`` for every ``d``
      with ``||d||_2 < R``.  ``R = sigma * PhiInverse(pA_lower)`` where
      ``pA_lower`` is the one-sided Clopper-Pearson bound from ``n`` fresh
      samples; it abstains when ``pA_lower < 1/2``.

    The model must be a deterministic function of one input (batch statistics
    or dynamic per-batch quantization would break the independence of the
    samples); it is moved to ``options.device`` and put in eval mode.
    ``generator`` (any device) draws the per-call base seeds, so a seeded
    generator makes a whole session repeatable; pass ``seed=`` to a call to
    pin that call alone.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        num_classes: int,
        options: SmoothOptions,
        generator: torch.Generator | None = None,
    ) -> None:
        if not (isinstance(num_classes, int) and num_classes >= 1):
            raise SpecError("num_classes", f"must be a positive integer, got {num_classes!r}")
        if num_classes < 2:
            raise ModelError(
                "randomized smoothing needs at least 2 class scores, the model outputs 1; the argmax of one "
                "score is always class 0, so every input would be 'certified'. Give the model one output per "
                "class (e.g. [z, -z] or [1 - p, p] for a binary score)"
            )
        self.options = options
        self.num_classes = num_classes
        self.device = resolve_device(options.device)
        self.model = model.to(self.device).eval()
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        self._generator = generator

    # -- sampling ------------------------------------------------------------
    def draw_seed(self) -> int:
        """Next base seed from the injected generator."""
        t = torch.randint(0, 2**62, (1,), generator=self._generator, device=self._generator.device)
        return int(t.item())

    def noise_spec(self, seed: int, stream: int) -> NoiseSpec:
        return NoiseSpec(seed=seed, stream=stream, block=self.options.noise_block, device_type=self.device.type)

    def _as_input(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if not torch.is_floating_point(t):
            t = t.float()
        t = t.to(device=self.device, dtype=torch.float32)
        if not torch.isfinite(t).all():
            raise SpecError("x", "input contains NaN or infinity", "clean the input array")
        return t

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.options.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.options.dtype])

    def sample_labels(
        self,
        x: torch.Tensor | np.ndarray,
        n: int,
        noise: NoiseSpec,
        *,
        batch_size: int | None = None,
        keep_labels: bool = False,
        progress: ProgressFn | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Classify ``n`` noisy copies ``x + sigma * e`` (``e`` from ``noise``).

        Returns the class counts (length ``num_classes``) and, with
        ``keep_labels``, the label of every sample in stream order.
        """
        if not (isinstance(n, int) and n >= 1):
            raise SpecError("n", f"must be a positive integer, got {n!r}")
        bs = batch_size if batch_size is not None else self.options.batch_size
        if not (isinstance(bs, int) and bs >= 1):
            raise SpecError("batch_size", f"must be a positive integer, got {bs!r}")
        xt = self._as_input(x)
        stream = NoiseStream(noise, tuple(xt.shape), self.device)
        counts = torch.zeros(self.num_classes, dtype=torch.int64, device=self.device)
        kept: list[torch.Tensor] = []
        sigma = float(self.options.sigma)
        done = 0
        with torch.inference_mode(), self._autocast():
            while done < n:
                b = min(bs, n - done)
                batch = stream.take(b).mul_(sigma).add_(xt)
                if self.options.channels_last and batch.dim() == 4:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                logits = self.model(batch)
                if logits.dim() != 2 or logits.shape[0] != b or logits.shape[1] != self.num_classes:
                    raise ModelError(
                        f"model output has shape {tuple(logits.shape)}, expected ({b}, {self.num_classes}); "
                        "the base classifier must return one score per class for each input in the batch"
                    )
                if not bool(torch.isfinite(logits).all()):
                    raise ModelError(
                        "the model output contains NaN or infinity on noisy copies of the input (NaN/Inf weights, "
                        "a NaN calibration range, or an overflow in the compute dtype); no class can be certified"
                    )
                labels = logits.argmax(dim=1)
                counts += torch.bincount(labels, minlength=self.num_classes)
                if keep_labels:
                    kept.append(labels.to(torch.int32))
                done += b
                if progress is not None:
                    progress(b)
        out_counts = counts.cpu().numpy()
        out_labels = torch.cat(kept).cpu().numpy() if keep_labels else None
        return out_counts, out_labels

    # -- the two procedures ----------------------------------------------------
    def predict(
        self,
        x: torch.Tensor | np.ndarray,
        n: int,
        alpha: float,
        batch_size: int | None = None,
        *,
        seed: int | None = None,
        progress: ProgressFn | None = None,
    ) -> Prediction:
        """Monte Carlo prediction of ``g(x)`` with a two-sided binomial test.

        Draws ``n`` samples, takes the two most frequent classes with counts
        ``nA >= nB`` and abstains unless ``binomtest(nA, nA + nB, 1/2)`` rejects
        at level ``alpha``.  With probability at least ``1 - alpha`` the answer
        is ``ABSTAIN`` or ``g(x)``.
        """
        _check_alpha(alpha)
        start = time.perf_counter()
        spec = self.noise_spec(self.draw_seed() if seed is None else seed, STREAM_PREDICT)
        counts, _ = self.sample_labels(x, n, spec, batch_size=batch_size, progress=progress)
        order = np.argsort(-counts, kind="stable")
        n_a = int(counts[order[0]])
        n_b = int(counts[order[1]]) if len(order) > 1 else 0
        p_value = float(binomtest(n_a, n_a + n_b, 0.5).pvalue)
        predicted = ABSTAIN if p_value > alpha else int(order[0])
        return Prediction(
            predict=predicted,
            counts=tuple(int(c) for c in counts),
            n=n,
            alpha=alpha,
            p_value=p_value,
            noise=spec,
            seconds=time.perf_counter() - start,
        )

    def certify(
        self,
        x: torch.Tensor | np.ndarray,
        n0: int,
        n: int,
        alpha: float,
        batch_size: int | None = None,
        *,
        seed: int | None = None,
        keep_labels: bool = False,
        progress: ProgressFn | None = None,
    ) -> Certificate:
        """Certify ``g`` around ``x``: the class and an L2 radius, or ABSTAIN.

        ``n0`` samples choose the candidate class ``cA``; ``n`` independent
        samples bound ``pA = P(f(x + e) = cA)`` from below at level
        ``1 - alpha`` (Clopper-Pearson).  If ``pA_lower >= 1/2`` the answer is
        ``cA`` with radius ``sigma * PhiInverse(pA_lower)``, otherwise ABSTAIN.
        With probability at least ``1 - alpha`` a returned class is ``g(x)``
        and ``g`` is constant on the open L2 ball of that radius around ``x``.
        """
        _check_alpha(alpha)
        if not (isinstance(n0, int) and n0 >= 1):
            raise SpecError("n0", f"must be a positive integer, got {n0!r}", "e.g. --n0 100")
        start = time.perf_counter()
        base = self.draw_seed() if seed is None else seed
        counts0, _ = self.sample_labels(
            x, n0, self.noise_spec(base, STREAM_SELECT), batch_size=batch_size, progress=progress
        )
        guess = int(np.argmax(counts0))
        spec = self.noise_spec(base, STREAM_ESTIMATE)
        counts, labels = self.sample_labels(
            x, n, spec, batch_size=batch_size, keep_labels=keep_labels, progress=progress
        )
        n_a = int(counts[guess])
        pa_lower = clopper_pearson_lower(n_a, n, alpha)
        if pa_lower < 0.5:
            predicted, radius = ABSTAIN, 0.0
        else:
            predicted, radius = guess, radius_from_pa(pa_lower, self.options.sigma)
        return Certificate(
            predict=predicted,
            radius=radius,
            pa_lower=pa_lower,
            guess=guess,
            count=n_a,
            n0=n0,
            n=n,
            alpha=alpha,
            sigma=float(self.options.sigma),
            noise=spec,
            seconds=time.perf_counter() - start,
            labels=labels,
        )


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise SpecError("alpha", f"must lie in (0, 1), got {alpha!r}", "e.g. --alpha 0.001")
