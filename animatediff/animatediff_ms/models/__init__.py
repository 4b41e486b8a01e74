"""AnimateDiff networks: the inflated UNet (``UNet3DConditionModel``), its motion modules and the SparseCtrl
controlnet (``SparseControlNetModel``)."""
from .motion_module import (
           TemporalTransformer3DModel,
           TemporalTransformerBlock,
           VanillaTemporalModule,
           VersatileAttention,
)
from .resnet import Downsample3D, ResnetBlock3D, Upsample3D, VideoGroupNorm
from .sparse_controlnet import SparseControlNetConditioningEmbedding, SparseControlNetModel
from .unet import UNet3DConditionModel

__all__ = ["UNet3DConditionModel", "SparseControlNetModel", "SparseControlNetConditioningEmbedding",
           "VanillaTemporalModule", "TemporalTransformer3DModel", "TemporalTransformerBlock", "VersatileAttention", "ResnetBlock3D", "Downsample3D", "Upsample3D", "VideoGroupNorm"]
