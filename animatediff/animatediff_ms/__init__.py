"""AnimateDiff on MindSpore (port of guoyww/AnimateDiff, ``animatediff/`` package, diffusers 0.11 semantics).

Entry points: :class:`animatediff_ms.models.UNet3DConditionModel` (the inflated UNet with motion modules),
:class:`animatediff_ms.pipeline.AnimationPipeline` (prompt -> video), :func:`animatediff_ms.loading.load_weights`
(motion module, DreamBooth file, LoRA, domain adapter, MotionLoRAs in the original order),
:func:`animatediff_ms.runner.build_entry_pipeline` (one prompt-config entry -> a ready pipeline).
"""
