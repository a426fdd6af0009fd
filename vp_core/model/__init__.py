"""The dual-branch VideoPainter model: CogVideoX-I2V backbone, context-encoder branch, ID-resample attention, RoPE and
the configuration, as plain ``torch.nn`` modules built with ``comfy.ops`` layers. Imports nothing of this pack but
``base``: files, devices and sampling are the rooms above."""
