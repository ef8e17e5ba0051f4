"""`throwaway ui`: the web view of tasks."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any but loopback requires the token printed at start.")
@click.option("--port", default=8321, show_default=True, type=click.IntRange(0, 65535))
@click.option("--db", "database_url", metavar="URL", help="The system database [default: the data folder's SQLite; "
                                                          "env: THROWAWAY_DATABASE_URL].")
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="The data folder [default: ./.throwaway; env: THROWAWAY_DATA].")
@click.option("--allow-mount", "mounts", multiple=True, metavar="HOST:GUEST[:rw]",
              help="A host folder that tasks started from the page may mount. Repeatable.")
@click.option("--output", "-o", "output_dir", default="output", show_default=True,
              type=click.Path(file_okay=False), help="Where tasks started from the page copy their /output files.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
def ui(host: str, port: int, database_url: str | None, data_dir: str | None, mounts: tuple[str, ...],
       output_dir: str, open_browser: bool) -> None:
    """Serve a web view of tasks: their steps, code, output and files, live; start, resume, cancel, fork."""
    from throwaway.ui import serve

    from .mounts import parse_mounts

    parsed = parse_mounts(mounts, param_hint="--allow-mount")
    serve(host=host, port=port, data_dir=data_dir, database_url=database_url, mounts=parsed,
          output_dir=output_dir, open_browser=open_browser, echo=click.echo)


COMMANDS = [ui]
