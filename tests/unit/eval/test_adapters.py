"""Benchmark adapters: HLE/FRAMES loaders, the judges, tau2-bench conversations and the eval stage's
`benchmarks` block. Endpoints are real HTTP servers on 127.0.0.1 that answer from a script."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from backends import missing_backend
from eval_tasks import library_tasks
from fake_openai import FakeOpenAI
from pydantic import ValidationError
from vllm_server import free_port

from toolorch.core.config import Config
from toolorch.core.jsonl import read_jsonl, write_jsonl
from toolorch.core.records import ToolCall
from toolorch.eval.adapters import qa_bench, tau2_bench
from toolorch.eval.adapters.endpoint import Endpoint
from toolorch.eval.adapters.judge import (
    ExactMatchJudge,
    JudgeError,
    LLMJudge,
    parse_verdict,
)
from toolorch.eval.adapters.qa_bench import (
    QAFormatError,
    QARow,
    build_open_env,
    load_frames,
    load_hle,
)
from toolorch.eval.adapters.suite import BenchmarkSettings
from toolorch.eval.adapters.tau2_bench import (
    Tau2Result,
    gold_agent,
    run_conversation,
    scripted_users,
)
from toolorch.eval.adapters.tau2_user import (
    AGENT_GREETING,
    STOP,
    LLMUserSimulator,
    ScriptedUser,
    UserSimulatorError,
)
from toolorch.eval.baselines import shared_maker
from toolorch.runtime.episode import Runtime
from toolorch.runtime.experts import ExpertReply
from toolorch.runtime.parsing import render_call
from toolorch.runtime.policies import AskToolPolicy, Generation
from toolorch.runtime.tools import Toolbox
from toolorch.stages import as_profile
from toolorch.stages import eval as eval_stage
from toolorch.synth import tau2

ASSETS = Path(__file__).parents[2] / "assets" / "bench"
HLE, FRAMES, DOCS = ASSETS / "hle_sample.jsonl", ASSETS / "frames_sample.jsonl", ASSETS / "documents_sample.jsonl"


def endpoint(url: str, **kw: Any) -> Endpoint:
    return Endpoint(base_url=url, model="scripted", timeout_s=5, backoff_s=0.01, **kw)


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


# ---- HLE / FRAMES loaders ---------------------------------------------------------------------

def test_hle_loader_reads_the_sample_and_skips_image_rows() -> None:
    hle = load_hle(HLE)
    assert [c.task.id for c in hle.cases] == ["hle-6687ffb1091058ff19128813", "hle-668825f80a642802bdfeadfa",
                                              "hle-670c1a137d9abe2d345031d4"]
    assert hle.skipped == {"66e8784d70625d8c7700315a": "has an image (text-only evaluation)"}
    first = hle.cases[0]
    assert (first.task.answer, first.task.category, first.task.env, first.subject) == ("97", "reasoning", "open",
                                                                                       "Math")
    assert len(load_hle(HLE, text_only=False).cases) == 4 and len(load_hle(HLE, max_tasks=2).cases) == 2


def test_frames_loader_accepts_the_common_field_variants() -> None:
    frames = load_frames(FRAMES)
    assert [c.task.id for c in frames.cases] == ["frames-0", "frames-1", "frames-frames-x2"]
    assert [c.task.answer for c in frames.cases] == ["The English Channel", "21", "Mercury"]
    assert frames.cases[0].links == ("https://en.wikipedia.org/wiki/Eiffel_Tower", "https://en.wikipedia.org/wiki/Seine")
    assert len(frames.cases[2].links) == 2  # a JSON list instead of the dataset's string
    assert frames.cases[1].subject == "Numerical reasoning | Temporal reasoning"
    assert all(c.task.category == "document" for c in frames.cases)
    only_columns = {"Prompt": "q", "Answer": "a", "wikipedia_link_2": "https://b", "wikipedia_link_1": "https://a"}
    assert qa_bench.frames_links(only_columns) == ("https://a", "https://b")


@pytest.mark.parametrize("bad_line, message", [
    ('{"id": "x", "question": "q"', "not valid JSON"),
    ('["not", "an", "object"]', "expected a JSON object"),
    ('{"id": "x", "question": "q", "answer": ""}', "no non-empty field among 'answer'"),
    ('{"id": "x", "question": {"text": "q"}, "answer": "a"}', "field 'question' must be text"),
    ('{"id": "6687ffb1091058ff19128813", "question": "q", "answer": "a"}', "duplicate id"),
])
def test_a_malformed_row_names_the_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "hle.jsonl"
    path.write_text(HLE.read_text().splitlines()[0] + "\n\n" + bad_line + "\n")
    with pytest.raises(QAFormatError, match=rf"hle\.jsonl:3: .*{message}"):
        load_hle(path)
    with pytest.raises(FileNotFoundError, match="no such benchmark file"):
        load_hle(tmp_path / "missing.jsonl")


def test_open_world_searches_the_supplied_documents(tmp_path: Path) -> None:
    env = build_open_env(tmp_path / "open", DOCS)
    assert [t.name for t in env.spec.tools] == ["search"] and len(env.docs) == 3
    with env.session() as s:
        assert "English Channel" in s.call(env.tool("search"), ToolCall(name="search", arguments={"query": "Seine"}))
        assert "1990" in s.call(env.tool("search"), ToolCall(name="search", arguments={"query": "Hubble launched"}))
    bare = build_open_env(tmp_path / "bare")
    assert bare.spec.tools == [] and bare.docs == []


# ---- judges -----------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, verdict", [
    ("CORRECT", True), ("INCORRECT", False), ("correct.", True), (" Incorrect\n", False),
    ("The prediction is NOT correct.", False), ("correct: yes", True), ("correct: no", False),
    ("It may look CORRECT at first.\nVerdict: INCORRECT", False),
    ("banana", None), ("", None), ("CORRECT or INCORRECT", None),
])
def test_parse_verdict(reply: str, verdict: bool | None) -> None:
    assert parse_verdict(reply) is verdict


def test_exact_match_scores_gold_answers_as_fully_correct() -> None:
    cases = load_hle(HLE).cases + load_frames(FRAMES).cases
    judge = ExactMatchJudge()
    gold = qa_bench.score_predictions(cases, {c.task.id: c.task.answer for c in cases}, judge)
    summary = qa_bench.summarize_qa(gold)
    assert summary["hle"]["predictions"]["accuracy"] == 1.0 and summary["frames"]["predictions"]["accuracy"] == 1.0
    wrong = qa_bench.score_predictions(cases, {c.task.id: "Paris" for c in cases}, judge)
    assert not any(r.correct for r in wrong)
    assert qa_bench.score_predictions(cases, {}, judge)[0].correct is False  # no answer
    # a multiple-choice gold letter matches a prediction that opens with that choice
    assert [judge.judge("", "B", p).correct for p in ("(B)", "B. Nitrogen", "b", "A", "Both")] == [
        True, True, False, False, False]


def test_llm_judge_counts_garbage_as_a_judge_failure() -> None:
    cases = load_frames(FRAMES).cases
    replies = {"The English Channel": "CORRECT", "22": "INCORRECT", "Mercury": "I would rather not say."}

    def reply(req: dict[str, Any]) -> str:
        prompt = req["messages"][0]["content"]
        return next(v for k, v in replies.items() if f"Predicted answer: {k}\n" in prompt)

    with FakeOpenAI(reply) as fake:
        judge = LLMJudge(endpoint(fake.url))
        preds = {"frames-0": "The English Channel", "frames-1": "22", "frames-frames-x2": "Mercury"}
        rows = qa_bench.score_predictions(cases, preds, judge, policy="p")
        assert judge.judge("q", "gold", None).correct is False  # no prediction: no request
    assert [(r.correct, r.judge_failed) for r in rows] == [(True, False), (False, False), (False, True)]
    summary = qa_bench.summarize_qa(rows)["frames"]["p"]
    assert summary["accuracy"] == pytest.approx(1 / 3) and summary["judge_failures"] == 1
    assert len(fake.requests) == 3 and all(r["model"] == "scripted" and r["temperature"] == 0 for r in fake.requests)
    first = fake.requests[0]["messages"][0]["content"]
    assert "Gold answer: The English Channel" in first and cases[0].task.question in first


def test_llm_judge_retries_a_bounded_number_of_times_then_fails_clearly() -> None:
    with FakeOpenAI(lambda req: 503) as fake:
        with pytest.raises(JudgeError, match="unreachable after 3 attempts"):
            LLMJudge(endpoint(fake.url, max_retries=2)).judge("q", "a", "b")
    assert len(fake.requests) == 3
    start = time.monotonic()
    with pytest.raises(JudgeError, match=r"judge 'scripted': .*unreachable after 2 attempts"):
        LLMJudge(endpoint(dead_url(), max_retries=1)).judge("q", "a", "b")
    assert time.monotonic() - start < 5


def test_qa_episodes_in_the_open_world_are_graded_by_the_judge(tmp_path: Path, sim_config: Config) -> None:
    cases = load_frames(FRAMES).cases
    env = build_open_env(tmp_path / "open", DOCS)
    judge = ExactMatchJudge()
    right = qa_bench.run_qa(cases, env, shared_maker(AskToolPolicy("ask_frontier")), "frontier", Runtime.from_config(sim_config),
                            judge)
    wrong = qa_bench.run_qa(cases, env, shared_maker(AskToolPolicy("ask_mini")), "mini", Runtime.from_config(sim_config), judge)
    summary = qa_bench.summarize_qa(right + wrong)["frames"]
    assert summary["frontier"]["accuracy"] == 1.0 and summary["mini"]["accuracy"] == 0.0  # simulated 1.0 / 0.0
    assert summary["frontier"]["cost_usd"] > summary["mini"]["cost_usd"] > 0
    assert right[0].tool_counts == {"ask_frontier": 1} and right[0].answer == "The English Channel"


# ---- tau2-bench -------------------------------------------------------------------------------

TAU2_IDS = ["0", "1", "3", "8", "14", "19", "27"]  # refusal, read-only, communicate, book, many, cancel, certificate
WRITES = {"8", "14", "19", "27"}


@pytest.fixture(scope="module")
def tau2_world(tmp_path_factory: pytest.TempPathFactory):
    try:
        tau2.data_dir("airline")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        missing_backend("tau2-bench data", str(e))
    env, cases, unconverted = tau2_bench.load_cases("airline", tmp_path_factory.mktemp("bench"), ids=TAU2_IDS)
    assert unconverted == {}
    return env, {c.tau2_id: c for c in cases}


class SaysNothingUseful:
    name = "nothing"

    def generate(self, messages: list[dict[str, Any]], tools: Any = None) -> Generation:
        return Generation("<answer>Sorry, I cannot help with that.</answer>", 10, 8)


class CallsForever:
    name = "loop"

    def generate(self, messages: list[dict[str, Any]], tools: Any = None) -> Generation:
        call = ToolCall(name="get_user_details", arguments={"user_id": "mia_li_3668"})
        return Generation(render_call(call), 10, 20)


def converse(env, case, policy, user=None, cfg: Config | None = None, experts=None, max_steps: int = 60):
    cfg = cfg or Config()
    with env.session() as session:
        toolbox = Toolbox(cfg.catalog(), session, experts=experts if experts is not None else {})
        return run_conversation(case, policy, toolbox, cfg.episode.limits(), user or scripted_users(case), max_steps)


def test_gold_calls_with_a_scripted_user_score_one_on_every_task(tau2_world) -> None:
    env, cases = tau2_world
    results = {i: converse(env, c, gold_agent(c)) for i, c in cases.items()}
    assert {i: r.reward for i, r in results.items()} == {i: 1.0 for i in TAU2_IDS}
    assert all(r.stop_reason == "user_stop" and r.db_match and not r.missing_info for r in results.values())
    assert results["8"].tool_counts["add_reservation_passenger"] == 2 and results["8"].user_turns == 1
    summary = tau2_bench.summarize_tau2(list(results.values()))["gold"]
    assert summary["n"] == len(TAU2_IDS) and summary["reward"] == 1.0 and summary["stop_reasons"] == {
        "user_stop": len(TAU2_IDS)}


def test_an_agent_that_does_nothing_fails_write_and_communicate_tasks(tau2_world) -> None:
    env, cases = tau2_world
    results = {i: converse(env, c, SaysNothingUseful()) for i, c in cases.items()}
    assert all(results[i].reward == 0.0 and not results[i].db_match for i in WRITES)
    assert results["3"].reward == 0.0 and results["3"].db_match and results["3"].missing_info == ["4"]
    # tau2 gives a refusal task and a read-only task full marks when the world is left untouched
    assert results["0"].reward == 1.0 and results["1"].reward == 1.0


def test_info_left_unsaid_and_runaway_agents_score_zero(tau2_world) -> None:
    env, cases = tau2_world
    case = cases["14"]
    silent = tau2_bench.PlanPolicy(case.task.gold_calls, name="silent", answer=lambda prev: "Done.")
    result = converse(env, case, silent)
    assert result.db_match and result.missing_info == list(case.communicate_info) and result.reward == 0.0
    runaway = converse(env, cases["1"], CallsForever(), max_steps=4)
    assert (runaway.stop_reason, runaway.agent_steps, runaway.reward) == ("max_steps", 4, 0.0)


class RecordingExpert:
    name = "frontier"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def ask(self, prompt: str, task=None) -> ExpertReply:
        self.prompts.append(prompt)
        return ExpertReply("Answer: I have cancelled nothing yet; which reservation do you mean?", 50, 12, 1.0)


def test_the_agent_sees_the_customer_not_the_scenario_and_experts_can_speak(tau2_world, sim_config: Config) -> None:
    env, cases = tau2_world
    case = cases["19"]
    hidden = case.user_scenario["instructions"]["task_instructions"].strip().splitlines()[0]
    expert = RecordingExpert()

    class AnswersViaExpert:
        name = "via-expert"

        def generate(self, messages: list[dict[str, Any]], tools: Any = None) -> Generation:
            return Generation(render_call(ToolCall(name="answer", arguments={"model": "frontier"})), 10, 10)

    user = ScriptedUser(case.user_scenario, max_answers=1)
    result = converse(env, case, AnswersViaExpert(), user, sim_config, {"frontier": expert})
    agent_view = json.dumps(result.messages)
    system = result.messages[0]["content"]
    assert "ask_frontier" in system and "answer(model: frontier)" in system and "get_user_details" in system
    assert result.messages[1] == {"role": "user", "content": user.first_message()}
    assert hidden not in agent_view and hidden not in "".join(expert.prompts)
    # the expert read the conversation and its words reached the customer (who answered, then stopped)
    assert "Customer: " + user.first_message() in expert.prompts[0]
    assert user.heard[0] == "I have cancelled nothing yet; which reservation do you mean?"
    assert result.user_turns == 2 and result.stop_reason == "user_stop" and result.tool_counts == {"ask_frontier": 2}
    assert result.cost_usd > 0 and result.reward == 0.0  # the cancellation never happened


def test_llm_user_simulator_speaks_the_tau2_protocol(tau2_world) -> None:
    env, cases = tau2_world
    case = cases["19"]
    script = iter(["Hi, I want to cancel a reservation.", f"No, thank you. {STOP}"])
    with FakeOpenAI(lambda req: next(script)) as fake:
        user = LLMUserSimulator(endpoint(fake.url), case.user_scenario, guidelines="GUIDELINES")
        result = converse(env, case, SaysNothingUseful(), user)
    first, second = fake.requests
    system = first["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("GUIDELINES\n\n<scenario>")
    assert case.user_scenario["instructions"]["known_info"].splitlines()[0] in system["content"]
    assert first["messages"][1:] == [{"role": "user", "content": AGENT_GREETING}]
    assert second["messages"][2:] == [{"role": "assistant", "content": "Hi, I want to cancel a reservation."},
                                      {"role": "user", "content": "Sorry, I cannot help with that."}]
    assert (result.stop_reason, result.user_turns, result.reward) == ("user_stop", 1, 0.0)
    assert result.messages[1]["content"] == "Hi, I want to cancel a reservation."


def test_a_dead_user_simulator_fails_clearly_after_bounded_retries(tau2_world) -> None:
    env, cases = tau2_world
    start = time.monotonic()
    user = LLMUserSimulator(endpoint(dead_url(), max_retries=2), cases["1"].user_scenario)
    with pytest.raises(UserSimulatorError, match="unreachable after 3 attempts"):
        user.first_message()
    with FakeOpenAI(lambda req: 500) as fake:
        result = converse(env, cases["1"], gold_agent(cases["1"]),
                          LLMUserSimulator(endpoint(fake.url, max_retries=1), cases["1"].user_scenario))
    assert len(fake.requests) == 2 and time.monotonic() - start < 10
    assert (result.stop_reason, result.reward, result.agent_steps) == ("user_error", 0.0, 0)
    assert "user simulator 'scripted'" in result.error
    with FakeOpenAI(lambda req: "   ") as fake:
        with pytest.raises(UserSimulatorError, match="empty message"):
            LLMUserSimulator(endpoint(fake.url), cases["1"].user_scenario).first_message()


# ---- the eval stage's benchmarks block --------------------------------------------------------

def test_tau2_benchmark_needs_a_user_simulator() -> None:
    with pytest.raises(ValidationError, match="needs benchmarks.user_simulator"):
        BenchmarkSettings.model_validate({"tau2": {}})


def _stage_run(tmp_path: Path, library_env, cfg: Config, name: str) -> dict[str, Any]:
    envs = tmp_path / "envs"
    if not envs.exists():
        envs.mkdir()
        (envs / "minilib").symlink_to(library_env.db_path.parent, target_is_directory=True)
        write_jsonl(tmp_path / "heldout.jsonl", library_tasks()[:3])
    eval_stage.run(as_profile(cfg), tmp_path / "heldout.jsonl", envs, tmp_path / "models", tmp_path / name,
                   tmp_path / f"{name}.json")
    metrics = json.loads((tmp_path / f"{name}.json").read_text())
    metrics.pop("wall_s")
    return metrics


@pytest.mark.slow  # two stage runs (~7 s)
def test_eval_stage_adds_a_benchmarks_block_recomputable_from_its_rows(tmp_path: Path, library_env,
                                                                      sim_config: Config, tau2_world) -> None:
    stage = {"policies": ["only:frontier"], "bootstrap_samples": 20, "sweep_policies": [],
             "generalisation": {"unseen_pricing": False, "unseen_tool": False}}
    plain = _stage_run(tmp_path, library_env, sim_config.model_copy(update={"stages": {"eval": stage}}), "plain")
    assert "benchmarks" not in plain
    with FakeOpenAI(lambda req: f"Thanks, bye. {STOP}") as fake:
        bench = {"policies": ["only:frontier", "only:mini"], "hle": str(HLE), "frames": str(FRAMES),
                 "documents": str(DOCS), "tau2": {"task_ids": ["3", "19"], "max_steps": 6, "policy_in_prompt": False},
                 "user_simulator": {"base_url": fake.url, "model": "user", "backoff_s": 0.01}}
        cfg = sim_config.model_copy(update={"stages": {"eval": {**stage, "benchmarks": bench}}})
        metrics = _stage_run(tmp_path, library_env, cfg, "bench")
    block = metrics.pop("benchmarks")
    assert metrics == plain  # additive: the rest of eval.json is unchanged
    # simulated experts: frontier is always right, mini never (tests/unit/conftest.py)
    assert {p: s["accuracy"] for p, s in block["frames"].items()} == {"only:frontier": 1.0, "only:mini": 0.0}
    # mini's decoy for the multiple-choice gold "B" is another letter, so it fails that one too
    assert block["hle"]["only:frontier"]["accuracy"] == 1.0 and block["hle"]["only:mini"]["by_subject"] == {
        "Chemistry": {"n": 1, "accuracy": 0.0}, "Computer Science/AI": {"n": 1, "accuracy": 0.0},
        "Math": {"n": 1, "accuracy": 0.0}}
    assert block["hle"]["only:frontier"]["n"] == 3 and block["frames"]["only:mini"]["n"] == 3
    assert block["skipped"] == {"hle_sample.jsonl": {"66e8784d70625d8c7700315a": "has an image (text-only evaluation)"}}
    tau = block["tau2_airline"]
    # task 3 only asks to be told a number; task 19 needs a cancellation no expert can make
    assert tau["only:frontier"]["by_category"]["aggregate"]["reward"] == 1.0 and tau["only:mini"]["reward"] == 0.0
    assert tau["only:frontier"]["reward"] == 0.5 and tau["only:frontier"]["stop_reasons"] == {"user_stop": 2}
    assert block["judge"] == "exact_match" and any("simulated" in n for n in block["notes"])
    out = tmp_path / "bench"
    qa = qa_bench.summarize_qa(read_jsonl(out / "bench_qa.jsonl", QARow))
    assert qa == {"hle": block["hle"], "frames": block["frames"]}
    assert tau2_bench.summarize_tau2(read_jsonl(out / "bench_tau2.jsonl", Tau2Result)) == tau
