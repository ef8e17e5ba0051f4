"""The guest's file system: mounts, path checks, snapshots."""

from .filesystem import FileSystem
from .mounts import FileInfo, Files, HostDir, MemoryMount, Mount, MountSpec, OutputMount, Resource

__all__ = ["FileInfo", "FileSystem", "Files", "HostDir", "MemoryMount", "Mount", "MountSpec", "OutputMount", "Resource"]
