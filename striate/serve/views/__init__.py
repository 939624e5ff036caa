"""The pages of the app, one blueprint per view, listed in the order of the navigation bar.

Each view module holds ``bp`` (a Blueprint whose ``page`` endpoint renders the view's template)
and ``TITLE`` (its name in the shared navigation of ``templates/base.html``). A view that works
only for some models says so with ``TASKS`` (the tasks of the models it shows: ``"classification"``
or a dense task) and ``NEEDS`` (why, in a few words); the navigation leaves it out for other models,
and its address then shows that reason (the Network view at ``/`` hands over to the dense view).
"""
from flask import redirect, render_template, request, url_for

from ..state import current
from . import dense, draw, explorer, network3d, train

VIEWS = (draw, dense, network3d, explorer, train)
_BY_BLUEPRINT = {v.bp.name: v for v in VIEWS}


def shown(view, task: str) -> bool:
    """Whether ``view`` works for a served model of ``task``."""
    return task in getattr(view, "TASKS", (task,))


def nav(task: str = "classification") -> list[dict]:
    """The navigation bar for a served model of ``task``: ``[{"title", "endpoint"}]``, one entry per view."""
    return [{"title": getattr(v, "TITLES", {}).get(task, v.TITLE), "endpoint": v.bp.name + ".page"}
            for v in VIEWS if shown(v, task)]


def gate():
    """Before a page is rendered: a view that does not work for the served model answers with the
    reason (the Network view's ``/`` with the dense view instead)."""
    view = _BY_BLUEPRINT.get(request.blueprint)
    if view is None:          # the API and static files: the routes check for themselves
        return None
    state = current()
    if shown(view, state.task):
        return None
    if view is draw:
        return redirect(url_for("dense.page"))
    other = "Network" if state.task == "classification" else getattr(dense, "TITLES", {}).get(state.task, dense.TITLE)
    return render_template("unavailable.html", view=view.TITLE, needs=view.NEEDS, task=state.task,
                           name=state.served.name, other=other), 404
