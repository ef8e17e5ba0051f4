"""Commands for many tasks on many machines: `throwaway worker`, `cancel`, `prune`."""

from __future__ import annotations

import re

import click

from .tasks import _durable


@click.command()
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=2, show_default=True,
              help="Most tasks this worker runs at once.")
@click.option("--queue", "-q", default="throwaway-tasks", show_default=True, help="The queue to take tasks from.")
@click.option("--lease", type=click.FloatRange(min=1), default=30.0, show_default=True, metavar="SECONDS",
              help="How long a worker may be silent before another recovers its tasks.")
@click.option("--app", "apps", multiple=True, metavar="MODULE:ATTR",
              help="Import an Agent defined in Python before taking tasks (tasks name their app too). Repeatable.")
def worker(concurrency: int, queue: str, lease: float, apps: tuple[str, ...]) -> None:
    """Run submitted tasks until stopped; carry the tasks of workers that die.

    The first SIGTERM or Ctrl-C finishes the steps in flight and hands the
    rest back to the queue; a second one stops at once.
    """
    from throwaway.durable import load_app
    from throwaway.durable.workers import Worker

    for app in apps:
        load_app(app)
    Worker(queue=queue, concurrency=concurrency, lease=lease, say=lambda line: click.echo(line)).run()


@click.command()
@click.argument("task_id", metavar="ID")
def cancel(task_id: str) -> None:
    """Cancel a queued or running task (a running one stops at its next step)."""
    from throwaway.durable.tasks import cancel as cancel_task

    with _durable(launch=False):
        task = cancel_task(task_id)
    click.echo(f"Task {task.task_id}: {task.status}")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


@click.command()
@click.option("--older-than", required=True, metavar="AGE", help="Age of finished tasks to prune: 7d, 12h, 30m, 90s.")
def prune(older_than: str) -> None:
    """Remove the file snapshots of tasks that finished longer ago than AGE."""
    from throwaway.durable.prune import prune as prune_blobs

    found = _DURATION.match(older_than.strip())
    if found is None:
        raise click.BadParameter("give a number and a unit: 7d, 12h, 30m or 90s", param_hint="--older-than")
    seconds = float(found[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[found[2]]
    with _durable(launch=False):
        counts = prune_blobs(seconds)
    click.echo(f"Pruned the snapshots of {counts['tasks_pruned']} finished task(s): {counts['blobs_removed']} blob(s) "
               f"removed; {counts['tasks_kept']} task(s) kept.")


COMMANDS = [worker, cancel, prune]
