"""The README.md written beside a saved encoder's weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragkit.encoders.encoder import Encoder


def model_card(encoder: Encoder) -> str:
    """The README.md of a saved encoder: where it came from, its settings, and how to load it."""
    import transformers

    c = encoder.config
    return f"""# ragkit encoder

Saved by ragkit from `{c.source}` ({encoder.model.config.model_type}, dim {encoder.dim}).

- pooling: {c.pooling}; bidirectional attention: {c.bidirectional}; max_length: {c.max_length}
- query instruction: {c.query_instruction!r}; document instruction: {c.document_instruction!r}
- saved with transformers {transformers.__version__}. **Load with transformers 5.x**: 4.x misreads
  this config (for example `rope_theta` silently falls back to 10000).

```python
from ragkit import Encoder
encoder = Encoder.load("path/to/this/dir")
vectors = encoder.encode(["a text"])
```
"""
