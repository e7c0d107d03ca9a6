#!/usr/bin/python3
"""Reference chat-template renderer: python3-jinja2 configured as Hugging Face transformers
configures it (chat_template_utils.py): ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True, extensions=[AssistantTracker-like {% generation %}, loopcontrols]), a tojson
filter that is json.dumps, and the globals raise_exception and strftime_now.

usage: jinja_reference.py IN.json OUT.json
IN:  {"templates": {"name": "path", ...},
      "cases": [{"template": "name", "context": {...}, "now": unix_seconds}, ...]}
OUT: [{"ok": true, "text": "..."} | {"ok": false, "error": "..."}, ...] in case order.
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationPassthrough(Extension):
    # transformers' AssistantTracker renders {% generation %} bodies unchanged.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def make_env(now):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationPassthrough, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.fromtimestamp(now).strftime(fmt)
    return env


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    sources = {}
    for name, path in spec["templates"].items():
        with open(path, encoding="utf-8") as f:
            sources[name] = f.read()
    results = []
    compiled = {}
    for case in spec["cases"]:
        now = case.get("now", 0)
        key = (case["template"], now)
        try:
            if key not in compiled:
                compiled[key] = make_env(now).from_string(sources[case["template"]])
            text = compiled[key].render(**case["context"])
            results.append({"ok": True, "text": text})
        except Exception as e:  # any failure: the C++ side must fail too
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
