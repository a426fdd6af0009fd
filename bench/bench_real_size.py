"""Real-size loading without a GPU: random weights in the official layouts, loaded through the pack's loaders.

Writes once, under ``--root`` (default ``/tmp/vp_real_size``, delete it afterwards: 21 GB at full size, ~1 min):
* ``CogVideoX-5b-I2V/transformer``: the CogVideoX-5B-I2V transformer (42 layers, 48 x 64 heads) in bf16, in 3
  shards + ``diffusion_pytorch_model.safetensors.index.json``, as published;
* ``CogVideoX-5b-I2V/vae``: ``AutoencoderKLCogVideoX`` at diffusers' defaults (the CogVideoX VAE), scaling 0.7;
* ``CogVideoX-5b-I2V/text_encoder`` + ``tokenizer``: a T5 v1.1 XXL encoder (24 layers, d 4096, ff 10240) in bf16,
  2 shards + ``model.safetensors.index.json``; the tokenizer ComfyUI ships;
* ``VideoPainter/checkpoints/branch`` (2 layers) and ``VideoPainterID/checkpoints/pytorch_lora_weights.safetensors``
  (rank ``--lora-rank`` on to_q/k/v/out of every block; the published rank is not assumed).

Then each phase runs in its own subprocess (peaks cannot mix) and reports load time and peak RSS (``VmHWM``)
against the size of the files it read; the ratio is (peak - RSS before loading) / files, the RSS before loading
being the process after its imports (torch, ComfyUI, diffusers):
* ``text``: ``text.load_text_encoder`` + two prompts through ``text.encode_prompt``; the embeddings are saved and
  the process exits, so the text encoder and the backbone are never in memory together (as in ComfyUI);
* ``bf16`` / ``fp8``: ``loaders.load_backbone`` (bf16, or fp8_e4m3fn storage) + ``load_branch`` + ``load_vae`` +
  the ID LoRA through ``attach.attach_lora``, then ``Sampler.run`` for one step with CFG and ID resampling on two
  1-frame windows (window 0: the clip's own holes; window 1: the previous window's tokens) at a 1 x 8 x 8 latent
  grid (64 x 64 px); the latents must be finite. The learned positional table of CogVideoX-5B fixes 60 x 90 latents,
  so for this step only it is switched off in the backbone and the branch (``patch_embed.pos_embedding = None``); that changes no memory figure.

The ``bf16`` / ``fp8`` rows also report how the LoRA was applied: ComfyUI's ``ModelPatcher`` merges it into the
weights on a full load and keeps the original of every patched weight to restore it later (on a CPU both copies are in
RAM); on a CPU load device this pack's patcher applies it per call instead (``vp_core/checkpoints/patcher.py``), so the backups
are 0 and the per-call patches are counted.

A benchmark (minutes), not a test. ``--layers N``
writes a backbone of N layers at full width when the full one does not fit the machine; the ratios are per byte.
Phases run one by one (``--phases text``, then ``bf16`` ...: each can hold the machine's lock on its own) add to the
same results file when the sizes match.
``python bench/bench_real_size.py [--root DIR] [--layers 42] [--t5-layers 24] [--phases text,bf16,fp8]``
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
              is_encoder_decoder=False, dropout_rate=0.1, layer_norm_epsilon=1e-6, tie_word_embeddings=False)
BACKBONE_SHARDS, T5_SHARDS = 3, 2


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes() -> int:
    return _status_bytes("VmHWM")


def rss_bytes() -> int:
    """Resident now: taken after the imports, before any weight is read (torch + ComfyUI + diffusers, ~0.7-1 GB)."""
    return _status_bytes("VmRSS")


def random_state(shapes: dict, seed: int):
    """Deterministic, cheap, finite stand-ins: slices of one random bf16 buffer (~N(0, 0.02^2)) at a different
    offset per tensor, norm weights 1, other vectors small. Cheap on purpose (writing is memcpy-bound, not RNG-bound);
    yields (key, bf16 tensor) one at a time."""
    import torch

    g = torch.Generator().manual_seed(seed)
    base = (0.02 * torch.randn(1 << 26, generator=g)).to(torch.bfloat16)
    for i, (key, shape) in enumerate(shapes.items()):
        n = math.prod(shape)
        if len(shape) <= 1 and ("norm" in key or "layer_norm" in key) and key.endswith("weight"):
            yield key, torch.ones(shape, dtype=torch.bfloat16)
            continue
        off = (i * 7919) % base.numel()
        parts, need = [], n
        while need > 0:
            take = min(need, base.numel() - off)
            parts.append(base[off:off + take])
            need, off = need - take, 0
        yield key, (parts[0].clone() if len(parts) == 1 else torch.cat(parts)).reshape(shape)  # own storage: safetensors refuses shared


def write_sharded(folder: Path, shapes: dict, base: str, shards: int, seed: int) -> None:
    """Safetensors shards ``{base}-0000i-of-0000n.safetensors`` + ``{base}.safetensors.index.json``, one shard in
    memory at a time."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    keys = list(shapes)
    total = sum(math.prod(s) for s in shapes.values())
    per = total / shards
    weight_map, chunk, done, index = {}, {}, 0, 1
    stream = random_state(shapes, seed)
    for key in keys:
        _, t = next(stream)
        chunk[key] = t
        done += t.numel()
        if done >= per * index and index < shards or key == keys[-1]:
            name = f"{base}-{index:05d}-of-{shards:05d}.safetensors"
            save_file(chunk, str(folder / f".{name}.tmp"), metadata={"format": "pt"})
            (folder / f".{name}.tmp").rename(folder / name)
            weight_map.update({k: name for k in chunk})
            chunk, index = {}, index + 1
    meta = {"metadata": {"total_size": total * 2}, "weight_map": weight_map}
    (folder / f"{base}.safetensors.index.json").write_text(json.dumps(meta, indent=1))


