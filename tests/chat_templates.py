"""A chat template that renders `tools=`, for tests that must see the tools reach the template.

The tiny model's own template (toolorch.runtime.modeling.CHAT_TEMPLATE) ignores `tools`, so
with it a path that forgot to pass them would render the same tokens. This one is Qwen2.5's
layout in short: the schemas in the system turn inside <tools>, tool results as user turns
wrapped in <tool_response>.

    tok = with_tools_template(tokenizer)   # a copy; the original keeps its template
"""
from __future__ import annotations

import copy
from typing import Any

TOOLS_TEMPLATE = (  # newlines sit before block tags: HF renders with trim_blocks
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n{% endif %}"
    "# Tools\n<tools>\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}</tools><|im_end|>\n"
    "{% elif messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m['content'] }}\n</tool_response><|im_end|>\n"
    "{% elif m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def with_tools_template(tokenizer: Any) -> Any:
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = TOOLS_TEMPLATE
    return tok
