"""Fixtures of the training tests: the world of world.py and a tiny model trained on its chats."""
from __future__ import annotations

import pytest
from unit.train.world import World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory, library_env) -> World:
    return build_world(tmp_path_factory.mktemp("train_world"), library_env)


@pytest.fixture(scope="session")
def tiny_tokenizer(world, tmp_path_factory):
    from transformers import AutoTokenizer

    from toolorch.runtime.chat import chat_texts
    from toolorch.runtime.modeling import TinyModelSpec, build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("tiny"), chat_texts([t.messages for t in world.trajectories]),
                              TinyModelSpec(vocab_size=512, hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1),
                              seed=0)
    return folder, AutoTokenizer.from_pretrained(folder)
