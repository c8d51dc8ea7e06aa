"""Loading profiles from YAML files, with errors that name the file and the field.

The built-in profiles ship in ``device_profiles/profiles/*.yaml``; an operator can add models by
pointing :func:`load_dir` at a folder of their own.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from .errors import ProfileError
from .schema import Profile


def parse_profile(text: str, source: str) -> Profile:
    """Validate the YAML ``text`` of a profile; ``source`` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise ProfileError(source, where, f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(source, "", "a profile must be a YAML mapping")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(profile)"
        others = len(exc.errors()) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        raise ProfileError(source, field, f"{first['msg']}{more}") from exc


def load_profile(path: str | Path) -> Profile:
    """Load and validate one profile file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), "", f"cannot read: {exc.strerror}") from exc
    return parse_profile(text, str(path))


def load_dir(folder: str | Path) -> dict[str, Profile]:
    """All ``*.yaml`` profiles in ``folder``, by id; two files with one id is an error."""
    profiles: dict[str, Profile] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        profile = load_profile(path)
        if profile.id in profiles:
            raise ProfileError(str(path), "id", f"duplicate profile id {profile.id!r}")
        profiles[profile.id] = profile
    return profiles


@cache
def builtin_profiles() -> dict[str, Profile]:
    """The profiles shipped with Zhijian, by id."""
    folder = resources.files("device_profiles") / "profiles"
    return load_dir(Path(str(folder)))


def builtin(profile_id: str) -> Profile:
    """One shipped profile by id."""
    try:
        return builtin_profiles()[profile_id]
    except KeyError:
        known = ", ".join(sorted(builtin_profiles()))
        hint = did_you_mean(profile_id, builtin_profiles())
        raise ProfileError("builtin", "id", f"no profile {profile_id!r}{hint}; known: {known}") from None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'zj-pcs-30'?"`` for the closest of ``candidates`` to a mistyped ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
