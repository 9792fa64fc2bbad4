"""What the rules see of one (appointment, resource): the facts a publication carries, by name.

Kept apart from the rule language (`rules.py`), which knows nothing of publications: the same
rules could be evaluated over any mapping of these names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.core.dime_to_outlook.publication import Publication


def facts_of(pub: Publication, resource_no: str | None) -> dict[str, Any]:
    duration = None
    if pub.start is not None and pub.end is not None:
        duration = (datetime.fromisoformat(pub.end) - datetime.fromisoformat(pub.start)).total_seconds() / 60
    return {
        "sourceApp": pub.source_app,
        "jobNo": pub.job_no,
        "taskNo": pub.task_no,
        "appointmentNo": pub.appointment_no,
        "category": pub.category,
        "timeMarker": pub.time_marker,
        "subject": pub.subject,
        "importance": pub.importance,
        "resourceNo": resource_no,
        "duration": duration,
        "fields": dict(pub.fields),
    }
