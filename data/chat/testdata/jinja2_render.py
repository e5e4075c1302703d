import json, sys
import jinja2, jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
req = json.load(sys.stdin)
out = []
for c in req["cases"]:
    t = env.from_string(c["template"])
    try:
        out.append({"output": t.render(**c["vars"])})
    except jinja2.exceptions.TemplateError as e:
        out.append({"error": str(e)})
json.dump(out, sys.stdout, ensure_ascii=False)
