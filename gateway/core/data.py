"""Token streams for training (reading the text is ``apt_model.corpus``; the stream itself,
documents each followed by the end-of-sequence token, is ``apt_model.modeling.lm``)."""

from __future__ import annotations

from apt_model.modeling.heldout import split_tokens  # noqa: F401 - one split for train and replay
from apt_model.modeling.lm import tokenize_documents  # noqa: F401 - the platform's token stream, used here
