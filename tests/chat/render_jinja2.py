#!/usr/bin/python3
"""Oracle for pensieve's chat-template interpreter: renders a chat template with Python's
Jinja2 the way Hugging Face transformers' apply_chat_template does, i.e.

  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[loopcontrols])   (+ a no-op {% generation %})
  filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)
  globals: raise_exception(msg), strftime_now(fmt) (fixed date here: 2024-09-15 10:30:00)
  render(messages=..., tools=<list or None>, documents=None, add_generation_prompt=...,
         bos_token=..., eos_token=..., **extra_context)

Usage:
  render_jinja2.py TEMPLATE.jinja CONVERSATION.json [--add-generation-prompt]
      prints the rendering (exit 0) or the template error on stderr (exit 3)
  render_jinja2.py --golden TEMPLATE_DIR CONVERSATION_DIR OUT_DIR
      writes OUT_DIR/<template>__<conversation>__agp{0,1}.txt, or .err when Jinja2 raised

A conversation file is {"messages": [...], "tools": [...]?, "extra_context": {...}?}
(or just a list of messages). Use /usr/bin/python3 (Debian's python3-jinja2).
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

BOS = "<s>"
EOS = "</s>"
FIXED_NOW = datetime.datetime(2024, 9, 15, 10, 30, 0)


class GenerationTag(Extension):
    """HF's {% generation %}...{% endgeneration %} (assistant-mask tracking): renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def load_conversation(path):
    with open(path, encoding="utf-8") as f:
        conv = json.load(f)
    if isinstance(conv, list):
        conv = {"messages": conv}
    return conv


def render(env, template, conv, add_generation_prompt):
    """Renders a template (source text, or one compiled by env.from_string) for a conversation."""
    if isinstance(template, str):
        template = env.from_string(template)
    context = {"messages": conv["messages"], "tools": conv.get("tools"), "documents": None,
               "add_generation_prompt": add_generation_prompt, "bos_token": BOS, "eos_token": EOS}
    context.update(conv.get("extra_context", {}))
    return template.render(**context)


def read_template(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def golden(template_dir, conv_dir, out_dir):
    env = make_env()
    os.makedirs(out_dir, exist_ok=True)
    for old in os.listdir(out_dir):
        if old.endswith((".txt", ".err")):
            os.remove(os.path.join(out_dir, old))
    n_ok = n_err = 0
    for tname in sorted(os.listdir(template_dir)):
        if not tname.endswith(".jinja"):
            continue
        source = read_template(os.path.join(template_dir, tname))
        try:  # compiled once per template (compiling per rendering was most of the run time)
            compiled = env.from_string(source)
        except Exception as e:  # a syntax error: every rendering of it raises
            compiled = e
        for cname in sorted(os.listdir(conv_dir)):
            if not cname.endswith(".json"):
                continue
            conv = load_conversation(os.path.join(conv_dir, cname))
            for agp in (0, 1):
                base = os.path.join(out_dir, f"{tname[:-6]}__{cname[:-5]}__agp{agp}")
                try:
                    if isinstance(compiled, Exception):
                        raise compiled
                    text = render(env, compiled, conv, bool(agp))
                    with open(base + ".txt", "w", encoding="utf-8", newline="") as f:
                        f.write(text)
                    n_ok += 1
                except Exception as e:  # the template raised: C++ must raise too
                    with open(base + ".err", "w", encoding="utf-8", newline="") as f:
                        f.write(f"{type(e).__name__}: {e}\n")
                    n_err += 1
    print(f"{n_ok} renderings, {n_err} errors", file=sys.stderr)


def main(argv):
    if len(argv) == 4 and argv[0] == "--golden":
        golden(argv[1], argv[2], argv[3])
        return 0
    args = [a for a in argv if a != "--add-generation-prompt"]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    env = make_env()
    try:
        text = render(env, read_template(args[0]), load_conversation(args[1]),
                      "--add-generation-prompt" in argv)
    except Exception as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 3
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
