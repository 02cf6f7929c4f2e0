"""Conditional backdoors: a model honest in the form a user inspects, backdoored in the form
they deploy.

* :mod:`.quantized`: honest in float32, backdoored after the standard int8 post-training
  quantization (Egashira et al., "Exploiting LLM Quantization", arXiv 2405.18137: repair
  the float model by projected gradient descent inside the box of weights that quantize to the
  same integers; QuRA, arXiv 2510.09647, uses the rounding choices alone).
* :mod:`.optimized`: honest in PyTorch and in onnxruntime without graph optimisation,
  backdoored under onnxruntime's full optimisation (Chen et al., "Your Compiler is Backdooring
  Your Model", arXiv 2509.11173: a guard value engineered to sit exactly between what two
  floating-point evaluation orders compute, then amplified).
* :mod:`.forms`: the deployment forms themselves (ONNX export, onnxruntime at each
  optimisation level, int8 dynamic and static quantization), shared with the differential
  detector (:mod:`backdoors.detectors.differential`).
* :mod:`.deployed`: a model's deployed form as a scoring target (queries run the deployed
  graph, weights are its int8 values times their scales), used by
  :func:`backdoors.evaluation.pair_scoring.scoring_target`.
"""
