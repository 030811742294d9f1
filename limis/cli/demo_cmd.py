"""`limis demo`: the Gradio web demo, on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from limis.cli.app import app, console, console_err
from limis.cli.options import DEFAULTS, CacheDirOption, DeviceOption, ModelOptions, RuntimeOption, SegmenterOption, WeightsOption
from limis.errors import LimisError

EPILOG = ("Examples: limis demo  ·  limis demo --port 8080 --log-dir study-logs  ·  "
          "limis demo --host 0.0.0.0 --auth-file collaborators.txt --max-upload-mb 256")


@app.command("demo", epilog=EPILOG)
def demo(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the demo to the network."),
    port: int = typer.Option(7860, "--port"),
    auth: str = typer.Option(None, "--auth", help="USER:PASSWORD for a login page (visible in `ps`; prefer --auth-file)."),
    auth_file: Path = typer.Option(None, "--auth-file", help="File of USER:PASSWORD lines, one per collaborator."),
    max_upload_mb: float = typer.Option(None, "--max-upload-mb", help="Largest upload accepted (default 512)."),
    concurrency: int = typer.Option(None, "--concurrency", help="Model jobs run at once across all users (default 2)."),
    log_dir: Path = typer.Option(None, "--log-dir", help="Study logs and questionnaires (default limis-output/study-logs)."),
    task_file: Path = typer.Option(None, "--task-file", help="JSON/YAML list of study tasks (default: 3 built-in tasks)."),
    segmenter: SegmenterOption = DEFAULTS.segmenter,
    weights: WeightsOption = DEFAULTS.weights,
    runtime: RuntimeOption = DEFAULTS.runtime,
    device: DeviceOption = DEFAULTS.device,
    cache_dir: CacheDirOption = DEFAULTS.cache_dir,
    asr_model: Path = typer.Option(None, "--asr-model", help="Local speech-recognition model folder: shows a microphone."),
) -> None:
    """Serve the interactive web demo: upload or pick the example case, type 'left kidney', refine, download."""
    from limis.demo.config import DemoConfig, parse_auth, read_auth_file

    credentials = read_auth_file(auth_file) if auth_file else ((parse_auth(auth),) if auth else ())
    chosen = {
        "max_upload_mb": max_upload_mb, "concurrency_limit": concurrency, "log_dir": log_dir, "task_file": task_file,
        "asr_model": asr_model,
        "models": ModelOptions(segmenter, weights, runtime, device=device, cache_dir=cache_dir),
    }
    config = DemoConfig(host=host, port=port, auth=credentials, **{k: v for k, v in chosen.items() if v is not None})
    check_port_free(host, port)
    if host not in ("127.0.0.1", "localhost") and not credentials:
        console_err.print(f"[yellow]warning:[/] serving on {host} without --auth: anyone who can reach this port "
                          "can upload images and use the demo.", highlight=False)
    try:
        from limis.demo.app import launch
    except ModuleNotFoundError as error:
        if error.name not in ("gradio", "pandas"):
            raise
        raise LimisError(f"the demo needs {error.name}, which is not installed: pip install 'limis[demo]'.") from error

    console.print(f"LIMIS demo on http://{host}:{port} (Ctrl-C to stop)", highlight=False)
    launch(config)


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another program already listens on, before the server or its temp folder starts."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise LimisError(f"--host {host}: not a usable address ({error}); use 127.0.0.1 or this machine's IP.") from error
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: a closed port in TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as error:
            raise LimisError(f"port {port} on {host} is in use or not allowed ({error.strerror}); "
                             "pass another --port or stop the program using it.") from error
