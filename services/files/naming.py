"""File naming rules: the name shown and offered for download, the name as sent, the media type."""

from __future__ import annotations

import re
import unicodedata

MAX_FILENAME_BYTES = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"
FALLBACK_FILENAME = "file"

_WINDOWS_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}
)
_UNSAFE_CHARACTERS = frozenset('<>:"|?*')
_MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


def _basename_without_controls(raw: str) -> str:
    """The last path component, with control and format characters gone and spaces collapsed."""
    name = unicodedata.normalize("NFC", raw.encode("utf-8", errors="ignore").decode())
    # Browsers on Windows have sent whole client paths; only the last component is the name.
    name = re.split(r"[/\\]", name)[-1]
    kept = []
    for char in name:
        category = unicodedata.category(char)
        if category in {"Cc", "Zl", "Zp"} or char.isspace():
            kept.append(" ")
        elif category in {"Cf", "Cs"}:
            # Format characters include the bidi controls (U+202A-E, U+2066-9, U+200E/F) that
            # make "txt.exe" read as "exe.txt".
            continue
        else:
            kept.append(char)
    return " ".join("".join(kept).split()).strip(" .")


def _bounded(name: str) -> str:
    """At most MAX_FILENAME_BYTES of UTF-8, keeping a short extension."""
    if len(name.encode()) <= MAX_FILENAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and 0 < len(extension.encode()) <= 16:
        stem = _truncate_utf8(stem, MAX_FILENAME_BYTES - len(extension.encode()) - 1)
        return stem.rstrip(" .") + "." + extension
    return _truncate_utf8(name, MAX_FILENAME_BYTES).rstrip(" .")


def sanitize_filename(raw: str) -> str:
    """A name safe to show and to offer for download: no path, no control characters, bounded."""
    name = "".join("_" if c in _UNSAFE_CHARACTERS else c for c in _basename_without_controls(raw))
    if name.split(".")[0].strip().upper() in _WINDOWS_DEVICE_NAMES:
        name = "_" + name
    return _bounded(name) or FALLBACK_FILENAME


def clean_original_filename(raw: str) -> str:
    """The name as sent, safe to show: last path part, no control or bidi characters, bounded."""
    return _bounded(_basename_without_controls(raw)) or FALLBACK_FILENAME


def normalize_content_type(raw: str | None) -> str:
    """The declared `type/subtype` in lower case, without parameters; octet-stream otherwise."""
    media_type = (raw or "").split(";", 1)[0].strip().lower()
    return media_type if _MEDIA_TYPE.fullmatch(media_type) else DEFAULT_CONTENT_TYPE
