"""Every use of the Singer SDK beyond its public surface, in one module.

The tap checkpoints its own state (after each window, each backfill page, each activity
of a per-activity stream) and stamps its own table versions, which the SDK 0.54 offers no
public hook for. Each function here says which private name it touches and why, so that
an SDK upgrade is checked in this one file (``singer-sdk`` is pinned to a compatible range
in ``pyproject.toml``). Nothing else in the tap reaches a private SDK name: a test greps.
"""

from __future__ import annotations

import datetime
import typing as t

from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import RemoveRecordTransform
from singer_sdk.singerlib import ActivateVersionMessage, RecordMessage

if t.TYPE_CHECKING:
    from collections.abc import Generator

    from singer_sdk import Stream, Tap


def owning_tap(stream: Stream) -> Tap:
    """The tap a stream belongs to (``Stream._tap``: the SDK has no public accessor)."""
    return t.cast("Tap", stream._tap)


def mark_state_changed(stream: Stream) -> None:
    """Make the next checkpoint write the state, which the tap changed in place.

    ``StreamStateManager.is_flushed`` is how the SDK knows a STATE is due; the tap edits
    partition state itself (cursors, digests, quota stops) outside the SDK's bookmarks.
    """
    stream.state_manager.is_flushed = False


def write_state_now(stream: Stream) -> None:
    """Checkpoint at once: the tap's windows and pages end where records may not.

    ``Stream._write_state_message`` writes the whole tap state once, if anything changed.
    """
    mark_state_changed(stream)
    stream._write_state_message()


def set_table_version(stream: Stream, version: int) -> None:
    """Stamp every RECORD of the stream with ``version`` (``Stream._stream_version``).

    A reconcile keeps one version for a whole pass across runs; the SDK would stamp each
    run with its own start.
    """
    stream._stream_version = version


def write_activate_version(stream: Stream, version: int) -> None:
    """Send ACTIVATE_VERSION for ``version`` once, through the tap's public writer.

    The SDK sends it itself only at the start of a full-table sync; a reconcile sends it at
    the end of a complete pass. Inline stream maps may rename the stream: every alias gets
    it, as the SDK's own ``_write_activate_version_message`` does.
    """
    tap = owning_tap(stream)
    for stream_map in stream.stream_maps:
        if isinstance(stream_map, RemoveRecordTransform):
            continue  # a stream the inline maps drop
        tap.write_message(ActivateVersionMessage(stream=stream_map.stream_alias, version=version))


class EndOfStreamHook:
    """A mixin for streams: :meth:`after_stream` runs once the SDK finished a stream.

    The SDK has no public end-of-stream hook; ``finalize_state_progress_markers`` (called
    by the tap after every stream, with ``state=None``) is the moment all its partitions
    are done and the last RECORD is out: the tap reports skipped athletes there and a
    reconcile sends ACTIVATE_VERSION.
    """

    def finalize_state_progress_markers(self, state: dict | None = None) -> None:
        """The SDK's own finalization, then :meth:`after_stream` (whole stream only)."""
        super().finalize_state_progress_markers(state)  # type: ignore[misc]
        if state is None:
            self.after_stream()

    def after_stream(self) -> None:
        """What to do once the whole stream is synced (nothing by default)."""


class WholeRecordMessages:
    """A mixin for streams: no walk of every record when nothing is deselected.

    ``Stream._generate_record_messages`` (private; the SDK has no hook for the record's
    way into its messages) walks every key of every record, nested objects included,
    against the catalog's selection, then conforms it: a tenth of a first sync's time at
    10,000 activities (docs/benchmarks.md). When the stream conforms its records itself
    (``TYPE_CONFORMANCE_LEVEL`` NONE) and every breadcrumb of its selection is selected
    (a missing breadcrumb takes its parent's value, so the walk could pop nothing), the
    messages are built directly, as the SDK builds them; otherwise the SDK's own method
    runs, walk included.
    """

    _whole_records: bool | None = None

    def _generate_record_messages(
        self, record: dict[str, t.Any]
    ) -> Generator[RecordMessage, None, None]:
        stream = t.cast("Stream", self)
        if self._whole_records is None:
            self._whole_records = stream.TYPE_CONFORMANCE_LEVEL == TypeConformanceLevel.NONE and (
                all(stream.mask.values())
            )
        if not self._whole_records:
            yield from super()._generate_record_messages(record)  # type: ignore[misc]
            return
        for stream_map in stream.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:  # None: an inline stream map filtered it out
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=stream._stream_version,
                    time_extracted=datetime.datetime.now(datetime.timezone.utc),
                )


class ConfigValidationHook:
    """A mixin for the tap: :meth:`config_errors` extends the SDK's config validation.

    The SDK validates the configuration against the JSON schema in the private
    ``Tap._validate_config`` and has no public hook to add checks or to word its errors;
    this is the one override of it. ``config_errors`` gets the SDK's errors and returns
    the ones to report (an empty list: valid).
    """

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        try:
            errors = super()._validate_config(raise_errors=raise_errors)  # type: ignore[misc]
        except ConfigValidationError as exc:
            errors = list(exc.errors)
        return self.config_errors(list(errors), raise_errors=raise_errors)

    def config_errors(self, sdk_errors: list[str], *, raise_errors: bool) -> list[str]:
        """The errors to report (the SDK's, by default)."""
        del raise_errors
        return sdk_errors
