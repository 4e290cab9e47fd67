"""ragkit: decoder LLMs as text encoders (LLM2Vec), and retrieval on top of them."""

from ragkit.encoders import Encoder, EncoderConfig
from ragkit.errors import RagkitError

__version__ = "0.1.0"
__all__ = ["Encoder", "EncoderConfig", "RagkitError", "__version__"]
