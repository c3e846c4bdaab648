"""Datasets: the embedded Colin27 data, the generic folder format, loaders."""
from .colin27 import DATASETS as EMBEDDED, export_colin27, load_colin27
from .folder import ArraySplit, FolderSplit, Source, open_dataset, write_dataset_json
from .io import read_image, read_label, write_array


def dataset_folder(path):
    """``data.path`` as a folder the run reads (an input that outputs must not overwrite), or None for an embedded set."""
    return path if path not in EMBEDDED else None


def open_source(path: str, check_files: bool = True) -> Source:
    """``colin27`` / ``colin27-brodmann`` -> the embedded data; anything else -> a validated dataset folder."""
    if path in EMBEDDED:
        return load_colin27(EMBEDDED[path])
    return open_dataset(path, check_files=check_files)


__all__ = [
    "dataset_folder",
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
