"""Data sources with one interface (label names, label matrix, metadata, `Sample` items) and shard conversion."""

from openmedclip.data.base import DataSource, Sample, Task
from openmedclip.data.factory import open_source
from openmedclip.data.files import FileSource, Row
from openmedclip.data.folders import ClassFolders
from openmedclip.data.medmnist_npz import MedMNIST
from openmedclip.data.medpix import MedPix
from openmedclip.data.mixing import MixedSource
from openmedclip.data.shards import write_shards
from openmedclip.data.table import ImageTextTable
from openmedclip.data.vqarad import VQARAD
from openmedclip.data.webds import WebDatasetSource

__all__ = [
    "VQARAD",
    "ClassFolders",
    "DataSource",
    "FileSource",
    "ImageTextTable",
    "MedMNIST",
    "MedPix",
    "MixedSource",
    "Row",
    "Sample",
    "Task",
    "WebDatasetSource",
    "open_source",
    "write_shards",
]
