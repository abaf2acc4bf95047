"""Sphinx extension: keep every built page free of network fetches and duplicate scripts.

1. sphinx-thebe (loaded by Jupyter Book 1.x) registers its inline configuration script twice,
   which declares `const THEBE_JS_URL` twice and raises a JavaScript error on every page.
2. matplotlib's `Animation.to_jshtml()` links Font Awesome 4 from a CDN for its player buttons;
   the theme already bundles Font Awesome, so the link is dropped and the page works offline.
"""
import re

CDN_STYLESHEET = re.compile(r'<link[^>]+href="https?://[^"]*font-awesome[^"]*"[^>]*>', re.IGNORECASE)


# Runs early (priority 100): html-page-context stops at the first handler that returns a template.
def _clean(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for js in context.get("script_files", []):
        # the same script may be registered with filename None and with filename "" (inline body)
        key = (getattr(js, "filename", None) or "", repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"][:] = unique
    if "body" in context:
        context["body"] = CDN_STYLESHEET.sub("", context["body"])


def setup(app):
    app.connect("html-page-context", _clean, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
