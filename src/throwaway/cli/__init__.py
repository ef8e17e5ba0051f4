"""The command line: the sandbox's `setup` and `exec`; tasks' `run`, `submit`, `tasks`, `show`, `resume`;
workers' `worker`, `cancel`, `prune`; `eval`; `mcp` (an MCP server)."""

from __future__ import annotations

import os

import click

from . import evaluate, mcp, sandbox, tasks, ui, workers


@click.group()
@click.version_option(package_name="throwaway")
@click.option("--db", metavar="URL", envvar="THROWAWAY_DATABASE_URL",
              help="The tasks' database: a Postgres URL for workers on many machines "
                   "[env: THROWAWAY_DATABASE_URL; default: SQLite in ./.throwaway].")
def main(db: str | None) -> None:
    """Agents that solve problems by writing throwaway Python in a sandbox."""
    if db:
        # Every command (and the processes it starts) reads the database from here.
        os.environ["THROWAWAY_DATABASE_URL"] = db


for _command in [*sandbox.COMMANDS, *tasks.COMMANDS, *workers.COMMANDS, *ui.COMMANDS, *evaluate.COMMANDS,
                 *mcp.COMMANDS]:
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
