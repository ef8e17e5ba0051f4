"""The command line: the sandbox's `setup` and `exec`; tasks' `run`, `submit`, `tasks`, `show`, `resume`;
workers' `worker`, `cancel`, `prune`; `eval`; `mcp` (an MCP server)."""

from __future__ import annotations

import importlib
import os

import click

# Each command's module, imported only when the command runs (or --help lists them all):
# `throwaway tasks` loads neither the sandbox nor the MCP client.
COMMAND_MODULES = {
    "setup": "sandbox", "exec": "sandbox",
    "run": "tasks", "submit": "tasks", "tasks": "tasks", "show": "tasks", "resume": "tasks",
    "worker": "workers", "cancel": "workers", "prune": "workers",
    "ui": "ui", "eval": "evaluate", "mcp": "mcp",
}


class _Commands(click.Group):
    """A group whose commands are found in `COMMAND_MODULES` (each module's `COMMANDS`) when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        home = COMMAND_MODULES.get(cmd_name)
        if home is None:
            return None
        module = importlib.import_module(f"{__name__}.{home}")
        return next((c for c in module.COMMANDS if c.name == cmd_name), None)


@click.group(cls=_Commands)
@click.version_option(package_name="throwaway")
@click.option("--db", metavar="URL", envvar="THROWAWAY_DATABASE_URL",
              help="The tasks' database: a Postgres URL for workers on many machines "
                   "[env: THROWAWAY_DATABASE_URL; default: SQLite in ./.throwaway].")
def main(db: str | None) -> None:
    """Agents that solve problems by writing throwaway Python in a sandbox."""
    if db:
        # Every command (and the processes it starts) reads the database from here.
        os.environ["THROWAWAY_DATABASE_URL"] = db


if __name__ == "__main__":  # pragma: no cover
    main()
