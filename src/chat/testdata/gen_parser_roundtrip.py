#!/usr/bin/env python3
"""Renders assistant turns (reasoning, text, tool calls) with the real chat templates in
/work/shared/testdata/templates through python's jinja2, cuts out what the model would have
generated after the generation prompt, and writes parser_roundtrip.json: parser_roundtrip_test
feeds each `output` to the family's parser and expects the original message back.

Run: python3 src/chat/testdata/gen_parser_roundtrip.py [templates_dir]
"""
import json
import os
import sys
from datetime import datetime

from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATES = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/testdata/templates"
HERE = os.path.dirname(os.path.abspath(__file__))

WEATHER = {"city": "Paris", "unit": "celsius"}
WRITE = {"path": "src/main.cpp",
         "content": "#include <cstdio>\nint main() {\n  printf(\"{}\\n\");\n  return 0;\n}"}
NESTED = {"query": "café \"au lait\" 日本", "filters": {"tags": ["a", "b}"], "limit": 5}, "exact": True}

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather",
     "parameters": {"type": "object", "properties": {
         "city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "write_file", "description": "Write a file",
     "parameters": {"type": "object", "properties": {
         "path": {"type": "string"}, "content": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "search", "description": "Search",
     "parameters": {"type": "object", "properties": {
         "query": {"type": "string"}, "filters": {"type": "object"},
         "exact": {"type": "boolean"}}}}},
]


def call(name, args, idx, args_as_string=False):
    return {"id": "call%05d" % idx + "abcd"[:4], "type": "function",
            "function": {"name": name,
                         "arguments": json.dumps(args, ensure_ascii=False) if args_as_string else args}}


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' chat-template tojson (no HTML escaping).
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def raise_exception(msg):
    raise RuntimeError(msg)


def render(template, messages, add_generation_prompt, extra):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime(2026, 11, 25).strftime(fmt)
    t = env.from_string(template)
    return t.render(messages=messages, tools=TOOLS, add_generation_prompt=add_generation_prompt,
                    bos_token="<s>", eos_token="</s>", **extra)


# (name, template file, parser family, reasoning mode, assistant message, extra vars, end-of-turn)
CASES = [
    ("qwen3_reasoning_text_two_calls", "Qwen-Qwen3-0.6B.jinja", "qwen3", "optional",
     {"reasoning_content": "Two lookups needed.", "content": "Checking both.",
      "tool_calls": [call("get_weather", WEATHER, 1), call("search", NESTED, 2)]}, {}, "<|im_end|>\n"),
    ("qwen3_args_as_string", "Qwen-Qwen3-0.6B.jinja", "qwen3", "optional",
     {"content": "", "tool_calls": [call("write_file", WRITE, 1, args_as_string=True)]}, {},
     "<|im_end|>\n"),
    ("qwen25_hermes", "Qwen-Qwen2.5-7B-Instruct.jinja", "hermes", "none",
     {"content": "", "tool_calls": [call("get_weather", WEATHER, 1), call("write_file", WRITE, 2)]},
     {}, "<|im_end|>\n"),
    ("qwen3_coder_xml", "Qwen3-Coder.jinja", "qwen3-coder", "none",
     {"content": "I'll write the file.", "tool_calls": [call("write_file", WRITE, 1),
                                                         call("search", NESTED, 2)]}, {},
     "<|im_end|>\n"),
    ("qwen35_xml_reasoning", "Qwen3.5-4B.jinja", "qwen35", "prompt",
     {"reasoning_content": "Need the weather first.", "content": "Let me check.",
      "tool_calls": [call("get_weather", WEATHER, 1), call("search", NESTED, 2)]}, {},
     "<|im_end|>\n"),
    ("qwen35_thinking_disabled", "Qwen3.5-4B.jinja", "qwen35", "prompt",
     {"content": "Plain answer, no tools.", "tool_calls": []}, {"enable_thinking": False},
     "<|im_end|>\n"),
    ("llama31_json", "meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3", "none",
     {"content": "", "tool_calls": [call("search", NESTED, 1)]}, {}, "<|eot_id|>"),
    ("llama33_json", "meta-llama-Llama-3.3-70B-Instruct.jinja", "llama3", "none",
     {"content": "", "tool_calls": [call("get_weather", WEATHER, 1)]}, {}, "<|eot_id|>"),
    ("mistral_nemo_array", "mistralai-Mistral-Nemo-Instruct-2407.jinja", "mistral", "none",
     {"content": None, "tool_calls": [dict(call("get_weather", WEATHER, 1), id="abcDEF123"),
                                      dict(call("search", NESTED, 2), id="xyzXYZ789")]}, {}, "</s>"),
    ("devstral_name_args", "unsloth-mistral-Devstral-Small-2507.jinja", "mistral", "none",
     {"content": "Looking it up.", "tool_calls": [call("get_weather", WEATHER, 1),
                                                  call("write_file", WRITE, 2)]}, {}, "</s>"),
    ("deepseek_r1_fenced", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "deepseek", "prompt",
     {"reasoning_content": "Weather, then search.", "content": None,
      "tool_calls": [call("get_weather", WEATHER, 1), call("search", NESTED, 2)]},
     {"enable_thinking": True}, "<｜end▁of▁sentence｜>"),
    # The Qwen-32B template renders string arguments through tojson: a quoted JSON string.
    ("deepseek_r1_qwen_string_args", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "deepseek",
     "prompt", {"reasoning_content": "Write it.", "content": None,
                "tool_calls": [call("write_file", WRITE, 1, args_as_string=True)]},
     {"enable_thinking": True}, "<｜end▁of▁sentence｜>"),
    # The original R1 template (Llama-8B copy) never closes a single call's block.
    ("deepseek_r1_llama_no_calls_end", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", "deepseek",
     "prompt", {"reasoning_content": "Write it.", "content": None,
                "tool_calls": [call("write_file", WRITE, 1, args_as_string=True)]},
     {"enable_thinking": True}, "<｜end▁of▁sentence｜>"),
    ("gpt_oss_analysis_call", "openai-gpt-oss-120b.jinja", "gpt-oss", "none",
     {"thinking": "User wants weather. Call the tool.", "content": "",
      "tool_calls": [call("get_weather", WEATHER, 1)]}, {}, ""),
    ("gpt_oss_final", "openai-gpt-oss-120b.jinja", "gpt-oss", "none",
     {"thinking": "Simple greeting.", "content": "Hello! 👋 How can I help?"}, {}, "<|return|>"),
]


def expected_of(msg):
    calls = []
    for c in msg.get("tool_calls") or []:
        args = c["function"]["arguments"]
        if isinstance(args, str):
            args = json.loads(args)
        calls.append({"name": c["function"]["name"], "arguments": args})
    reasoning = msg.get("reasoning_content") or msg.get("thinking") or ""
    return {"content": msg.get("content") or "", "reasoning_content": reasoning, "tool_calls": calls}


def main():
    out = []
    user = {"role": "user", "content": "What's the weather in Paris? Also search for café."}
    for name, tfile, family, reasoning, msg, extra, eot in CASES:
        with open(os.path.join(TEMPLATES, tfile), encoding="utf-8") as f:
            template = f.read()
        assistant = dict(msg, role="assistant")
        prompt = render(template, [user], True, extra)
        full = render(template, [user, assistant], False, extra)
        if full.startswith(prompt):
            output = full[len(prompt):]
        else:
            # DeepSeek-R1 opens <think> in the generation prompt but renders past turns
            # without reasoning: the model writes its reasoning and </think> before the rest.
            n = len(prompt.rstrip()) - len("<think>")
            if not prompt.rstrip().endswith("<think>") or not full.startswith(prompt[:n]):
                raise SystemExit("%s: prompt is not a prefix of the full render (at %d: %r vs %r)"
                                 % (name, n, prompt[n:n + 40], full[n:n + 40]))
            output = msg.get("reasoning_content", "") + "\n</think>\n\n" + full[n:]
        if eot and output.endswith(eot):
            output = output[: -len(eot)]
        if reasoning == "prompt":
            p = prompt.rstrip()
            reasoning = "starts_open" if p.endswith("<think>") else (
                "none" if p.endswith("</think>") else "optional")
        out.append({"name": name, "template": tfile, "family": family, "reasoning": reasoning,
                    "output": output, "expected": expected_of(msg)})
        print("%-32s %-12s %s" % (name, reasoning, json.dumps(output, ensure_ascii=False)[:150]))
    with open(os.path.join(HERE, "parser_roundtrip.json"), "w", encoding="utf-8") as f:
        json.dump({"tools": TOOLS, "cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
