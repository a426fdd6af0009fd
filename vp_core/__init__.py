"""VideoPainter core: the dual-branch CogVideoX model and the any-length inpainting algorithm.

Knows nothing of node widgets; takes tensors on whatever device ComfyUI's memory manager hands it.
"""
