"""The LIMIS web demo (Gradio): `limis demo`, or `limis.demo.app.build_app(DemoConfig(...))`.

Importing this package loads no Gradio; `limis.demo.app` does.
"""

from limis.demo.config import DemoConfig

__all__ = ["DemoConfig"]
