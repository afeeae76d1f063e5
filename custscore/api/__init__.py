"""The HTTP API (FastAPI): the same code paths as ``predict``, ``explain`` and the stored scores, behind API keys."""
