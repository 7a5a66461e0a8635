"""Serving a trained run over HTTP: a FastAPI app (llmcls.serve.app) with a dynamic batcher, Prometheus metrics
and a page to try the model, run by uvicorn (llmcls.serve.server).

Needs the `serve` extra: pip install 'llmcls[serve]'. Nothing here is imported by the rest of llmcls.
"""
