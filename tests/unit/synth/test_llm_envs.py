"""The `llm` environment generator against a real HTTP server replaying recorded teacher answers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from fake_openai import FakeOpenAI

from toolorch.core.records import ToolCall
from toolorch.runtime.env.world import Environment
from toolorch.synth.envs import load_hints
from toolorch.synth.llm_checks import Invalid, parse_json_object
from toolorch.synth.llm_envs import STEPS, GenerationFailure, LLMGenerator, Rejection

ASSETS = Path(__file__).parents[2] / "assets" / "teacher"
VALID = json.loads((ASSETS / "vet_clinic.json").read_text())
INVALID = json.loads((ASSETS / "invalid.json").read_text())["cases"]


class FakeTeacher(FakeOpenAI):
    """An OpenAI-compatible /v1/chat/completions that answers each step from a script.

    `script[step]` is the list of answers for that step's successive requests; the last
    one repeats. Requests are recorded so tests can check the feedback the generator sent.
    """

    def __init__(self, script: dict[str, list[str]]):
        super().__init__(self._answer, usage=(10, 10))
        self.script = script
        self.served: dict[str, int] = {}

    def _answer(self, body: dict[str, Any]) -> str:
        prompt = body["messages"][1]["content"]
        step = next(s for s in STEPS if prompt.startswith(f"Step: {s}."))
        i = self.served.get(step, 0)
        self.served[step] = i + 1
        answers = self.script[step]
        return answers[min(i, len(answers) - 1)]


@pytest.fixture
def teacher() -> Iterator[FakeTeacher]:
    with FakeTeacher(dict(VALID["responses"])) as t:
        yield t


def generator(url: str, **kw: Any) -> LLMGenerator:
    return LLMGenerator(url, "teacher", max_attempts=kw.pop("max_attempts", 2), timeout_s=5, **kw)


def test_recorded_teacher_yields_a_valid_environment(teacher: FakeTeacher, tmp_path: Path) -> None:
    gen = generator(teacher.url)
    env = gen.generate("veterinary clinic", seed=3, out_dir=tmp_path)
    assert isinstance(env, Environment), env
    assert env.name == "veterinary_clinic" and (tmp_path / "veterinary_clinic" / "db.sqlite").exists()
    assert gen.rejections["veterinary clinic"] == [] and gen.counts()["rejected"] == 0
    assert [r["seed"] for r in teacher.requests] == [3, 3, 3, 3]  # one request per step, seeded
    reloaded = Environment.load(tmp_path / "veterinary_clinic")
    assert len(reloaded.spec.tools) == 10 and reloaded.tool("search").kind == "search"
    with reloaded.session() as s:
        snap = s.snapshot()
        assert {t: len(r) for t, r in snap.items()} == {"appointments": 8, "owners": 8, "pets": 8, "vets": 4}
        assert s.call(reloaded.tool("total_fees_for_pet"), ToolCall(name="total_fees_for_pet",
                                                                  arguments={"pet_name": "Biscuit"})) == "610.0"
        # The tool without example arguments was checked with arguments sampled from the rows.
        assert "Laura Chen" in s.call(reloaded.tool("owners_in_city"),
                                      ToolCall(name="owners_in_city", arguments={"city": "Maple Grove"}))
        assert "24 hours" in s.call(reloaded.tool("search"), ToolCall(name="search",
                                                                      arguments={"query": "cancellation fee"}))


def test_hints_keep_single_value_tools_and_verbatim_document_answers(teacher: FakeTeacher, tmp_path: Path) -> None:
    env = generator(teacher.url).generate("veterinary clinic", seed=0, out_dir=tmp_path)
    assert isinstance(env, Environment)
    hints = load_hints(env)
    by_name = {t.name: t for t in hints.tools}
    # Multi-row tools (pets_of_owner, visits_on_date, ...) give no single answer: not hinted.
    assert set(by_name) == {"owner_phone", "pet_species", "vet_of_specialty", "total_fees_for_pet",
                            "appointment_count_for_vet"}
    assert by_name["owner_phone"].noun == "the phone number of {full_name}"  # the teacher's own words
    assert by_name["owner_phone"].args[0].source == "owners.full_name"
    assert by_name["total_fees_for_pet"].role == "aggregate" and by_name["total_fees_for_pet"].answer_type == "number"
    assert by_name["pet_species"].noun == "the pet species for {pet_name}"
    # The third question's answer is not in its document's text, so it is dropped.
    assert [(f.answer, f.answer_type) for f in hints.facts] == [("13:00", "string"), ("100", "number")]


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_answer_is_rejected_with_its_reason_then_retried(case: str, tmp_path: Path) -> None:
    bad = INVALID[case]
    script = dict(VALID["responses"])
    script[bad["step"]] = [bad["content"]] + script[bad["step"]]
    with FakeTeacher(script) as teacher:
        gen = generator(teacher.url)
        env = gen.generate("veterinary clinic", seed=0, out_dir=tmp_path)
    assert isinstance(env, Environment), env
    [rejection] = gen.rejections["veterinary clinic"]
    assert (rejection.step, rejection.attempt) == (bad["step"], 1)
    assert bad["reason"] in rejection.reason, rejection.reason
    assert gen.counts()["rejected_by_step"][bad["step"]] == 1
    # The retry told the teacher why its answer was rejected.
    retry = [r for r in teacher.requests if r["messages"][1]["content"].startswith(f"Step: {bad['step']}.")][1]
    assert rejection.reason in retry["messages"][-1]["content"]


def test_exhausted_attempts_return_a_failure_record_not_an_exception(tmp_path: Path) -> None:
    script = dict(VALID["responses"])
    script["rows"] = [INVALID["fk_violation"]["content"], INVALID["check_violation"]["content"],
                      INVALID["unique_violation"]["content"]]
    with FakeTeacher(script) as teacher:
        gen = generator(teacher.url, max_attempts=3)
        result = gen.generate("veterinary clinic", seed=0, out_dir=tmp_path)
    assert isinstance(result, GenerationFailure)
    assert result.step == "rows" and len(result.rejections) == 3
    assert [r.attempt for r in result.rejections] == [1, 2, 3]
    assert "UNIQUE constraint failed" in result.reason
    assert gen.counts() == {"rejected": 3, "rejected_by_step": {"schema": 0, "rows": 3, "tools": 0,
                                                                "documents": 0, "write": 0}}
    assert teacher.served == {"schema": 1, "rows": 3}  # bounded: no request after the last attempt
    assert not (tmp_path / "veterinary_clinic").exists()


def test_unreachable_teacher_is_a_recorded_failure(tmp_path: Path) -> None:
    gen = LLMGenerator("http://127.0.0.1:9/v1", "teacher", max_attempts=2, timeout_s=1, request_attempts=1)
    result = gen.generate("bakery", seed=0, out_dir=tmp_path)
    assert isinstance(result, GenerationFailure) and result.step == "schema"
    assert all("EndpointError" in r.reason for r in result.rejections) and len(result.rejections) == 2


def test_parse_json_object_prefers_fenced_json() -> None:
    assert parse_json_object('text {"a": 0}\n```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Here: {"a": [1, 2]} done') == {"a": [1, 2]}
    with pytest.raises(Invalid, match="no JSON object"):
        parse_json_object("no braces at all")


def test_rejection_record_round_trips() -> None:
    r = Rejection(step="tools", attempt=2, reason="x")
    assert Rejection.model_validate_json(r.model_dump_json()) == r


@pytest.mark.vllm
def test_real_server_with_a_random_model_is_rejected_cleanly(vllm_server, tmp_path: Path) -> None:
    # A random-init model returns near-garbage: every answer must be rejected with a reason,
    # the domain must end as a counted failure, and nothing may raise.
    gen = LLMGenerator(vllm_server.base_url, vllm_server.model, max_attempts=2, timeout_s=120, max_tokens=48)
    results = [gen.generate(domain, seed=0, out_dir=tmp_path) for domain in ("bakery", "ferry line")]
    assert all(isinstance(r, GenerationFailure) and r.step == "schema" for r in results)
    assert gen.counts()["rejected"] == 4 and gen.counts()["rejected_by_step"]["schema"] == 4
    reasons = [r.reason for res in results for r in res.rejections]
    assert all(reason and "EndpointError" not in reason for reason in reasons), reasons  # the server did answer
    assert not any(tmp_path.iterdir())
