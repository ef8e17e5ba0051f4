"""Durable tasks: DBOS workflows and steps, the blob store, workers."""
