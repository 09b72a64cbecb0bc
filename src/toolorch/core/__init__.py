"""The bottom layer: records that flow through every stage, the typed config, JSONL io, seeds, task splits."""
