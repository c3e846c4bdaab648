"""Datasets: the embedded Colin27 data, the generic folder format, loaders."""
from .colin27 import DATASETS as EMBEDDED, export_colin27, load_colin27
from .folder import ArraySplit, FolderSplit, Source, open_dataset, write_dataset_json
from .io import read_image, read_label, write_array


def open_source(path: str, check_files: bool = True) -> Source:
    """``colin27`` / ``colin27-brodmann`` -> the embedded data; anything else -> a validated dataset folder."""
    if path in EMBEDDED:
        return load_colin27(EMBEDDED[path])
    return open_dataset(path, check_files=check_files)


__all__ = [
    "ArraySplit",
    "FolderSplit",
    "Source",
    "export_colin27",
    "load_colin27",
    "open_dataset",
    "open_source",
    "read_image",
    "read_label",
    "write_array",
    "write_dataset_json",
]
