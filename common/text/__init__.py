"""Text encoders that are not CLIP: the T5 encoder (HF ``T5EncoderModel`` names) and its sentencepiece tokenizer."""
from .t5 import T5Config, T5EncoderModel, T5Tokenizer, load_t5_encoder, t5_relative_buckets

__all__ = ["T5Config", "T5EncoderModel", "T5Tokenizer", "load_t5_encoder", "t5_relative_buckets"]
