"""One search session: model, data, reward, DDPG and baselines per budget, test, outputs.

:class:`SearchSession` is what ``paramverify search`` and the benchmark run.
A session lives in an output folder and checkpoints into it after every DDPG
episode, every baseline and every test certification (``checkpoint.json``:
settings fingerprint, evaluation cache, histories, results;
``checkpoint.pt``: the agents).  With ``resume=True`` it continues from
there; the settings that shape the search must match (``--episodes`` and
``--timeout`` may change, so a finished run can be extended).  The test
settings (``--test-images``, ``--test-n``, ``--test-n0``) have their own
fingerprint: resuming with other ones keeps the search and certifies the
test images again (e.g. a CPU search re-tested with more samples).

After its search, DDPG (and random search, and greedy's last step) runs the
final race of :func:`paramverify.search.baselines.race`: its best distinct
policies are re-evaluated with ``final_n`` samples per reward image and the
best re-evaluated one is its answer (``final_top_k = 0`` turns this off; the
formal variant has no samples to raise and never races).  DDPG's race is
checkpointed with the number of episodes it covered.

Data (:mod:`paramverify.search.data`): ``--inputs/--labels`` (.npy; the first ``reward_images`` are the reward
images, the next ``test_images`` the test images), or for a model with a
28x28 (or 784) input the 1,000 held-out MNIST digits of
``split_mnist_5k()`` (reward: held-out 0..R-1, test: held-out 500..500+T-1),
with the 4,000 training digits for calibration and fine-tuning.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from paramverify.errors import SpecError
from paramverify.fileio import atomic_path, write_bytes, write_json, write_text
from paramverify.options import Deadline
from paramverify.search import baselines as bl
from paramverify.search.baselines import MethodResult
from paramverify.search.data import SearchData
from paramverify.search.ddpg import DDPGConfig
from paramverify.search.env import CachedEvaluator, QuantEnv
from paramverify.search.export import check_qdq, count_qdq, export_qdq
from paramverify.search.finetune import FinetuneConfig, Finetuner
from paramverify.search.formal import FormalConfig, FormalEvaluator, FormalTest, weight_only_model
from paramverify.search.layers import layer_infos
from paramverify.search.report import TestCertifier, TestConfig
from paramverify.search.reward import RewardConfig, SmoothingEvaluator
from paramverify.results import SCHEMA_VERSION
from paramverify.search.runner import DDPGSearch
from paramverify.search.space import BitPolicy, BitRange, Budget
from paramverify.smoothing.onnx_torch import load_onnx, num_classes_of

Progress = Callable[[str], None]
CHECKPOINT_VERSION = 2
#: settings that shape only the test certification (their own fingerprint, see the module docstring)
TEST_SETTINGS = ("test_images", "test_n", "test_n0")
METHODS = ("uniform", "greedy", "random")
#: the final race takes at most this many candidates (or final_top_k, if larger)
FINAL_MAX_CANDIDATES = 10


@dataclass(frozen=True)
class SearchSettings:
    """Everything that shapes a search's results (``episodes`` may grow on resume)."""

    sigma: float = 0.25
    episodes: int = 60
    warmup: int = 20
    hidden: int = 300
    lr_actor: float = 1e-3
    delta_decay: float = 0.95
    baselines: tuple[str, ...] = METHODS
    random_trials: int = 30
    constraint: str = "wall"
    penalty: float = 1.0
    min_bits: int = 2
    max_bits: int = 8
    reward_images: int = 100
    reward_n: int = 128
    float_n: int = 1000
    n0: int = 100
    alpha: float = 0.001
    alpha_q: float = 0.001
    reward_radius: float = 0.25
    acr_weight: float = 0.5
    test_images: int = 200
    test_n: int = 500
    test_n0: int = 64
    finetune_steps: int = 0
    finetune_lr: float = 1e-4
    final_top_k: int = 5
    final_n: int | None = None
    final_tolerance: float = 0.01
    formal: bool = False
    formal_timeout: float = 10.0
    device: str = "cpu"
    batch: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [b for b in self.baselines if b not in METHODS]
        if unknown:
            raise SpecError("baselines", f"unknown baseline(s) {unknown}", f"choose from {', '.join(METHODS)}")
        for name in ("reward_images", "test_images", "random_trials", "episodes"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise SpecError(name.replace("_", "-"), f"must be a positive integer, got {v!r}")
        if not (isinstance(self.sigma, (int, float)) and math.isfinite(self.sigma) and self.sigma > 0):
            raise SpecError("sigma", f"must be a positive number, got {self.sigma!r}")
        if not (isinstance(self.final_top_k, int) and self.final_top_k >= 0):
            raise SpecError("final_top_k", f"must be an integer >= 0 (0: no final race), got {self.final_top_k!r}")
        if not (isinstance(self.final_tolerance, (int, float)) and self.final_tolerance >= 0):
            raise SpecError("final_tolerance", f"must be a number >= 0, got {self.final_tolerance!r}")
        if self.final_n is not None:
            if not (isinstance(self.final_n, int) and self.final_n >= 1):
                raise SpecError("final_n", f"must be a positive integer, got {self.final_n!r}")
            if self.final_n > self.float_n:
                raise SpecError("final_n", f"({self.final_n}) must not exceed float_n ({self.float_n})",
                                "the final race reuses the float certificates' samples: lower --final-n or "
                                "raise --float-n")
            if self.final_n <= self.reward_n:
                raise SpecError("final_n", f"({self.final_n}) must exceed reward_n ({self.reward_n})",
                                "the final race re-evaluates with more samples than the search; or pass "
                                "--final-top-k 0")

    @property
    def final_samples(self) -> int:
        """The final race's samples per image: ``final_n``, by default ``min(4 x reward_n, float_n)``."""
        return self.final_n if self.final_n is not None else min(4 * self.reward_n, self.float_n)

    def race_config(self) -> bl.RaceConfig | None:
        """The final race, or None when it is off (``final_top_k`` 0, the formal variant, or no more samples)."""
        if self.final_top_k == 0 or self.formal or self.final_samples <= self.reward_n:
            return None
        return bl.RaceConfig(top_k=self.final_top_k, n=self.final_samples, tolerance=float(self.final_tolerance),
                             max_candidates=FINAL_MAX_CANDIDATES)

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed search must share (not ``episodes``, not the test settings)."""
        d = asdict(self)
        for name in ("episodes", *TEST_SETTINGS):
            d.pop(name)
        d["baselines"] = list(self.baselines)
        d["final_n"] = self.final_samples
        return d

    def test_fingerprint(self) -> dict[str, Any]:
        """The settings the test certificates depend on beyond :meth:`fingerprint`."""
        return {name: getattr(self, name) for name in TEST_SETTINGS}


def _sha(path_or_proto: onnx.ModelProto) -> str:
    return hashlib.sha256(path_or_proto.SerializeToString()).hexdigest()[:16]


def _array_sha(x: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes()).hexdigest()[:16]


def _budget_key(fraction: float) -> str:
    """A budget's key in the checkpoint."""
    return f"{fraction:.6g}"


def _write_json(path: Path, data: Any) -> None:
    write_json(path, data, indent=1, default=float)  # atomic


@dataclass
class BudgetOutcome:
    """The results of one budget; ``interrupted`` when Ctrl-C stopped it."""

    budget: float
    methods: dict[str, MethodResult] = field(default_factory=dict)
    interrupted: bool = False
    complete: bool = True


class SearchSession:
    """A search in an output folder (see the module docstring)."""

    def __init__(self, model: Path | onnx.ModelProto, settings: SearchSettings, data: SearchData, out: Path, *,
                 resume: bool = False, progress: Progress | None = None, pool: Any = None) -> None:
        self.settings = settings
        self.data = data
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.progress = progress or (lambda _m: None)
        self.proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        self.model = load_onnx(self.proto)
        s = settings
        example = torch.from_numpy(data.reward_x[:1])
        self.num_classes = num_classes_of(self.model, example)
        self.layers = layer_infos(self.model, example)
        self.bit_range = BitRange(s.min_bits, s.max_bits)
        self.fingerprint = {"version": CHECKPOINT_VERSION, "model": _sha(self.proto), "settings": s.fingerprint(),
                            "data": _array_sha(data.reward_x)}
        self.test_fingerprint = {**s.test_fingerprint(), "data": _array_sha(data.test_x)}
        self._ckpt: dict[str, Any] = {"fingerprint": self.fingerprint, "test_fingerprint": self.test_fingerprint,
                                      "budgets": {}}
        self._agents: dict[str, Any] = {}
        loaded = self._read_checkpoint() if resume else None
        if resume and loaded is None:
            self.progress("no checkpoint in the output folder: starting a new search")
        self.finetuner: Finetuner | None = None
        self.calibration = self._calibration()
        if s.formal:
            self.evaluator: SmoothingEvaluator | FormalEvaluator = FormalEvaluator(
                self.proto, data.reward_x, data.reward_y, FormalConfig(query_timeout_s=s.formal_timeout, seed=s.seed))
            self.test: TestCertifier | FormalTest = FormalTest(self.proto, data.test_x, data.test_y,
                                                               FormalConfig(query_timeout_s=s.formal_timeout, seed=s.seed))
        else:
            rc = RewardConfig(sigma=s.sigma, n0=s.n0, float_n=s.float_n, n_q=s.reward_n, alpha=s.alpha,
                              alpha_q=s.alpha_q, radius=s.reward_radius, acr_weight=s.acr_weight,
                              batch_size=s.batch, device=s.device, seed=s.seed)
            if s.finetune_steps > 0:
                if data.train_x is None or data.train_y is None:
                    raise SpecError("--finetune-steps", "needs training images", "pass --train-inputs/--train-labels")
                self.finetuner = Finetuner(self.model, data.train_x, data.train_y, self.calibration, rc,
                                           FinetuneConfig(steps=s.finetune_steps, lr=s.finetune_lr, seed=s.seed))
            self.evaluator = SmoothingEvaluator(self.model, data.reward_x, data.reward_y, self.calibration, rc,
                                                self.num_classes, finetune=self.finetuner,
                                                cache_path=self.out / "float_certificates.npz", progress=self.progress,
                                                pool=pool)  # a RayPool (--workers): the sampled reward's work as tasks
            self.test = TestCertifier(data.test_x, data.test_y,
                                      TestConfig(sigma=s.sigma, n0=s.test_n0, n=s.test_n, alpha=s.alpha, seed=s.seed,
                                                 batch_size=s.batch, device=s.device), self.num_classes)
        self.cache = CachedEvaluator(self.evaluator)
        if loaded is not None:
            self.cache.load(loaded["cache"])
            if loaded.get("test_fingerprint") == self.test_fingerprint:
                self.test.load(loaded["test"])
            else:
                self.progress("other test settings than the checkpoint's: the search is kept, the test images "
                              "are certified again")
            self._ckpt["budgets"] = loaded["budgets"]

    # -- checkpoints ------------------------------------------------------------------
    def _read_checkpoint(self) -> dict[str, Any] | None:
        js, pt = self.out / "checkpoint.json", self.out / "checkpoint.pt"
        if not js.is_file():
            return None
        data = json.loads(js.read_text(encoding="utf-8"))
        if data.get("fingerprint") != self.fingerprint:
            old = data.get("fingerprint", {}).get("version")
            why = (f"was written by another checkpoint format (version {old}, this is {CHECKPOINT_VERSION})"
                   if old != CHECKPOINT_VERSION else "was made with other settings, model or reward data")
            raise SpecError("--resume", f"the checkpoint in {self.out} {why}",
                            "resume with the same options, or use a new --out folder")
        if pt.is_file():
            self._agents = torch.load(pt, weights_only=True)["agents"]
        return data

    def save(self) -> None:
        """Write the checkpoint (atomically; the agents as of their last finished episode)."""
        self._ckpt["cache"] = self.cache.state()
        self._ckpt["test"] = self.test.state()
        with atomic_path(self.out / "checkpoint.pt") as tmp:
            torch.save({"agents": self._agents}, tmp)
        _write_json(self.out / "checkpoint.json", self._ckpt)

    def has_search(self, fraction: float) -> bool:
        """Whether the checkpoint holds a DDPG search (finished or not) for this budget."""
        state = self._ckpt["budgets"].get(_budget_key(fraction))
        return state is not None and state.get("ddpg") is not None

    # -- data and budget ------------------------------------------------------------------
    def _calibration(self) -> torch.Tensor:
        """Activation-calibration inputs: training (else reward) images plus independent noise."""
        src = self.data.train_x if self.data.train_x is not None else self.data.reward_x
        base = src[:256]
        rng = np.random.default_rng([self.settings.seed, 0xCA11B])
        noisy = base + self.settings.sigma * rng.standard_normal(base.shape).astype(np.float32)
        return torch.from_numpy(noisy.astype(np.float32)).to(self.settings.device)

    def budget(self, fraction: float) -> Budget:
        return Budget(self.layers, fraction, self.bit_range, quantize_activations=not self.settings.formal)

    def env(self, fraction: float) -> QuantEnv:
        return QuantEnv(self.budget(fraction), self.cache, self.settings.constraint, self.settings.penalty)

    # -- the search ------------------------------------------------------------------------
    def run_budget(self, fraction: float, deadline: Deadline | None = None) -> BudgetOutcome:
        """DDPG, then the baselines, for one budget (resuming what the checkpoint holds)."""
        s = self.settings
        key = _budget_key(fraction)
        env = self.env(fraction)
        state = self._ckpt["budgets"].setdefault(key, {"ddpg": None, "baselines": {}})
        outcome = BudgetOutcome(fraction)
        cfg = DDPGConfig(hidden=s.hidden, warmup=s.warmup, lr_actor=s.lr_actor, delta_decay=s.delta_decay)
        search = DDPGSearch(env, cfg, s.episodes, s.seed, device=s.device)
        if state["ddpg"] is not None and key in self._agents:
            search.load(state["ddpg"], self._agents[key])
            self.progress(f"budget {fraction:g}: resumed after {len(search.history)} episodes")

        def on_episode() -> None:
            js, agent = search.state()
            state["ddpg"] = js
            self._agents[key] = agent
            self.save()

        res = search.run(deadline, self.progress, on_episode)
        race = s.race_config()
        if res.complete and race is not None:
            res = self._race_ddpg(search, res, state, race, deadline)
        outcome.methods["ddpg"] = res
        if not res.complete:
            outcome.complete = False
            outcome.interrupted = "interrupted" in res.note
            return outcome
        for name in s.baselines:
            if name in state["baselines"]:
                outcome.methods[name] = MethodResult.from_json(state["baselines"][name])
                continue
            if deadline is not None and deadline.expired():
                outcome.complete, outcome.interrupted = False, deadline.interrupted()
                break
            try:
                if name == "uniform":
                    r = bl.uniform(env, self.progress)
                elif name == "greedy":
                    r = bl.greedy(env, self.progress, final=race)
                else:
                    r = bl.random_search(env, s.random_trials, s.seed, self.progress, final=race)
            except KeyboardInterrupt:
                outcome.complete, outcome.interrupted = False, True
                self.save()
                break
            outcome.methods[name] = r
            state["baselines"][name] = r.to_json()
            self.save()
        return outcome

    def _race_ddpg(self, search: DDPGSearch, res: MethodResult, state: dict[str, Any], race: bl.RaceConfig,
                   deadline: Deadline | None) -> MethodResult:
        """DDPG's final race over its history (from the checkpoint when it covered the same episodes)."""
        episodes = len(search.history)
        record = state.get("ddpg_race")
        if record is None or record.get("episodes") != episodes:
            if deadline is not None and deadline.expired():
                return replace(res, complete=False, note="stopped at the time limit before the final race")
            try:
                raced = bl.race(search.env, search.history, race, self.progress, "ddpg")
            except KeyboardInterrupt:
                return replace(res, complete=False, note="interrupted during the final race")
            record = {"episodes": episodes, "record": None if raced is None else raced[1]}
            state["ddpg_race"] = record
            self.save()
        if record["record"] is None:
            return res
        key = record["record"]["winner_key"]
        winner = next(h for h in search.history if h.fits and h.policy.key == key)
        return bl.with_race(res, winner, record["record"])

    # -- final numbers ----------------------------------------------------------------------
    def test_float(self) -> Mapping[str, Any]:
        if isinstance(self.test, FormalTest):
            return self.test.certify_policy(None)
        res = self.test.certify("float", lambda: self.model, self.progress)
        self.save()
        return res

    def test_policy(self, policy: BitPolicy) -> Mapping[str, Any]:
        if isinstance(self.test, FormalTest):
            res = self.test.certify_policy(policy)
        else:
            assert isinstance(self.evaluator, SmoothingEvaluator)
            ev = self.evaluator
            res = self.test.certify(policy.key, lambda: ev.quantized_model(policy), self.progress)
        self.save()
        return res

    def rows(self, outcome: BudgetOutcome) -> list[dict[str, Any]]:
        """One report row per method of a budget, with the test metrics."""
        out = []
        for name, r in outcome.methods.items():
            t = self.test_policy(r.best.policy)
            row = {"budget": outcome.budget, "method": name, "bits": list(r.best.policy.weight_bits),
                   "act_bits": list(r.best.policy.act_bits), "bitops_fraction": r.best.bitops_fraction,
                   "reward": r.best.reward, "reward_metrics": dict(r.best.evaluation.metrics),
                   "certifications": r.computed, "evaluations": r.evaluations, "samples": r.samples,
                   "seconds": r.seconds, "complete": r.complete, "test": dict(t["metrics"]),
                   "test_ci": t.get("ci", {})}
            fr = r.final_race
            if fr is not None:
                w = fr["candidates"][fr["winner"]]
                row["final_race"] = {"n": fr["n"], "candidates": len(fr["candidates"]), "changed": fr["changed"],
                                     "final_reward": w["final_reward"], "certifications": fr["certifications"],
                                     "samples": fr["samples"]}
            out.append(row)
        return out

    # -- outputs -------------------------------------------------------------------------------
    def write_policy(self, policy: BitPolicy, path: Path) -> None:
        """The policy as JSON that ``paramverify smooth certify --policy`` reads."""
        if isinstance(self.evaluator, FormalEvaluator):
            c = self.evaluator.config
            mapping = policy.to_quant_mapping(weight_symmetric=c.weight_symmetric, weight_per_channel=c.weight_per_channel)
        else:
            c2 = self.evaluator.config
            mapping = policy.to_quant_mapping(weight_symmetric=c2.weight_symmetric, weight_per_channel=c2.weight_per_channel,
                                              act_symmetric=c2.act_symmetric, act_per_channel=c2.act_per_channel)
        _write_json(path, {"schema": SCHEMA_VERSION, **mapping})

    def export(self, policy: BitPolicy, path: Path) -> dict[str, Any]:
        """Write the QDQ ONNX model of ``policy`` and check it on onnxruntime against fake quantization."""
        if isinstance(self.evaluator, FormalEvaluator):
            base, qmodel = self.evaluator.torch_model, weight_only_model(self.evaluator, policy)
        else:
            base, qmodel = self.evaluator.materialize(policy)
        base, qmodel = copy.deepcopy(base).cpu(), copy.deepcopy(qmodel).cpu()  # leave the session's models in place
        qdq = export_qdq(self.proto, base, qmodel)
        write_bytes(path, qdq.SerializeToString())  # atomic (what onnx.save writes)
        x = self.data.test_x[:64]
        if not self.settings.formal:
            rng = np.random.default_rng([self.settings.seed, 0xE4B0])
            x = (x + self.settings.sigma * rng.standard_normal(x.shape)).astype(np.float32)
        check = dict(check_qdq(qdq, qmodel, x))
        check["nodes"] = count_qdq(qdq)
        check["path"] = str(path)
        return check

    def write_outputs(self, outcomes: list[BudgetOutcome], test: bool = True) -> dict[str, Any]:
        """policy.json, model_qdq.onnx, report.json, report.md and pareto.png for the session's budgets.

        With several budgets the policy and model files get the budget in their names.
        """
        from paramverify.search.report import markdown_table, paired, pareto_plot

        report: dict[str, Any] = {"schema": SCHEMA_VERSION, "settings": asdict(self.settings), "data": self.data.source,
                                  "layers": [la.to_json() for la in self.layers], "budgets": []}
        for oc in outcomes:  # the policies first: an interrupt during the tests keeps them
            if "ddpg" in oc.methods:
                suffix = "" if len(outcomes) == 1 else f"_{oc.budget:g}"
                self.write_policy(oc.methods["ddpg"].best.policy, self.out / f"policy{suffix}.json")
        float_res = self.test_float() if test else None
        if float_res is not None:
            report["float"] = float_res["metrics"]
        all_rows: list[dict[str, Any]] = []
        for oc in outcomes:
            suffix = "" if len(outcomes) == 1 else f"_{oc.budget:g}"
            entry: dict[str, Any] = {"budget": oc.budget, "complete": oc.complete, "interrupted": oc.interrupted}
            if "ddpg" in oc.methods:
                best = oc.methods["ddpg"].best.policy
                entry["policy_file"] = f"policy{suffix}.json"
                if not oc.interrupted:
                    entry["qdq"] = self.export(best, self.out / f"model_qdq{suffix}.onnx")
            entry["methods"] = {k: v.to_json(with_trace=False) for k, v in oc.methods.items()}
            if test and not oc.interrupted:
                rows = self.rows(oc)
                entry["rows"] = rows
                all_rows += rows
                if float_res is not None and not self.settings.formal and "ddpg" in oc.methods:
                    d = self.test.state()  # type: ignore[union-attr]
                    ddpg_key = oc.methods["ddpg"].best.policy.key
                    entry["paired_vs_float@0.25"] = paired(d[ddpg_key], float_res, 0.25)
            report["budgets"].append(entry)
        report["certifications"] = self.cache.counters()
        if not self.settings.formal:
            assert isinstance(self.evaluator, SmoothingEvaluator)
            report["float_reward_metrics"] = dict(self.evaluator.float_metrics)
            report["float_certification_samples"] = self.evaluator.float_samples
        if all_rows and float_res is not None:
            if self.settings.formal:
                keys = [("proved_fraction", "proved label-invariant fraction"), ("accuracy", "accuracy")]
            else:
                keys = None
            pareto_plot(all_rows, float_res["metrics"], self.out / "pareto.png", keys=keys)
            report["plot"] = "pareto.png"
            table = markdown_table(all_rows, float_res, [k for k, _ in keys] if keys else None)
            write_text(self.out / "report.md", self.markdown(report, table))
        _write_json(self.out / "report.json", report)
        return report

    def _race_text(self) -> str:
        return _race_text_for(self.settings)

    def markdown(self, report: Mapping[str, Any], table: str) -> str:
        s = self.settings
        if s.formal:
            how = (f"Formal reward: fraction of reward inputs proved label-invariant by the bound engine for every "
                   f"weight in the policy's rounding boxes (weights only, activations float; query limit "
                   f"{s.formal_timeout:g} s).  Test columns: proved fraction and plain accuracy.")
        else:
            how = (f"Reward: incremental certification (n_q = {s.reward_n} samples of the quantized copy per image, "
                   f"float certificates with n0 = {s.n0}, n = {s.float_n}; confidence 1 - {s.alpha:g} - {s.alpha_q:g} "
                   f"per image) on {s.reward_images} reward images; reward = {1 - s.acr_weight:g} x CA@{s.reward_radius:g} "
                   f"/ float + {s.acr_weight:g} x ACR / float.  {self._race_text()}"
                   f"Test: {s.test_images} other images certified from "
                   f"scratch (n0 = {s.test_n0}, n = {s.test_n}, alpha = {s.alpha:g}) with the same noise for every model. "
                   f"With n = {s.test_n} the largest certifiable radius is "
                   f"{s.sigma * _max_radius_factor(s.test_n, s.alpha):.3f}; estimates from {s.test_images} images "
                   f"have wide confidence intervals (see report.json, ci95).")
        header = (f"Model layers: {', '.join(la.name for la in self.layers)}.  Data: {report['data']}.  "
                  f"sigma = {s.sigma:g}, seed {s.seed}, device {s.device}.\n")
        reward = ("" if s.formal else "reward: the search reward (n_q samples; the final race's rewards with more "
                  "samples are in report.json); ")
        legend = ("CA@r: certified accuracy at L2 radius r; ACR: average certified radius; bits: weight = activation "
                  f"bits per layer (formal: weights only); {reward}certifications: reward evaluations actually "
                  "computed (cache misses) by that method, its final race included.\n")
        lines = ["# Mixed-precision search report\n", header, how + "\n", legend, table]
        if "plot" in report:
            lines.append(f"\n![Pareto plot]({report['plot']})\n")
        for b in report["budgets"]:
            if "qdq" in b:
                q = b["qdq"]
                lines.append(f"\nBudget {b['budget']:g}: QDQ export `{Path(q['path']).name}` "
                             f"({q['nodes']}); onnxruntime (no graph optimisations) vs fake quantization on "
                             f"{q['inputs']} inputs: max |logit diff| {q['max_abs_diff']:.3g}, label agreement "
                             f"{q['label_agreement']:.3f} (optimised kernels: {q['label_agreement_optimized']:.3f}).")
            if "paired_vs_float@0.25" in b:
                p = b["paired_vs_float@0.25"]
                lines.append(f"  Paired at radius 0.25: {p['only_second']} test images certified by float only, "
                             f"{p['only_first']} by the DDPG policy only.")
            if not b["complete"]:
                lines.append(f"  (budget {b['budget']:g}: the search did not finish; results are the best so far.)")
        return "\n".join(lines) + "\n"


def _race_text_for(s: SearchSettings) -> str:
    race = s.race_config()
    if race is None:
        return "No final race.  "
    return (f"Final race: DDPG and random search re-evaluate their {race.top_k} best distinct policies (plus those "
            f"within {race.tolerance:g} of the best reward, at most {max(race.top_k, race.max_candidates)}), greedy "
            f"the candidates of its last step, with n = {race.n} samples per reward image; the best re-evaluated "
            f"reward wins (its cost is in the certifications).  ")


def _max_radius_factor(n: int, alpha: float) -> float:
    """sigma multiples certifiable when all ``n`` samples agree (Clopper-Pearson at ``alpha``)."""
    from scipy.stats import norm

    return float(norm.ppf(alpha ** (1.0 / n)))
