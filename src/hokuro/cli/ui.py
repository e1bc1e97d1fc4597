"""``hokuro ui``: the dashboard of a Spot in the browser (``hokuro.web``)."""

from __future__ import annotations

import click

from .app import main
from .options import _SPOT_KEY, target_options


@main.command()
@target_options
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              metavar="PORT",
              help="The port to serve on (0: any free one).")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="The address to serve on. Anything but 127.0.0.1 / localhost makes the "
                   "pages reachable from other machines (a warning says so).")
@click.option("--open", "open_browser", is_flag=True, help="Open the address in a browser.")
@click.option("--read-only", is_flag=True,
              help="Hide the actions (retry, cancel) and refuse them.")
@click.option("--limits", metavar="URL",
              help="Where the Spot's rate limits live, when not the default (a .db path, "
                   "postgresql://…).")
@click.option("--path", "search_path", metavar="FOLDER", type=click.Path(file_okay=False),
              help="Where retries import the failed tasks' code from.  [default: .]")
def ui(spot: str, workspace: str | None, blobs: str | None, port: int, host: str,
       open_browser: bool, read_only: bool, limits: str | None, search_path: str | None
       ) -> None:
    """Serve the dashboard of a Spot: collections, tasks, errors, runs, workers and
    queues, limits, live.

    SPOT is a Spot name, a ledger file (hokuro ui ./x.db) or a database URL. The pages
    read the ledger read-only. The address printed at start carries a one-time token that
    becomes a cookie of the browser that opens it; actions (retry, cancel) are POSTs
    checked for CSRF and Origin. Ctrl-C stops the server.
    """
    from ..web.server import serve

    name = click.get_current_context().meta.get(_SPOT_KEY)
    serve(spot, host=host, port=port, open_browser=open_browser, read_only=read_only,
          spot=name or None, workspace=workspace, blobs=blobs, limits=limits,
          search_path=search_path, say=lambda text: click.echo(text, err=False))
