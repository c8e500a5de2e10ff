"""The OpenAI-compatible HTTP server (FastAPI + uvicorn) and its supervisor."""
