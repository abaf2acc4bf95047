"""Sphinx extension: drop duplicate <script> entries from each page.

sphinx-thebe (loaded by Jupyter Book 1.x) registers its inline configuration script twice, which
declares `const THEBE_JS_URL` twice and raises a JavaScript error on every page.
"""


# Runs early (priority 100): html-page-context stops at the first handler that returns a template.
def _dedupe(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for js in context.get("script_files", []):
        # the same script may be registered with filename None and with filename "" (inline body)
        key = (getattr(js, "filename", None) or "", repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"][:] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
