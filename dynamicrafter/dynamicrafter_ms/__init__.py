"""DynamiCrafter (image + text to video) on MindSpore, loading the released PyTorch checkpoints.

Modules: ``config`` (the original inference YAML, typed), ``model`` (LatentVisualDiffusion),
``unet`` / ``attention`` / ``resampler`` (networks), ``sampler`` (DDIM + guidance), ``pipeline``
(``DynamiCrafterPipeline``), ``data`` (prompt folders), ``weights`` (rename table, loading),
``inference`` (command line), ``golden_adapter`` (parity harness). See ../README.md.
"""
