"""VideoPainter core: the dual-branch CogVideoX model and the any-length inpainting algorithm.

Knows nothing of node widgets; takes tensors on whatever device ComfyUI's memory manager hands it. One room per
concern, from the bottom up; a room imports only from rooms below it (``tests/unit/test_layout.py`` checks this and
that there is no import circle):

- ``base/``: file safety and the host environment (atomic writes, non-finite checks, finding ComfyUI);
- ``model/``: the networks (CogVideoX-I2V backbone, context branch, ID-resample attention), plain ``torch.nn``;
- ``video/``: reading and seeking video files lazily, frame by frame;
- ``checkpoints/``: files to models (safetensors only), ComfyUI interop, the VAE, T5 text, LoRAs, demo weights;
- ``pipeline/``: the algorithm, from inputs to output file (preprocess, windows, sampling, ID state, parts,
  composite, first frame, the output VIDEO);
- ``evaluation/``: the paper's metrics and the evaluation datasets' readers;
- ``conformance/``: the runner that compares this code with the reference's recorded outputs.
"""
