"""Benchmark adapters: public benchmarks run through toolorch policies and scored their own way.

    tau2_bench   tau2-bench airline conversations (agent = our policy, customer = a user simulator),
                 scored on final DB state and communicated facts
    tau2_user    the user simulators: an LLM over an OpenAI-compatible endpoint, or scripted
    qa_bench     HLE and FRAMES JSONL files a user supplies -> tasks in a small "open" world
    judge        an LLM judge (CORRECT / INCORRECT) and an exact-match fallback
    endpoint     the OpenAI-compatible endpoint settings both use
    suite        the eval stage's `benchmarks` block (settings and runner)
"""
