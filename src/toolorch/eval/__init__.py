"""Evaluation: policies compared (baselines, lineup), the oracle, per-task runs, metrics, report.

The eval stage (`toolorch.stages.eval`) wires these together; `metrics.summarize` turns
the saved per-task rows into every reported number.
"""
