"""No usage data leaves the machine: the telemetry switches of LIMIS's dependencies, set before any of them loads.

Applied when `limis` is imported (a variable the user set wins). Measured on 2026-12-04:
- onnxruntime 1.32 on Linux writes a device id and an event store under ~/.cache/Microsoft/DeveloperTools at
  import and uploads events from there; `ORT_DISABLE_TELEMETRY=1` before the import stops all of it.
- `import openvino` sends a usage event and writes a client id under ~/intel unless the user opted out; with
  `openvino_telemetry` unimportable it uses its own no-op stub (blocked only while openvino is not imported yet).
- the Hugging Face hub and gradio have their own switches.
"""

from __future__ import annotations

import os
import sys

SWITCHES = {"ORT_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def silence_dependency_telemetry() -> None:
    for name, value in SWITCHES.items():
        os.environ.setdefault(name, value)
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)
