"""Per-example randomised expert aliases and prices (core.catalog.disguise, Runtime.for_example), as
ToolOrchestra trains: seeded by the task, on only where a profile sets `episode.randomise`; the
episode calls the real expert behind an alias and pays the price it was shown."""
from __future__ import annotations

import pytest
import yaml

from toolorch.core.catalog import Randomisation, disguise
from toolorch.core.config import load_config, save_config
from toolorch.core.records import Preference, Task, ToolCall, expert_tool_name
from toolorch.runtime.episode import Runtime
from toolorch.stages import load_profile

TINY = "configs/tiny.yaml"
TASK = Task(id="t-7", env="bank", question="How many accounts?", answer="12", answer_type="number",
            preference=Preference(deny=["ask_frontier"], prefer=["ask_mini"]))


def randomised(*overrides: str):
    return load_config(TINY, ["episode.randomise={aliases: true, price_range: [0.5, 2.0]}", *overrides])


def test_same_seed_same_view_other_seeds_differ():
    catalog = load_config(TINY).catalog()
    how = Randomisation()
    views = [disguise(catalog, how, seed) for seed in range(20)]
    assert disguise(catalog, how, 3) == views[3]
    assert len({tuple(sorted(real.items())) for _, real in views}) > 1, "the mapping never changes"
    for seen, real in views:
        assert sorted(real) == ["model-1", "model-2", "model-3"] and sorted(real.values()) == sorted(catalog.names())
        assert [e.name for e in seen.experts] == sorted(real)  # the listing order gives nothing away
        for e in seen.experts:
            declared = catalog.expert(real[e.name]).price
            assert 0.5 * 0.99 <= e.price.output / declared.output <= 2.0 * 1.01
            assert e.simulated == catalog.expert(real[e.name]).simulated


def test_prices_only_and_bad_ranges():
    catalog = load_config(TINY).catalog()
    seen, real = disguise(catalog, Randomisation(aliases=False, price_range=(1.0, 1.0)), 0)
    assert real == {n: n for n in catalog.names()} and seen.experts == sorted(catalog.experts, key=lambda e: e.name)
    with pytest.raises(ValueError, match="need 0 < low <= high"):
        Randomisation(price_range=(2.0, 1.0))


def test_off_unless_the_profile_turns_it_on():
    runtime = Runtime.from_config(load_config(TINY))
    assert runtime.for_example(TASK) == (runtime, TASK)
    assert load_profile("configs/paper.yaml").episode.randomise is not None


def test_tiny_resolved_config_is_unchanged(tmp_path):
    text = save_config(load_config(TINY), tmp_path).read_text()
    assert "randomise" not in text and "eval_max_turns" not in text  # byte-identical to before they existed
    assert yaml.safe_load(save_config(randomised(), tmp_path / "r").read_text())["episode"]["randomise"]


def test_an_example_calls_the_real_expert_under_its_alias_and_pays_the_shown_price():
    runtime = Runtime.from_config(randomised())
    seen, task = runtime.for_example(TASK)
    assert runtime.for_example(TASK) == (seen, task)  # every rollout of the example alike
    assert seen.for_example(TASK) == (seen, TASK)  # disguised once
    real = {shown: next(n for n, e in runtime.experts.items() if e is expert) for shown, expert in seen.experts.items()}
    alias_of = {name: shown for shown, name in real.items()}
    assert task.preference.deny == [expert_tool_name(alias_of["frontier"])]
    assert task.preference.prefer == [expert_tool_name(alias_of["mini"])]
    toolbox = seen.toolbox(None, with_code=False)
    names = {s.name for s in toolbox.specs}
    assert {expert_tool_name(a) for a in real} <= names and "ask_frontier" not in names
    shown = alias_of["qwen-32b"]
    obs = toolbox.call(ToolCall(name=expert_tool_name(shown), arguments={"question": TASK.question}), task)
    assert not obs.error
    direct = runtime.toolbox(None, with_code=False).call(
        ToolCall(name=expert_tool_name("qwen-32b"), arguments={"question": TASK.question}), TASK)
    assert obs.content == direct.content  # the same simulated expert answered
    ratio = seen.catalog.expert(shown).price.output / runtime.catalog.expert("qwen-32b").price.output
    assert obs.usage.cost_usd == pytest.approx(direct.usage.cost_usd * ratio, rel=0.02)
