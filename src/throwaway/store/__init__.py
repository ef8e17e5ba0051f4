"""Where bytes are kept by their hash: the blob store file-system snapshots go to."""

from .blobs import BlobStore

__all__ = ["BlobStore"]
