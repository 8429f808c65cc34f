"""Mixed-precision search that keeps certified robustness (ARQ-style).

Which bit width for each layer?  ARQ (Yang, Ugare, Zhao, Singh, Misailovic,
"ARQ: a mixed-precision quantization framework for accurate and certifiably
robust DNNs") answers it with a DDPG agent over per-layer bit widths (as HAQ,
Wang et al. CVPR 2019, does for accuracy), rewarded by randomized-smoothing
certification of the quantized copy, under a BitOps budget.  This package
builds that search on :mod:`paramverify.smoothing`:

* :mod:`.space`     layers, bit policies, BitOps and the budget wall (no torch);
* :mod:`.env`       the environment: per-layer state, action = bits, reward;
* :mod:`.reward`    the sampled reward: incremental certification of the
  quantized copy from cached float certificates (Ugare et al. 2024);
* :mod:`.formal`    the formal reward for small models: proved label
  invariance under the policy's rounding boxes (the bound engine);
* :mod:`.ddpg`      actor, critic, replay buffer, truncated-normal exploration;
* :mod:`.runner`    the episode loop with checkpoints, resume and Ctrl-C;
* :mod:`.baselines` uniform bits, greedy sensitivity, random search;
* :mod:`.finetune`  optional noise-augmented fine-tuning (straight-through);
* :mod:`.export`    the policy as a QDQ ONNX model (QuantizeLinear/DequantizeLinear);
* :mod:`.report`    final certification on held-out images, Pareto plot, table;
* :mod:`.pipeline`  everything above for one model and budget (CLI, benchmark);
* :mod:`.equal`     DDPG, greedy and random search at equal certification counts,
  and where each final pick came from (warm-up or agent);
* :mod:`.curves`    reward curves over certifications, learning summary, plot;
* :mod:`.cli`       ``paramverify search MODEL.onnx --budget F ...``.

What is guaranteed: rewards and reported certified accuracies are randomized
smoothing certificates, each correct with probability at least its stated
confidence (``1 - alpha`` from scratch, ``1 - alpha_f - alpha_q``
incremental) over the sampling noise; they are statistical, never "Verified".
The formal reward counts an input only when the bound engine returns
``Verified`` (a proof for every weight in the rounding box, which is widened
to contain the exported weights).  torch is needed for everything except
:mod:`.space`.
"""

from __future__ import annotations

__all__: list[str] = []
