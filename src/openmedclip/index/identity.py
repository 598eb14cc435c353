"""Which model an index was built with: recorded at the first build, checked by every later build and query."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from openmedclip.errors import InvalidInputError

if TYPE_CHECKING:
    from openmedclip.models.loaded import LoadedModel


@dataclass(frozen=True)
class ModelIdentity:
    """``reference`` is what ``load_model`` takes to load the model again: its registry or architecture name, or
    the absolute path it was loaded from. Two builds agree when all four fields do; a query model when its family
    and architecture do (it may be loaded from another place)."""

    reference: str
    family: str
    architecture: str
    source: str

    @classmethod
    def of(cls, loaded: LoadedModel) -> ModelIdentity:
        name = loaded.spec.name
        reference = str(Path(name).resolve()) if Path(name).exists() else name
        return cls(reference, loaded.spec.family, loaded.spec.architecture, loaded.spec.source)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def check_build(self, other: ModelIdentity, index: Path) -> None:
        """Raise unless ``other`` (the model of a new build) is the model the index at ``index`` was built with."""
        if other != self:
            raise InvalidInputError(
                f"{index}: the index was built with model '{self.reference}' ({self.architecture}, weights "
                f"{self.source}), not '{other.reference}' ({other.architecture}, weights {other.source}); build "
                "with that model, or rebuild the index with the new one (rebuild=True, --rebuild) to re-encode "
                "every file"
            )

    def check_query(self, other: ModelIdentity, index: Path) -> None:
        """Raise unless ``other`` (a model encoding queries) has the family and architecture of the index's model."""
        if (other.family, other.architecture) != (self.family, self.architecture):
            raise InvalidInputError(
                f"{index}: queries must be encoded with the index's model '{self.reference}' ({self.architecture}),"
                f" not '{other.reference}' ({other.architecture})"
            )
