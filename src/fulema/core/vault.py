"""Envelope encryption of sensitive columns, and keyed hashes to search them.

Hierarchy: a **master key** (from configuration or a key file; never in the database) wraps one
**data key per purpose** (`app_secret`, `bank_account`, `phone`, `payer_id`); the data keys
encrypt values. The wrapped data keys live in the **keyring file** (JSON, mode 0600), useless
without the master key, so a database dump, a backup or the keyring alone reveal nothing.

A sealed value is ``v1:<kid>:<nonce>:<ciphertext||tag>`` (base64), where the key id names the
data key, so values written under any key stay readable: rotation is "new writes with the new
key, reads with every known key", and a re-encryption job (`fulema keys reencrypt`) moves old
values over at leisure. A new data key becomes the writing key only after an activation delay,
so every process (each re-reads the keyring file when it changes) knows it before any process
writes with it: no process meets a value it cannot read, and nothing stops.

Ciphers: SM4-GCM (GB/T 32907 in GCM, RFC 8998) by default, AES-256-GCM selectable; both from
`cryptography` (OpenSSL). The additional data binds each value to its purpose, so a ciphertext
copied from one column into another does not decrypt.

Searching: a value that must be found by equality (a payer id, a phone number) keeps beside it
an HMAC-SM3 under the purpose's **index key** (also wrapped by the master key, never rotated
with the data keys, since every stored hash would change), and queries compare hashes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from fulema.core import gm
from fulema.core.clock import clock

PURPOSES = ("app_secret", "bank_account", "phone", "payer_id")
Cipher = Literal["SM4-GCM", "AES-256-GCM"]
CIPHERS: dict[str, int] = {"SM4-GCM": 16, "AES-256-GCM": 32}  # key length in bytes
PREFIX = "v1"
NONCE_BYTES = 12
TAG_BYTES = 16
KID_MAX = 24
# The development master key is published (it is in this file): production refuses it
# (`Settings.production_problems`), development and tests use it when none is configured.
DEV_MASTER_KEY = hashlib.sha256(b"fulema development master key - never in production").digest()
DEV_MASTER_KID = "dev"


class VaultError(ValueError):
    """A value that cannot be opened: unknown key id, wrong purpose, or tampered."""


def sealed_length(plaintext_chars: int) -> int:
    """Column length that holds a sealed value of up to `plaintext_chars` characters (UTF-8
    may take 4 bytes per character)."""
    body = plaintext_chars * 4 + TAG_BYTES
    return (len(PREFIX) + 1 + KID_MAX + 1 + _b64len(NONCE_BYTES) + 1 + _b64len(body))


def _b64len(n: int) -> int:
    return (n + 2) // 3 * 4


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX + ":")


def kid_of(value: str) -> str | None:
    """The data key id a sealed value names (None for a plaintext value)."""
    parts = value.split(":", 3)
    return parts[1] if len(parts) == 4 and parts[0] == PREFIX else None


# --- ciphers ---------------------------------------------------------------------------------

def _seal_bytes(cipher: str, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    if cipher == "SM4-GCM":
        return gm.sm4_gcm_encrypt(key, nonce, plaintext, aad)
    if cipher == "AES-256-GCM":
        return AESGCM(key).encrypt(nonce, plaintext, aad)
    raise VaultError(f"unknown cipher {cipher}")


def _open_bytes(cipher: str, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    try:
        if cipher == "SM4-GCM":
            return gm.sm4_gcm_decrypt(key, nonce, data, aad)
        if cipher == "AES-256-GCM":
            return AESGCM(key).decrypt(nonce, data, aad)
    except Exception as exc:  # InvalidTag, ValueError: one answer, no detail
        raise VaultError("value does not authenticate (wrong key, purpose or tampered)") from exc
    raise VaultError(f"unknown cipher {cipher}")


def _kek(master: bytes, cipher: str) -> bytes:
    """The key-encryption key for one cipher, derived from the master key material (HKDF-SM3),
    so one master secret of any length serves either cipher."""
    return HKDF(algorithm=hashes.SM3(), length=CIPHERS[cipher], salt=None,
                info=b"fulema keyring kek " + cipher.encode()).derive(master)


# --- keys ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataKey:
    kid: str
    purpose: str
    kind: Literal["data", "index"]
    cipher: str
    key: bytes
    active_from: datetime


@dataclass(frozen=True)
class MasterKeys:
    """The key that wraps (`kid`, `key`) and older ones still accepted for unwrapping while a
    master rotation (`fulema keys rewrap`) is under way."""

    kid: str
    key: bytes
    previous: tuple[tuple[str, bytes], ...] = ()

    def get(self, kid: str) -> bytes:
        if kid == self.kid:
            return self.key
        for old_kid, old in self.previous:
            if old_kid == kid:
                return old
        raise VaultError(f"the keyring needs master key {kid!r}, which is not configured")


def parse_master_key(text: str) -> bytes:
    """A master key as configured: base64 (or hex) of at least 16 random bytes."""
    raw = text.strip()
    try:
        key = bytes.fromhex(raw) if len(raw) in (32, 64) and all(
            c in "0123456789abcdefABCDEF" for c in raw) else base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ValueError("a master key is base64 or hex") from exc
    if len(key) < 16:
        raise ValueError("a master key has at least 16 bytes (32 recommended)")
    return key


def _new_kid(purpose: str, kind: str) -> str:
    short = {"app_secret": "sec", "bank_account": "acc", "phone": "tel", "payer_id": "pay"}
    return f"{short.get(purpose, purpose[:3])}{'x' if kind == 'index' else ''}-{secrets.token_hex(6)}"


class Keyring:
    """The wrapped keys of one deployment, in a JSON file (or only in memory when no path is
    given: tests and throwaway processes). Re-read when the file changes, at most every
    `reload_seconds`, so a rotation made by another process reaches this one."""

    def __init__(self, master: MasterKeys, *, cipher: str, path: Path | None,
                 activation_delay_seconds: int = 60, reload_seconds: float = 2.0) -> None:
        if cipher not in CIPHERS:
            raise ValueError(f"cipher: one of {', '.join(CIPHERS)}")
        self.master = master
        self.cipher = cipher
        self.path = path
        self.activation_delay = timedelta(seconds=activation_delay_seconds)
        self.reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._keys: dict[str, DataKey] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._load(create=True)

    # -- file -------------------------------------------------------------------------------

    def _load(self, *, create: bool) -> None:
        if self.path is not None and self.path.exists():
            self._records = json.loads(self.path.read_text())["keys"]
            self._mtime = self.path.stat().st_mtime
        if create and not self._records:
            # The first keys are active at once: nothing can have been written before them.
            epoch = datetime(2000, 1, 1, tzinfo=UTC)
            self._records = [self._record(p, kind, epoch) for p in PURPOSES
                             for kind in ("data", "index")]
            self._save(exclusive=True)
        self._keys = {r["kid"]: self._unwrap(r) for r in self._records}
        _register(self._keys.values())

    def _save(self, *, exclusive: bool = False) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "keys": self._records}, f, indent=1)
        try:
            if exclusive:  # first start: whoever links first wins, the others read theirs
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, self.path)
            else:
                os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        if exclusive:
            self._records = json.loads(self.path.read_text())["keys"]
        self._mtime = self.path.stat().st_mtime

    def _record(self, purpose: str, kind: str, active_from: datetime) -> dict[str, Any]:
        kid = _new_kid(purpose, kind)
        key = secrets.token_bytes(CIPHERS[self.cipher] if kind == "data" else 32)
        return {"kid": kid, "purpose": purpose, "kind": kind, "cipher": self.cipher,
                "master": self.master.kid, "wrapped": self._wrap(kid, purpose, kind, key),
                "created_at": clock.now().isoformat(), "active_from": active_from.isoformat()}

    def _wrap(self, kid: str, purpose: str, kind: str, key: bytes) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = f"keyring:{kid}:{purpose}:{kind}".encode()
        body = _seal_bytes(self.cipher, _kek(self.master.key, self.cipher), nonce, key, aad)
        return f"{self.cipher}:{base64.b64encode(nonce + body).decode()}"

    def _unwrap(self, r: dict[str, Any]) -> DataKey:
        wrap_cipher, blob = r["wrapped"].split(":", 1)
        raw = base64.b64decode(blob)
        aad = f"keyring:{r['kid']}:{r['purpose']}:{r['kind']}".encode()
        key = _open_bytes(wrap_cipher, _kek(self.master.get(r["master"]), wrap_cipher),
                          raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        return DataKey(kid=r["kid"], purpose=r["purpose"], kind=r["kind"], cipher=r["cipher"],
                       key=key, active_from=datetime.fromisoformat(r["active_from"]))

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the file if it changed (another process rotated)."""
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < self.reload_seconds:
            return
        self._checked = now
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                return
            if mtime != self._mtime:
                self._load(create=False)

    # -- use --------------------------------------------------------------------------------

    def writing_key(self, purpose: str) -> DataKey:
        """The newest active data key of a purpose."""
        self.refresh()
        now = clock.now()
        candidates = [k for k in self._keys.values()
                      if k.purpose == purpose and k.kind == "data" and k.active_from <= now]
        if not candidates:
            raise VaultError(f"no data key for purpose {purpose!r}")
        return max(candidates, key=lambda k: (k.active_from, k.kid))

    def index_key(self, purpose: str) -> DataKey:
        keys = [k for k in self._keys.values() if k.purpose == purpose and k.kind == "index"]
        if not keys:
            raise VaultError(f"no index key for purpose {purpose!r}")
        return min(keys, key=lambda k: (k.active_from, k.kid))  # the first one, for ever

    def all_keys(self) -> list[DataKey]:
        return sorted(self._keys.values(), key=lambda k: (k.purpose, k.kind, k.active_from))

    # -- administration ---------------------------------------------------------------------

    def rotate(self, purposes: tuple[str, ...] = PURPOSES, *,
               activate_in_seconds: int | None = None) -> list[DataKey]:
        """New data keys for `purposes`, writing once the activation delay has passed (every
        process re-reads the keyring well within it). Old keys stay for reading."""
        delay = (self.activation_delay if activate_in_seconds is None
                 else timedelta(seconds=activate_in_seconds))
        with self._lock:
            self._load(create=False)
            new = [self._record(p, "data", clock.now() + delay) for p in purposes]
            self._records += new
            self._save()
            self._keys = {r["kid"]: self._unwrap(r) for r in self._records}
            _register(self._keys.values())
        return [self._keys[r["kid"]] for r in new]

    def rewrap(self) -> int:
        """Wrap every key under the current master key (after a master key rotation); the data
        itself is untouched. Returns how many keys were re-wrapped."""
        with self._lock:
            self._load(create=False)
            changed = 0
            for r in self._records:
                if r["master"] != self.master.kid or not r["wrapped"].startswith(self.cipher):
                    key = self._keys[r["kid"]].key
                    r["wrapped"] = self._wrap(r["kid"], r["purpose"], r["kind"], key)
                    r["master"] = self.master.kid
                    changed += 1
            if changed:
                self._save()
        return changed


