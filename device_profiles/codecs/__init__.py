"""Protocol codecs: pure functions over bytes, no I/O.

Each codec has ``decode(buf) -> (frame | None, consumed)`` and ``encode(...) -> bytes``. ``None`` means
"need more bytes"; a bad frame raises :class:`device_profiles.errors.FrameError` whose ``consumed``
says how many bytes to drop before decoding again.
"""
