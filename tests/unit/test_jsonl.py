import pytest

from toolorch.core.jsonl import JsonlError, read_jsonl, write_jsonl
from toolorch.core.records import Task


def _task(i: int) -> Task:
    return Task(id=f"t{i}", env="e", question=f"q{i}", answer=str(i))


def test_roundtrip(tmp_path):
    path = tmp_path / "x" / "tasks.jsonl"
    assert write_jsonl(path, [_task(i) for i in range(3)]) == 3
    assert read_jsonl(path, Task) == [_task(i) for i in range(3)]
    assert not list(tmp_path.glob("x/*.tmp"))


@pytest.mark.parametrize("bad,needle", [
    ("{not json", "tasks.jsonl:2: invalid Task"),
    ('{"id": "t9", "env": "e", "question": "q"}', "tasks.jsonl:2: invalid Task: answer: Field required"),
    ('{"id": "t9", "env": "e", "question": "q", "answer": "1", "category": "poetry"}', ":2: invalid Task: category"),
    ('{"id": "t9", "env": "e", "question": "q", "answer": "1", "surprise": 1}', ":2: invalid Task: surprise"),
])
def test_bad_line_is_named(tmp_path, bad, needle):
    path = tmp_path / "tasks.jsonl"
    path.write_text(_task(1).model_dump_json() + "\n" + bad + "\n")
    with pytest.raises(JsonlError) as e:
        read_jsonl(path, Task)
    assert needle in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_jsonl(tmp_path / "nope.jsonl", Task)


def test_bytes_that_are_not_utf8_are_named_by_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(_task(1).model_dump_json().encode() + b"\n" + b'{"id": "\xff"}\n')
    with pytest.raises(JsonlError, match=r"tasks.jsonl:2: not UTF-8 text \(byte 9\)"):
        read_jsonl(path, Task)


def test_unwritable_record_is_named_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_jsonl(path, [_task(0)])
    broken = _task(2).model_copy(update={"question": "lone \ud800 surrogate"})
    with pytest.raises(JsonlError, match=r"tasks.jsonl: record 2 \(Task\) cannot be written: .*surrogates"):
        write_jsonl(path, [_task(1), broken])
    assert read_jsonl(path, Task) == [_task(0)]  # the previous file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["tasks.jsonl"]  # no half-written .tmp
