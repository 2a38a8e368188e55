"""THE codec: every encode/decode of HAMi's annotation values (wire-format.md §2).

Decoders raise :class:`~hami.api.errors.WireFormatError` naming the key, the offending piece and
why. Encoders write exactly what HAMi writes (compact Go-style JSON, colon/semicolon lists).

One module per family of values; this package re-exports every public name, so callers
write ``from hami.api import annotations as codec`` and ``codec.decode_pod_devices(...)``.
"""

from __future__ import annotations

from hami.api.annotations._base import (
    INT32_MAX,
    INT32_MIN,
    decode_comma_list,
    encode_comma_list,
    go_json,
    parse_go_bool,
)
from hami.api.annotations.devices import (
    decode_legacy_node_devices,
    decode_node_devices,
    device_info_json,
    encode_legacy_node_devices,
    encode_node_devices,
)
from hami.api.annotations.node_state import (
    decode_handshake,
    decode_node_lock,
    encode_handshake_deleted,
    encode_handshake_requesting,
    encode_node_lock,
)
from hami.api.annotations.pods import (
    allocated_key,
    decode_pod_devices,
    encode_pod_devices,
    to_allocate_key,
    unix_nanos,
    unix_seconds,
)
from hami.api.annotations.scheduling import (
    decode_mig_allocations,
    decode_pair_scores,
    decode_scoring_weights,
    encode_mig_allocations,
    encode_pair_scores,
    encode_scoring_weights,
)
from hami.api.annotations.vendor_formats import (
    AscendRuntime,
    DrsAssignment,
    DrsCapacity,
    DrsDevice,
    DrsProfile,
    MetaxGpu,
    custom_int,
    decode_ascend_runtime,
    decode_count_map,
    decode_drs_capacity,
    decode_metax_devices,
    encode_ascend_runtime,
    encode_drs_assignments,
    encode_metax_allocation,
    parse_drs_profile,
)

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "AscendRuntime",
    "DrsAssignment",
    "DrsCapacity",
    "DrsDevice",
    "DrsProfile",
    "MetaxGpu",
    "allocated_key",
    "custom_int",
    "decode_ascend_runtime",
    "decode_comma_list",
    "decode_count_map",
    "decode_drs_capacity",
    "decode_handshake",
    "decode_legacy_node_devices",
    "decode_metax_devices",
    "decode_mig_allocations",
    "decode_node_devices",
    "decode_node_lock",
    "decode_pair_scores",
    "decode_pod_devices",
    "decode_scoring_weights",
    "device_info_json",
    "encode_ascend_runtime",
    "encode_comma_list",
    "encode_drs_assignments",
    "encode_handshake_deleted",
    "encode_handshake_requesting",
    "encode_legacy_node_devices",
    "encode_metax_allocation",
    "encode_mig_allocations",
    "encode_node_devices",
    "encode_node_lock",
    "encode_pair_scores",
    "encode_pod_devices",
    "encode_scoring_weights",
    "go_json",
    "parse_drs_profile",
    "parse_go_bool",
    "to_allocate_key",
    "unix_nanos",
    "unix_seconds",
]
