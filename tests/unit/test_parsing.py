import json

from hypothesis import given, settings
from hypothesis import strategies as st

from toolorch.core.records import ToolCall
from toolorch.runtime.parsing import parse_assistant, render_call


def test_hermes_call_parsed():
    p = parse_assistant('<think>look it up</think><tool_call>{"name": "lookup", "arguments": {"id": 3}}</tool_call>')
    assert p.call == ToolCall(name="lookup", arguments={"id": 3}) and p.answer is None and p.error is None


def test_first_valid_call_wins():
    text = ('<tool_call>{"name": 5}</tool_call><tool_call>{"name": "a", "arguments": {}}</tool_call>'
            '<tool_call>{"name": "b", "arguments": {}}</tool_call>')
    assert parse_assistant(text).call.name == "a"


def test_arguments_as_json_string_accepted():
    p = parse_assistant('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>')
    assert p.call.arguments == {"x": 1}


def test_final_answer_forms():
    assert parse_assistant("<answer> Ada Byron </answer>").answer == "Ada Byron"
    assert parse_assistant("<think>hmm</think>42").answer == "42"
    assert parse_assistant("<think>unclosed").error is not None  # nothing visible: no answer


def test_tool_call_inside_think_is_ignored():
    p = parse_assistant('<think><tool_call>{"name": "x", "arguments": {}}</tool_call></think><answer>7</answer>')
    assert p.answer == "7" and p.call is None


def test_malformed_calls_are_errors_not_exceptions():
    for bad in ["<tool_call>{not json}</tool_call>", "<tool_call>[1, 2]</tool_call>",
                '<tool_call>{"arguments": {}}</tool_call>', '<tool_call>{"name": "f", "arguments": 3}',
                "<tool_call></tool_call>", "<tool_call>" + "[" * 100000 + "</tool_call>"]:
        p = parse_assistant(bad)
        assert p.call is None and p.answer is None and p.error, bad


def test_a_call_without_its_opening_tag_is_an_error_not_an_answer():
    # what a collapsed policy wrote: the call's end without its start. Scored as an answer it
    # ended the episode (and a task graded by database state alone could count it right)
    for text in ['"model": "frontier"model": "qwen32b"}}</tool_call>', '{"name": "f"}</tool_call> 42']:
        p = parse_assistant(text)
        assert p.answer is None and p.call is None and "<tool_call>" in p.error, text
    assert parse_assistant("<think>x</tool_call></think>42").answer == "42"  # hidden reasoning is not read


def test_unclosed_tool_call_still_parses():
    assert parse_assistant('<tool_call>{"name": "f", "arguments": {}}').call.name == "f"


def test_render_roundtrip():
    call = ToolCall(name="search", arguments={"query": "late fees ü", "k": [1, 2]})
    assert parse_assistant(render_call(call)).call == call


_tokens = st.sampled_from(["<tool_call>", "</tool_call>", "<think>", "</think>", "<answer>", "</answer>",
                           "{", "}", '"name"', '"arguments"', ":", ",", '"f"', "[", "]", "null", "1", " "])


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(_tokens, max_size=40).map("".join)))
def test_fuzz_parser_never_raises(text):
    p = parse_assistant(text)
    # exactly one outcome, always
    assert sum(x is not None for x in (p.call, p.answer, p.error)) == 1
    if p.call is not None:
        assert isinstance(p.call.arguments, dict)
        json.dumps(p.call.arguments)