def write_all(root: Path, layers: int, t5_layers: int, lora_rank: int) -> None:
    import torch
    from diffusers import AutoencoderKLCogVideoX
    from transformers import T5Config, T5EncoderModel

    import comfy.ops
    from videopainter.vp_core.checkpoints import tiny_checkpoints
    from videopainter.vp_core.checkpoints.loaders import DEFAULT_SCHEDULER
    from videopainter.vp_core.model.branch import VideoPainterBranch
    from videopainter.vp_core.model.config import CogVideoXConfig
    from videopainter.vp_core.model.transformer import CogVideoXTransformer

    base = root / "CogVideoX-5b-I2V"
    cfg = CogVideoXConfig(num_layers=layers)
    ops = comfy.ops.disable_weight_init
    with torch.device("meta"):
        bb = {k: tuple(v.shape) for k, v in CogVideoXTransformer(cfg, operations=ops).state_dict().items()}
        br = {k: tuple(v.shape) for k, v in VideoPainterBranch(CogVideoXConfig(num_layers=2), operations=ops).state_dict().items()}
        vae = AutoencoderKLCogVideoX(scaling_factor=0.7)
        t5_cfg = T5Config(**{**T5_XXL, "num_layers": t5_layers})
        t5 = {k: tuple(v.shape) for k, v in T5EncoderModel(t5_cfg).state_dict().items()
              if k != "encoder.embed_tokens.weight"}  # tied to shared.weight: transformers saves it once
    vae_shapes = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    fields = {k: v for k, v in cfg.to_dict().items()}
    write_sharded(base / "transformer", bb, "diffusion_pytorch_model", BACKBONE_SHARDS, 0)
    (base / "transformer" / "config.json").write_text(json.dumps({"_class_name": "CogVideoXTransformer3DModel", **fields}, indent=1))
    write_sharded(base / "vae", vae_shapes, "diffusion_pytorch_model", 1, 1)
    (base / "vae" / "diffusion_pytorch_model-00001-of-00001.safetensors").rename(base / "vae" / "diffusion_pytorch_model.safetensors")
    (base / "vae" / "diffusion_pytorch_model.safetensors.index.json").unlink()
    (base / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLCogVideoX", **dict(vae.config)}, indent=1, default=list))
    write_sharded(base / "text_encoder", t5, "model", T5_SHARDS, 2)
    t5_cfg.save_pretrained(str(base / "text_encoder"))
    tiny_checkpoints._write_text_encoder.__globals__["shutil"].copytree(
        Path(comfy.ops.__file__).parent / "text_encoders" / "t5_tokenizer", base / "tokenizer", dirs_exist_ok=True)
    (base / "scheduler").mkdir(parents=True, exist_ok=True)
    (base / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "CogVideoXDDIMScheduler", **DEFAULT_SCHEDULER}))
    branch = root / "VideoPainter" / "checkpoints" / "branch"
    write_sharded(branch, br, "diffusion_pytorch_model", 1, 3)
    (branch / "diffusion_pytorch_model-00001-of-00001.safetensors").rename(branch / "diffusion_pytorch_model.safetensors")
    (branch / "diffusion_pytorch_model.safetensors.index.json").unlink()
    (branch / "config.json").write_text(json.dumps({"_class_name": "CogvideoXBranchModel", **fields, "num_layers": 2,
                                                    "wo_text": False, "id_pool_resample_learnable": False}))
    inner = cfg.inner_dim
    lora = {}
    for i in range(layers):
        for t in ("to_q", "to_k", "to_v", "to_out.0"):
            p = f"transformer.transformer_blocks.{i}.attn1.{t}"
            lora[f"{p}.lora_A.weight"], lora[f"{p}.lora_B.weight"] = (lora_rank, inner), (inner, lora_rank)
    id_dir = root / "VideoPainterID" / "checkpoints"
    write_sharded(id_dir, lora, "pytorch_lora_weights", 1, 4)
    (id_dir / "pytorch_lora_weights-00001-of-00001.safetensors").rename(id_dir / "pytorch_lora_weights.safetensors")
    (id_dir / "pytorch_lora_weights.safetensors.index.json").unlink()
    (root / "DONE").write_text(json.dumps({"layers": layers, "t5_layers": t5_layers, "lora_rank": lora_rank}))


