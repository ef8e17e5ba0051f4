"""The command line: `throwaway setup`, `throwaway exec`, and the agent's commands."""

from __future__ import annotations

import json
import sys

import click

from .sandbox import Limits, Sandbox
from .sandbox.runtime import PYODIDE_VERSION, SetupError, ensure_runtime


@click.group()
@click.version_option(package_name="throwaway")
def main() -> None:
    """Agents that solve problems by writing throwaway Python in a sandbox."""


@main.command()
def setup() -> None:
    """Fetch Deno's Pyodide and build the boot snapshot, so later runs need no network."""
    try:
        runtime = ensure_runtime()
    except SetupError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Pyodide {PYODIDE_VERSION}: {runtime.pyodide_dir}")
    with Sandbox(runtime=runtime) as sb:
        r = sb.exec("import sys; sys.version.split()[0]")
    click.echo(f"Python {r.json} in the sandbox; boot snapshot in {runtime.snapshots_dir}")


@main.command("exec")
@click.argument("code", required=False)
@click.option("-f", "--file", "path", type=click.File("r"), help="Read the code from a file ('-' for stdin).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds before the cell is interrupted.")
@click.option("--memory", "memory_mb", type=int, default=1024, show_default=True, help="Guest memory limit in MB.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
def exec_(code: str | None, path, timeout: float, memory_mb: int, as_json: bool) -> None:
    """Run CODE in a fresh sandbox: print its output, then its last value.

    Exits with status 1 if the code raised or hit a limit.
    """
    if path is not None:
        code = path.read()
    if code is None:
        raise click.UsageError("give the code as an argument or with --file")

    def echo(stream: str, text: str) -> None:
        (sys.stdout if stream == "stdout" else sys.stderr).write(text)

    try:
        with Sandbox(limits=Limits(timeout=timeout, memory_mb=memory_mb)) as sb:
            r = sb.exec(code, on_output=None if as_json else echo)
    except SetupError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(r.to_dict(), indent=2))
    else:
        sys.stdout.flush()
        if r.value is not None:
            click.echo(r.value)
        if r.error is not None:
            click.echo((r.error.traceback or str(r.error)).rstrip(), err=True)
    sys.exit(0 if r.ok else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
