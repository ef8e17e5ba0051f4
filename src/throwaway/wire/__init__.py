"""The ground every part stands on: how host and runtime talk.

`frames`: the framed messages on the runtime process's stdio. `calls`: host
calls the guest makes (handlers by name, replies, errors that cross by type).
"""
