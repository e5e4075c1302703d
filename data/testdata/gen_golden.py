#!/usr/bin/python3
"""Regenerate data/testdata/golden/renders.json, the golden chat-template renderings.

Renders every template (the built-ins in data/chat/templates/*.jinja and the
test-only ones in golden/custom/*.jinja) over every conversation in
golden/conversations.json, for every prefix messages[:k] (k >= 1) and both
values of add_generation_prompt, with Python's jinja2 configured exactly as
transformers' apply_chat_template configures it (transformers
utils/chat_template_utils.py: ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, a raise_exception global raising TemplateError,
tojson = json.dumps with ensure_ascii=False, keep_trailing_newline left off).

Run from anywhere with Debian's Python and jinja2 (apt-get install -y
python3-jinja2):  /usr/bin/python3 data/testdata/gen_golden.py
"""
import glob
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
BOS, EOS = "<s>", "</s>"
TOKENS = {"llama-3": ("<|begin_of_text|>", "<|eot_id|>"), "chatml": ("<s>", "<|im_end|>")}


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    env = environment()
    templates = {}
    for path in sorted(glob.glob(os.path.join(HERE, "..", "chat", "templates", "*.jinja"))):
        templates[os.path.basename(path)[:-6]] = path
    for path in sorted(glob.glob(os.path.join(HERE, "golden", "custom", "*.jinja"))):
        templates["custom/" + os.path.basename(path)[:-6]] = path
    with open(os.path.join(HERE, "golden", "conversations.json"), encoding="utf-8") as f:
        conversations = json.load(f)
    cases = []
    for name, path in templates.items():
        with open(path, encoding="utf-8", newline="") as f:
            source = f.read()
        tmpl = env.from_string(source)
        bos, eos = TOKENS.get(name, (BOS, EOS))
        for conv_name in sorted(conversations):
            conv = conversations[conv_name]
            for k in range(1, len(conv) + 1):
                for gen in (False, True):
                    case = {"template": name, "conversation": conv_name, "messages": k,
                            "add_generation_prompt": gen, "bos_token": bos, "eos_token": eos}
                    try:
                        case["output"] = tmpl.render(messages=conv[:k], add_generation_prompt=gen,
                                                     bos_token=bos, eos_token=eos)
                    except jinja2.exceptions.TemplateError as e:
                        case["error"] = str(e)
                    cases.append(case)
    out = {
        "generator": "data/testdata/gen_golden.py",
        "renderer": "Python jinja2 %s, configured as transformers' apply_chat_template" % jinja2.__version__,
        "cases": cases,
    }
    dst = os.path.join(HERE, "golden", "renders.json")
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp, dst)
    print("wrote %d cases to %s" % (len(cases), dst))


if __name__ == "__main__":
    main()
