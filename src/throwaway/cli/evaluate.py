"""`throwaway eval`: the built-in evaluation tasks against a model, as a table."""

from __future__ import annotations

import sys

import click

from .tasks import MODEL_HELP, _durable


@click.command("eval")
@click.option("--model", "-m", help=MODEL_HELP)
@click.option("--task", "-t", "task_names", multiple=True, metavar="NAME",
              help="Run only this task (repeatable); the tasks: ip-picture, csv-chart, zip-inspect, json-api, "
                   "skill, big-file, retry, no-code.")
@click.option("--text-tool-calls/--no-text-tool-calls", default=None,
              help="Run tool calls the model writes as text [default: on for openai-compatible: models].")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Most tokens one model reply may have [default: 4096].")
@click.option("--model-timeout", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Longest one model call may take [default: 300].")
@click.option("--max-steps", type=click.IntRange(min=1), default=12, show_default=True,
              help="Most model turns each task may take.")
@click.option("--verbose", "-v", is_flag=True, help="Print each task's steps as they run.")
def evaluate(model: str | None, task_names: tuple[str, ...], text_tool_calls: bool | None, max_tokens: int | None,
             model_timeout: float | None, max_steps: int, verbose: bool) -> None:
    """Run the built-in tasks against a model and print, per task, success, steps, tokens and time.

    Each task is checked by a function (the right number in the answer, the
    file in /output), and kept as an ordinary task: `throwaway show ID`
    replays one that failed.
    """
    from throwaway.agent.models import configured_model_name
    from throwaway.evals import format_table, run_eval

    from .display import Printer

    def progress(result) -> None:
        mark = click.style("pass", fg="green") if result.ok else click.style("FAIL", fg="red")
        why = f": {result.why}" if result.why else ""
        click.echo(f"{mark} {result.task} ({result.status}, {result.steps} steps, {result.seconds:.1f} s, "
                   f"task {result.task_id}){why}", err=True)

    with _durable():
        name = configured_model_name(model)
        click.echo(f"Evaluating {name} on {len(task_names) or 8} task(s)...", err=True)
        results = run_eval(name, tasks=task_names or None, text_tool_calls=text_tool_calls, max_tokens=max_tokens,
                           model_timeout=model_timeout, max_steps=max_steps, on_result=progress,
                           on_event=Printer() if verbose else None)
    click.echo(format_table(results))
    sys.exit(0 if all(r.ok for r in results) else 1)


COMMANDS = [evaluate]
