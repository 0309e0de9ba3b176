"""What both admin pages share: how often they refresh, and whether slow work may go to
background threads."""

from __future__ import annotations

LIVE_SECONDS = 5  # the pages refresh themselves this often; slow figures are cached as long
# Background threads (history filling, asking the workers). Tests turn them off: a thread has
# its own database connection, which cannot see a test's uncommitted rows.
BACKGROUND = True
