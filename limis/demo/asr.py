"""Optional speech input: a local transformers speech-recognition model, loaded once and shared.

Nothing is downloaded and no audio leaves the machine; without `--asr-model DIR` the demo hides
the microphone.
"""

from __future__ import annotations

from pathlib import Path

from limis.errors import LimisError


class Transcriber:
    """Audio file -> text with `pipeline("automatic-speech-recognition", model=DIR)`; state-free."""

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise LimisError(f"{model_dir}: no such ASR model folder; give a local transformers "
                             "speech-recognition model (e.g. a saved whisper-tiny) to --asr-model.")
        from transformers import pipeline

        try:
            self.pipeline = pipeline("automatic-speech-recognition", model=str(model_dir), device=device)
        except (OSError, ValueError) as error:
            raise LimisError(f"{model_dir}: not a loadable speech-recognition model ({type(error).__name__}); "
                             "save one with pipeline(...).save_pretrained(DIR).") from error
        self.name = model_dir.name

    def __call__(self, audio_path: str | Path) -> str:
        result = self.pipeline(str(audio_path))
        return str(result.get("text", "")).strip() if isinstance(result, dict) else str(result).strip()
