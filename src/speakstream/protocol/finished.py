"""What a session remembers of contexts that are over (cancelled or done), bounded.

A client may cancel a context whose ``done`` it has not yet played (barge-in after the
last audio was sent): the session then still knows the context's stream (to drop what is
queued) and its timeline (to answer which text was spoken). Only the most recent ones
are kept; older ones are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict

from speakstream.protocol.timeline import SpokenTimeline


class FinishedContexts:
    def __init__(self, max_streams: int, max_timelines: int) -> None:
        self._streams: OrderedDict[str, int] = OrderedDict()  # context -> its stream
        self._timelines: OrderedDict[str, SpokenTimeline] = OrderedDict()
        self._max_streams = max_streams
        self._max_timelines = max_timelines

    def remember(self, context: str, stream: int, timeline: SpokenTimeline) -> None:
        """A context that ended with ``done``: its stream and what it said (timelines,
        the bigger, are kept for fewer contexts than streams)."""
        self._streams[context] = stream
        self._streams.move_to_end(context)
        while len(self._streams) > self._max_streams:
            self._streams.popitem(last=False)
        self._timelines[context] = timeline
        self._timelines.move_to_end(context)
        while len(self._timelines) > self._max_timelines:
            self._timelines.popitem(last=False)

    def take(self, context: str) -> tuple[int, SpokenTimeline | None] | None:
        """Forget ``context`` and return its stream and timeline, if it is remembered."""
        stream = self._streams.pop(context, None)
        timeline = self._timelines.pop(context, None)
        return None if stream is None else (stream, timeline)

    def forget(self, context: str) -> None:
        """A context of this name is open again."""
        self._streams.pop(context, None)
        self._timelines.pop(context, None)
