"""Split hygiene: exact and near copies of images within and across the splits of data sources, conflicting labels
among copies, and a de-duplicated view of a source for evaluation.

    from openmedclip.audit import audit_parts, source_parts
    report = audit_parts(source_parts("medmnist/breastmnist.npz"))
    print(report.summary_markdown())
"""

from openmedclip.audit.dedup import DeduplicatedSource, deduplicate
from openmedclip.audit.findings import AuditReport, CopyPair
from openmedclip.audit.fingerprint import Fingerprints, fingerprint
from openmedclip.audit.output import write_audit
from openmedclip.audit.parts import Part, source_parts, suite_parts
from openmedclip.audit.run import audit_parts

__all__ = [
    "AuditReport",
    "CopyPair",
    "DeduplicatedSource",
    "Fingerprints",
    "Part",
    "audit_parts",
    "deduplicate",
    "fingerprint",
    "source_parts",
    "suite_parts",
    "write_audit",
]