# --- the process's vault ---------------------------------------------------------------------
#
# Column types (below) seal and open values without a session or a request at hand, so the
# keyring they use is the one the entry point installed (`install`, from the settings tree).
# Every key any keyring of this process has loaded stays known for reading, so values written
# before a reload or by a keyring installed earlier in the same process (tests) still open.

_known: dict[str, DataKey] = {}
_installed: Keyring | None = None


def _register(keys: Any) -> None:
    for k in keys:
        _known[k.kid] = k


def install(keyring: Keyring) -> Keyring:
    global _installed
    _installed = keyring
    return keyring


def is_installed() -> bool:
    return _installed is not None


def keyring() -> Keyring:
    """The installed keyring; without one (a test or tool that built no settings tree), an
    in-memory keyring under the development master key."""
    global _installed
    if _installed is None:
        _installed = Keyring(MasterKeys(DEV_MASTER_KID, DEV_MASTER_KEY), cipher="SM4-GCM",
                             path=None)
    return _installed


def seal(purpose: str, plaintext: str) -> str:
    """Encrypt under the purpose's current data key: ``v1:<kid>:<nonce>:<ct||tag>``."""
    key = keyring().writing_key(purpose)
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = _seal_bytes(key.cipher, key.key, nonce, plaintext.encode(),
                       f"{PREFIX}:{key.kid}:{purpose}".encode())
    return (f"{PREFIX}:{key.kid}:{base64.b64encode(nonce).decode()}:"
            f"{base64.b64encode(body).decode()}")


