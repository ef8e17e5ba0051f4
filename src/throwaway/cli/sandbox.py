"""The sandbox's commands: `throwaway setup`, `throwaway exec`."""

from __future__ import annotations

import json
import sys

import click

from throwaway.sandbox import Limits, Sandbox
from throwaway.sandbox.codecache import ensure_code_cache
from throwaway.sandbox.packages import PackageError, PackageGateway
from throwaway.sandbox.runtime import PYODIDE_VERSION, SetupError, ensure_runtime

from .mounts import mounted_file_system
from .terminal import plain


@click.command()
@click.option("--package", "packages", multiple=True, metavar="NAME",
              help="Also fetch this package into the cache (a Pyodide package, else from PyPI). Repeatable.")
@click.option("--base-url", envvar="THROWAWAY_PACKAGE_URL",
              help="Where Pyodide's packages come from: a URL or a local mirror folder [env: THROWAWAY_PACKAGE_URL].")
def setup(packages: tuple[str, ...], base_url: str | None) -> None:
    """Fetch Pyodide, build the boot snapshot and warm the package cache,
    so that later runs need no network at all."""
    try:
        runtime = ensure_runtime()
    except SetupError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Pyodide {PYODIDE_VERSION}: {runtime.pyodide_dir}")
    with Sandbox(runtime=runtime) as sb:
        r = sb.exec("import sys; sys.version.split()[0]")
    click.echo(f"Python {r.json} in the sandbox; boot snapshot in {runtime.snapshots_dir}")
    code_cache = ensure_code_cache(runtime)
    click.echo(f"Boot code cache (read-only to the runtime): {code_cache}" if code_cache else
               "No boot code cache: this kernel cannot keep the runtime from writing to it (Linux Landlock)")
    gateway = PackageGateway(cache_dir=runtime.packages_dir, lock=runtime.lock_path, base_url=base_url)
    for name in packages:
        try:
            try:
                wheels = gateway.fetch_pyodide([name])
            except PackageError:
                wheels = gateway.fetch_pypi([name])
        except PackageError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"{name}: " + ", ".join(f"{w.name} {w.version}" for w in wheels))


@click.command("exec")
@click.argument("code", required=False)
@click.option("-f", "--file", "path", type=click.File("r"), help="Read the code from a file ('-' for stdin).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds before the cell is interrupted.")
@click.option("--memory", "memory_mb", type=int, default=1024, show_default=True, help="Guest memory limit in MB.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.option("--mount", "mounts", multiple=True, metavar="HOST:GUEST[:rw]",
              help="Serve a host folder at a guest path, read-only unless :rw. Repeatable.")
@click.option("--output", "output_dir", type=click.Path(file_okay=False),
              help="Copy the files the code writes under /output to this folder.")
@click.option("--mcp", "mcp", multiple=True, metavar="NAME=COMMAND|URL",
              help="An MCP server the code can import as servers.NAME: a command the host starts "
                   "('time=python -m mcp_server_time') or a streamable-HTTP URL. Repeatable.")
def exec_(code: str | None, path, timeout: float, memory_mb: int, as_json: bool, mounts: tuple[str, ...],
          output_dir: str | None, mcp: tuple[str, ...]) -> None:
    """Run CODE in a fresh sandbox: print its output, then its last value.

    Exits with status 1 if the code raised or hit a limit.
    """
    fs = mounted_file_system(mounts)
    if path is not None:
        code = path.read()
    if code is None:
        raise click.UsageError("give the code as an argument or with --file")

    def echo(stream: str, text: str) -> None:
        # The guest's text, without the escape sequences that would drive the terminal.
        (sys.stdout if stream == "stdout" else sys.stderr).write(plain(text))

    extensions = [_toolbox(mcp)] if mcp else []
    try:
        with Sandbox(limits=Limits(timeout=timeout, memory_mb=memory_mb), fs=fs, extensions=extensions) as sb:
            r = sb.exec(code, on_output=None if as_json else echo)
            copied = sb.collect_output(output_dir) if output_dir else []
    except SetupError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(r.to_dict(), indent=2))
    else:
        sys.stdout.flush()
        if r.value is not None:
            click.echo(plain(r.value))
        if r.error is not None:
            click.echo(plain(r.error.traceback or str(r.error)).rstrip(), err=True)
        for file in copied:
            click.echo(plain(f"wrote {file}"), err=True)
    sys.exit(0 if r.ok else 1)


def _toolbox(specs: tuple[str, ...]):
    from throwaway.mcp import MCPServer, Toolbox

    try:
        return Toolbox([MCPServer.parse(text) for text in specs])
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--mcp") from None


COMMANDS = [setup, exec_]
