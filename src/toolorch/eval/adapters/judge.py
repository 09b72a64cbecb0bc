"""Judges of a predicted answer against the gold one: an LLM over an OpenAI-compatible endpoint,
or exact match after normalisation (the offline fallback).

    judge = LLMJudge(Endpoint(base_url="http://127.0.0.1:8000/v1", model="judge"))
    verdict = judge.judge(question, gold, prediction)    # Verdict(correct=True | False | None)

HLE and FRAMES are graded by a model because free-text answers rarely match verbatim.
A judge reply that says neither CORRECT nor INCORRECT is a judge failure (`correct is None`):
counted apart, and scored as not correct, never guessed. A dead endpoint is a `JudgeError`
after bounded retries: without a judge there is no score worth reporting.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from toolorch.core.records import normalize_answer
from toolorch.eval.adapters.endpoint import Endpoint, EndpointChat
from toolorch.runtime.openai_chat import EndpointError

JUDGE_PROMPT = """You grade answers. Decide whether the predicted answer to the question is correct,
given the gold answer.
It is correct if it means the same as the gold answer: equivalent wording, the same entity, or the same
number (up to rounding and units written differently). It is incorrect if it differs, is incomplete, hedges
between several answers, or is empty.

Question: {question}
Gold answer: {gold}
Predicted answer: {prediction}

Reply with exactly one word: CORRECT or INCORRECT."""


class JudgeError(RuntimeError):
    """The judge could not be asked (unreachable endpoint, refused request)."""


@dataclass(frozen=True)
class Verdict:
    correct: bool | None  # None: the judge's reply could not be read (a judge failure)
    raw: str = ""  # what the judge said (empty for exact match)

    @property
    def failed(self) -> bool:
        return self.correct is None


class Judge(Protocol):
    name: str

    def judge(self, question: str, gold: str, prediction: str | None, answer_type: str = "string") -> Verdict: ...


_LABEL = re.compile(r"\b(INCORRECT|NOT\s+CORRECT|CORRECT)\b", re.IGNORECASE)
_YES_NO = re.compile(r"\bcorrect\s*[:=]\s*(yes|no)\b", re.IGNORECASE)  # HLE's judge writes "correct: yes"


def _labels(text: str) -> set[bool]:
    return {not m.upper().startswith(("INCORRECT", "NOT")) for m in _LABEL.findall(text)}


def parse_verdict(text: str) -> bool | None:
    """CORRECT -> True, INCORRECT -> False; anything else (both, neither) -> None.

    A reply that reasons first ("not obviously CORRECT ... Verdict: INCORRECT") is decided
    by its last line that holds exactly one label.
    """
    m = _YES_NO.search(text)
    if m:
        return m.group(1).lower() == "yes"
    labels = _labels(text)
    if len(labels) == 1:
        return labels.pop()
    for line in reversed([ln for ln in text.splitlines() if ln.strip()]):
        labels = _labels(line)
        if len(labels) == 1:
            return labels.pop()
        if labels:
            break
    return None


class LLMJudge:
    def __init__(self, endpoint: Endpoint):
        self.name = f"llm:{endpoint.model}"
        self.endpoint = endpoint
        self.chat = EndpointChat(endpoint)

    def judge(self, question: str, gold: str, prediction: str | None, answer_type: str = "string") -> Verdict:
        if prediction is None or not prediction.strip():
            return Verdict(False, "(no prediction)")  # nothing to grade: no need to ask
        prompt = JUDGE_PROMPT.format(question=question, gold=gold, prediction=prediction)
        try:
            text = self.chat.say([{"role": "user", "content": prompt}], max_tokens=min(self.endpoint.max_tokens, 64))
        except EndpointError as e:
            raise JudgeError(f"judge '{self.endpoint.model}': {e}") from None
        return Verdict(parse_verdict(text), text)


_CHOICE = re.compile(r"^\(?([A-Z])\)?(?:[.:)\s]|$)")


class ExactMatchJudge:
    """Normalised equality (`toolorch.core.records.normalize_answer`); a multiple-choice letter matches
    a prediction that opens with that letter ("B", "(B)", "B. Paris")."""

    name = "exact_match"

    def judge(self, question: str, gold: str, prediction: str | None, answer_type: str = "string") -> Verdict:
        if prediction is None:
            return Verdict(False)
        if re.fullmatch(r"[A-Z]", gold.strip()):
            m = _CHOICE.match(prediction.strip())
            return Verdict(bool(m) and m.group(1) == gold.strip())
        return Verdict(normalize_answer(prediction, answer_type) == normalize_answer(gold, answer_type))


def build_judge(endpoint: Endpoint | None) -> Judge:
    return LLMJudge(endpoint) if endpoint is not None else ExactMatchJudge()
