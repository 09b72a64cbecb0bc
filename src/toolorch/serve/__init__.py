"""The serving gateway: an OpenAI-compatible API that runs the orchestrator's whole tool loop.

    toolorch serve --config configs/tiny.yaml --orchestrator hf:<checkpoint dir> --port 8000
    toolorch serve --catalog catalog.yaml --orchestrator openai:http://engine:8000/v1#orchestrator

May import toolorch.core and toolorch.runtime only.
"""
