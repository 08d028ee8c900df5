"""The broker's side of speaker security: the ACL file and the credentials each speaker gets.

Every speaker logs in as its speaker id with its own password and may read only its own
messages topic and write only its own ack and hello topics; the platform's user writes every
speaker's messages and reads every ack and hello. Anonymous clients are refused. The tests start
a private Mosquitto with exactly this file (`tests/messaging/test_broker_acl.py`), and
docs/messaging.md shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulema.messaging.domain import device_key, device_password

PLATFORM_USER = "fulema-platform"


def acl_text(prefix: str, platform_user: str = PLATFORM_USER) -> str:
    """A Mosquitto `acl_file` for the speakers under topic prefix `prefix`."""
    return (
        f"# the platform: sends to every speaker, hears every ack and hello\n"
        f"user {platform_user}\n"
        f"topic write {prefix}/speakers/+/messages\n"
        f"topic read {prefix}/speakers/+/ack\n"
        f"topic read {prefix}/speakers/+/hello\n"
        f"\n"
        f"# each speaker (username = speaker id): its own topics only\n"
        f"pattern read {prefix}/speakers/%u/messages\n"
        f"pattern write {prefix}/speakers/%u/ack\n"
        f"pattern write {prefix}/speakers/%u/hello\n"
    )


@dataclass(frozen=True)
class SpeakerCredentials:
    speaker_id: str
    username: str
    password: str
    sign_key_hex: str


def speaker_credentials(secret: str, speaker_id: str) -> SpeakerCredentials:
    """What is provisioned into one speaker (and, the password, into the broker's password
    file with `mosquitto_passwd -b FILE <speaker_id> <password>`)."""
    return SpeakerCredentials(speaker_id=speaker_id, username=speaker_id,
                              password=device_password(secret, speaker_id),
                              sign_key_hex=device_key(secret, speaker_id).hex())
