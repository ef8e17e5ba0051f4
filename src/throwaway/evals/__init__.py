"""An evaluation you can run against any model: `throwaway eval --model ...`.

Eight built-in tasks (`suite.TASKS`: the seed's IP picture, a CSV question
with a chart, a zip to inspect, a JSON API served as files, a skill to
follow, a file too big to print, a task that needs a retry after an error,
a question that needs no code), each run as a durable task and judged by a
function; `run_eval` returns one `EvalResult` per task and `format_table`
prints them.
"""

from .runner import EvalResult, format_table, run_eval
from .suite import TASKS, Check, EvalTask

__all__ = ["TASKS", "Check", "EvalResult", "EvalTask", "format_table", "run_eval"]
