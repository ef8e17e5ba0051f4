"""The command line: `throwaway setup`, `exec`, and the agent's `run`, `tasks`, `show`, `resume`."""

from __future__ import annotations

import click

from . import sandbox, tasks, ui


@click.group()
@click.version_option(package_name="throwaway")
def main() -> None:
    """Agents that solve problems by writing throwaway Python in a sandbox."""


for _command in [*sandbox.COMMANDS, *tasks.COMMANDS, *ui.COMMANDS]:
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
