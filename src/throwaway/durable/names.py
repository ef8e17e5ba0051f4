"""The names DBOS records a task under: its workflow's and its steps'.

A module of its own, importing nothing, so that reading tasks (`throwaway
tasks`, `show`) does not load the workflow, the agent loop and pydantic-ai.
"""

WORKFLOW_NAME = "throwaway.task"
PREPARE_STEP = "throwaway.prepare"
MODEL_STEP = "throwaway.model"
TOOL_STEP = "throwaway.tool"
FINISH_STEP = "throwaway.finish"
