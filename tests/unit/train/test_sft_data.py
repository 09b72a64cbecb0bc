"""Tokenized chats mask everything but assistant text; rows of chats (side by side, or sharing
their prompt) give the losses of the chats one by one."""
from __future__ import annotations

import json

import pytest
import torch
from chat_templates import with_tools_template

from toolorch.runtime.chat import encode, render, tokenize_chat
from toolorch.train.packing import (
    Sample,
    collate,
    nll_sum,
    pack,
    pack_shared,
    token_logprobs,
)


def test_only_assistant_tokens_are_trained(world, tiny_tokenizer):
    _, tok = tiny_tokenizer
    traj = world.trajectories[0]
    ids, trained = tokenize_chat(tok, traj.messages)
    assert ids == encode(tok, tok.apply_chat_template(traj.messages, tokenize=False))
    text_trained = tok.decode([i for i, t in zip(ids, trained) if t])
    # ChatML: trained = each assistant message's content and end-of-turn, nothing else
    expected = "".join(m["content"] + "<|im_end|>\n" for m in traj.messages if m["role"] == "assistant")
    assert text_trained == expected
    assert sum(trained) < len(ids) / 2


def test_the_tiny_template_ignores_tools_so_the_tiny_tokens_stay_the_same(world, tiny_tokenizer):
    _, tok = tiny_tokenizer
    traj = world.trajectories[0]
    assert traj.tools and {t["function"]["name"] for t in traj.tools} >= {"book_author_id", "ask_frontier"}
    assert tokenize_chat(tok, traj.messages, traj.tools) == tokenize_chat(tok, traj.messages)
    assert render(tok, traj.messages[:2], traj.tools, generation_prompt=True) == \
        render(tok, traj.messages[:2], generation_prompt=True)


def test_tools_reach_a_template_that_renders_them_and_stay_masked(world, tiny_tokenizer):
    tok = with_tools_template(tiny_tokenizer[1])
    traj = world.trajectories[0]
    ids, trained = tokenize_chat(tok, traj.messages, traj.tools)
    assert ids == encode(tok, tok.apply_chat_template(traj.messages, tools=traj.tools, tokenize=False))
    without, _ = tokenize_chat(tok, traj.messages)
    assert len(ids) > len(without)
    untrained = tok.decode([i for i, t in zip(ids, trained) if not t])
    assert all(json.dumps(t) in untrained for t in traj.tools)  # every schema, in the masked system turn
    trained_text = tok.decode([i for i, t in zip(ids, trained) if t])
    assert trained_text == "".join(m["content"] + "<|im_end|>\n" for m in traj.messages if m["role"] == "assistant")


def test_pack_is_first_fit_and_truncates():
    s = [Sample([1] * n, [True] * n) for n in (5, 4, 3, 9)]
    rows = pack(s, max_len=8)
    assert [[len(x) for x in r] for r in rows] == [[5, 3], [4], [8]]


def test_pack_gives_a_chat_longer_than_a_row_a_row_of_its_own():
    s = [Sample([1] * n, [True] * n) for n in (3, 7, 2, 12, 1)]
    rows = pack(s, max_len=10, row_len=5)
    # 7 and the cut 12 (10) exceed the row: alone; 3 + 2 fill one row; 1 fits nowhere else
    assert [[len(x) for x in r] for r in rows] == [[3, 2], [7], [10], [1]]


def test_shared_head_holds_no_trained_token_and_tails_continue_its_positions():
    a = Sample([1, 2, 3, 4, 5], [False, False, False, True, True])
    b = Sample([1, 2, 3, 4, 6], [False, False, False, True, True])  # the trained 4 is the same: not shared
    c = Sample([7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [False, True] * 5)
    rows = pack_shared([c, b, a], max_len=9)
    assert [[(s.ids, s.after) for s in r] for r in rows] == [
        [([1, 2], 0), ([3, 4, 5], 2), ([3, 4, 6], 2)],  # sorted by ids; head = prompt minus its last token
        [([7, 8, 9, 10, 11, 12, 13, 14, 15], 0)]]  # over max_len: cut
    assert rows[0][0].trained == [False, False] and rows[0][1].trained == [False, True, True]
    batch = collate(rows[:1], pad_id=0)
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 2, 3, 4]
    allowed = batch["attention_mask"][0, 0] == 0
    assert allowed[5, :2].all() and not allowed[5, 2:5].any() and allowed[7, 5:8].all()  # head, not the other tail


