"""A run folder (the ``--out`` of ``adele train``): its file names and how each is read and written
(:mod:`adele.run.files`), the records it writes (:mod:`adele.run.records`), the data it trains on
(:mod:`adele.run.data`), and the one object that opens it (:class:`RunFolder`, :mod:`adele.run.folder`)."""
from .folder import RunFolder

__all__ = ["RunFolder"]