def folder_bytes(*paths: Path) -> int:
    return sum(p.stat().st_size for path in paths for p in ([path] if path.is_file() else path.rglob("*.safetensors")))


def phase_text(root: Path) -> dict:
    import torch
    from safetensors.torch import save_file

    from videopainter.vp_core.checkpoints import text

    base = root / "CogVideoX-5b-I2V"
    import comfy.sd  # noqa: F401  (imports before the baseline)

    base_rss = rss_bytes()
    t0 = time.perf_counter()
    clip = text.load_text_encoder(base, torch.bfloat16)
    load_s, load_rss = time.perf_counter() - t0, peak_rss_bytes()
    pos, neg = text.encode_prompt(clip, "a red ball rolls on the grass"), text.encode_prompt(clip, "")
    save_file({"positive": pos.float().contiguous(), "negative": neg.float().contiguous()}, str(root / "embeddings.safetensors"))
    return dict(load_s=load_s, total_s=time.perf_counter() - t0, load_peak_rss=load_rss, peak_rss=peak_rss_bytes(), base_rss=base_rss,
                file_bytes=folder_bytes(base / "text_encoder"), finite=bool(torch.isfinite(pos).all()))


def phase_sample(root: Path, storage: str) -> dict:
    import torch
    from safetensors.torch import load_file

    from videopainter.vp_core.checkpoints import attach

    from videopainter.vp_core.pipeline import sampling, windows
    from videopainter.vp_core.checkpoints.loaders import load_backbone, load_branch, load_scheduler_config
    from videopainter.vp_core.checkpoints.vae import load_vae

    base = root / "CogVideoX-5b-I2V"
    dtype = torch.float8_e4m3fn if storage == "fp8" else torch.bfloat16
    base_rss = rss_bytes()
    t0 = time.perf_counter()
    model = load_backbone(base, dtype)
    backbone_s, backbone_rss = time.perf_counter() - t0, peak_rss_bytes()
    branch = load_branch(root / "VideoPainter" / "checkpoints" / "branch", torch.bfloat16)
    vae = load_vae(base, torch.bfloat16)
    model = attach.attach_branch(model, branch, attach.BranchOptions())
    model, _ = attach.attach_lora(model, str(root / "VideoPainterID" / "checkpoints" / "pytorch_lora_weights.safetensors"), 1.0, "id")
    load_s, load_rss = time.perf_counter() - t0, peak_rss_bytes()
    emb = load_file(str(root / "embeddings.safetensors"))
    for net in (model.model.diffusion_model, branch.model.branch):  # their learned tables fix 60 x 90 latents
        net.patch_embed.pos_embedding = None
    size = 64
    g = torch.Generator().manual_seed(0)
    video = (torch.rand(2, size, size, 3, generator=g) * 255).to(torch.uint8)
    masks = torch.zeros(2, size, size, dtype=torch.uint8)
    masks[:, 16:48, 16:48] = 255
    cond = sampling.InpaintConditioning(video, masks, video[0], emb["positive"], emb["negative"], size, size)
    plan = windows.plan_windows(2, 1, 0, "reference")
    models = sampling.Models(model, branch, vae, load_scheduler_config(base), id_resample=True)
    t1 = time.perf_counter()
    res = sampling.Sampler(models, cond, plan, sampling.SamplerSettings(steps=1, prev_clip_weight=0.5)).run()
    # a merged LoRA: ComfyUI's ModelPatcher keeps each patched weight's original to restore it (on a GPU the original
    # stays in host memory and the patched copy goes to the card; on a CPU both are in RAM); per call: none kept
    backup = sum(getattr(b, "weight", b[0] if isinstance(b, tuple) else b).nbytes for b in model.backup.values())
    return dict(storage=storage, lora_backup_bytes=backup, lora_patches_per_call=model.lowvram_patch_counter(),
                end_rss_anon=_status_bytes("RssAnon"),
                end_rss_file=_status_bytes("RssFile"), base_rss=base_rss, backbone_load_s=backbone_s, backbone_peak_rss=backbone_rss, load_s=load_s,
                load_peak_rss=load_rss, step_s=time.perf_counter() - t1, peak_rss=peak_rss_bytes(),
                backbone_bytes=folder_bytes(base / "transformer"),
                all_bytes=folder_bytes(base / "transformer", base / "vae", root / "VideoPainter", root / "VideoPainterID"),
                windows=len(plan.windows), finite=bool(torch.isfinite(res.latents).all()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/vp_real_size"))
    ap.add_argument("--layers", type=int, default=42, help="backbone layers written (42 = CogVideoX-5B-I2V)")
    ap.add_argument("--t5-layers", type=int, default=24, help="T5 encoder layers written (24 = T5 v1.1 XXL)")
    ap.add_argument("--lora-rank", type=int, default=128)
    ap.add_argument("--phases", default="text,bf16,fp8")
    ap.add_argument("--phase", help=argparse.SUPPRESS)  # internal: run one phase in this process
    ap.add_argument("--out", type=Path, help="results folder (default bench/results)")
    args = ap.parse_args(argv)
    common.setup("host", cpu=True)
    if args.phase:
        res = phase_text(args.root) if args.phase == "text" else phase_sample(args.root, args.phase)
        print("RESULT " + json.dumps(res))
        return 0
    done = args.root / "DONE"
    wrote_s = None
    if not done.is_file() or json.loads(done.read_text()) != {"layers": args.layers, "t5_layers": args.t5_layers, "lora_rank": args.lora_rank}:
        t0 = time.perf_counter()
        write_all(args.root, args.layers, args.t5_layers, args.lora_rank)
        wrote_s = time.perf_counter() - t0
    results = {}
    for phase in [p for p in args.phases.split(",") if p]:  # --phases "": only write the files
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--root", str(args.root), "--phase", phase], capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            print(f"phase {phase} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            results[phase] = {"failed": proc.returncode, "stderr_tail": proc.stderr[-2000:]}
            continue
        results[phase] = json.loads(line[0][7:])
        results[phase]["wall_s"] = time.perf_counter() - t0
    gib = 2 ** 30
    rows = []
    for phase, r in results.items():
        if "failed" in r:
            rows.append([phase, "FAILED", "", "", "", "", ""])
            continue
        grow = lambda peak, files: f"{(peak - r['base_rss']) / files:.3f}"  # noqa: E731
        if phase == "text":
            rows.append(["text encoder load", f"{r['file_bytes'] / gib:.2f}", f"{r['load_s']:.1f}",
                         f"{r['load_peak_rss'] / gib:.2f}", f"{r['base_rss'] / gib:.2f}",
                         grow(r["load_peak_rss"], r["file_bytes"]), ""])
            rows.append(["text encoder + 2 prompts", f"{r['file_bytes'] / gib:.2f}", f"{r['total_s']:.1f}",
                         f"{r['peak_rss'] / gib:.2f}", f"{r['base_rss'] / gib:.2f}", grow(r["peak_rss"], r["file_bytes"]),
                         f"finite {r['finite']}"])
        else:
            rows.append([f"backbone {phase}", f"{r['backbone_bytes'] / gib:.2f}", f"{r['backbone_load_s']:.1f}",
                         f"{r['backbone_peak_rss'] / gib:.2f}", f"{r['base_rss'] / gib:.2f}",
                         grow(r["backbone_peak_rss"], r["backbone_bytes"]), ""])
            rows.append([f"all models {phase} + 1 step", f"{r['all_bytes'] / gib:.2f}", f"{r['load_s']:.1f}",
                         f"{r['peak_rss'] / gib:.2f}", f"{r['base_rss'] / gib:.2f}", grow(r["peak_rss"], r["all_bytes"]),
                         f"step {r['step_s']:.1f} s ({r['windows']} windows, CFG, ID), finite {r['finite']}; "
                         f"LoRA: {r.get('lora_patches_per_call', 0)} weights patched per call, ComfyUI's backups "
                         f"{r['lora_backup_bytes'] / gib:.2f} GiB (ratio without them "
                         + grow(r["peak_rss"] - r["lora_backup_bytes"], r["all_bytes"]) + ")"])
    print(f"Real-size loading: backbone {args.layers} layers, T5 {args.t5_layers} layers, root {args.root}"
          + (f", written in {wrote_s:.0f} s" if wrote_s else ", files reused"))
    print(common.table(["phase", "files GiB", "load s", "peak RSS GiB", "before loading GiB",
                        "(peak - before) / files", "note"], rows))
    config = dict(layers=args.layers, t5_layers=args.t5_layers, lora_rank=args.lora_rank)
    runs = {}  # phases run separately (each under its own lock) accumulate in one file, per phase its own command
    old = (args.out or common.RESULTS) / "real_size.json"
    if old.is_file():
        prev = json.loads(old.read_text())
        if {k: prev.get(k) for k in config} == config:
            runs = prev.get("runs", {})
            if wrote_s is None and prev.get("write_s") is not None:
                wrote_s = prev["write_s"]
    stamp = dict(command=" ".join(["python", "bench/bench_real_size.py", *sys.argv[1:]]), written=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    runs.update({phase: dict(r, **stamp) for phase, r in results.items()})
    path = common.write_json("real_size", dict(config, write_s=wrote_s, runs=runs), args.out)
    print(f"-> {path}")
    return 0 if all("failed" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
