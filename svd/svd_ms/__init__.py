"""Stable Video Diffusion (SVD, SVD-XT, SVD-XT-1.1) on MindSpore, faithful to the released checkpoints.

Entry points: :func:`svd_ms.model.load_svd_model` (config + checkpoint -> model),
:class:`svd_ms.pipeline.SVDPipeline` (image -> frames), :mod:`svd_ms.training` (fine-tuning pieces
for :mod:`common.train`). The command-line tools are ``image_to_video.py``, ``train.py`` and
``tools/convert_weight.py`` in the ``svd/`` folder.
"""
