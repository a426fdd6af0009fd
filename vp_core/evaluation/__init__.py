"""The paper's evaluation: ``metrics`` (PSNR, SSIM, LPIPS, CLIP score, temporal consistency, VFID, as the reference
computes them or corrected) and ``datasets`` (VPBench and DAVIS rows cut the reference's way). May import every
room below it (``pipeline`` for the dilation the metrics' masks share with sampling)."""