def open_value(purpose: str, value: str) -> str:
    """The plaintext of a sealed value (a plaintext value written before encryption was
    introduced is returned as it is: rows are encrypted by the migration and by
    `fulema keys reencrypt`, and a rolling deploy may briefly write one)."""
    if not is_sealed(value):
        return value
    try:
        _, kid, nonce_b64, body_b64 = value.split(":", 3)
        nonce, body = base64.b64decode(nonce_b64), base64.b64decode(body_b64)
    except ValueError as exc:
        raise VaultError("malformed sealed value") from exc
    key = _known.get(kid)
    if key is None:
        keyring().refresh(force=True)
        key = _known.get(kid)
    if key is None or key.kind != "data":
        raise VaultError(f"unknown data key {kid!r} (is this process's keyring current?)")
    if key.purpose != purpose:
        raise VaultError("value sealed for another purpose")
    return _open_bytes(key.cipher, key.key, nonce, body, f"{PREFIX}:{kid}:{purpose}".encode()
                       ).decode()


def blind_index(purpose: str, value: str) -> str:
    """HMAC-SM3 of a value under the purpose's index key, 64 hex: equal values, equal hashes,
    and nothing to learn from the hash without the key."""
    key = keyring().index_key(purpose)
    mac = crypto_hmac.HMAC(key.key, hashes.SM3())
    mac.update(value.encode())
    return mac.finalize().hex()


def needs_reencryption(purpose: str, value: str) -> bool:
    """True for a plaintext value or one sealed under a key that no longer writes."""
    return not is_sealed(value) or kid_of(value) != keyring().writing_key(purpose).kid


class Encrypted(TypeDecorator[str]):
    """A string column stored sealed (see the module docstring). Equality queries on it cannot
    work (every seal differs): search through its blind-index column instead."""

    impl = String
    cache_ok = True

    def __init__(self, purpose: str, max_chars: int) -> None:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        super().__init__(sealed_length(max_chars))
        self.purpose = purpose
        self.max_chars = max_chars

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        # Always sealed, even a value that looks sealed (a merchant-supplied payer id could):
        # the re-encryption job writes through a plain table of its own, never through here.
        return None if value is None else seal(self.purpose, value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else open_value(self.purpose, value)
