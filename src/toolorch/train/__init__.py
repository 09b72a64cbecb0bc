"""Training: rewards, SFT (chat masking, packing), multi-turn GRPO (rollouts, policy step),
FSDP2 under torchrun, full-state checkpoints and training scalars."""
