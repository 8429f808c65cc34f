"""Robust compression search (RC-NAS style): shrink a stage-described teacher CNN, stage by
stage, into a sub-network that stays adversarially robust under a FLOPs budget.

See docs/compress.md.  Modules: ``arch`` (stages, actions, weight inheritance), ``onnxio``
(ONNX export and teacher import), ``flops`` (exact MACs from the ONNX graph), ``tasks``
(data sets and attacks), ``train`` (PGD-k training and evaluation), ``env`` (the
environment and its reward), ``baselines``, ``agent`` (the policy and dual-level training),
``report`` and ``cli``.
"""
