#!/usr/bin/python3
"""Unit cases for pensieve's Jinja interpreter, with the output Python's Jinja2 gives for each.

Writes language_cases.json (or the path given): a list of {"template", "context", "env",
"expected" | "error"}; env "hf" is transformers' environment (render_jinja2.make_env), "raw"
is Jinja2's defaults (trim_blocks=False, lstrip_blocks=False). Run with /usr/bin/python3.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import render_jinja2 as R  # noqa: E402
from jinja2 import Environment
env = R.make_env()
raw_env = Environment()  # Jinja2 defaults: trim_blocks=False, lstrip_blocks=False
CASES = [
  # (template, context)
  ("Hello {{ name }}!", {"name": "World"}),
  ("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 4 / 2 }}", {}),
  ("{{ 'a' ~ 1 ~ none ~ true ~ 1.5 ~ undefined_var }}", {}),
  ("{{ 'ab' + 'cd' }} {{ [1, 2] + [3] }} {{ 'ab' * 3 }} {{ 3 * [0] }}", {}),
  ("{{ none }} {{ true }} {{ false }} {{ 1.0 }} {{ 1e20 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ 123456789.125 }}", {}),
  ("{{ {'a': 1, 'b': [1, 'x', none, true], 'c': {'d': 1.5}} }} {{ (1,) }} {{ (1, 2) }} {{ \"it's\" }} {{ ['it\\'s', 'a\"b', 'both\\'\"'] }}", {}),
  ("{% if x %}yes{% elif y %}maybe{% else %}no{% endif %}|{% if not x and y %}Y{% endif %}|{% if x or y %}O{% endif %}", {"x": False, "y": True}),
  ("{{ 1 < 2 < 3 }} {{ 1 < 2 > 3 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 'a' in 'cat' }} {{ 2 not in [1, 2] }} {{ 'k' in {'k': 1} }}", {}),
  ("{% for x in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}:{{ x }} {% endfor %}", {"items": ["a", "b", "c"]}),
  ("{% for x in items %}[{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}]{% endfor %}", {"items": [1, 2, 3]}),
  ("{% for x in items if x > 1 %}{{ x }}{{ loop.length }}{% else %}empty{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}", {"items": [1, 2, 3]}),
  ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"z": 1, "a": 2}}),
  ("{% for x in [1,2,3,4,5] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
  ("{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
  ("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}", {}),
  ("{% set ns = namespace(total=0, names=[]) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% set ns.names = ns.names + [i] %}{% endfor %}{{ ns.total }} {{ ns.names }}", {}),
  ("{% set a, b = [1, 2] %}{% set c, d = 'xy' %}{{ a }}{{ b }}{{ c }}{{ d }}", {}),
  ("{% set block %}  Hello {{ name }}  {% endset %}[{{ block }}]{% set t | trim %}  padded  {% endset %}[{{ t }}]", {"name": "you"}),
  ("{% filter upper %}shout {{ name }}{% endfilter %}|{% filter trim | title %}  the end  {% endfilter %}", {"name": "it"}),
  ("{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', 'Hi') }} {{ greet(name='Cy', punct='?') }}", {}),
  ("{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(4) }}", {}),
  ("{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner {{ x }}{% endcall %}", {"x": 42}),
  ("{% macro show() %}{{ late }}{% endmacro %}{% set late = 'bound' %}{{ show() }}", {}),
  ("{{ x is defined }} {{ y is undefined }} {{ n is none }} {{ s is string }} {{ d is mapping }} {{ l is iterable }} {{ s is iterable }} {{ 3 is number }} {{ l is sequence }} {{ true is true }} {{ false is false }} {{ 1 is true }}", {"x": 1, "n": None, "s": "s", "d": {}, "l": []}),
  ("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'a' is in 'abc' }} {{ 2 is equalto 2 }} {{ x is not none }} {{ 1 is integer }} {{ 1.5 is float }} {{ true is boolean }} {{ 'abc' is lower }}", {"x": 1}),
  ("{{ '  hi  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'Hello'|length }}|{{ [1,2]|length }}|{{ {'a':1}|count }}|{{ 'héllo'|length }}|{{ 'ab'|upper }}{{ 'AB'|lower }}|{{ 'hello wORLD-foo(bar'|title }}|{{ 'hELLO world'|capitalize }}", {}),
  ("{{ 'a-b-c'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ [1, 2, 3]|join(', ') }} {{ ['a','b']|join }} {{ users|join(', ', attribute='name') }}", {"users": [{"name": "x"}, {"name": "y"}]}),
  ("{{ missing|default('dflt') }} {{ ''|default('empty', true) }} {{ none|default('n') }} {{ 0|d('zero', boolean=true) }}", {}),
  ("{{ [3, 1, 2]|first }} {{ [3, 1, 2]|last }} {{ 'abc'|first }} {{ 'abc'|list }} {{ {'a': 1}|list }} {{ {'a': 1, 'b': [2]}|items|list }}", {}),
  ("{{ users|selectattr('admin')|map(attribute='name')|join(',') }}|{{ users|rejectattr('admin')|map(attribute='name')|list }}|{{ users|selectattr('role', 'equalto', 'x')|list|length }}|{{ [1, 2, 3, 4]|select('odd')|list }}|{{ [1, 2, 3]|reject('equalto', 2)|list }}", {"users": [{"name": "a", "admin": True, "role": "x"}, {"name": "b", "admin": False, "role": "y"}]}),
  ("{{ ['b', 'A', 'a', 'B']|unique|list }} {{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort(reverse=true) }} {{ [1, 2, 3]|sum }} {{ [4, 9, 2]|max }} {{ [4, 9, 2]|min }} {{ [1, 2]|reverse|list }} {{ 'abc'|reverse }} {{ ['1', '2']|map('int')|sum }}", {}),
  ("{{ '42'|int + 1 }} {{ '4.7'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '1.5'|float }} {{ 2|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 42|string ~ 'x' }} {{ {'b': 1, 'a': 2}|dictsort }}", {}),
  ("{{ d|tojson }} {{ d|tojson(indent=2) }} {{ 'é<>&\\'\"\\n'|tojson }} {{ [1, 1.5, true, none]|tojson }} {{ {}|tojson(indent=2) }} {{ []|tojson }} {{ d|tojson(sort_keys=true) }}", {"d": {"z": [1, {"y": None}], "a": "x"}}),
  ("{{ 'line1\\nline2\\n\\nline4'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(width='>', blank=true) }}", {}),
  ("{{ '<b>'|e }} {{ '<b>'|safe }} {{ '<i>'|escape }} {{ 'x'|safe + '<y>' }} {{ '<a>' + 'b'|safe }} {{ ('a'|safe ~ '<') }}", {}),
  ("{{ '  x y  '.strip() }}|{{ 'xxyxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a/b/c'.rsplit('/', 1) }}|{{ 'l1\\nl2'.splitlines() }}", {}),
  ("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'Ab'.upper() }} {{ 'Ab'.lower() }} {{ 'they\\'re bill'.title() }} {{ 'hELLO'.capitalize() }} {{ 'aXa'.replace('a', 'b') }} {{ 'hello'.find('l') }} {{ 'hello'.count('l') }} {{ '-'.join(['a', 'b']) }} {{ '{} and {x}'.format(1, x='y') }}", {}),
  ("{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d['a'] }} {{ d.a }} {{ d.missing }}|{{ d.items is defined }}", {"d": {"a": 1, "b": 2}}),
  ("{{ l[0] }} {{ l[-1] }} {{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[::2] }} {{ l[5] }}|{{ 'hello'[1:3] }} {{ 'héllo'[::-1] }} {{ 'abc'[-1] }} {{ l.0 }}", {"l": [1, 2, 3, 4]}),
  ("{{ 'yes' if x else 'no' }} {{ 'a' if not x }}|{{ x and 'A' or 'B' }}|{{ [] or 'empty' }}|{{ -x }}|{{ not x }}", {"x": 0}),
  ("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ dict(a=1, b=2) }} {{ namespace(a=1).a }} {{ '%s-%d'|format('x', 3) }} {{ '%s!' % 'hi' }}", {}),
  ("{{ strftime_now('%Y-%m-%d %d %b %Y') }}", {}),
  ("{# comment #}a{#- trimmed -#}  b {{- ' c ' -}}  d {%- if true -%}  e  {%- endif %}", {}),
  ("  {% if true %}\n    indented\n  {% endif %}\nnext\n{% for i in [1, 2] %}\n  - {{ i }}\n{% endfor %}\nend\n", {}),
  ("line\n  {%+ if true %}keep{% endif +%}\nx\n  {#- c #}\ny {# c2 #}\nz\n", {}),
  ("{% raw %}{{ not evaluated }}{% endraw %} {{ 'done' }}", {}),
  ("{{ messages[0]['content'] }} {{ messages[0].role }} {{ messages|length }} {{ messages|map(attribute='role')|join('/') }} {{ (messages|last).content }}", {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}),
  ("{{ \"a\" \"b\" }} {{ 'x\\ty\\u00e9\\x41' }} {{ 1_000 }} {{ 1.5e3 }} {{ True }} {{ None }}", {}),
  ("{{ loop_test|length }}{% for m in msgs %}{% if m.role == 'user' %}U{% elif m.role == 'tool' %}T{% endif %}{% endfor %}", {"loop_test": "ab", "msgs": [{"role": "user"}, {"role": "tool"}]}),
]
out = []
for tpl, ctx in CASES:
    for name, e in (("hf", env), ("raw", raw_env)):
        if name == "raw":
            if "strftime_now" in tpl or "break" in tpl or "continue" in tpl or "tojson" in tpl: continue
        try:
            res = e.from_string(tpl).render(**ctx)
            out.append({"template": tpl, "context": ctx, "env": name, "expected": res})
        except Exception as ex:
            out.append({"template": tpl, "context": ctx, "env": name, "error": f"{type(ex).__name__}: {ex}"})
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "language_cases.json")
with open(path, "w", encoding="utf-8") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
