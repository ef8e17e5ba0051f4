"""Where bytes are kept by their hash: the blob stores file-system snapshots go to.

`BlobStore` keeps them in a local folder; `SqlBlobStore` in a table of the
tasks' database, which every worker on every machine reaches. Both answer
`put`, `get`, `has` and `prune`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .blobs import BlobStore

if TYPE_CHECKING:
    from .sql import SqlBlobStore

__all__ = ["BlobStore", "SqlBlobStore"]


def __getattr__(name: str) -> Any:
    # SQLAlchemy loads only for those who use the table store.
    if name == "SqlBlobStore":
        from .sql import SqlBlobStore

        return SqlBlobStore
    raise AttributeError(name)
