"""AnimateDiff networks: the inflated UNet (``UNet3DConditionModel``) and its motion modules."""
from .motion_module import (
           TemporalTransformer3DModel,
           TemporalTransformerBlock,
           VanillaTemporalModule,
           VersatileAttention,
)
from .resnet import Downsample3D, ResnetBlock3D, Upsample3D, VideoGroupNorm
from .unet import UNet3DConditionModel

__all__ = ["UNet3DConditionModel", "VanillaTemporalModule", "TemporalTransformer3DModel", "TemporalTransformerBlock",
           "VersatileAttention", "ResnetBlock3D", "Downsample3D", "Upsample3D", "VideoGroupNorm"]
