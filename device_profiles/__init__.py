"""The device contract shared by every part of Zhijian: device profiles, the MQTT topic scheme, the
message envelope, the record types with their units, the InfluxDB schema, and the protocol codecs.

This package depends on nothing else of ours; everything else depends on it. See docs/contract.md.
"""

from .envelope import SCHEMA_VERSION, Envelope, check_record, decode, encode
from .errors import REJECT_REASONS, ContractError, EnvelopeError, FrameError, IntegrityError, ProfileError
from .loader import builtin, builtin_profiles, did_you_mean, load_dir, load_profile, parse_profile
from .records import RECORD_TYPES, FieldSpec, RecordType, amount_fen
from .schema import Metrology, Profile

__all__ = [
    "RECORD_TYPES",
    "REJECT_REASONS",
    "SCHEMA_VERSION",
    "ContractError",
    "Envelope",
    "EnvelopeError",
    "FieldSpec",
    "FrameError",
    "IntegrityError",
    "Metrology",
    "Profile",
    "ProfileError",
    "RecordType",
    "amount_fen",
    "builtin",
    "builtin_profiles",
    "check_record",
    "decode",
    "did_you_mean",
    "encode",
    "load_dir",
    "load_profile",
    "parse_profile",
]
