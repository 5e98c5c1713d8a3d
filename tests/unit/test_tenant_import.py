"""What an import makes of the records it reads, before any store sees them."""

import dataclasses
import json
from typing import Any

import pytest

from application.transfer.import_tenant import NAMING_THEIR_TENANT
from application.transfer.ports import ArchivedFunnelDay, ArchivedTrack
from application.transfer.tenant_export_format import RECORD_TYPES, from_line
from domain.errors import InvalidInput


def test_every_record_that_names_its_tenant_is_made_the_imported_tenants() -> None:
    # A record type gaining a tenant_id and missing here would be written under the tenant
    # the file names, which may be another one of the store.
    naming = {
        cls
        for cls in RECORD_TYPES.values()
        if "tenant_id" in {f.name for f in dataclasses.fields(cls)}
    }

    assert naming == set(NAMING_THEIR_TENANT)


def test_a_funnel_days_tally_whose_stages_disagree_is_refused_naming_its_line() -> None:
    """A tally is read back from its document (FunnelTally.document): one whose stages do not
    agree would fail every report that adds it up, long after the import."""
    tally = {"reached": [3, 1], "dropped": [2, 0], "durations": [{"1500": 1}], "statuses": {}}
    day = {
        "start": {"$time": "2026-11-24T00:00:00+00:00"},
        "fingerprint": "f",
        "final": True,
        "whole": tally,
        "rows": [],
    }
    line = {"record": "funnel_day", "funnel": "photo", "day": day}
    read = from_line(json.dumps(line), 7)
    assert isinstance(read, ArchivedFunnelDay) and read.day.whole.reached == [3, 1]

    broken_parts: list[dict[str, Any]] = [
        {"dropped": [2]},
        {"durations": []},
        {"reached": ["3", 1]},
    ]
    for broken in broken_parts:
        line["day"] = {**day, "whole": {**tally, **broken}}
        with pytest.raises(InvalidInput, match="line 7"):
            from_line(json.dumps(line), 7)


def test_a_track_no_webhook_could_have_reported_is_refused_naming_its_line() -> None:
    """MongoDB keeps a stay's tracks under their sids (a dot or a dollar would break its
    document), and a track is counted into its session only once both its ends are known."""
    report = {
        "track_sid": "TR_cam",
        "meter": "video.seconds",
        "published_at": {"$time": "2026-11-24T12:31:00+00:00"},
        "unpublished_at": None,
        "end_from_stay": False,
    }
    line = {"record": "track", "session_id": "s-1", "report": report, "counted": False}
    read = from_line(json.dumps(line), 9)
    assert isinstance(read, ArchivedTrack) and read.report.track_sid == "TR_cam"

    broken_parts: list[dict[str, Any]] = [
        {"report": {**report, "track_sid": "TR.cam"}},
        {"report": {**report, "track_sid": "$cam"}},
        {"report": {**report, "meter": "Video Seconds"}},
        {"counted": True},
    ]
    for broken in broken_parts:
        with pytest.raises(InvalidInput, match="line 9"):
            from_line(json.dumps({**line, **broken}), 9)
