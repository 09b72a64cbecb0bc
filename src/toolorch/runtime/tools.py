"""The toolbox of one episode: environment tools, the code sandbox and expert models.

`Toolbox.call` never raises: unknown tools, bad arguments, tool exceptions and
timeouts all come back as error observations, with their cost accounted.
Real tools (db, search, code) are charged their declared cost/latency tags so
that rewards are reproducible; experts report what they actually consumed.
"""
from __future__ import annotations

from toolorch.core.catalog import Catalog
from toolorch.core.records import (
    ANSWER_TOOL,
    Observation,
    Task,
    ToolCall,
    ToolSpec,
    Usage,
    expert_tool_name,
)
from toolorch.runtime.env.world import EnvSession, ToolError, check_arguments
from toolorch.runtime.experts import Expert, ExpertError, ExpertReply, build_experts

CODE_PRICE_PER_S = 0.0000083  # ToolOrchestra's code-interpreter price


def code_tool(timeout_s: float) -> ToolSpec:
    return ToolSpec(
        name="run_python",
        description=f"Run a Python 3 program (no network, {timeout_s:g} s limit) and return what it prints.",
        parameters={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        kind="code", cost_usd=CODE_PRICE_PER_S, latency_s=1.0,
    )


def expert_tools(catalog: Catalog) -> list[ToolSpec]:
    specs = []
    for e in catalog.experts:
        p = e.price
        specs.append(ToolSpec(
            name=expert_tool_name(e.name),
            description=(e.description or f"Ask the {e.name} model.")
            + f" Price ${p.input:g}/M input, ${p.output:g}/M output tokens.",
            # `question` is optional: without it the expert gets the user's task, as ToolOrchestra's
            # experts see the problem itself; a small policy need not copy it.
            parameters={"type": "object", "properties": {"question": {"type": "string"}}, "required": []},
            kind="expert", latency_s=e.latency_prior_s,
            expert=e.name,
        ))
    return specs


def answer_tool(experts: list[str]) -> ToolSpec:
    """ToolOrchestra's `answer`: the chosen expert writes the final answer and the episode ends.

    A small policy then needs to pick a model, not to copy the expert's words.
    """
    return ToolSpec(
        name=ANSWER_TOOL,
        description="Have an expert model write the final answer to the task; this ends the task. "
                    "Prices and latencies as for the matching ask_ tool.",
        parameters={"type": "object", "properties": {"model": {"type": "string", "enum": experts}},
                    "required": ["model"]},
        kind="expert",
    )


def misfit(call: ToolCall, specs: list[ToolSpec]) -> str | None:
    """Why `call` fits none of `specs` (an unknown tool, arguments its schema rejects), or None.
    A call that fits may still fail when it runs; one that fits nothing is a format error."""
    spec = next((s for s in specs if s.name == call.name), None)
    if spec is None:
        return f"unknown tool '{call.name}'; available: {', '.join(s.name for s in specs)}"
    try:
        check_arguments(spec, call.arguments)
    except ToolError as e:
        return str(e)
    return None


class Toolbox:
    """The tools of one episode. `session` is the world the db and search tools act on (None: a
    request with no world, e.g. in serving); `experts` default to the catalog's, built with `seed`."""

    def __init__(self, catalog: Catalog, session: EnvSession | None, experts: dict[str, Expert] | None = None,
                 with_code: bool = True, seed: int = 0):
        self.catalog = catalog
        self.session = session
        self.experts = experts if experts is not None else build_experts(catalog, seed)
        self.specs: list[ToolSpec] = list(session.env.spec.tools) if session is not None else []
        if with_code:
            self.specs.append(code_tool(catalog.tools.code_timeout_s))
        self.specs += [s for s in expert_tools(catalog) if s.expert in self.experts]
        if self.experts and catalog.tools.answer_tool:
            self.specs.append(answer_tool([n for n in catalog.names() if n in self.experts]))
        self._by_name = {s.name: s for s in self.specs}

    def spec(self, name: str) -> ToolSpec | None:
        return self._by_name.get(name)

    def call(self, call: ToolCall, task: Task | None = None) -> Observation:
        spec = self._by_name.get(call.name)
        if spec is None:
            return Observation(tool=call.name, error=True, content=f"error: {misfit(call, self.specs)}")
        usage = Usage(cost_usd=spec.cost_usd, latency_s=spec.latency_s)
        try:
            if spec.kind == "expert":
                expert, question, final = self.expert_question(call, task)
                return self.expert_observation(call.name, expert, self.experts[expert].ask(question, task), final)
            if spec.kind == "code":
                from toolorch.runtime.env.sandbox import (
                    run_python,  # bwrap lookup only when code runs
                )

                args = check_arguments(spec, call.arguments)
                result = run_python(str(args["code"]), timeout_s=self.catalog.tools.code_timeout_s)
                usage = Usage(cost_usd=CODE_PRICE_PER_S * spec.latency_s, latency_s=spec.latency_s)
                return Observation(tool=call.name, content=self.clip(result.observation()),
                                   error=result.error is not None, usage=usage)
            if self.session is None:
                raise ToolError(f"'{call.name}' needs a world and this episode has none")
            content = self.session.call(spec, call)
        except (ToolError, ExpertError) as e:
            return Observation(tool=call.name, content=f"error: {e}", error=True, usage=usage)
        except Exception as e:  # a tool bug must not end the episode
            return Observation(tool=call.name, content=f"error: {call.name} failed: {e.__class__.__name__}: {e}",
                               error=True, usage=usage)
        return Observation(tool=call.name, content=self.clip(content), usage=usage)

    def expert_question(self, call: ToolCall, task: Task | None) -> tuple[str, str, bool]:
        """For an `ask_<expert>` or `answer` call: (the expert, the question it gets, whether its reply
        ends the episode). Without a `question` argument the expert gets the user's task. Raises ToolError."""
        spec = self._by_name[call.name]
        final = spec.name == ANSWER_TOOL
        if final:
            spec = self._by_name[expert_tool_name(check_arguments(spec, call.arguments)["model"])]
        args = {} if final else check_arguments(spec, call.arguments)
        assert spec.expert is not None
        return spec.expert, str(args.get("question") or (task.question if task else "")), final

    def expert_observation(self, tool: str, expert: str, reply: ExpertReply, final: bool = False) -> Observation:
        """An expert's reply as the orchestrator sees it, priced from the catalog."""
        price = self.catalog.expert(expert).price
        usage = Usage(tokens_in=reply.tokens_in, tokens_out=reply.tokens_out,
                      cost_usd=price.cost(reply.tokens_in, reply.tokens_out), latency_s=reply.latency_s)
        return Observation(tool=tool, content=self.clip(reply.text), usage=usage, final=final)

    def clip(self, text: str) -> str:
        limit = self.catalog.tools.max_observation_chars
        return text if len(text) <= limit else text[:limit] + f"\n...[truncated {len(text) - limit} chars]"
