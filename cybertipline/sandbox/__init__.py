"""A local stand-in for NCMEC's CyberTipline Reporting API, errors and expiry included."""

from cybertipline.sandbox.app import SandboxConfig, SandboxState, create_sandbox_app
from cybertipline.sandbox.faults import DropMode, FaultSettings
from cybertipline.sandbox.state import ReportStatus, SandboxClock

__all__ = [
    "DropMode",
    "FaultSettings",
    "ReportStatus",
    "SandboxClock",
    "SandboxConfig",
    "SandboxState",
    "create_sandbox_app",
]
