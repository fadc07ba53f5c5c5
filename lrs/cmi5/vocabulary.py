"""The IRIs cmi5 (quartz) defines: verbs (§9.3), context categories (§9.6.2), context and result
extensions (§9.6.3, §9.5.5) and activity types (§9.3.9), plus the state and profile document
ids (§10, §11)."""

from __future__ import annotations

from lrs.xapi.profiles import CMI5_SESSION

ADL = "http://adlnet.gov/expapi/verbs"
W3ID = "https://w3id.org/xapi/adl/verbs"
CMI5 = "https://w3id.org/xapi/cmi5"

LAUNCHED = f"{ADL}/launched"
INITIALIZED = f"{ADL}/initialized"
COMPLETED = f"{ADL}/completed"
PASSED = f"{ADL}/passed"
FAILED = f"{ADL}/failed"
TERMINATED = f"{ADL}/terminated"
ABANDONED = f"{W3ID}/abandoned"
WAIVED = f"{W3ID}/waived"
SATISFIED = f"{W3ID}/satisfied"
VOIDED = f"{ADL}/voided"

VERB_NAMES = {
    LAUNCHED: "launched", INITIALIZED: "initialized", COMPLETED: "completed", PASSED: "passed",
    FAILED: "failed", TERMINATED: "terminated", ABANDONED: "abandoned", WAIVED: "waived",
    SATISFIED: "satisfied",
}  # fmt: skip
"""Every cmi5 verb by its short name (the display the LMS's own statements carry)."""
AU_VERBS = frozenset({INITIALIZED, COMPLETED, PASSED, FAILED, TERMINATED})
"""The cmi5 verbs an AU sends; the others are the LMS's (launched, abandoned, waived, satisfied)."""

CATEGORY_CMI5 = f"{CMI5}/context/categories/cmi5"
CATEGORY_MOVEON = f"{CMI5}/context/categories/moveon"

SESSION_ID = CMI5_SESSION
MASTERY_SCORE = f"{CMI5}/context/extensions/masteryscore"
LAUNCH_MODE = f"{CMI5}/context/extensions/launchmode"
LAUNCH_URL = f"{CMI5}/context/extensions/launchurl"
MOVE_ON = f"{CMI5}/context/extensions/moveon"
LAUNCH_PARAMETERS = f"{CMI5}/context/extensions/launchparameters"
PROGRESS = f"{CMI5}/result/extensions/progress"
REASON = f"{CMI5}/result/extensions/reason"

TYPE_BLOCK = f"{CMI5}/activitytype/block"
TYPE_COURSE = f"{CMI5}/activitytype/course"

LAUNCH_DATA = "LMS.LaunchData"
LEARNER_PREFERENCES = "cmi5LearnerPreferences"

LAUNCH_MODES = ("Normal", "Browse", "Review")
WAIVE_REASONS = ("Tested Out", "Equivalent AU", "Equivalent Outside Activity", "Administrative")
