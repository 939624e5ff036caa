"""The pages of the app, one blueprint per view, listed in the order of the navigation bar.

Each view module holds ``bp`` (a Blueprint whose ``page`` endpoint renders the view's template)
and ``TITLE`` (its name in the shared navigation of ``templates/base.html``).
"""
from . import draw, explorer, network3d, train

VIEWS = (draw, network3d, explorer, train)


def nav() -> list[dict]:
    """The navigation bar: ``[{"title", "endpoint"}]``, one entry per view."""
    return [{"title": v.TITLE, "endpoint": v.bp.name + ".page"} for v in VIEWS]
