"""IRIs of the xAPI profiles the analytics read and the simulator writes (video, cmi5)."""

from __future__ import annotations

VIDEO = "https://w3id.org/xapi/video"
VIDEO_PLAYED_SEGMENTS = f"{VIDEO}/extensions/played-segments"
VIDEO_TIME = f"{VIDEO}/extensions/time"
VIDEO_TIME_FROM = f"{VIDEO}/extensions/time-from"
VIDEO_TIME_TO = f"{VIDEO}/extensions/time-to"
VIDEO_PROGRESS = f"{VIDEO}/extensions/progress"
VIDEO_LENGTH = f"{VIDEO}/extensions/length"
VIDEO_SESSION = f"{VIDEO}/extensions/session-id"
CMI5_SESSION = "https://w3id.org/xapi/cmi5/context/extensions/sessionid"
CMI5_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
"""The ``context.contextActivities.category`` of cmi5 defined statements."""
