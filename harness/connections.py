"""What every connection to a store shares, for MLflow's tracking store and Optuna's storage
alike: the URL as it may be shown, and how long one connection attempt may take.

`shown(url)` is the one masker: every URL the harness prints, logs, records as an MLflow
param or tag, or writes into a run's config.toml goes through it. It hides the password
(SQLAlchemy's `render_as_string(hide_password=True)`; a URL SQLAlchemy cannot parse, or one
whose password holds a raw '@', is masked by the rule below) and password-like query values.
`hide_secrets(text, url)` does the same for an error text that may echo the URL or its
password. `timeout_seconds()` is the one reader of $HARNESS_STORE_TIMEOUT.
"""
from __future__ import annotations

import math
import os
import re
from urllib.parse import unquote

from harness.config import ConfigError

MASK = "***"
TIMEOUT_ENV = "HARNESS_STORE_TIMEOUT"
DEFAULT_TIMEOUT_S = 3
MIN_TIMEOUT_S = 2  # libpq's minimum: it treats a connect_timeout of 1 as 2
_SECRET_QUERY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)


def timeout_seconds() -> int:
    """Seconds one store question or connection attempt may take: $HARNESS_STORE_TIMEOUT
    rounded up to whole seconds (drivers take whole seconds), at least MIN_TIMEOUT_S, else
    DEFAULT_TIMEOUT_S. A healthy store answers in milliseconds; the default keeps a user-facing
    store error within 10 s of the command's start. Raises ConfigError (one line) when the
    variable is not a positive finite number of seconds."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: expected a positive number of seconds "
                          f"(default {DEFAULT_TIMEOUT_S}, at least {MIN_TIMEOUT_S} is used)")
    return max(MIN_TIMEOUT_S, math.ceil(value))


def shown(url: str) -> str:
    """`url` as it may be printed or logged: the password replaced by ***, and the value of
    every query parameter whose name says password, pwd, secret or token. A path (no '://':
    a SQLite file, a journal) and a URL with nothing to hide come back unchanged."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy reads (a scheme it refuses, a port that is no number)
        return _masked_by_rule(url)
    if parsed.host and "@" in parsed.host:  # a raw '@' in the password: where it ends is ambiguous
        return _masked_by_rule(url)
    if parsed.password is not None:  # else as given: rendering re-encodes (a path's '%20' becomes ' ')
        url = parsed.render_as_string(hide_password=True)
    return _masked_query(url)


def hide_secrets(text: str, url: str) -> str:
    """`text` (e.g. a driver's error message about `url`) with `url` shown as `shown` shows it
    and every form of its password (as written, percent-decoded) replaced by ***."""
    if "://" not in url:
        return text
    secrets = sorted(_secrets(url), key=len, reverse=True)
    # a secret counts only where it stands alone (between characters that are no letter or digit,
    # as a driver echoes it: "password=x", "user:x@host", 'x@host'): a short password must not
    # turn every "o" of the message into *** and so give itself away
    pattern = re.compile("|".join(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])" for secret in secrets)) \
        if secrets else None
    pieces = text.split(url)
    return shown(url).join(pattern.sub(MASK, piece) if pattern else piece for piece in pieces)


def _secrets(url: str) -> set[str]:
    """Every string in `url` that is a password or a secret query value, as written and decoded."""
    found = set()
    userinfo, _, _ = _split_userinfo(url)
    if userinfo is not None and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
        if password:
            found.add(str(password))
    except Exception:  # not parsable: the rule's split above found what there is
        pass
    for match in re.finditer(r"[?&]([^=&#]+)=([^&#]*)", url):
        if _SECRET_QUERY.search(match.group(1)):
            found.add(match.group(2))
    # a driver that splits a raw '@' or ':' in the password elsewhere than the URL's rule echoes a part
    parts = {part for secret in found for part in re.split(r"[@:]", secret)}
    return {form for secret in found | parts for form in (secret, unquote(secret)) if form}


def _split_userinfo(url: str) -> tuple[str | None, str, str]:
    """(userinfo or None, 'scheme://', the rest after the userinfo's '@'). The userinfo ends at
    the last '@' before the query: a password may hold '/' or ':' written raw."""
    scheme, _, rest = url.partition("://")
    end = min([i for i in (rest.find("?"), rest.find("#")) if i >= 0], default=len(rest))
    at = rest.rfind("@", 0, end)
    if at < 0:
        return None, f"{scheme}://", rest
    return rest[:at], f"{scheme}://", rest[at + 1:]


def _masked_by_rule(url: str) -> str:
    """The masking of a URL SQLAlchemy does not parse: everything after the first ':' of the
    userinfo (which ends at the last '@' before the query) becomes ***, and so does every
    password-like query value. It may hide more than the password, never less."""
    userinfo, head, rest = _split_userinfo(url)
    if userinfo is not None:
        user = userinfo.split(":", 1)[0] + (f":{MASK}" if ":" in userinfo else "")
        url = f"{head}{user}@{rest}"
    return _masked_query(url)


def _masked_query(url: str) -> str:
    """`url` with the value of every password-like query parameter replaced by ***."""
    return re.sub(r"([?&])([^=&#]+)=([^&#]*)",
                  lambda m: f"{m.group(1)}{m.group(2)}={MASK if _SECRET_QUERY.search(m.group(2)) else m.group(3)}",
                  url)
