"""Serving: the simulated expert server (sim_experts) and, beside it, the orchestration gateway."""
