"""The engagement read model: what each recipient did, from the recorded interactions.

The rows come from ``pitch_interactions`` (one per usage event, the same event that goes to the
lake) and ``pitch_feedback`` (the recipient's current shortlist and comments).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from services.pitching.models import Engagement, TrackEngagement

Row = dict[str, Any]


def engagement_by_recipient(
    interaction_rows: list[Row], feedback_rows: list[Row], pitch_tracks: list[Row]
) -> dict[uuid.UUID, Engagement]:
    """``pitch_tracks``: the pitch's tracks in order (id, title); a track deleted since keeps
    its engagement, without a title, after the others."""
    titles = {row["id"]: row["title"] for row in pitch_tracks}
    order = {row["id"]: index for index, row in enumerate(pitch_tracks)}
    per_track: dict[uuid.UUID, dict[uuid.UUID, Row]] = defaultdict(dict)
    pitch_level: dict[uuid.UUID, Row] = {}
    for row in interaction_rows:
        if row["track_id"] is None:
            pitch_level[row["recipient_id"]] = row
        else:
            per_track[row["recipient_id"]][row["track_id"]] = row
    feedback: dict[uuid.UUID, dict[uuid.UUID, Row]] = defaultdict(dict)
    for row in feedback_rows:
        feedback[row["recipient_id"]][row["track_id"]] = row

    result = {}
    for recipient_id in {*per_track, *pitch_level, *feedback}:
        tracks = sorted(
            (
                _track(track_id, per_track[recipient_id].get(track_id), note, titles)
                for track_id, note in _touched(per_track[recipient_id], feedback[recipient_id])
            ),
            key=lambda t: (order.get(t.track_id, len(order)), str(t.track_id)),
        )
        opened = pitch_level.get(recipient_id, {})
        activity = [r["last_activity_at"] for r in per_track[recipient_id].values()]
        if opened:
            activity.append(opened["last_activity_at"])
        result[recipient_id] = Engagement(
            opened=bool(opened.get("opens")),
            opens=opened.get("opens", 0),
            first_opened_at=opened.get("first_opened_at"),
            last_opened_at=opened.get("last_opened_at"),
            last_activity_at=max(activity, default=None),
            plays=sum(t.plays for t in tracks),
            listened_ms=sum(t.listened_ms for t in tracks),
            downloads=sum(t.downloads for t in tracks),
            shortlisted=sum(t.shortlisted for t in tracks),
            tracks=tracks,
        )
    return result


def nothing_yet() -> Engagement:
    return Engagement(
        opened=False,
        opens=0,
        first_opened_at=None,
        last_opened_at=None,
        last_activity_at=None,
        plays=0,
        listened_ms=0,
        downloads=0,
        shortlisted=0,
        tracks=[],
    )


def _touched(
    activity: dict[uuid.UUID, Row], feedback: dict[uuid.UUID, Row]
) -> list[tuple[uuid.UUID, Row | None]]:
    return [(track_id, feedback.get(track_id)) for track_id in {*activity, *feedback}]


def _track(
    track_id: uuid.UUID, row: Row | None, note: Row | None, titles: dict[uuid.UUID, str]
) -> TrackEngagement:
    row = row or {}
    return TrackEngagement(
        track_id=track_id,
        title=titles.get(track_id),
        plays=row.get("plays", 0),
        listened_ms=int(row.get("listened_ms", 0)),
        furthest_ms=row.get("furthest_ms"),
        completed=bool(row.get("completed")),
        downloads=row.get("downloads", 0),
        shortlisted=bool(note and note["shortlisted"]),
        comment=note["comment"] if note else None,
    )
