"""The rationale/plan HTTP service: ``create_app(policy)``, ``serve(policy_dir, host, port)`` and helpers."""

from drive_vla.serve.app import TEMPORAL_MEMORY, create_app, to_observation
from drive_vla.serve.images import decode_image, encode_image
from drive_vla.serve.payload import request_from_observation
from drive_vla.serve.server import BackgroundServer, load_policy, serve

__all__ = [
    "TEMPORAL_MEMORY",
    "BackgroundServer",
    "create_app",
    "decode_image",
    "encode_image",
    "load_policy",
    "request_from_observation",
    "serve",
    "to_observation",
]
