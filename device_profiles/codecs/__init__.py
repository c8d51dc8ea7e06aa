"""Protocol codecs: pure functions over bytes, no I/O.

Each codec has ``decode(buf) -> (frame | None, consumed)`` and ``encode(...) -> bytes``. ``None`` means
"need more bytes"; a bad frame raises :class:`device_profiles.errors.FrameError` whose ``consumed``
says how many bytes to drop before decoding again. Every codec decodes in time linear in its input
(no backtracking pattern; ``benchmarks/codec_fuzz.py`` measures it).

Drain a codec through :class:`~device_profiles.codecs.frame_buffer.FrameBuffer` rather than by hand: it
bounds the bytes waiting, counts rejections per reason, and keeps each frame's raw bytes and the last
frames for a dump.
"""
