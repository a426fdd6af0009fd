"""From files to models under ComfyUI's memory management: ``loaders`` (the one module that knows checkpoint files,
key names and shapes; safetensors only), ``core_interop`` (core ComfyUI's CogVideoX key layout), ``patcher`` (the
pack's ``ModelPatcher``), ``attach`` (the branch and LoRAs on a core ``MODEL``), ``vae`` (the CogVideoX VAE, also
from core's ``VAE``), ``text`` (T5 prompt embeddings) and ``tiny_checkpoints`` (random demo/test weights in the
official layouts). May import ``base`` and ``model``."""
