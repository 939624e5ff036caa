"""MkDocs hook: docstrings cross-reference with Sphinx roles (:func:`fit`, :class:`Tensor`);
mkdocstrings shows the name as code, and this drops the role's leading ``:func:`` text."""
import re

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc):(?=<code)")


def on_page_content(html, page, config, files):
    return ROLE.sub("", html)