def test_rows_stay_within_row_len_and_a_longer_chat_gets_a_row_of_its_own():
    prompt = [1] * 6
    short = [Sample(prompt + [t, t], [False] * 6 + [True, True]) for t in (2, 3, 4, 5)]
    long = Sample([9] * 12, [False] * 11 + [True])
    rows = pack_shared(short + [long], max_len=16, row_len=11)
    # a head of 5 prompt tokens and two 3-token tails per row; a third tail would make 14
    assert [[len(s) for s in r] for r in rows] == [[5, 3, 3], [5, 3, 3], [12]]
    assert [s.ids for s in rows[-1]] == [[9] * 12]  # longer than row_len, not cut: max_len is 16
    assert sum(sum(s.trained) for r in rows for s in r) == 4 * 2 + 1


def test_shared_prompt_rows_give_each_token_its_separate_row_logprob(world, tiny_tokenizer):
    folder, tok = tiny_tokenizer
    model = _model(folder)
    samples = [Sample(*tokenize_chat(tok, t.messages)) for t in world.trajectories[:6]]
    rows = pack_shared(samples, max_len=4096)
    assert sum(len(s) for r in rows for s in r) < 0.7 * sum(len(s) for s in samples)  # one system prompt per row
    with torch.no_grad():
        shared, n_shared = nll_sum(model, collate(rows, tok.pad_token_id))
        alone = [nll_sum(model, collate([[s]], tok.pad_token_id)) for s in samples]
        logp, _, trained = token_logprobs(model, collate(rows, tok.pad_token_id))
    assert n_shared == sum(n for _, n in alone) == sum(sum(s.trained[1:]) for s in samples)
    assert float(shared) == pytest.approx(sum(float(x) for x, _ in alone), rel=1e-4)
    # token by token, not only in sum: each tail's log-probs are those of its chat alone
    tails = [s for r in rows for s in r if any(s.trained)]
    by_tail = {tuple(s.ids): s for s in tails}
    with torch.no_grad():
        for s in samples:
            own, _, own_trained = token_logprobs(model, collate([[s]], tok.pad_token_id))
            tail = next(t for k, t in by_tail.items() if list(k) == s.ids[len(s) - len(k):])
            row = next(i for i, r in enumerate(rows) if any(x is tail for x in r))
            at = sum(len(x) for x in rows[row][:next(j for j, x in enumerate(rows[row]) if x is tail)])
            got = logp[row, at:at + len(tail) - 1][trained[row, at:at + len(tail) - 1]]
            torch.testing.assert_close(got, own[own_trained], rtol=1e-4, atol=1e-5)


def _model(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).eval()


def test_packed_and_unpacked_losses_match(world, tiny_tokenizer):
    folder, tok = tiny_tokenizer
    model = _model(folder)
    samples = [Sample(*tokenize_chat(tok, t.messages)) for t in world.trajectories[:5]]
    max_len = sum(len(s) for s in samples)
    rows = pack(samples, max_len)
    assert len(rows) == 1 and len(rows[0]) == 5
    with torch.no_grad():
        packed, n_packed = nll_sum(model, collate(rows, tok.pad_token_id))
        alone = [nll_sum(model, collate([[s]], tok.pad_token_id)) for s in samples]
    assert n_packed == sum(n for _, n in alone) > 0
    assert float(packed) == pytest.approx(sum(float(x) for x, _ in alone), rel=1e-4)


def test_padding_does_not_change_loss(world, tiny_tokenizer):
    folder, tok = tiny_tokenizer
    model = _model(folder)
    a, b = (Sample(*tokenize_chat(tok, t.messages)) for t in world.trajectories[:2])
    with torch.no_grad():
        together, _ = nll_sum(model, collate([[a], [b]], tok.pad_token_id))
        first, _ = nll_sum(model, collate([[a]], tok.pad_token_id))
        second, _ = nll_sum(model, collate([[b]], tok.pad_token_id))
    assert float(together) == pytest.approx(float(first) + float(second), rel=1e-4)


def test_trajectory_limit_spreads_over_tasks(tmp_path):
    from toolorch.core.jsonl import write_jsonl
    from toolorch.core.records import Trajectory, Usage
    from toolorch.stages.sft import load_trajectories

    def traj(task: str, k: int) -> Trajectory:
        return Trajectory(task_id=task, env="e", policy=f"p{k}", messages=[], turns=[], answer="a", correct=True,
                          stop_reason="answer", usage=Usage())

    path = tmp_path / "t.jsonl"
    write_jsonl(path, [traj(t, k) for t in ("a", "b", "c") for k in range(3)])  # cheapest first per task
    chosen = load_trajectories(path, 4)
    assert [(t.task_id, t.policy) for t in chosen] == [("a", "p0"), ("b", "p0"), ("c", "p0"), ("a", "p1")]
    assert len(load_trajectories(path, None)) == 9
